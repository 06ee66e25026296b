// MLA on the GPU: latent KV-cache writes/reads (bf16 and the 656-byte FP8 layout), the absorbed q/o
// projections (per-head batched GEMM on the once-dequantized BF16 kv_b_proj), the expanded (MHA) form and
// sparse/dense attention. Tensor checks here, kernels in mla_kernels.cu / mla_attention.cu. mla_kv_read returns
// BF16 (the activation dtype): every value either layout decodes to is exactly representable in bf16 (bf16 rows;
// e4m3 times a power-of-two scale >= 2^-13), so it equals the CPU reference's f32 read bit for bit. Sparse
// attention runs the wgmma kernel w3 from 4 query tokens (FP8 store, 128 heads), s1 otherwise, unless
// DSA_MLA_KERNEL says (mla_ops.cpp).
#include <cuda_runtime_api.h>

#include <cstdlib>
#include <cstring>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/bf16_stream_gemv.h"
#include "backend/cuda/mla_absorb_fp8.h"
#include "backend/cuda/mla_kernels.h"
#include "backend/cuda/mla_sparse_s3.h"
#include "backend/cuda/mla_sparse_w3.h"

namespace dsa::backend::cuda {
namespace {

void check_store(const MlaKvStore& s) {
    DSA_CHECK(s.format == MlaKvFormat::kBF16 || s.format == MlaKvFormat::kFp8)
        << "the CUDA backend supports the bf16-576 and fp8-656 MLA stores, not " << mla_kv_format_name(s.format);
    DSA_CHECK(s.data.defined() && s.data.device() == Device::kCUDA && s.data.is_contiguous())
        << "MLA store must be a contiguous CUDA tensor";
    DSA_CHECK(s.data.dtype() == DType::kU8 && s.data.ndim() == 2) << "MLA store must be [slots, bytes] u8";
    DSA_CHECK_EQ(s.data.dim(1), mla_kv_bytes_per_token(s.format)) << "row bytes of " << mla_kv_format_name(s.format);
}

void check_kv_b(const LinearWeight& kv_b, const MlaHeadDims& d) {
    DSA_CHECK(kv_b.defined() && d.num_heads > 0 && d.nope_dim > 0 && d.v_dim > 0) << "MLA head dims";
    DSA_CHECK_EQ(kv_b.out_features(), d.num_heads * (d.nope_dim + d.v_dim)) << "kv_b_proj rows";
    DSA_CHECK_EQ(kv_b.in_features(), kMlaLatentDim) << "kv_b_proj columns";
}

// The BF16 operand of a bf16 or f32 device weight (f32: rounded to bf16 once, cached in dw.dequant).
template <typename DeviceWeightT>
Tensor bf16_operand(DeviceWeightT& dw, cudaStream_t stream) {
    if (dw.w.dtype() == DType::kBF16) return dw.w;
    DSA_CHECK(dw.w.dtype() == DType::kF32) << "kv_b_proj dtype " << dtype_name(dw.w.dtype());
    if (!dw.dequant.defined()) {
        dw.dequant = Tensor::empty(dw.w.shape(), DType::kBF16, Device::kCUDA, dw.source.name() + ".bf16");
        launch_f32_to_bf16({dw.w.template data<float>(), dw.dequant.template data<uint16_t>(), dw.w.numel()}, stream);
    }
    return dw.dequant;
}

// DSA_MLA_KERNEL selects the sparse kernel: unset / empty / 'auto' (default): w3 from kW3MinTokens query tokens
// (FP8 store and 128 heads; anything else runs s1 inside w3's launcher), s1 below (H200: w3 beat s1 by 15-31 % and
// x2 by 12-24 % at b = 16, 64, 128 and the 4096-token prefill, by 2 % at b = 4 and 8 % at b = 8 (21.6 vs 22.1 us,
// 31.1 vs 33.8); at b = 1 and 2 s1 wins); 's1' (wgmma, one warpgroup
// computes S of a whole tile), 's3' (opt-in: three warpgroups, mla_sparse_s3.cu), 'w3' (three warp-specialized
// warpgroups, S + softmax / P V / gather, in clusters of the two head groups of a token sharing the gather,
// mla_sparse_w3.cu) or 'legacy' (the mma.sync kernel, mla_attention.cu); read on every call (a host decision, so
// also fixed at CUDA-graph capture time).
constexpr int64_t kW3MinTokens = 4;
enum class SparseKernel { kAuto, kS1, kS3, kW3, kLegacy };
SparseKernel sparse_kernel_choice() {
    const char* v = std::getenv("DSA_MLA_KERNEL");
    if (v == nullptr || *v == '\0' || std::strcmp(v, "auto") == 0) return SparseKernel::kAuto;
    if (std::strcmp(v, "s1") == 0) return SparseKernel::kS1;
    if (std::strcmp(v, "s3") == 0) return SparseKernel::kS3;
    if (std::strcmp(v, "w3") == 0) return SparseKernel::kW3;
    DSA_CHECK(std::strcmp(v, "legacy") == 0)
        << "DSA_MLA_KERNEL must be 'auto', 's1', 's3', 'w3' or 'legacy', not '" << v << "'";
    return SparseKernel::kLegacy;
}

}  // namespace

// Slot lists may hold -1 (skipped / unused). Host lists are range-checked here, device lists in the kernels.
static Tensor device_slot_list(CudaBackend& be, const Tensor& t, int64_t num_slots, const char* what) {
    DSA_CHECK(t.defined() && t.is_contiguous() && t.dtype() == DType::kI32) << what << " must be contiguous i32";
    if (t.device() == Device::kCUDA) return t;
    for (int64_t i = 0; i < t.numel(); ++i) {
        const int32_t v = t.data<int32_t>()[i];
        DSA_CHECK(v < num_slots) << what << "[" << i << "] = " << v << " >= " << num_slots << " slots";
    }
    return be.to_device(t);
}

void CudaBackend::mla_kv_write(const MlaKvWriteParams& p) {
    DSA_CHECK(p.store != nullptr) << "mla_kv_write without a store";
    check_store(*p.store);
    check_device_tensor(p.c_kv, DType::kBF16, {-1, kMlaLatentDim}, "mla_kv_write c_kv");
    const int64_t tokens = p.c_kv.dim(0);
    check_device_tensor(p.k_pe, DType::kBF16, {tokens, kMlaRopeDim}, "mla_kv_write k_pe");
    DSA_CHECK(p.slots.defined() && p.slots.ndim() == 1 && p.slots.dim(0) == tokens)
        << "mla_kv_write slots must be [" << tokens << "]";
    Tensor slots = device_slot_list(*this, p.slots, p.store->num_slots(), "mla_kv_write slots");
    launch_mla_kv_write(
        {p.c_kv.data<uint16_t>(), p.k_pe.data<uint16_t>(), slots.data<int32_t>(), p.store->data.data<uint8_t>(), tokens,
         p.store->num_slots(), p.store->format == MlaKvFormat::kFp8},
        stream_);
}

Tensor CudaBackend::mla_kv_read(const MlaKvStore& store, const Tensor& slots) {
    check_store(store);
    DSA_CHECK(slots.defined() && slots.ndim() == 1) << "mla_kv_read slots must be [N]";
    Tensor s = device_indices(slots, store.num_slots(), "mla_kv_read slots");
    const int64_t n = slots.dim(0);
    Tensor out = Tensor::empty({n, kMlaKvDim}, DType::kBF16, Device::kCUDA, "latent");
    launch_mla_kv_read({store.data.data<uint8_t>(), s.data<int32_t>(), out.data<uint16_t>(), n, store.num_slots(),
                        store.format == MlaKvFormat::kFp8},
                       stream_);
    return out;
}

namespace {

// A decode-sized absorb (at most kBf16GemvMaxRows tokens) on the weight-streaming GEMV: each head's block of kv_b
// is read once at close to HBM bandwidth (the batched mma.sync GEMM reaches ~1.5 TB/s there). False: not taken.
bool absorb_gemv_on(const BatchedGemmParams& g, bool columns, cudaStream_t stream) {
    Bf16GemvParams p;
    p.x = g.a, p.w = g.b, p.y = g.c;
    p.m = g.m, p.n = g.n, p.k = g.k, p.batch = g.batch;
    p.ldx = g.lda, p.ldw = g.ldb, p.ldy = g.ldc;
    p.x_batch_stride = g.a_batch_stride, p.w_batch_stride = g.b_batch_stride, p.y_batch_stride = g.c_batch_stride;
    if (columns ? !bf16_gemv_cols_supported(p) : !bf16_gemv_rows_supported(p)) return false;
    if (columns) {
        launch_bf16_gemv_cols(p, stream);
    } else {
        launch_bf16_gemv_rows(p, stream);
    }
    return true;
}

// The absorb kernels that read the FP8 kv_b and its scales directly (no BF16 copy; DSA_MLA_ABSORB, absorb_fp8_wanted).
AbsorbFp8Params absorb_fp8_params(const Tensor& x, const Tensor& w, const Tensor& scales, Tensor& out,
                                  const MlaHeadDims& d) {
    AbsorbFp8Params p;
    p.x = x.data<uint16_t>(), p.w = w.data<uint8_t>(), p.w_scale = scales.data<float>(), p.y = out.data<uint16_t>();
    p.tokens = x.dim(0), p.heads = d.num_heads, p.nope_dim = d.nope_dim, p.v_dim = d.v_dim;
    p.scale_ld = scales.dim(1);
    return p;
}

// absorb_o's outputs with their act_quant (o_heads bf16, e4m3 and scales) for o_latent's tokens, and in `a` the
// parameters of the FP8 absorb_o kernel that writes them.
QuantizedAct absorb_o_q8_outputs(const Tensor& o_latent, const Tensor& w, const Tensor& scales, const MlaHeadDims& d,
                                 bool ue8m0, AbsorbFp8Params& a) {
    const int64_t tokens = o_latent.dim(0), width = d.num_heads * d.v_dim;
    QuantizedAct r;
    r.x = Tensor::empty({tokens, width}, DType::kBF16, Device::kCUDA, "o_heads");
    a = absorb_fp8_params(o_latent, w, scales, r.x, d);
    r.q8 = Tensor::empty({tokens, width}, DType::kF8E4M3, Device::kCUDA, "o_heads.fp8");
    r.scales = Tensor::empty({width / 128, tokens}, DType::kF32, Device::kCUDA, "o_heads.scales");
    a.q8 = r.q8.data<uint8_t>(), a.q8_scales = r.scales.data<float>(), a.ue8m0 = ue8m0;
    return r;
}

}  // namespace

Tensor CudaBackend::mla_absorb_q(const Tensor& q_nope, const LinearWeight& kv_b, const MlaHeadDims& d) {
    check_kv_b(kv_b, d);
    check_device_tensor(q_nope, DType::kBF16, {-1, d.num_heads, d.nope_dim}, "mla_absorb_q q_nope");
    const int64_t tokens = q_nope.dim(0), heads = d.num_heads, block = d.nope_dim + d.v_dim;
    DeviceWeight& dw = device_weight(kv_b);
    Tensor out = Tensor::empty({tokens, heads, kMlaLatentDim}, DType::kBF16, Device::kCUDA, "q_absorbed");
    if (dw.w.dtype() == DType::kF8E4M3 && absorb_fp8_wanted(/*absorb_q=*/true, tokens)) {
        const AbsorbFp8Params a = absorb_fp8_params(q_nope, dw.w, dw.scales, out, d);
        if (absorb_q_fp8_supported(a)) {
            launch_absorb_q_fp8(a, stream_);
            return out;
        }
    }
    const Tensor w = dw.w.dtype() == DType::kF8E4M3 ? dequantized(dw) : bf16_operand(dw, stream_);
    // Per head h: out[:, h, :] (T x 512) = q_nope[:, h, :] (T x d_n) · W_UK[h] (d_n x 512, rows h*block ..).
    BatchedGemmParams g;
    g.a = q_nope.data<uint16_t>();
    g.b = w.data<uint16_t>();
    g.c = out.data<uint16_t>();
    g.m = tokens, g.n = kMlaLatentDim, g.k = d.nope_dim, g.batch = heads;
    g.lda = heads * d.nope_dim, g.ldb = kMlaLatentDim, g.ldc = heads * kMlaLatentDim;
    g.a_batch_stride = d.nope_dim, g.b_batch_stride = block * kMlaLatentDim, g.c_batch_stride = kMlaLatentDim;
    g.b_transposed = false;
    if (!absorb_gemv_on(g, /*columns=*/true, stream_)) launch_batched_gemm(g, stream_);
    return out;
}

Tensor CudaBackend::mla_absorb_o(const Tensor& o_latent, const LinearWeight& kv_b, const MlaHeadDims& d) {
    check_kv_b(kv_b, d);
    check_device_tensor(o_latent, DType::kBF16, {-1, d.num_heads, kMlaLatentDim}, "mla_absorb_o o_latent");
    const int64_t tokens = o_latent.dim(0), heads = d.num_heads, block = d.nope_dim + d.v_dim;
    DeviceWeight& dw = device_weight(kv_b);
    Tensor out = Tensor::empty({tokens, heads, d.v_dim}, DType::kBF16, Device::kCUDA, "o_heads");
    if (dw.w.dtype() == DType::kF8E4M3 && absorb_fp8_wanted(/*absorb_q=*/false, tokens)) {
        const AbsorbFp8Params a = absorb_fp8_params(o_latent, dw.w, dw.scales, out, d);
        if (absorb_o_fp8_supported(a)) {
            launch_absorb_o_fp8(a, stream_);
            return out;
        }
    }
    const Tensor w = dw.w.dtype() == DType::kF8E4M3 ? dequantized(dw) : bf16_operand(dw, stream_);
    // Per head h: out[:, h, :] (T x d_v) = o_latent[:, h, :] (T x 512) · W_UV[h]^T (W_UV[h]: d_v x 512).
    BatchedGemmParams g;
    g.a = o_latent.data<uint16_t>();
    g.b = w.data<uint16_t>() + d.nope_dim * kMlaLatentDim;
    g.c = out.data<uint16_t>();
    g.m = tokens, g.n = d.v_dim, g.k = kMlaLatentDim, g.batch = heads;
    g.lda = heads * kMlaLatentDim, g.ldb = kMlaLatentDim, g.ldc = heads * d.v_dim;
    g.a_batch_stride = kMlaLatentDim, g.b_batch_stride = block * kMlaLatentDim, g.c_batch_stride = d.v_dim;
    g.b_transposed = true;
    if (!absorb_gemv_on(g, /*columns=*/false, stream_)) launch_batched_gemm(g, stream_);
    return out;
}

bool fused_absorb_enabled() {
    return fused_switch("DSA_FUSED_ABSORB", true,
                        "CUDA decode: 1 (default) = the absorbed query in one absorb_q kernel (no narrow / "
                        "mla_query launches) and absorb_o writing o_proj's act_quant (<= 32 tokens); 0 = off");
}

Tensor CudaBackend::mla_absorbed_query(const Tensor& q, const LinearWeight& kv_b, const MlaHeadDims& d,
                                       const Tensor& positions, const RopeTable* table, RopeLayout layout) {
    last_absorbed_query_fused_ = false;
    DSA_CHECK(table != nullptr) << "mla_absorbed_query without a RoPE table";
    const int64_t width = d.nope_dim + kMlaRopeDim;
    if (!fused_absorb_enabled() || table->rot_dim() != kMlaRopeDim || q.ndim() != 3 || q.dim(2) != width) {
        return Backend::mla_absorbed_query(q, kv_b, d, positions, table, layout);
    }
    check_kv_b(kv_b, d);
    check_device_tensor(q, DType::kBF16, {-1, d.num_heads, width}, "mla_absorbed_query q");
    const int64_t tokens = q.dim(0);
    DeviceWeight& dw = device_weight(kv_b);
    if (dw.w.dtype() != DType::kF8E4M3 || !absorb_fp8_wanted(/*absorb_q=*/true, tokens)) {
        return Backend::mla_absorbed_query(q, kv_b, d, positions, table, layout);
    }
    DSA_CHECK(positions.defined() && positions.ndim() == 1 && positions.dim(0) == tokens)
        << "mla_absorbed_query positions must be [" << tokens << "]";
    Tensor out = Tensor::empty({tokens, d.num_heads, kMlaKvDim}, DType::kBF16, Device::kCUDA, "mla_query");
    AbsorbFp8Params a = absorb_fp8_params(q, dw.w, dw.scales, out, d);
    a.x_ld = width, a.y_ld = kMlaKvDim;
    if (!absorb_q_fp8_supported(a)) return Backend::mla_absorbed_query(q, kv_b, d, positions, table, layout);
    Tensor pos = device_indices(positions, table->max_positions(), "mla_absorbed_query positions");
    Tensor cos = cached_device_copy(table->cos), sin = cached_device_copy(table->sin);
    a.rope = {pos.data<int32_t>(), cos.data<float>(), sin.data<float>(), table->max_positions(),
              layout == RopeLayout::kInterleaved};
    launch_absorb_q_fp8(a, stream_);
    last_absorbed_query_fused_ = true;
    return out;
}

QuantizedAct CudaBackend::mla_absorb_o_q8(const Tensor& o_latent, const LinearWeight& kv_b, const MlaHeadDims& d) {
    last_absorb_o_quantized_ = false;
    if (!fused_absorb_enabled() || !numerics_.fp8_activation_quant) return Backend::mla_absorb_o_q8(o_latent, kv_b, d);
    check_kv_b(kv_b, d);
    check_device_tensor(o_latent, DType::kBF16, {-1, d.num_heads, kMlaLatentDim}, "mla_absorb_o_q8 o_latent");
    const int64_t tokens = o_latent.dim(0), width = d.num_heads * d.v_dim;
    DeviceWeight& dw = device_weight(kv_b);
    if (dw.w.dtype() != DType::kF8E4M3 || !absorb_fp8_wanted(/*absorb_q=*/false, tokens) || width % 128 != 0 ||
        tokens > kAbsorbOQuantMaxTokens) {
        return Backend::mla_absorb_o_q8(o_latent, kv_b, d);
    }
    AbsorbFp8Params a;
    QuantizedAct r = absorb_o_q8_outputs(o_latent, dw.w, dw.scales, d, numerics_.ue8m0_scales, a);
    if (!absorb_o_fp8_supported(a)) return Backend::mla_absorb_o_q8(o_latent, kv_b, d);
    launch_absorb_o_fp8(a, stream_);
    last_absorb_o_quantized_ = true;
    return r;
}

bool fused_combine_enabled() {
    const bool on = fused_switch("DSA_FUSED_COMBINE", true,
                                 "CUDA decode: 1 (default) = absorb_o (with act_quant, <= 32 tokens) merges the "
                                 "sparse attention's split-K partials itself (no combine launch); 0 = the combine "
                                 "kernel");
    return on && fused_absorb_enabled();
}

QuantizedAct CudaBackend::mla_sparse_attention_o_q8(const MlaSparseParams& p, const LinearWeight& kv_b,
                                                    const MlaHeadDims& d) {
    last_combine_fused_ = false;
    const bool shaped = p.q.defined() && p.q.ndim() == 3 && p.q.dim(1) == d.num_heads && p.q.dim(0) >= 1 &&
                        p.q.dim(0) <= kAbsorbOQuantMaxTokens && (d.num_heads * d.v_dim) % 128 == 0;
    if (!fused_combine_enabled() || !numerics_.fp8_activation_quant || !shaped) {
        return Backend::mla_sparse_attention_o_q8(p, kv_b, d);
    }
    check_kv_b(kv_b, d);
    const int64_t tokens = p.q.dim(0);
    DeviceWeight& dw = device_weight(kv_b);
    if (dw.w.dtype() != DType::kF8E4M3 || !absorb_fp8_wanted(/*absorb_q=*/false, tokens)) {
        return Backend::mla_sparse_attention_o_q8(p, kv_b, d);
    }
    DeferredCombine dc;
    Tensor o_latent = sparse_attention(p, &dc);
    if (!dc.part_o.defined()) return mla_absorb_o_q8(o_latent, kv_b, d);  // no split: o_latent is written
    AbsorbFp8Params a;
    QuantizedAct r = absorb_o_q8_outputs(o_latent, dw.w, dw.scales, d, numerics_.ue8m0_scales, a);
    a.part_o = dc.part_o.data<float>(), a.part_ml = dc.part_ml.data<float>(), a.splits = dc.k.splits;
    if (!absorb_o_fp8_supported(a)) {  // the combine after all, then the usual absorb_o
        dc.k.combine_deferred = false;
        launch_mla_sparse_combine(dc.k, stream_);
        return mla_absorb_o_q8(o_latent, kv_b, d);
    }
    launch_absorb_o_fp8(a, stream_);  // dc's buffers are released after the launch (stream order)
    last_combine_fused_ = last_absorb_o_quantized_ = true;
    return r;
}

MlaExpandedKv CudaBackend::mla_expand_kv(const Tensor& latent, const LinearWeight& kv_b, const MlaHeadDims& d) {
    check_kv_b(kv_b, d);
    check_device_tensor(latent, DType::kBF16, {-1, kMlaKvDim}, "mla_expand_kv latent");
    const int64_t keys = latent.dim(0), heads = d.num_heads, qk = d.nope_dim + kMlaRopeDim;
    // Same linear as the reference (act_quant of c_kv with FP8 weights under fp8_activation_quant).
    Tensor kv = linear(narrow_last(latent, 0, kMlaLatentDim), kv_b, LinearOutput::kActivation);
    MlaExpandedKv r{Tensor::empty({keys, heads, qk}, DType::kBF16, Device::kCUDA, "k_expanded"),
                    Tensor::empty({keys, heads, d.v_dim}, DType::kBF16, Device::kCUDA, "v_expanded")};
    launch_mla_expand_split({kv.data<uint16_t>(), latent.data<uint16_t>(), r.k.data<uint16_t>(), r.v.data<uint16_t>(),
                             keys, heads, d.nope_dim, d.v_dim},
                            stream_);
    return r;
}

Tensor CudaBackend::mla_sparse_attention(const MlaSparseParams& p) { return sparse_attention(p, nullptr); }

Tensor CudaBackend::sparse_attention(const MlaSparseParams& p, DeferredCombine* defer) {
    DSA_CHECK(p.kv != nullptr) << "mla_sparse_attention without a KV store";
    check_store(*p.kv);
    check_device_tensor(p.q, DType::kBF16, {-1, -1, kMlaKvDim}, "mla_sparse q");
    const int64_t tokens = p.q.dim(0), heads = p.q.dim(1);
    DSA_CHECK(p.slots.defined() && p.slots.ndim() == 2 && p.slots.dim(0) == tokens)
        << "mla_sparse slots must be [" << tokens << ", K]";
    Tensor slots = device_slot_list(*this, p.slots, p.kv->num_slots(), "mla_sparse slots");
    Tensor out = Tensor::empty({tokens, heads, kMlaLatentDim}, DType::kBF16, Device::kCUDA, "o_latent");
    const int64_t width = p.slots.dim(1);
    MlaSparseKernelParams k{p.q.data<uint16_t>(),
                            p.kv->data.data<uint8_t>(),
                            slots.data<int32_t>(),
                            out.data<uint16_t>(),
                            tokens,
                            heads,
                            width,
                            p.kv->num_slots(),
                            p.softmax_scale,
                            p.kv->format == MlaKvFormat::kFp8};
    // Small decode batches: split each token's list over several CTAs (partials merged by a combine kernel).
    Tensor part_o, part_ml;
    k.splits = mla_sparse_splits(tokens, heads, width, num_sms_);
    if (k.splits > 1) {
        const int64_t tiles = (width + 63) / 64;
        k.tiles_per_split = (tiles + k.splits - 1) / k.splits;
        k.splits = (tiles + k.tiles_per_split - 1) / k.tiles_per_split;  // no empty split
        part_o = Tensor::empty({k.splits, tokens, heads, kMlaLatentDim}, DType::kF32, Device::kCUDA, "mla_part_o");
        part_ml = Tensor::empty({k.splits, tokens, heads, 2}, DType::kF32, Device::kCUDA, "mla_part_ml");
        k.part_o = part_o.data<float>();
        k.part_ml = part_ml.data<float>();
        if (defer != nullptr) {  // mla_sparse_attention_o_q8: absorb_o merges them
            k.combine_deferred = true;
            *defer = {k, part_o, part_ml};
        }
    }
    SparseKernel kernel = sparse_kernel_choice();
    if (kernel == SparseKernel::kAuto) {
        kernel = k.num_tokens >= kW3MinTokens ? SparseKernel::kW3 : SparseKernel::kS1;
    }
    if (kernel == SparseKernel::kLegacy) {
        launch_mla_sparse_attention(k, stream_);
    } else if (kernel == SparseKernel::kS3) {
        launch_mla_sparse_s3(k, stream_);
    } else if (kernel == SparseKernel::kW3) {
        launch_mla_sparse_w3(k, stream_);
    } else {
        launch_mla_sparse_wgmma(k, stream_);
    }
    return out;
}

Tensor CudaBackend::mla_dense_attention(const MlaDenseParams& p) {
    check_device_tensor(p.q, DType::kBF16, {-1, -1, -1}, "mla_dense q");
    const int64_t tokens = p.q.dim(0), heads = p.q.dim(1), qk = p.q.dim(2);
    check_device_tensor(p.k, DType::kBF16, {-1, heads, qk}, "mla_dense k");
    const int64_t keys = p.k.dim(0);
    check_device_tensor(p.v, DType::kBF16, {keys, heads, -1}, "mla_dense v");
    const int64_t dv = p.v.dim(2);
    DSA_CHECK(p.q_positions.defined() && p.q_positions.ndim() == 1 && p.q_positions.dim(0) == tokens)
        << "mla_dense q_positions must be [" << tokens << "]";
    Tensor qpos = device_indices(p.q_positions, keys, "mla_dense q_positions");
    Tensor bits;
    if (p.allowed.defined()) {
        DSA_CHECK(p.allowed.ndim() == 2 && p.allowed.dim(0) == tokens)
            << "mla_dense allowed must be [" << tokens << ", K]";
        Tensor allowed = device_slot_list(*this, p.allowed, keys, "mla_dense allowed");
        const int64_t words = (keys + 31) / 32;
        bits = Tensor::empty({tokens, words}, DType::kI32, Device::kCUDA, "allowed_bits");
        if (bits.nbytes() > 0) DSA_CUDA_CHECK(cudaMemsetAsync(bits.raw_data(), 0, bits.nbytes(), stream_));
        launch_allowed_bits({allowed.data<int32_t>(), reinterpret_cast<uint32_t*>(bits.data<int32_t>()), tokens,
                             p.allowed.dim(1), keys, words},
                            stream_);
    }
    Tensor out = Tensor::empty({tokens, heads, dv}, DType::kBF16, Device::kCUDA, "o_heads");
    launch_mla_dense_attention({p.q.data<uint16_t>(), p.k.data<uint16_t>(), p.v.data<uint16_t>(), qpos.data<int32_t>(),
                                bits.defined() ? reinterpret_cast<const uint32_t*>(bits.data<int32_t>()) : nullptr,
                                out.data<uint16_t>(), tokens, heads, keys, qk, dv, p.softmax_scale},
                               stream_);
    return out;
}

}  // namespace dsa::backend::cuda
