// CudaBackend's fused decode-path ops (fused_kernels.cu): mla_latent_write runs RMSNorm + RoPE + the latent KV
// write in one kernel, mla_query the absorbed query's join + RoPE, indexer_key_write LayerNorm + RoPE + the key
// write; rms_norm_q8_and_writes (DSA_FUSED_WRITES, default 1) the q_a norm and both writes in one launch. Shapes the
// kernels do not take
// (another RoPE width, an MLA store format other than bf16-576 / fp8-656) run the Backend default (the separate
// ops). DSA_FUSED_DECODE=0 sends both to the default and stops the norms' act_quant (A/B timing, triage).
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "base/env.h"

namespace dsa::backend::cuda {

bool fused_decode_enabled() {
    static const bool on = [] {
        const char* v = std::getenv("DSA_FUSED_DECODE");
        return v == nullptr || std::strcmp(v, "0") != 0;
    }();
    return on;
}

bool fused_switch(const char* name, bool default_on, const char* help) {
    const int64_t v = env_count(name, default_on ? 1 : 0, help);
    DSA_CHECK(v <= 1) << name << " must be 0 or 1, not " << v;
    return v == 1 && fused_decode_enabled();
}

namespace {

// A contiguous i32 [tokens] slot list on the device (host values are checked < num_slots first; -1 = skip).
Tensor slot_list(Backend& be, const Tensor& slots, int64_t tokens, int64_t num_slots, const char* what) {
    DSA_CHECK(slots.defined() && slots.ndim() == 1 && slots.dim(0) == tokens && slots.dtype() == DType::kI32 &&
              slots.is_contiguous())
        << what << " slots must be contiguous i32 [" << tokens << "]";
    if (slots.device() == Device::kCUDA) return slots;  // range-checked in the kernel
    for (int64_t t = 0; t < tokens; ++t) {
        DSA_CHECK(slots.data<int32_t>()[t] < num_slots)
            << what << " slot " << slots.data<int32_t>()[t] << " of " << num_slots;
    }
    return be.to_device(slots);
}

}  // namespace

bool CudaBackend::latent_write_params(const MlaLatentWriteParams& p, MlaLatentWriteKernelParams& k,
                                      std::vector<Tensor>& keep) {
    DSA_CHECK(p.store != nullptr && p.table != nullptr) << "mla_latent_write without a store or a RoPE table";
    const MlaKvStore& store = *p.store;
    if (!fused_decode_enabled() || (store.format != MlaKvFormat::kBF16 && store.format != MlaKvFormat::kFp8) ||
        p.table->rot_dim() != kMlaRopeDim || p.kv_a.ndim() != 2 || p.kv_a.dim(1) != kMlaKvDim) {
        return false;
    }
    check_device_tensor(p.kv_a, DType::kBF16, {-1, kMlaKvDim}, "mla_latent_write kv_a");
    DSA_CHECK(store.data.defined() && store.data.device() == Device::kCUDA && store.data.is_contiguous() &&
              store.data.dtype() == DType::kU8 && store.data.ndim() == 2 &&
              store.data.dim(1) == mla_kv_bytes_per_token(store.format))
        << "mla_latent_write: the store must be a contiguous CUDA [slots, row bytes] u8 tensor";
    const int64_t tokens = p.kv_a.dim(0), num_slots = store.num_slots(), max_pos = p.table->max_positions();
    Tensor slots = slot_list(*this, p.slots, tokens, num_slots, "mla_latent_write");
    DSA_CHECK(p.positions.defined() && p.positions.ndim() == 1 && p.positions.dim(0) == tokens)
        << "mla_latent_write positions must be [" << tokens << "]";
    Tensor pos = device_indices(p.positions, max_pos, "mla_latent_write positions");
    Tensor w = param_f32(p.norm_weight, kMlaLatentDim, "kv_a_layernorm weight");
    Tensor cos = cached_device_copy(p.table->cos), sin = cached_device_copy(p.table->sin);
    k = MlaLatentWriteKernelParams{};
    k.kv_a = p.kv_a.data<uint16_t>();
    k.weight = w.data<float>();
    k.positions = pos.data<int32_t>();
    k.cos = cos.data<float>(), k.sin = sin.data<float>();
    k.slots = slots.data<int32_t>();
    k.store = store.data.data<uint8_t>();
    k.num_tokens = tokens, k.num_slots = num_slots, k.max_positions = max_pos;
    k.eps = p.eps;
    k.interleaved = p.layout == RopeLayout::kInterleaved;
    k.fp8 = store.format == MlaKvFormat::kFp8;
    keep.insert(keep.end(), {slots, pos, w, cos, sin});  // device copies the kernel reads: alive until it is launched
    return true;
}

void CudaBackend::mla_latent_write(const MlaLatentWriteParams& p) {
    MlaLatentWriteKernelParams k;
    std::vector<Tensor> keep;
    last_latent_write_fused_ = latent_write_params(p, k, keep);
    if (!last_latent_write_fused_) return Backend::mla_latent_write(p);
    launch_mla_latent_write(k, stream_);
}

Tensor CudaBackend::mla_query(const MlaQueryParams& p) {
    DSA_CHECK(p.table != nullptr) << "mla_query without a RoPE table";
    last_query_fused_ = fused_decode_enabled() && p.table->rot_dim() == kMlaRopeDim && p.q_absorbed.ndim() == 3 &&
                        p.q_absorbed.dim(2) == kMlaLatentDim;
    if (!last_query_fused_) return Backend::mla_query(p);
    check_device_tensor(p.q_absorbed, DType::kBF16, {-1, -1, kMlaLatentDim}, "mla_query q_absorbed");
    const int64_t tokens = p.q_absorbed.dim(0), heads = p.q_absorbed.dim(1);
    check_device_tensor(p.q, DType::kBF16, {tokens, heads, -1}, "mla_query q");
    DSA_CHECK(p.positions.defined() && p.positions.ndim() == 1 && p.positions.dim(0) == tokens)
        << "mla_query positions must be [" << tokens << "]";
    Tensor pos = device_indices(p.positions, p.table->max_positions(), "mla_query positions");
    Tensor cos = cached_device_copy(p.table->cos), sin = cached_device_copy(p.table->sin);
    Tensor out = Tensor::empty({tokens, heads, kMlaKvDim}, DType::kBF16, Device::kCUDA, "mla_query");
    MlaQueryKernelParams k;
    k.q_absorbed = p.q_absorbed.data<uint16_t>(), k.q = p.q.data<uint16_t>();
    k.positions = pos.data<int32_t>();
    k.cos = cos.data<float>(), k.sin = sin.data<float>();
    k.out = out.data<uint16_t>();
    k.rows = tokens * heads, k.heads = heads, k.q_dim = p.q.dim(2), k.max_positions = p.table->max_positions();
    k.interleaved = p.layout == RopeLayout::kInterleaved;
    launch_mla_query(k, stream_);
    return out;
}

bool CudaBackend::key_write_params(const IndexerKeyWriteParams& p, IndexerKeyWriteKernelParams& k,
                                   std::vector<Tensor>& keep) {
    DSA_CHECK(p.store != nullptr && p.table != nullptr) << "indexer_key_write without a store or a RoPE table";
    if (!fused_decode_enabled() || p.table->rot_dim() != 64) return false;
    const IndexerKeyStore& store = *p.store;
    DSA_CHECK(store.format == numerics_.indexer_key_format())
        << "indexer_key_write: the store is " << indexer_key_format_name(store.format) << " but the numerics need "
        << indexer_key_format_name(numerics_.indexer_key_format());
    check_device_tensor(store.data, DType::kU8, {-1, indexer_page_bytes(store.format)}, "indexer_key_write store");
    check_device_tensor(p.wk_x, DType::kBF16, {-1, kIndexerHeadDim}, "indexer_key_write wk_x");
    const int64_t tokens = p.wk_x.dim(0), num_slots = store.num_slots(), max_pos = p.table->max_positions();
    DSA_CHECK(num_slots <= 0x7fffffff) << "indexer_key_write: " << num_slots << " slots";
    Tensor slots = slot_list(*this, p.slots, tokens, num_slots, "indexer_key_write");
    DSA_CHECK(p.positions.defined() && p.positions.ndim() == 1 && p.positions.dim(0) == tokens)
        << "indexer_key_write positions must be [" << tokens << "]";
    Tensor pos = device_indices(p.positions, max_pos, "indexer_key_write positions");
    Tensor w = param_f32(p.norm_weight, kIndexerHeadDim, "k_norm weight");
    Tensor b = param_f32(p.norm_bias, kIndexerHeadDim, "k_norm bias");
    Tensor cos = cached_device_copy(p.table->cos), sin = cached_device_copy(p.table->sin);
    k = IndexerKeyWriteKernelParams{};
    k.wk_x = p.wk_x.data<uint16_t>();
    k.weight = w.data<float>(), k.bias = b.data<float>();
    k.positions = pos.data<int32_t>();
    k.cos = cos.data<float>(), k.sin = sin.data<float>();
    k.slots = slots.data<int32_t>();
    k.pages = store.data.data<uint8_t>();
    k.num_tokens = tokens, k.num_slots = num_slots, k.max_positions = max_pos;
    k.eps = p.eps;
    k.hadamard_scale = 1.0f / std::sqrt(128.0f);
    k.interleaved = p.layout == RopeLayout::kInterleaved;
    k.fp8 = store.format == IndexerKeyFormat::kFp8;
    k.ue8m0 = numerics_.ue8m0_scales;
    keep.insert(keep.end(), {slots, pos, w, b, cos, sin});  // alive until the kernel is launched
    return true;
}

void CudaBackend::indexer_key_write(const IndexerKeyWriteParams& p) {
    IndexerKeyWriteKernelParams k;
    std::vector<Tensor> keep;
    last_key_write_fused_ = key_write_params(p, k, keep);
    if (!last_key_write_fused_) return Backend::indexer_key_write(p);
    launch_indexer_key_write(k, stream_);
}

bool fused_writes_enabled() {
    return fused_switch("DSA_FUSED_WRITES", true,
                        "CUDA decode: 1 (default) = the q_a RMSNorm, the MLA latent write and the indexer key "
                        "write in one launch; 0 = three launches");
}

QuantizedAct CudaBackend::rms_norm_q8_and_writes(const Tensor& x, const Tensor& weight, float eps,
                                                 const MlaLatentWriteParams& latent, const IndexerKeyWriteParams* key) {
    last_writes_fused_ = false;
    DecodeWritesKernelParams k;
    std::vector<Tensor> keep;  // the device copies both writes read, alive until their launch
    if (!fused_writes_enabled() || x.ndim() != 2 || !latent_write_params(latent, k.latent, keep) ||
        (key != nullptr && !key_write_params(*key, k.key, keep))) {
        return Backend::rms_norm_q8_and_writes(x, weight, eps, latent, key);
    }
    Tensor& r = const_cast<Tensor&>(x);  // read only without delta
    Tensor w;
    QuantizedAct out = norm_prepare(r, nullptr, weight, eps, true, k.norm, w);
    last_latent_write_fused_ = true, last_key_write_fused_ = key != nullptr;
    if (!decode_writes_supported(k)) {  // the three kernels one after the other (the default's launches)
        launch_mla_latent_write(k.latent, stream_);
        if (key != nullptr) launch_indexer_key_write(k.key, stream_);
        launch_rms_norm(k.norm, stream_);
        return out;
    }
    launch_decode_writes(k, stream_);
    last_writes_fused_ = true;
    return out;
}

}  // namespace dsa::backend::cuda
