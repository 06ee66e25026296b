// DecodeGraphs (decode_graphs.h): fixed input buffers, batch/width buckets, capture on first use, replay.
#include "engine/decode_graphs.h"

#include <algorithm>

#include "base/check.h"
#include "base/logging.h"

namespace dsa::engine {

std::vector<int64_t> default_graph_batch_sizes(int64_t max_bs) {
    std::vector<int64_t> sizes;
    for (int64_t s : {1, 2, 4, 8, 12}) {
        if (s <= max_bs) sizes.push_back(s);
    }
    for (int64_t s = 16; s <= max_bs; s += 8) sizes.push_back(s);
    if (max_bs > 0 && (sizes.empty() || sizes.back() != max_bs)) sizes.push_back(max_bs);
    return sizes;
}

int64_t decode_width(int64_t max_len, int64_t max_context, int64_t page_size) {
    int64_t w = 1024;
    while (w < max_len) w *= 2;
    const int64_t cap = (std::max(max_context, max_len) + page_size - 1) / page_size * page_size;
    return std::min(w, cap);
}

DecodeGraphs::DecodeGraphs(model::DsaModel& model, model::KvStores& kv, int64_t page_size, int64_t max_context,
                           DecodeGraphOptions options)
    : model_(model),
      kv_(kv),
      be_(model.backend()),
      page_size_(page_size),
      max_context_(max_context),
      options_(std::move(options)) {
    DSA_CHECK(page_size_ > 0 && max_context_ > 0) << "DecodeGraphs page size " << page_size_ << ", context "
                                                  << max_context_;
    if (options_.enabled && options_.max_bs > 0) {
        sizes_ = options_.batch_sizes.empty() ? default_graph_batch_sizes(options_.max_bs) : options_.batch_sizes;
        std::sort(sizes_.begin(), sizes_.end());
        sizes_.erase(std::unique(sizes_.begin(), sizes_.end()), sizes_.end());
        DSA_CHECK(sizes_.empty() || sizes_.front() > 0) << "CUDA graph batch sizes must be positive";
    }
    max_pages_ = decode_width(max_context_, max_context_, page_size_) / page_size_;
    const int64_t rows = sizes_.empty() ? 0 : sizes_.back();
    if (rows > 0) {
        tokens_ = Tensor::empty({rows}, DType::kI32, model.device(), "graph.tokens");
        positions_ = Tensor::empty({rows}, DType::kI32, model.device(), "graph.positions");
        page_table_ = Tensor::empty({rows * max_pages_}, DType::kI32, model.device(), "graph.page_table");
        Tensor iota = Tensor::empty({rows}, DType::kI32, Device::kCPU, "iota");
        for (int64_t i = 0; i < rows; ++i) iota.data<int32_t>()[i] = static_cast<int32_t>(i);
        query_request_ = be_.to_device(iota);
    }
}

DecodeGraphs::~DecodeGraphs() = default;

bool DecodeGraphs::is_decode(std::span<const model::SequenceStep> steps) {
    if (steps.empty()) return false;
    return std::all_of(steps.begin(), steps.end(),
                       [](const model::SequenceStep& s) { return s.new_tokens.size() == 1 && !s.all_logits; });
}

int64_t DecodeGraphs::bucket(int64_t n) const {
    auto it = std::lower_bound(sizes_.begin(), sizes_.end(), n);
    return it == sizes_.end() ? 0 : *it;
}

void DecodeGraphs::fill_host(std::span<const model::SequenceStep> steps, int64_t bs, int64_t pages) {
    host_tokens_.assign(bs, 0);
    host_positions_.assign(bs, 0);
    host_pages_.assign(bs * pages, 0);  // padding rows: page 0 (reserved), position 0
    for (size_t b = 0; b < steps.size(); ++b) {
        const model::SequenceStep& s = steps[b];
        const int64_t len = s.num_cached + 1, used = (len + page_size_ - 1) / page_size_;
        DSA_CHECK(static_cast<int64_t>(s.page_table.size()) >= used && used <= pages)
            << "decode sequence " << b << " of " << len << " tokens: " << s.page_table.size() << " pages, width "
            << pages * page_size_;
        host_tokens_[b] = s.new_tokens[0];
        host_positions_[b] = static_cast<int32_t>(s.num_cached);
        std::copy(s.page_table.begin(), s.page_table.begin() + used, host_pages_.begin() + b * pages);
    }
}

model::DecodeInputs DecodeGraphs::stage(std::span<const model::SequenceStep> steps, int64_t bs, int64_t width) {
    const int64_t pages = width / page_size_;
    DSA_CHECK_LE(pages, max_pages_) << "decode width " << width << " beyond the context";
    fill_host(steps, bs, pages);
    model::DecodeInputs in;
    in.token_ids = tokens_.slice(0, bs);
    in.positions = positions_.slice(0, bs);
    in.page_table = page_table_.slice(0, bs * pages).view({bs, pages});
    in.query_request = query_request_.slice(0, bs);
    in.page_size = page_size_;
    in.width = width;
    be_.copy_into(Tensor::wrap(host_tokens_.data(), {bs}, DType::kI32, Device::kCPU, nullptr), in.token_ids);
    be_.copy_into(Tensor::wrap(host_positions_.data(), {bs}, DType::kI32, Device::kCPU, nullptr), in.positions);
    be_.copy_into(Tensor::wrap(host_pages_.data(), {bs, pages}, DType::kI32, Device::kCPU, nullptr), in.page_table);
    return in;
}

model::DecodeInputs DecodeGraphs::upload(std::span<const model::SequenceStep> steps, int64_t width) {
    const auto n = static_cast<int64_t>(steps.size());
    const int64_t pages = width / page_size_;
    fill_host(steps, n, pages);
    model::DecodeInputs in;
    auto up = [&](const std::vector<int32_t>& v, const Shape& shape) {  // an owned copy (the CPU aliases it)
        Tensor t = Tensor::empty(shape, DType::kI32, Device::kCPU, "decode_input");
        std::copy(v.begin(), v.end(), t.data<int32_t>());
        return be_.to_device(t);
    };
    in.token_ids = up(host_tokens_, {n});
    in.positions = up(host_positions_, {n});
    in.page_table = up(host_pages_, {n, pages});
    std::vector<int32_t> iota(n);
    for (int64_t i = 0; i < n; ++i) iota[i] = static_cast<int32_t>(i);
    in.query_request = up(iota, {n});
    in.page_size = page_size_;
    in.width = width;
    return in;
}

Tensor DecodeGraphs::run(std::span<const model::SequenceStep> steps) {
    DSA_CHECK(is_decode(steps)) << "DecodeGraphs::run on a step that is not a decode step";
    const auto n = static_cast<int64_t>(steps.size());
    int64_t max_len = 0;
    for (const model::SequenceStep& s : steps) max_len = std::max(max_len, s.num_cached + 1);
    const int64_t width = decode_width(max_len, max_context_, page_size_);
    const int64_t bs = bucket(n);
    if (bs == 0) return model_.forward_decode(upload(steps, width), kv_).logits;
    return execute(bs, width, stage(steps, bs, width)).slice(0, n);
}

void DecodeGraphs::capture_all() {
    const int64_t width = decode_width(1, max_context_, page_size_);
    for (int64_t bs : sizes_) (void)execute(bs, width, stage({}, bs, width));  // every row a padding row
}

Tensor DecodeGraphs::execute(int64_t bs, int64_t width, const model::DecodeInputs& in) {
    auto [it, fresh] = graphs_.try_emplace({bs, width});
    Graph& g = it->second;
    if (!fresh) {
        if (!g.graph) return model_.forward_decode(in, kv_).logits;  // its capture failed: eager
        be_.replay_graph(*g.graph);
        ++replays_;
        return g.logits;
    }
    // First step of this bucket: run it eagerly (this also makes every lazily built weight copy and GEMM plan
    // the graph needs), then record the same step for the next ones.
    Tensor logits = model_.forward_decode(in, kv_).logits;
    StatusOr<std::unique_ptr<backend::BackendGraph>> graph =
        be_.capture_graph([&] { g.logits = model_.forward_decode(in, kv_).logits; });
    if (graph.is_ok()) {
        g.graph = std::move(graph).value();
        ++captured_;
        DSA_LOG(kDebug) << "captured the decode graph for batch " << bs << ", width " << width << " (graph pool "
                        << (be_.graph_pool_bytes() >> 20) << " MiB)";
    } else {
        g.logits = Tensor();
        ++failures_;
        DSA_LOG(kWarning) << "decode batch " << bs << ", width " << width
                          << " runs without a CUDA graph: " << graph.status().to_string();
    }
    return logits;
}

}  // namespace dsa::engine
