// CPU KV writes and reads: MLA latents (c_kv + k_pe) into / out of the latent store, and indexer keys into the
// paged key store (Hadamard + FP8 with indexer_fp8, plain f32 otherwise). Negative slots are skipped on write.
#include <algorithm>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_util.h"
#include "backend/cpu/kv_access.h"
#include "backend/cpu/quant.h"

namespace dsa::backend::cpu {

void CpuBackend::mla_kv_write(const MlaKvWriteParams& p) {
    DSA_CHECK(p.store != nullptr) << "mla_kv_write without a store";
    check_mla_store(*p.store);
    check_tensor(p.c_kv, DType::kF32, {-1, kMlaLatentDim}, "mla_kv_write c_kv");
    const int64_t tokens = p.c_kv.dim(0);
    check_tensor(p.k_pe, DType::kF32, {tokens, kMlaRopeDim}, "mla_kv_write k_pe");
    check_tensor(p.slots, DType::kI32, {tokens}, "mla_kv_write slots");
    for (int64_t t = 0; t < tokens; ++t) {
        const int64_t slot = p.slots.data<int32_t>()[t];
        if (slot < 0) continue;
        uint8_t* row = latent_row(*p.store, slot);
        encode_latent(p.c_kv.data<float>() + t * kMlaLatentDim, p.k_pe.data<float>() + t * kMlaRopeDim,
                      p.store->format, row);
    }
}

void CpuBackend::read_latents(const MlaKvStore& store, const int32_t* slots, int64_t n, float* out) const {
    for (int64_t i = 0; i < n; ++i) decode_latent(latent_row(store, slots[i]), store.format, out + i * kMlaKvDim);
}

Tensor CpuBackend::mla_kv_read(const MlaKvStore& store, const Tensor& slots) {
    check_mla_store(store);
    check_tensor(slots, DType::kI32, {-1}, "mla_kv_read slots");
    Tensor out = Tensor::empty({slots.dim(0), kMlaKvDim}, DType::kF32, Device::kCPU, "latent");
    read_latents(store, slots.data<int32_t>(), slots.dim(0), out.data<float>());
    return out;
}

void CpuBackend::indexer_k_write(const IndexerKWriteParams& p) {
    DSA_CHECK(p.store != nullptr) << "indexer_k_write without a store";
    check_indexer_store(*p.store);
    DSA_CHECK(p.store->format == numerics_.indexer_key_format())
        << "indexer store is " << indexer_key_format_name(p.store->format) << " but the numerics need "
        << indexer_key_format_name(numerics_.indexer_key_format());
    check_tensor(p.k, DType::kF32, {-1, kIndexerHeadDim}, "indexer_k_write k");
    const int64_t tokens = p.k.dim(0);
    check_tensor(p.slots, DType::kI32, {tokens}, "indexer_k_write slots");
    float k[kIndexerHeadDim];
    uint8_t k8[kIndexerHeadDim];
    for (int64_t t = 0; t < tokens; ++t) {
        const int64_t slot = p.slots.data<int32_t>()[t];
        if (slot < 0) continue;
        std::memcpy(k, p.k.data<float>() + t * kIndexerHeadDim, sizeof(k));
        if (!numerics_.indexer_fp8) {
            store_indexer_key_f32(*p.store, slot, k);
            continue;
        }
        hadamard128(k);
        round_act(k, kIndexerHeadDim);
        const float scale = act_quant_block(k, kIndexerHeadDim, numerics_.ue8m0_scales, k8);
        store_indexer_key(*p.store, slot, k8, scale);
    }
}

}  // namespace dsa::backend::cpu
