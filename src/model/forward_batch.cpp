// Batch construction from per-sequence page tables.
#include "model/forward_batch.h"

#include <algorithm>

#include "base/check.h"

namespace dsa::model {

ForwardBatch build_forward_batch(std::span<const SequenceStep> steps, int64_t page_size) {
    ForwardBatch b;
    int64_t num_tokens = 0, max_len = 0, num_rows = 0;
    for (const SequenceStep& s : steps) {
        int64_t n = static_cast<int64_t>(s.new_tokens.size());
        DSA_CHECK_GT(n, 0) << "a sequence step must compute at least one token";
        num_tokens += n;
        max_len = std::max(max_len, s.num_cached + n);
        num_rows += s.all_logits ? n : 1;
    }
    const int64_t num_seqs = static_cast<int64_t>(steps.size());
    b.token_ids = Tensor::empty({num_tokens}, DType::kI32, Device::kCPU, "token_ids");
    b.positions = Tensor::empty({num_tokens}, DType::kI32, Device::kCPU, "positions");
    b.out_slots = Tensor::empty({num_tokens}, DType::kI32, Device::kCPU, "out_slots");
    b.query_request = Tensor::empty({num_tokens}, DType::kI32, Device::kCPU, "query_request");
    b.key_slots = Tensor::empty({num_seqs, max_len}, DType::kI32, Device::kCPU, "key_slots");
    b.logit_rows = Tensor::empty({num_rows}, DType::kI32, Device::kCPU, "logit_rows");

    int32_t* ids = b.token_ids.data<int32_t>();
    int32_t* pos = b.positions.data<int32_t>();
    int32_t* out = b.out_slots.data<int32_t>();
    int32_t* qreq = b.query_request.data<int32_t>();
    int32_t* keys = b.key_slots.data<int32_t>();
    int32_t* rows = b.logit_rows.data<int32_t>();
    int64_t t = 0, r = 0;
    for (int64_t si = 0; si < num_seqs; ++si) {
        const SequenceStep& s = steps[si];
        const int64_t n = static_cast<int64_t>(s.new_tokens.size());
        const int64_t len = s.num_cached + n;
        DSA_CHECK_GE(static_cast<int64_t>(s.page_table.size()) * page_size, len)
            << "page table of sequence " << si << " does not cover its " << len << " tokens";
        int32_t* row = keys + si * max_len;
        for (int64_t p = 0; p < max_len; ++p) {
            row[p] = p < len ? static_cast<int32_t>(s.page_table[p / page_size] * page_size + p % page_size) : -1;
        }
        b.seqs.push_back({t, n, s.num_cached});
        for (int64_t i = 0; i < n; ++i, ++t) {
            ids[t] = s.new_tokens[i];
            pos[t] = static_cast<int32_t>(s.num_cached + i);
            out[t] = row[s.num_cached + i];
            qreq[t] = static_cast<int32_t>(si);
            if (s.all_logits || i == n - 1) rows[r++] = static_cast<int32_t>(t);
        }
    }
    return b;
}

}  // namespace dsa::model

#include <cstring>

#include "backend/backend.h"
#include "model/config.h"

namespace dsa::model {

KvStores allocate_kv_stores(const ModelConfig& config, backend::MlaKvFormat mla_format,
                            backend::IndexerKeyFormat indexer_format, int64_t num_pages, int64_t page_size,
                            int64_t num_mtp_layers) {
    DSA_CHECK_EQ(page_size, backend::kIndexerPageSize) << "the indexer key store is paged by 64 tokens";
    KvStores kv;
    const int64_t num_layers = config.num_hidden_layers + num_mtp_layers;
    const int64_t num_slots = num_pages * page_size;
    for (int64_t l = 0; l < num_layers; ++l) {
        backend::MlaKvStore m;
        m.format = mla_format;
        m.data = Tensor::zeros({num_slots, backend::mla_kv_bytes_per_token(mla_format)}, DType::kU8, Device::kCPU,
                               "mla_kv");
        kv.mla.push_back(m);
        backend::IndexerKeyStore ix;
        ix.format = indexer_format;
        if (config.layer_has_own_indexer(l)) {
            ix.data = Tensor::zeros({num_pages, backend::indexer_page_bytes(indexer_format)}, DType::kU8,
                                    Device::kCPU, "indexer_keys");
        }
        kv.indexer.push_back(ix);
    }
    return kv;
}

KvStores allocate_kv_stores(backend::Backend& backend, const ModelConfig& config, int64_t num_pages, int64_t page_size,
                            int64_t num_mtp_layers) {
    const backend::Numerics& n = backend.numerics();
    KvStores kv =
        allocate_kv_stores(config, n.mla_kv_format(), n.indexer_key_format(), num_pages, page_size, num_mtp_layers);
    if (backend.device() == Device::kCPU) return kv;
    // Zeroed host stores copied up once (no backend op writes a whole store; these stores are test/CLI sized).
    for (backend::MlaKvStore& m : kv.mla) m.data = backend.to_device(m.data);
    for (backend::IndexerKeyStore& ix : kv.indexer) {
        if (ix.data.defined()) ix.data = backend.to_device(ix.data);
    }
    return kv;
}

}  // namespace dsa::model
