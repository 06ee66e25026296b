// CudaBackend linear, lm_head and dense_mlp. BF16 weights: cuBLASLt bf16 GEMM (FP32 accumulation). F32 weights:
// x widened to f32, FP32 GEMM to f32 (rounded to bf16 for activation outputs). FP8 128x128 block weights:
//  - Numerics::fp8_activation_quant on: x is act_quant-ed per token per 128 channels by one kernel and the
//    GEMM is cuBLASLt's block-scaled FP8 (1x128 activation x 128x128 weight scales) where cuBLASLt returns a
//    heuristic for the shape. FALLBACK where it does not (M = 1, for example): the act_quant kernel writes the
//    dequantized activations bf16(fp8 * s) instead, and the GEMM is bf16 against a BF16 copy of the weight
//    dequantized once (bf16(fp8 * scale), cached; 2 bytes per weight of extra memory, and the weight
//    bandwidth of BF16, not FP8). The bf16 rounding of fp8 * scale is the only difference from the contract
//    (exact when the scales are powers of two).
//  - off (Numerics::bf16()): x is not quantized; bf16 GEMM against the same dequantized BF16 copy.
//  - at most kFp8StreamMaxRows rows (64), a bf16 output, act_quant on and K % 128 == 0: neither; x is
//    act_quant-ed to e4m3 + 1x128 scales and the tensor-core weight-streaming GEMM (fp8_stream_gemm.cu) reads
//    the FP8 weight once (split-K over all SMs).
//  - else at most kFp8GemvMaxRows rows (1) with a bf16 output (act_quant off): the weight-streaming GEMV of the
//    MoE decode path (moe_kernels.cu) with one group, x in f32.
// linear_multi (several weights over one x): when every weight takes the streaming path, one act_quant and one
// grouped launch, planned jointly (one K chunk that fills whole waves; fp8_stream_multi_plan) or, with
// DSA_FP8_MULTI_PLAN=separate, with each weight's own plan (bit-identical to separate linear() calls); else
// linear() per weight. linear_multi_q8: the same on x's act_quant made by its norm (QuantizedAct): no act_quant
// launch; one weight then runs the lone streaming GEMM.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <tuple>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/bf16_stream_gemv.h"
#include "backend/cuda/fp8_stream_gemm.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/moe_kernels.h"

namespace dsa::backend::cuda {

CudaBackend::DeviceWeight& CudaBackend::device_weight(const LinearWeight& w) {
    DSA_CHECK(w.defined() && w.weight.ndim() == 2 && w.weight.is_contiguous()) << "linear weight must be 2-d";
    const DType dt = w.weight.dtype();
    DSA_CHECK(dt == DType::kBF16 || dt == DType::kF32 || dt == DType::kF8E4M3)
        << "unsupported weight dtype " << dtype_name(dt) << " (" << w.weight.name() << ")";
    const void* key = w.weight.raw_data();
    {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = weights_.find(key);
        if (it != weights_.end() && it->second.source.shape() == w.weight.shape() && it->second.source.dtype() == dt) {
            return it->second;
        }
    }
    DeviceWeight dw;
    dw.source = w.weight;
    dw.w = w.weight.device() == Device::kCUDA ? w.weight : to_device(w.weight);
    if (dt == DType::kF8E4M3) {
        const int64_t n = w.out_features(), k = w.in_features();
        const int64_t nb = (n + 127) / 128, kb = (k + 127) / 128, ld = LtGemm::w_scale_ld(k);
        DSA_CHECK(w.scale_inv.defined() && w.scale_inv.dtype() == DType::kF32 && w.scale_inv.ndim() == 2 &&
                  w.scale_inv.dim(0) == nb && w.scale_inv.dim(1) == kb)
            << "scale_inv of " << w.weight.name() << " must be f32 [" << nb << ", " << kb << "]";
        Tensor host_scales = w.scale_inv.device() == Device::kCUDA ? to_host(w.scale_inv) : w.scale_inv;
        // Row-padded copy in the layout cuBLASLt's BLK128x128 mode reads (K blocks padded to a multiple of 4).
        Tensor padded = Tensor::zeros({nb, ld}, DType::kF32, Device::kCPU, w.weight.name() + ".scales");
        for (int64_t r = 0; r < nb; ++r) {
            std::memcpy(padded.data<float>() + r * ld, host_scales.data<float>() + r * kb, kb * sizeof(float));
        }
        dw.scales = to_device(padded);
    }
    std::lock_guard<std::mutex> lock(mu_);
    return weights_[key] = std::move(dw);
}

const Tensor& CudaBackend::dequantized(DeviceWeight& dw) {
    if (!dw.dequant.defined()) {
        const int64_t n = dw.w.dim(0), k = dw.w.dim(1);
        dw.dequant = Tensor::empty({n, k}, DType::kBF16, Device::kCUDA, dw.source.name() + ".bf16");
        launch_dequant_weight({dw.w.data<uint8_t>(), dw.scales.data<float>(), dw.dequant.data<uint16_t>(), n, k,
                               dw.scales.dim(1)},
                              stream_);
    }
    return dw.dequant;
}

void CudaBackend::fp8_gemv(const Tensor& x, DeviceWeight& dw, Tensor& y, bool act_quant) {
    const int64_t m = x.dim(0), n = dw.w.dim(0), k = dw.w.dim(1);
    if (!dw.gemv_table.defined()) {
        Tensor t = Tensor::zeros({static_cast<int64_t>(sizeof(MoeExpertPtrs))}, DType::kU8, Device::kCPU, "gemv.table");
        MoeExpertPtrs e;
        e.down = dw.w.raw_data();
        e.down_scale = dw.scales.data<float>();
        std::memcpy(t.raw_data(), &e, sizeof(e));
        dw.gemv_table = to_device(t);
    }
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (gemv_groups_.size() <= static_cast<size_t>(m)) gemv_groups_.resize(m + 1);
        if (!gemv_groups_[m].defined()) {
            Tensor g = Tensor::empty({moe_groups_words(1, m)}, DType::kI32, Device::kCPU, "gemv.groups");
            int32_t* w = g.data<int32_t>();
            w[0] = 1, w[1] = 0, w[2] = 0, w[3] = static_cast<int32_t>(m);  // one group: expert 0, rows 0..m-1
            for (int64_t i = 0; i < m; ++i) w[4 + i] = static_cast<int32_t>(i);
            gemv_groups_[m] = to_device(g);
        }
    }
    Tensor xf = Tensor::empty({m, k}, DType::kF32, Device::kCUDA, "x.gemv");
    launch_moe_prep({x.data<uint16_t>(), xf.data<float>(), m, k, act_quant, numerics_.ue8m0_scales}, stream_);
    MoeGemvParams p;
    p.experts = reinterpret_cast<const MoeExpertPtrs*>(dw.gemv_table.raw_data());
    p.groups = moe_groups_view(gemv_groups_[m].data<int32_t>(), 1);
    p.x = xf.data<float>();
    p.out = y.data<uint16_t>();
    p.n = n, p.k = k, p.scale_ld = dw.scales.dim(1);
    launch_moe_down(p, stream_);
}

std::pair<float*, int32_t*> CudaBackend::stream_workspace(int64_t ws_floats, int64_t counters) {
    // Grown buffers are retired, never freed: a captured CUDA graph may still hold their addresses.
    constexpr int64_t kMinFloats = int64_t{1} << 20, kMinCounters = int64_t{1} << 16;
    if (ws_floats > 0 && (!stream_ws_.defined() || stream_ws_.numel() < ws_floats)) {
        if (stream_ws_.defined()) stream_retired_.push_back(stream_ws_);
        stream_ws_ = Tensor::empty({std::max(ws_floats, kMinFloats)}, DType::kF32, Device::kCUDA, "fp8_stream.ws");
    }
    if (counters > 0 && (!stream_counters_.defined() || stream_counters_.numel() < counters)) {
        if (stream_counters_.defined()) stream_retired_.push_back(stream_counters_);
        stream_counters_ =
            Tensor::empty({std::max(counters, kMinCounters)}, DType::kI32, Device::kCUDA, "fp8_stream.counters");
        DSA_CUDA_CHECK(cudaMemsetAsync(stream_counters_.raw_data(), 0, stream_counters_.nbytes(), stream_));
    }
    return {stream_ws_.defined() ? stream_ws_.data<float>() : nullptr,
            stream_counters_.defined() ? stream_counters_.data<int32_t>() : nullptr};
}

namespace {

// x's act_quant for the streaming GEMMs ([m, k] e4m3, [k / 128, m] scales): the norm's (pre) or a new one.
std::pair<Tensor, Tensor> stream_act_quant(const Tensor& x, const QuantizedAct* pre, bool ue8m0, cudaStream_t s) {
    const int64_t m = x.dim(0), k = x.dim(1);
    if (pre != nullptr && pre->has_q8()) return {pre->q8, pre->scales};
    Tensor xq = Tensor::empty({m, k}, DType::kF8E4M3, Device::kCUDA, "x.fp8");
    Tensor xs = Tensor::empty({k / 128, m}, DType::kF32, Device::kCUDA, "x.scales");
    launch_act_quant({x.data<uint16_t>(), xq.data<uint8_t>(), xs.data<float>(), nullptr, m, k, m, ue8m0}, s);
    return {xq, xs};
}

}  // namespace

bool CudaBackend::fp8_stream_fits(const Tensor& x, const DeviceWeight& dw) const {
    return numerics_.fp8_activation_quant && dw.w.dtype() == DType::kF8E4M3 && x.ndim() == 2 && x.dim(0) >= 1 &&
           x.dim(0) <= kFp8StreamMaxRows && x.dim(1) == dw.w.dim(1) && x.dim(1) % 128 == 0 &&
           (reinterpret_cast<uintptr_t>(dw.w.raw_data()) & 15u) == 0;
}

void CudaBackend::fp8_stream(const Tensor& x, DeviceWeight& dw, Tensor& y, const QuantizedAct* pre) {
    static_assert(kFp8StreamMaxRows <= dsa::backend::cuda::kFp8StreamMaxRows);
    const int64_t m = x.dim(0), n = dw.w.dim(0), k = dw.w.dim(1);
    const auto [xq, xs] = stream_act_quant(x, pre, numerics_.ue8m0_scales, stream_);
    const Fp8StreamPlan plan = fp8_stream_plan(1, n, k, m, num_sms_);
    Fp8StreamParams p;
    p.w = dw.w.data<uint8_t>();
    p.w_scale = dw.scales.data<float>();
    p.m = m;
    p.x = xq.data<uint8_t>();
    p.x_scale = xs.data<float>();
    p.x_scale_ld = m;
    p.out = y.data<uint16_t>();
    p.n = n, p.k = k, p.scale_ld = dw.scales.dim(1);
    std::tie(p.ws, p.counters) = stream_workspace(plan.ws_floats, plan.counters);
    launch_fp8_stream_gemm(p, plan, stream_);
}

// BF16 weights of at most kBf16StreamMaxBytes with at most kBf16GemvMaxRows rows of x: the weight-streaming GEMV
// (cuBLAS's small-M kernels read such weights at a fraction of HBM bandwidth). False: nothing launched.
bool CudaBackend::bf16_stream_gemv(const Tensor& x, const DeviceWeight& dw, Tensor& y) {
    constexpr int64_t kBf16StreamMaxBytes = int64_t{64} << 20;  // larger (the lm_head): cuBLAS is near the roofline
    const int64_t m = x.dim(0), n = dw.w.dim(0), k = dw.w.dim(1);
    if (n * k * 2 > kBf16StreamMaxBytes) return false;
    Bf16GemvParams p;
    p.x = x.data<uint16_t>(), p.w = dw.w.data<uint16_t>(), p.y = y.raw_data();
    p.m = m, p.n = n, p.k = k, p.ldx = k, p.ldw = k, p.ldy = n;
    p.y_f32 = y.dtype() == DType::kF32;
    if (!bf16_gemv_rows_supported(p)) return false;
    launch_bf16_gemv_rows(p, stream_);
    return true;
}

Tensor CudaBackend::matmul(const Tensor& x, const LinearWeight& w, GemmOutput out, bool act_quant, const char* what) {
    DSA_CHECK(w.defined()) << what << " with an undefined weight";
    const int64_t k = w.in_features(), n = w.out_features();
    check_device_tensor(x, DType::kBF16, {-1, k}, what);
    const int64_t m = x.dim(0);
    DeviceWeight& dw = device_weight(w);
    Tensor y = Tensor::empty({m, n}, out == GemmOutput::kBF16 ? DType::kBF16 : DType::kF32, Device::kCUDA,
                             w.weight.name() + ".out");
    if (m == 0) return y;
    switch (dw.w.dtype()) {
        case DType::kBF16:
            if (!bf16_stream_gemv(x, dw, y)) gemm_->bf16(x.raw_data(), dw.w.raw_data(), y.raw_data(), out, m, n, k);
            break;
        case DType::kF32: {
            Tensor xf = Tensor::empty({m, k}, DType::kF32, Device::kCUDA, "x.f32");
            launch_bf16_to_f32({x.data<uint16_t>(), xf.data<float>(), m * k}, stream_);
            if (out == GemmOutput::kF32) {
                gemm_->f32(xf.raw_data(), dw.w.raw_data(), y.raw_data(), m, n, k);
            } else {
                Tensor yf = Tensor::empty({m, n}, DType::kF32, Device::kCUDA, "y.f32");
                gemm_->f32(xf.raw_data(), dw.w.raw_data(), yf.raw_data(), m, n, k);
                launch_f32_to_bf16({yf.data<float>(), y.data<uint16_t>(), m * n}, stream_);
            }
            break;
        }
        case DType::kF8E4M3: {
            const bool ue8m0 = numerics_.ue8m0_scales;
            if (out == GemmOutput::kBF16 && act_quant && m <= kFp8StreamMaxRows && k % 128 == 0 &&
                (reinterpret_cast<uintptr_t>(dw.w.raw_data()) & 15u) == 0) {
                fp8_stream(x, dw, y);
                last_fp8_path_ = Fp8Path::kStream;
            } else if (out == GemmOutput::kBF16 && m <= kFp8GemvMaxRows && k % 16 == 0) {
                fp8_gemv(x, dw, y, act_quant);
                last_fp8_path_ = Fp8Path::kGemv;
            } else if (act_quant && gemm_->fp8_block_supported(out, m, n, k)) {
                const int64_t ld = LtGemm::x_scale_ld(m);
                Tensor xq = Tensor::empty({m, k}, DType::kF8E4M3, Device::kCUDA, "x.fp8");
                Tensor xs = Tensor::empty({(k + 127) / 128, ld}, DType::kF32, Device::kCUDA, "x.scales");
                launch_act_quant({x.data<uint16_t>(), xq.data<uint8_t>(), xs.data<float>(), nullptr, m, k, ld, ue8m0},
                                 stream_);
                gemm_->fp8_block(xq.raw_data(), xs.data<float>(), dw.w.raw_data(), dw.scales.data<float>(),
                                 y.raw_data(), out, m, n, k);
                last_fp8_path_ = Fp8Path::kCublasBlockScaled;
            } else {
                Tensor xin = x;
                if (act_quant) {
                    xin = Tensor::empty({m, k}, DType::kBF16, Device::kCUDA, "x.act_quant");
                    launch_act_quant({x.data<uint16_t>(), nullptr, nullptr, xin.data<uint16_t>(), m, k, 0, ue8m0},
                                     stream_);
                }
                gemm_->bf16(xin.raw_data(), dequantized(dw).raw_data(), y.raw_data(), out, m, n, k);
                last_fp8_path_ = Fp8Path::kDequantizedBf16;
            }
            break;
        }
        default:
            DSA_CHECK(false) << "unreachable weight dtype";
    }
    return y;
}

Tensor CudaBackend::linear(const Tensor& x, const LinearWeight& w, LinearOutput out_kind) {
    const GemmOutput out = out_kind == LinearOutput::kActivation ? GemmOutput::kBF16 : GemmOutput::kF32;
    return matmul(x, w, out, numerics_.fp8_activation_quant, "linear x");
}

bool CudaBackend::fp8_stream_multi(const Tensor& x, std::span<const LinearWeight* const> ws, std::vector<Tensor>& ys,
                                   const QuantizedAct* pre) {
    const int64_t m = x.dim(0), k = x.dim(1);
    if (!numerics_.fp8_activation_quant || m < 1 || m > kFp8StreamMaxRows || k % 128 != 0) return false;
    if (ws.size() < 2 || ws.size() > static_cast<size_t>(kFp8StreamMaxProblems)) return false;
    DeviceWeight* dws[kFp8StreamMaxProblems] = {};
    for (size_t i = 0; i < ws.size(); ++i) {
        DSA_CHECK(ws[i] != nullptr && ws[i]->defined()) << "linear_multi: weight " << i << " undefined";
        if (ws[i]->weight.dtype() != DType::kF8E4M3 || ws[i]->in_features() != k) return false;
        dws[i] = &device_weight(*ws[i]);
        if ((reinterpret_cast<uintptr_t>(dws[i]->w.raw_data()) & 15u) != 0) return false;
    }
    const auto [xq, xs] = stream_act_quant(x, pre, numerics_.ue8m0_scales, stream_);
    Fp8StreamMulti multi;
    multi.count = static_cast<int>(ws.size());
    int64_t ws_total = 0, counters_total = 0;
    for (int i = 0; i < multi.count; ++i) {
        Fp8StreamProblem& q = multi.prob[i];
        const int64_t n = dws[i]->w.dim(0);
        ys.push_back(Tensor::empty({m, n}, DType::kBF16, Device::kCUDA, ws[i]->weight.name() + ".out"));
        q.w = dws[i]->w.data<uint8_t>(), q.w_scale = dws[i]->scales.data<float>();
        q.out = ys.back().data<uint16_t>();
        q.n = n, q.scale_ld = dws[i]->scales.dim(1);
    }
    fp8_stream_multi_plan(multi, k, m, num_sms_);  // one K chunk for all (whole waves), or each lone call's plan
    for (int i = 0; i < multi.count; ++i) {
        ws_total += multi.prob[i].plan.ws_floats, counters_total += multi.prob[i].plan.counters;
    }
    const auto [wsp, counters] = stream_workspace(ws_total, counters_total);
    int64_t ws_off = 0, counter_off = 0;  // disjoint ranges (float offsets stay multiples of 4: float4 partials)
    for (int i = 0; i < multi.count; ++i) {
        Fp8StreamProblem& q = multi.prob[i];
        if (q.plan.splits > 1) {
            q.ws = wsp + ws_off, q.counters = counters + counter_off;
            ws_off += q.plan.ws_floats, counter_off += q.plan.counters;
        }
    }
    Fp8StreamParams p;
    p.m = m;
    p.x = xq.data<uint8_t>(), p.x_scale = xs.data<float>(), p.x_scale_ld = m;
    p.k = k;
    launch_fp8_stream_multi(p, multi, stream_);
    return true;
}

std::vector<Tensor> CudaBackend::linear_multi(const Tensor& x, std::span<const LinearWeight* const> ws,
                                              LinearOutput out) {
    check_activation(x, "linear_multi x");
    std::vector<Tensor> ys;
    last_linear_multi_fused_ = out == LinearOutput::kActivation && x.ndim() == 2 && fp8_stream_multi(x, ws, ys);
    if (last_linear_multi_fused_) {
        last_fp8_path_ = Fp8Path::kStream;
        return ys;
    }
    ys.clear();
    for (const LinearWeight* w : ws) {
        DSA_CHECK(w != nullptr) << "linear_multi: null weight";
        ys.push_back(linear(x, *w, out));
    }
    return ys;
}

std::vector<Tensor> CudaBackend::linear_multi_q8(const QuantizedAct& x, std::span<const LinearWeight* const> ws,
                                                 LinearOutput out) {
    last_linear_used_q8_ = false;
    if (!x.has_q8() || out != LinearOutput::kActivation || ws.empty()) return linear_multi(x.x, ws, out);
    check_activation(x.x, "linear_multi_q8 x");
    const int64_t m = x.x.dim(0), k = x.x.dim(-1);
    check_device_tensor(x.q8, DType::kF8E4M3, {m, k}, "linear_multi_q8 q8");
    check_device_tensor(x.scales, DType::kF32, {k / 128, m}, "linear_multi_q8 scales");
    std::vector<Tensor> ys;
    if (ws.size() == 1) {  // one weight: the streaming GEMM on the norm's act_quant, when linear() would stream
        DSA_CHECK(ws[0] != nullptr && ws[0]->defined()) << "linear_multi_q8: weight undefined";
        DeviceWeight& dw = device_weight(*ws[0]);
        if (!fp8_stream_fits(x.x, dw)) return linear_multi(x.x, ws, out);
        ys.push_back(Tensor::empty({m, dw.w.dim(0)}, DType::kBF16, Device::kCUDA, ws[0]->weight.name() + ".out"));
        fp8_stream(x.x, dw, ys[0], &x);
        last_fp8_path_ = Fp8Path::kStream;
        last_linear_used_q8_ = true;
        return ys;
    }
    last_linear_multi_fused_ = x.x.ndim() == 2 && fp8_stream_multi(x.x, ws, ys, &x);
    if (!last_linear_multi_fused_) return linear_multi(x.x, ws, out);
    last_fp8_path_ = Fp8Path::kStream;
    last_linear_used_q8_ = true;
    return ys;
}

Tensor CudaBackend::lm_head(const Tensor& x, const LinearWeight& head) {
    return matmul(x, head, GemmOutput::kF32, /*act_quant=*/false, "lm_head x");
}

bool CudaBackend::fused_mlp_fits(int64_t m, int64_t d, const MlpWeights& w) {
    const int64_t f = w.gate.out_features();
    if (!numerics_.fp8_activation_quant || m < 1 || m > kFp8StreamMaxRows || d % 128 != 0 || f % 128 != 0) return false;
    if (w.gate.in_features() != d || w.up.in_features() != d || w.up.out_features() != f || w.down.in_features() != f) {
        return false;
    }
    DeviceWeight* dw[3] = {&device_weight(w.gate), &device_weight(w.up), &device_weight(w.down)};
    for (DeviceWeight* p : dw) {
        if (p->w.dtype() != DType::kF8E4M3 || (reinterpret_cast<uintptr_t>(p->w.raw_data()) & 15u) != 0) return false;
    }
    return dw[0]->scales.dim(1) == dw[1]->scales.dim(1);
}

const QuantizedAct* CudaBackend::norm_q8(const QuantizedAct& x) {
    if (!x.has_q8()) return nullptr;
    const int64_t m = x.x.dim(0), k = x.x.dim(-1);
    check_device_tensor(x.q8, DType::kF8E4M3, {m, k}, "act_quant q8");
    check_device_tensor(x.scales, DType::kF32, {k / 128, m}, "act_quant scales");
    return &x;
}

void CudaBackend::launch_fused_mlp(const Tensor& x, const MlpWeights& w, const FusedMlpBuffers& b, cudaStream_t st,
                                   const QuantizedAct* pre) {
    const int64_t m = x.dim(0), d = x.dim(1), f = w.gate.out_features(), n = w.down.out_features();
    const DeviceWeight& g = device_weight(w.gate);
    const DeviceWeight& u = device_weight(w.up);
    const DeviceWeight& dn = device_weight(w.down);
    const bool ue8m0 = numerics_.ue8m0_scales;
    const uint8_t* xq = pre != nullptr ? pre->q8.data<uint8_t>() : b.xq;
    const float* xs = pre != nullptr ? pre->scales.data<float>() : b.xs;
    if (pre == nullptr) launch_act_quant({x.data<uint16_t>(), b.xq, b.xs, nullptr, m, d, m, ue8m0}, st);
    Fp8StreamParams a;
    a.w = g.w.data<uint8_t>(), a.w_scale = g.scales.data<float>();
    a.w2 = u.w.data<uint8_t>(), a.w2_scale = u.scales.data<float>();
    a.gate_up = true;
    a.m = m;
    a.x = xq, a.x_scale = xs, a.x_scale_ld = m;
    a.out = b.gu;
    a.n = 2 * f, a.k = d, a.scale_ld = g.scales.dim(1);
    a.ws = b.ws, a.counters = b.counters;
    launch_fp8_stream_gemm(a, fp8_stream_plan(1, 2 * f, d, m, num_sms_), st);
    launch_swiglu_quant({b.gu, b.hq, b.hs, m, f, ue8m0}, st);
    Fp8StreamParams c;
    c.w = dn.w.data<uint8_t>(), c.w_scale = dn.scales.data<float>();
    c.m = m;
    c.x = b.hq, c.x_scale = b.hs, c.x_scale_ld = m;
    c.out = b.y;
    c.n = n, c.k = f, c.scale_ld = dn.scales.dim(1);
    c.ws = b.ws, c.counters = b.counters;  // the same stream: the gate_up launch is done with them
    launch_fp8_stream_gemm(c, fp8_stream_plan(1, n, f, m, num_sms_), st);
}

bool CudaBackend::fused_mlp(const Tensor& x, const MlpWeights& w, Tensor& y, const QuantizedAct* pre) {
    const int64_t m = x.dim(0), d = x.dim(1), f = w.gate.out_features(), n = w.down.out_features();
    if (!fused_mlp_fits(m, d, w)) return false;
    const Fp8StreamPlan gu_plan = fp8_stream_plan(1, 2 * f, d, m, num_sms_);
    const Fp8StreamPlan down_plan = fp8_stream_plan(1, n, f, m, num_sms_);
    const auto [ws, counters] = stream_workspace(std::max(gu_plan.ws_floats, down_plan.ws_floats),
                                                 std::max(gu_plan.counters, down_plan.counters));
    Tensor xq, xs;
    if (pre == nullptr) {
        xq = Tensor::empty({m, d}, DType::kF8E4M3, Device::kCUDA, "mlp.x.fp8");
        xs = Tensor::empty({d / 128, m}, DType::kF32, Device::kCUDA, "mlp.x.scales");
    }
    Tensor gu = Tensor::empty({m, 2 * f}, DType::kBF16, Device::kCUDA, "mlp.gate_up");
    Tensor hq = Tensor::empty({m, f}, DType::kF8E4M3, Device::kCUDA, "mlp.h.fp8");
    Tensor hs = Tensor::empty({f / 128, m}, DType::kF32, Device::kCUDA, "mlp.h.scales");
    launch_fused_mlp(x, w,
                     {pre ? nullptr : xq.data<uint8_t>(), pre ? nullptr : xs.data<float>(), gu.data<uint16_t>(),
                      hq.data<uint8_t>(), hs.data<float>(), y.data<uint16_t>(), ws, counters},
                     stream_, pre);
    return true;
}

Tensor CudaBackend::dense_mlp(const Tensor& x, const MlpWeights& w) { return dense_mlp_q8(QuantizedAct{x, {}, {}}, w); }

Tensor CudaBackend::dense_mlp_q8(const QuantizedAct& xa, const MlpWeights& w) {
    const Tensor& x = xa.x;
    DSA_CHECK(w.gate.defined() && w.up.defined() && w.down.defined()) << "MLP weights";
    DSA_CHECK(w.gate.out_features() == w.up.out_features() && w.down.in_features() == w.gate.out_features())
        << "MLP widths " << w.gate.out_features() << "/" << w.up.out_features() << "/" << w.down.in_features();
    check_device_tensor(x, DType::kBF16, {-1, w.gate.in_features()}, "dense_mlp x");
    Tensor y = Tensor::empty({x.dim(0), w.down.out_features()}, DType::kBF16, Device::kCUDA, "mlp.out");
    last_mlp_fused_ = fused_mlp(x, w, y, norm_q8(xa));
    if (last_mlp_fused_) {
        last_fp8_path_ = Fp8Path::kStream;
        return y;
    }
    Tensor g = linear(x, w.gate, LinearOutput::kActivation);
    Tensor u = linear(x, w.up, LinearOutput::kActivation);
    Tensor h = Tensor::empty(g.shape(), DType::kBF16, Device::kCUDA, "mlp.h");
    launch_swiglu({g.data<uint16_t>(), u.data<uint16_t>(), h.data<uint16_t>(), g.numel()}, stream_);
    return linear(h, w.down, LinearOutput::kActivation);
}

}  // namespace dsa::backend::cuda
