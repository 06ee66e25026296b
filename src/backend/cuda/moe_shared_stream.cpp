// The MoE shared expert on a second CUDA stream (DSA_MOE_SHARED_STREAM=N runs it so at T <= N <= 16 tokens; default 1):
// side_stream_ waits on an event of stream_, runs the launches of dense_mlp's fused streaming path (act_quant, gate +
// up, SwiGLU + act_quant, down; same plans, same bits) on buffers and a split-K workspace of its own, and stream_
// waits on its join event before the routed combine, which adds the shared expert's rows (one launch, the bits of
// add(routed, shared)). Under graph capture the fork is the event moe_route recorded before the router of the same
// x and ids (parallel graph branches from there; nothing may write x in between, as in the model's ffn); eagerly it
// is at moe_experts.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/fp8_stream_gemm.h"
#include "base/env.h"

namespace dsa::backend::cuda {

namespace {

constexpr int64_t kSideMaxTokens = 16;  // rows of the side buffers (decode batches)

// DSA_MOE_SHARED_STREAM: the largest T that runs the shared expert on the side stream (unset: 1, the H200's B = 1
// MoE layer 135.9 -> 126.9 us in a graph, even at T = 2 and slower from T = 4 than the shared expert as a group of
// the routed launches; 0: off; read at every call, for A/B runs and tests).
int64_t shared_stream_tokens() {
    const int64_t n = env_count("DSA_MOE_SHARED_STREAM", 1,
                                "CUDA: the largest decode batch that runs the shared expert on a side stream; 0 = off");
    return std::min<int64_t>(n, kSideMaxTokens);
}

// DSA_MOE_SHARED_STREAM_FORK=experts: under capture too the side stream forks at moe_experts (after the router),
// for A/B against the default fork at moe_route (read at every call).
bool fork_at_route() {
    const char* v = std::getenv("DSA_MOE_SHARED_STREAM_FORK");
    return v == nullptr || std::strcmp(v, "experts") != 0;
}

// The id of the capture running on `s` (0: none).
unsigned long long capture_id(cudaStream_t s) {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    unsigned long long id = 0;
    DSA_CUDA_CHECK(cudaStreamGetCaptureInfo(s, &status, &id));
    return status == cudaStreamCaptureStatusActive ? id : 0;
}

}  // namespace

// x [<= kSideMaxTokens, dim] in, the shared expert's intermediates, out y [<= kSideMaxTokens, out] and the split-K
// workspace of its two launches (counters zero between launches).
struct CudaBackend::SideMlp {
    int64_t dim = 0, inter = 0, out = 0;
    Tensor xq, xs, gu, hq, hs, y, ws, counters;
};

CudaBackend::SideMlp* CudaBackend::side_mlp(const Tensor& x, const MlpWeights& w) {
    const int64_t m = x.dim(0), d = x.dim(1);
    if (m > kSideMaxTokens || !fused_mlp_fits(m, d, w)) return nullptr;
    const int64_t f = w.gate.out_features(), n = w.down.out_features();
    const Fp8StreamPlan gu = fp8_stream_plan(1, 2 * f, d, m, num_sms_), dn = fp8_stream_plan(1, n, f, m, num_sms_);
    const int64_t ws = std::max(gu.ws_floats, dn.ws_floats), counters = std::max(gu.counters, dn.counters);
    SideMlp* s = side_mlp_.get();
    if (s != nullptr && s->dim == d && s->inter == f && s->out == n && s->ws.numel() >= ws &&
        s->counters.numel() >= counters) {
        return s;
    }
    if (capturing_) return nullptr;  // made eagerly only (a capture's first use would leave the counters unset)
    if (side_mlp_) side_retired_.push_back(side_mlp_);
    auto fresh = std::make_shared<SideMlp>();
    fresh->dim = d, fresh->inter = f, fresh->out = n;
    const int64_t r = kSideMaxTokens;
    fresh->xq = Tensor::empty({r, d}, DType::kF8E4M3, Device::kCUDA, "side.x.fp8");
    fresh->xs = Tensor::empty({d / 128, r}, DType::kF32, Device::kCUDA, "side.x.scales");
    fresh->gu = Tensor::empty({r, 2 * f}, DType::kBF16, Device::kCUDA, "side.gate_up");
    fresh->hq = Tensor::empty({r, f}, DType::kF8E4M3, Device::kCUDA, "side.h.fp8");
    fresh->hs = Tensor::empty({f / 128, r}, DType::kF32, Device::kCUDA, "side.h.scales");
    fresh->y = Tensor::empty({r, n}, DType::kBF16, Device::kCUDA, "side.out");
    fresh->ws = Tensor::empty({std::max<int64_t>(ws, int64_t{1} << 20)}, DType::kF32, Device::kCUDA, "side.ws");
    fresh->counters =
        Tensor::empty({std::max<int64_t>(counters, int64_t{1} << 16)}, DType::kI32, Device::kCUDA, "side.counters");
    // On stream_: every later side launch forks from stream_ after this.
    DSA_CUDA_CHECK(cudaMemsetAsync(fresh->counters.raw_data(), 0, fresh->counters.nbytes(), stream_));
    side_mlp_ = std::move(fresh);
    return side_mlp_.get();
}

// fused_mlp's launches (launch_fused_mlp, linear_ops.cpp) on side_stream_ into s's buffers -> s.y rows [0, m);
// with pre (x's norm made its act_quant before the fork) no act_quant launch.
void CudaBackend::side_mlp_launch(const Tensor& x, const MlpWeights& w, SideMlp& s, const QuantizedAct* pre) {
    launch_fused_mlp(x, w,
                     {s.xq.data<uint8_t>(), s.xs.data<float>(), s.gu.data<uint16_t>(), s.hq.data<uint8_t>(),
                      s.hs.data<float>(), s.y.data<uint16_t>(), s.ws.data<float>(), s.counters.data<int32_t>()},
                     side_stream_, pre);
}

void CudaBackend::note_route_fork(const Tensor& x, const Tensor& ids) {
    // Only inside a capture: an eager replay_graph between moe_route and moe_experts could run a graph's side branch
    // on the same buffers after this event, so eager runs fork at moe_experts.
    route_fork_.reset();
    if (!capturing_ || x.dim(0) < 1 || shared_stream_tokens() < x.dim(0) || !fork_at_route()) return;
    DSA_CUDA_CHECK(cudaEventRecord(route_event_, stream_));
    route_fork_ = RouteFork{x, ids, capture_id(stream_)};
}

bool CudaBackend::moe_shared_on_side(const MoeParams& p, Tensor& out) {
    const int64_t tokens = p.x.dim(0);
    if (tokens < 1 || tokens > shared_stream_tokens()) return false;
    SideMlp* s = side_mlp(p.x, *p.shared);
    if (s == nullptr) return false;
    const bool at_route = capturing_ && route_fork_ && route_fork_->x.raw_data() == p.x.raw_data() &&
                          route_fork_->x.shape() == p.x.shape() && route_fork_->ids.raw_data() == p.ids.raw_data() &&
                          route_fork_->capture == capture_id(stream_);
    route_fork_.reset();  // used once: later side work must not start before this call's add has read s->y
    if (!at_route) DSA_CUDA_CHECK(cudaEventRecord(fork_event_, stream_));
    DSA_CUDA_CHECK(cudaStreamWaitEvent(side_stream_, at_route ? route_event_ : fork_event_, 0));
    const QuantizedAct xa{p.x, p.x_q8, p.x_scales};
    side_mlp_launch(p.x, *p.shared, *s, norm_q8(xa));
    DSA_CUDA_CHECK(cudaEventRecord(join_event_, side_stream_));
    MoeParams routed = p;
    routed.shared = nullptr;
    const MoeAddend addend{s->y.slice(0, tokens), join_event_};  // the combine waits for it and adds it
    try {
        out = moe_experts_add(routed, &addend);
    } catch (...) {
        (void)cudaStreamWaitEvent(stream_, join_event_, 0);  // a capture then ends with both branches joined
        throw;
    }
    DSA_CUDA_CHECK(cudaStreamWaitEvent(stream_, join_event_, 0));  // (again) where no combine ran: tokens == 0
    last_shared_fork_ = at_route ? SharedFork::kAtRoute : SharedFork::kAtExperts;
    return true;
}

}  // namespace dsa::backend::cuda
