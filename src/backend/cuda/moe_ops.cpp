// MoE on the GPU. moe_route: the router GEMM through linear() (FP32 logits), then one warp per token does the
// sigmoid, group limit, top-k and weights (moe_kernels.cu); DSA_MOE_ROUTER=fused (opt-in: measured slower on the
// H200 in its first run) at T <= 32 with a bf16 router weight: one launch (moe_router.cu: split-K router GEMV
// over all SMs, then the selection in the last CTA). moe_experts: all routed experts of the span are
// uploaded once (device_weight) and listed in a cached device pointer table; the (token, slot) pairs are grouped
// by expert. FP8 experts with act_quant at T <= 128: grouping on the device, then the tensor-core weight-streaming
// GEMM (fp8_stream_gemm.cu) for gate_up (one launch over all groups; fixed grid, DSA_MOE_PLAN=joint: one K chunk
// planned over all groups' CTAs, DSA_FP8_STREAMK=1 / moe at one token: stream-K), SwiGLU + act_quant of h, and down.
// Else the weight-streaming grouped GEMV kernels (gate/up + SwiGLU, then down) at T <= 16, and in the prefill path
// experts with >= 32 rows gather their rows and run dense_mlp. The combine sums weight * expert output per token in
// FP32 in slot order and rounds once to bf16. DSA_MOE_SHARED_STREAM=N (opt-in): at T <= N the shared expert runs on
// a second stream concurrently with the router and the routed experts (moe_shared_stream.cpp).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/fp8_stream_gemm.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/moe_kernels.h"

namespace dsa::backend::cuda {

struct CudaBackend::MoeTable {
    std::vector<const void*> key;  // gate, up, down weight addresses of every expert (checked on each use)
    Tensor ptrs;                   // [E * sizeof(MoeExpertPtrs)] u8 device table
    int64_t dim = 0, inter = 0;    // D, F
    bool fp8 = false;
    bool aligned16 = true;            // every weight starts on a 16-byte boundary (the streaming GEMM's loads)
    std::vector<MoeExpertPtrs> host;  // the table's entries
    // The table with a shared expert appended at index E (made on first use with that shared expert; under mu_).
    std::vector<const void*> shared_key;
    Tensor shared_ptrs;
    std::vector<Tensor> shared_retired;  // replaced tables, kept alive for graphs that captured them
};

namespace {

constexpr int64_t kDecodeMaxTokens = 16;   // T above this: the prefill path (host-side grouping)
constexpr int64_t kStreamMaxTokens = 128;  // FP8 + act_quant: the device path up to this T (pairs <= 1024)
constexpr int64_t kGemmMinRows = 32;       // prefill: experts with this many rows run dense_mlp (cuBLASLt)

std::vector<const void*> expert_key(std::span<const MlpWeights> experts) {
    std::vector<const void*> key;
    key.reserve(experts.size() * 3);
    for (size_t i = 0; i < experts.size(); ++i) {
        const MlpWeights& w = experts[i];
        DSA_CHECK(w.gate.defined() && w.up.defined() && w.down.defined()) << "routed expert " << i << " weights";
        key.push_back(w.gate.weight.raw_data());
        key.push_back(w.up.weight.raw_data());
        key.push_back(w.down.weight.raw_data());
    }
    return key;
}

void check_expert(const MlpWeights& w, size_t i, int64_t dim, int64_t inter, DType dt) {
    const auto is = [&](const LinearWeight& l, int64_t out, int64_t in) {
        return l.weight.dtype() == dt && l.out_features() == out && l.in_features() == in;
    };
    DSA_CHECK(is(w.gate, inter, dim) && is(w.up, inter, dim) && is(w.down, dim, inter))
        << "routed expert " << i << ": gate/up must be [" << inter << ", " << dim << "] and down [" << dim << ", "
        << inter << "] " << dtype_name(dt) << " like expert 0; got " << shape_to_string(w.gate.weight.shape()) << " "
        << shape_to_string(w.up.weight.shape()) << " " << shape_to_string(w.down.weight.shape()) << " "
        << dtype_name(w.gate.weight.dtype());
}

// The bytes of an expert pointer table as a host u8 tensor.
Tensor pointer_table(const std::vector<MoeExpertPtrs>& host) {
    const int64_t bytes = static_cast<int64_t>(host.size() * sizeof(MoeExpertPtrs));
    Tensor h = Tensor::empty({bytes}, DType::kU8, Device::kCPU, "moe.expert_ptrs");
    std::memcpy(h.raw_data(), host.data(), static_cast<size_t>(bytes));
    return h;
}

// DSA_MOE_SHARED=separate: the shared expert through dense_mlp + add instead of one more group (read every call).
bool shared_fusion_enabled() {
    const char* v = std::getenv("DSA_MOE_SHARED");
    return v == nullptr || std::strcmp(v, "separate") != 0;
}

std::atomic<int64_t> g_shared_fused{0};

// DSA_MOE_ROUTER=fused: the fused router GEMV + selection; unset or cublas: the router GEMM on cuBLASLt + the
// route kernel, the faster path in the H200 run of both (read at every call, for A/B and tests).
bool fused_router_enabled() {
    const char* v = std::getenv("DSA_MOE_ROUTER");
    return v != nullptr && std::strcmp(v, "fused") == 0;
}

// Whether w has a routed expert's shapes (gate/up [inter, dim], down [dim, inter]) and dtype.
bool same_shapes(const MlpWeights& w, int64_t dim, int64_t inter, DType dt) {
    const auto is = [&](const LinearWeight& l, int64_t out, int64_t in) {
        return l.defined() && l.weight.dtype() == dt && l.out_features() == out && l.in_features() == in;
    };
    return is(w.gate, inter, dim) && is(w.up, inter, dim) && is(w.down, dim, inter);
}

}  // namespace

const CudaBackend::MoeTable& CudaBackend::moe_table(std::span<const MlpWeights> experts) {
    DSA_CHECK(!experts.empty()) << "moe_experts without routed experts";
    std::vector<const void*> key = expert_key(experts);
    {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = moe_tables_.find(experts.data());
        if (it != moe_tables_.end() && it->second->key == key) return *it->second;
    }
    auto table = std::make_shared<MoeTable>();
    table->key = std::move(key);
    const LinearWeight& g0 = experts[0].gate;
    table->inter = g0.out_features();
    table->dim = g0.in_features();
    table->fp8 = g0.is_fp8();
    const DType dt = g0.weight.dtype();
    DSA_CHECK(dt == DType::kF8E4M3 || dt == DType::kBF16)
        << "routed experts must be FP8 (block-scaled) or BF16 on the CUDA backend, got " << dtype_name(dt);
    DSA_CHECK(table->dim % 16 == 0 && table->inter % 16 == 0)
        << "routed expert widths D = " << table->dim << ", F = " << table->inter << " must be multiples of 16";
    std::vector<MoeExpertPtrs> host(experts.size());
    for (size_t i = 0; i < experts.size(); ++i) {
        const MlpWeights& w = experts[i];
        check_expert(w, i, table->dim, table->inter, dt);
        const DeviceWeight& g = device_weight(w.gate);
        const DeviceWeight& u = device_weight(w.up);
        const DeviceWeight& d = device_weight(w.down);
        for (const DeviceWeight* dw : {&g, &u, &d}) {
            if ((reinterpret_cast<uintptr_t>(dw->w.raw_data()) & 15u) != 0) table->aligned16 = false;
        }
        host[i] = {g.w.raw_data(),
                   u.w.raw_data(),
                   d.w.raw_data(),
                   table->fp8 ? g.scales.data<float>() : nullptr,
                   table->fp8 ? u.scales.data<float>() : nullptr,
                   table->fp8 ? d.scales.data<float>() : nullptr};
    }
    table->ptrs = to_device(pointer_table(host));
    table->host = std::move(host);
    std::lock_guard<std::mutex> lock(mu_);
    moe_tables_[experts.data()] = table;
    return *table;
}

RouterResult CudaBackend::moe_route(const RouterParams& p) {
    DSA_CHECK(p.weight.defined() && p.weight.ndim() == 2) << "router weight must be [E, D]";
    DSA_CHECK(p.weight.dtype() == DType::kBF16 || p.weight.dtype() == DType::kF32)
        << "router weight dtype " << dtype_name(p.weight.dtype()) << " (bf16 or f32)";
    const int64_t experts = p.weight.dim(0), dim = p.weight.dim(1);
    check_device_tensor(p.x, DType::kBF16, {-1, dim}, "router x");
    DSA_CHECK(experts <= kMoeRouteMaxExperts)
        << experts << " experts; the router kernel takes at most " << kMoeRouteMaxExperts;
    DSA_CHECK(p.num_groups >= 1 && experts % p.num_groups == 0) << experts << " experts in " << p.num_groups;
    DSA_CHECK(p.topk_groups >= 1 && p.topk_groups <= p.num_groups) << "topk_groups " << p.topk_groups;
    DSA_CHECK(p.top_k >= 1 && p.top_k <= experts / p.num_groups * p.topk_groups) << "top_k " << p.top_k;
    Tensor bias = p.bias.defined() ? param_f32(p.bias, experts, "router bias") : Tensor();
    const int64_t tokens = p.x.dim(0);
    RouterResult r;
    route_groups_ = {};
    r.ids = Tensor::empty({tokens, p.top_k}, DType::kI32, Device::kCUDA, "expert_ids");
    r.weights = Tensor::empty({tokens, p.top_k}, DType::kF32, Device::kCUDA, "expert_weights");
    note_route_fork(p.x, r.ids);  // the shared expert's side stream may start here (moe_shared_stream.cpp)
    const LinearWeight w{p.weight, {}};
    const MoeRouteParams route{nullptr,
                               bias.defined() ? bias.data<float>() : nullptr,
                               r.ids.data<int32_t>(),
                               r.weights.data<float>(),
                               tokens,
                               experts,
                               p.num_groups,
                               p.topk_groups,
                               p.top_k,
                               p.routed_scaling_factor,
                               p.normalize};
    if (fused_router_enabled() && p.weight.dtype() == DType::kBF16 && p.x.is_contiguous() &&
        (reinterpret_cast<uintptr_t>(p.x.raw_data()) & 15u) == 0 &&
        moe_router_supported(tokens, experts, p.num_groups, dim) &&
        (reinterpret_cast<uintptr_t>(device_weight(w).w.raw_data()) & 15u) == 0) {
        // Decode: the router GEMV and the selection in one launch.
        const DeviceWeight& dw = device_weight(w);
        r.scores = Tensor::empty({tokens, experts}, DType::kF32, Device::kCUDA, "router_scores");
        const MoeRouterPlan plan = moe_router_plan(tokens, experts, dim, num_sms_);
        const auto [ws, counters] = stream_workspace(plan.ws_floats, plan.counters);
        MoeRouterParams fp{p.x.data<uint16_t>(), dw.w.data<uint16_t>(), route, dim, ws, counters};
        fp.route.scores = r.scores.data<float>();
        launch_moe_router(fp, plan, stream_);
        return r;
    }
    r.scores = linear(p.x, w, LinearOutput::kF32);  // FP32 logits, never quantized
    MoeRouteParams rp = route;
    rp.scores = r.scores.data<float>();
    if (fused_group_enabled() && moe_route_groups_supported(tokens, p.top_k)) {
        // The route kernel also writes the grouping moe_experts would build from these ids (both layouts where
        // the shared slot fits), taken there instead of a moe_group launch.
        const int64_t pairs = tokens * p.top_k, spairs = tokens * (p.top_k + 1);
        route_groups_.ids = r.ids, route_groups_.experts = experts;
        route_groups_.plain = Tensor::empty({moe_groups_words(std::min(pairs, experts), pairs)}, DType::kI32,
                                            Device::kCUDA, "moe.groups");
        rp.group_packed = route_groups_.plain.data<int32_t>();
        if (spairs <= kMoeRouteGroupMaxPairs) {
            route_groups_.shared = Tensor::empty({moe_groups_words(std::min(spairs, experts + 1), spairs)}, DType::kI32,
                                                 Device::kCUDA, "moe.groups");
            rp.group_packed_shared = route_groups_.shared.data<int32_t>();
        }
    }
    launch_moe_route(rp, stream_);
    return r;
}

bool fused_group_enabled() {
    return fused_switch("DSA_FUSED_GROUP", true,
                        "CUDA decode: 1 (default) = moe_route also groups the (token, expert) pairs (<= 4 tokens, "
                        "<= 32 pairs; no moe_group launch in moe_experts); 0 = off");
}

// The grouping the last moe_route wrote for ids `ids` over `experts` experts (with the shared slot or not); an
// undefined tensor when it has none. Forgets it either way (one use per route).
Tensor CudaBackend::take_route_groups(const Tensor& ids, int64_t experts, bool shared) {
    RouteGroups g = std::move(route_groups_);
    route_groups_ = {};
    last_groups_from_route_ = g.ids.defined() && g.ids.raw_data() == ids.raw_data() && g.ids.shape() == ids.shape() &&
                              g.experts == experts && (shared ? g.shared : g.plain).defined();
    return last_groups_from_route_ ? (shared ? g.shared : g.plain) : Tensor();
}

namespace {

// What the grouped kernels need of one moe_experts call.
struct GroupedRun {
    const MoeExpertPtrs* table;
    int64_t dim, inter, top_k, pairs;
    bool fp8, act_quant, ue8m0;
};

// Gate/up + SwiGLU, act_quant of h, down for the pairs of `groups`: writes their rows of y [pairs, D].
void run_grouped(const GroupedRun& r, const MoeGroups& groups, const Tensor& xf, Tensor& y, cudaStream_t stream) {
    Tensor h = Tensor::empty({r.pairs, r.inter}, DType::kBF16, Device::kCUDA, "moe.h");
    const int64_t gate_up_ld = LtGemm::w_scale_ld(r.dim), down_ld = LtGemm::w_scale_ld(r.inter);
    launch_moe_gate_up(
        {r.table, groups, xf.data<float>(), h.data<uint16_t>(), r.top_k, r.inter, r.dim, gate_up_ld, r.fp8}, stream);
    Tensor hf = Tensor::empty({r.pairs, r.inter}, DType::kF32, Device::kCUDA, "moe.h.f32");
    launch_moe_prep({h.data<uint16_t>(), hf.data<float>(), r.pairs, r.inter, r.act_quant, r.ue8m0}, stream);
    launch_moe_down({r.table, groups, hf.data<float>(), y.data<uint16_t>(), 1, r.dim, r.inter, down_ld, r.fp8}, stream);
}

// Buffers of the streamed (tensor-core) decode path.
struct StreamRun {
    const Fp8StreamPlan* gate_up;
    const Fp8StreamPlan* down;
    float* ws;
    int32_t* counters;
};

// gate_up over all groups -> gu [pairs, 2F] bf16; SwiGLU + act_quant -> h e4m3 + scales; down -> y [pairs, D].
void run_streamed(const GroupedRun& r, const MoeGroups& groups, const Tensor& xq, const Tensor& xs, int64_t tokens,
                  const StreamRun& s, Tensor& y, cudaStream_t stream) {
    Tensor gu = Tensor::empty({r.pairs, 2 * r.inter}, DType::kBF16, Device::kCUDA, "moe.gate_up");
    Fp8StreamParams a;
    a.experts = r.table;
    a.groups = groups;
    a.gate_up = true;
    a.x = xq.data<uint8_t>();
    a.x_scale = xs.data<float>();
    a.x_scale_ld = tokens;
    a.x_row_div = r.top_k;
    a.out = gu.data<uint16_t>();
    a.n = 2 * r.inter, a.k = r.dim, a.scale_ld = LtGemm::w_scale_ld(r.dim);
    a.ws = s.ws, a.counters = s.counters;
    launch_fp8_stream_gemm(a, *s.gate_up, stream);
    Tensor hq = Tensor::empty({r.pairs, r.inter}, DType::kF8E4M3, Device::kCUDA, "moe.h.fp8");
    Tensor hs = Tensor::empty({r.inter / 128, r.pairs}, DType::kF32, Device::kCUDA, "moe.h.scales");
    launch_swiglu_quant({gu.data<uint16_t>(), hq.data<uint8_t>(), hs.data<float>(), r.pairs, r.inter, r.ue8m0}, stream);
    Fp8StreamParams d = a;
    d.gate_up = false;
    d.x = hq.data<uint8_t>();
    d.x_scale = hs.data<float>();
    d.x_scale_ld = r.pairs;
    d.x_row_div = 1;
    d.out = y.data<uint16_t>();
    d.n = r.dim, d.k = r.inter, d.scale_ld = LtGemm::w_scale_ld(r.inter);
    launch_fp8_stream_gemm(d, *s.down, stream);
}

// Host-side grouping of the pairs by expert (experts ascending, pairs ascending within an expert).
struct HostGroups {
    std::vector<int32_t> expert, start, count, rows;
};

HostGroups group_on_host(const Tensor& ids, int64_t num_experts) {
    const int64_t pairs = ids.numel();
    std::vector<int32_t> per(num_experts, 0);
    for (int64_t i = 0; i < pairs; ++i) {
        const int32_t e = ids.data<int32_t>()[i];
        DSA_CHECK(e >= 0 && e < num_experts) << "moe ids[" << i << "] = " << e << " outside [0, " << num_experts << ")";
        ++per[e];
    }
    HostGroups g;
    std::vector<int32_t> next(num_experts, 0);
    int32_t offset = 0;
    for (int64_t e = 0; e < num_experts; ++e) {
        next[e] = offset;
        if (per[e] == 0) continue;
        g.expert.push_back(static_cast<int32_t>(e));
        g.start.push_back(offset);
        g.count.push_back(per[e]);
        offset += per[e];
    }
    g.rows.resize(pairs);
    for (int64_t i = 0; i < pairs; ++i) g.rows[next[ids.data<int32_t>()[i]]++] = static_cast<int32_t>(i);
    return g;
}

}  // namespace

int64_t moe_shared_fused_count() { return g_shared_fused.load(std::memory_order_relaxed); }

Tensor CudaBackend::moe_experts(const MoeParams& p) { return moe_experts_add(p, nullptr); }

Tensor CudaBackend::moe_experts_add(const MoeParams& p, const MoeAddend* addend) {
    DSA_CHECK(addend == nullptr || p.shared == nullptr) << "moe_experts: an addend and a shared expert";
    last_groups_from_route_ = false;
    check_device_tensor(p.x, DType::kBF16, {-1, -1}, "moe x");
    const int64_t tokens = p.x.dim(0), dim = p.x.dim(1);
    DSA_CHECK(p.ids.defined() && p.ids.ndim() == 2 && p.ids.dim(0) == tokens && p.ids.dtype() == DType::kI32 &&
              p.ids.is_contiguous())
        << "moe ids must be contiguous i32 [" << tokens << ", k]";
    const int64_t top_k = p.ids.dim(1), pairs = tokens * top_k;
    DSA_CHECK(p.weights.defined() && p.weights.dtype() == DType::kF32 && p.weights.is_contiguous() &&
              p.weights.shape() == Shape({tokens, top_k}))
        << "moe weights must be contiguous f32 [" << tokens << ", " << top_k << "]";
    const MoeTable& table = moe_table(p.experts);
    DSA_CHECK(table.dim == dim) << "moe x width " << dim << ", experts take " << table.dim;
    if (p.shared != nullptr) {
        last_shared_fork_ = SharedFork::kNone;
        Tensor out;
        if (moe_shared_on_side(p, out)) return out;  // DSA_MOE_SHARED_STREAM: concurrent with the routed experts
    }
    const int64_t num_experts = static_cast<int64_t>(p.experts.size());
    const bool act_quant = table.fp8 && numerics_.fp8_activation_quant;
    const bool streamed = act_quant && tokens <= kStreamMaxTokens && pairs <= kMoeGroupMaxPairs && dim % 128 == 0 &&
                          table.inter % 128 == 0 && table.aligned16;
    // The shared expert as one more group of the streamed launches (slot top_k of every token) when it has the
    // routed experts' shapes; else the model's order: add(routed, dense_mlp(x, shared)). At one token it joins only
    // under the opt-in joint grouped plan (fp8_stream_grouped_joint, staged / wgmma kernels): the fixed grid's
    // 9-group gate_up overfills a wave (288 CTAs on 264 slots) and measured 5-15 us slower per layer on the H200 than
    // the separate shared expert (the default, fixed grid); and under stream-K (DSA_FP8_STREAMK=1 / moe: one wave).
    const MoeExpertPtrs* shared_ptrs = nullptr;
    const bool streamk = tokens == 1 && fp8_stream_streamk_moe() && fp8_stream_variant() != Fp8StreamKernel::kRing;
    const bool shared_joins =
        tokens >= 2 || streamk || (fp8_stream_grouped_joint() && fp8_stream_variant() != Fp8StreamKernel::kRing);
    if (p.shared != nullptr && streamed && shared_joins && top_k > 0 && tokens * (top_k + 1) <= kMoeGroupMaxPairs &&
        shared_fusion_enabled() && same_shapes(*p.shared, table.dim, table.inter, DType::kF8E4M3)) {
        // The routed table with the shared expert appended at index E, cached in the routed table.
        const DeviceWeight* dw[3] = {&device_weight(p.shared->gate), &device_weight(p.shared->up),
                                     &device_weight(p.shared->down)};
        const std::vector<const void*> key = {dw[0]->w.raw_data(), dw[1]->w.raw_data(), dw[2]->w.raw_data()};
        bool aligned = true;
        for (const void* a : key) aligned = aligned && (reinterpret_cast<uintptr_t>(a) & 15u) == 0;
        auto& t = const_cast<MoeTable&>(table);
        std::lock_guard<std::mutex> lock(mu_);
        if (aligned && t.shared_key != key) {
            std::vector<MoeExpertPtrs> host = t.host;
            host.push_back({key[0], key[1], key[2], dw[0]->scales.data<float>(), dw[1]->scales.data<float>(),
                            dw[2]->scales.data<float>()});
            if (t.shared_ptrs.defined()) t.shared_retired.push_back(t.shared_ptrs);
            t.shared_ptrs = to_device(pointer_table(host));
            t.shared_key = key;
        }
        if (aligned) shared_ptrs = t.shared_ptrs.data<MoeExpertPtrs>();
    }
    if (p.shared != nullptr && shared_ptrs == nullptr) {
        MoeParams routed = p;
        routed.shared = nullptr;
        Tensor y = moe_experts(routed);
        return add(y, dense_mlp_q8(QuantizedAct{p.x, p.x_q8, p.x_scales}, *p.shared));
    }
    Tensor out = Tensor::empty({tokens, dim}, DType::kBF16, Device::kCUDA, "moe_out");
    if (tokens == 0) return out;
    if (pairs == 0) {
        DSA_CUDA_CHECK(cudaMemsetAsync(out.raw_data(), 0, out.nbytes(), stream_));
        if (addend == nullptr) return out;
        DSA_CUDA_CHECK(cudaStreamWaitEvent(stream_, addend->ready, 0));
        return add(out, addend->y);
    }
    Tensor weights = p.weights.device() == Device::kCUDA ? p.weights : to_device(p.weights);
    const bool fused_shared = shared_ptrs != nullptr;
    const int64_t slots = top_k + (fused_shared ? 1 : 0), vpairs = tokens * slots;
    const GroupedRun run{fused_shared ? shared_ptrs : table.ptrs.data<MoeExpertPtrs>(),
                         dim,
                         table.inter,
                         slots,
                         vpairs,
                         table.fp8,
                         act_quant,
                         numerics_.ue8m0_scales};
    Tensor y = Tensor::empty({vpairs, dim}, DType::kBF16, Device::kCUDA, "moe.y");
    const bool device_grouped = streamed || (tokens <= kDecodeMaxTokens && pairs <= kMoeGroupMaxPairs);
    Tensor xf;
    if (!streamed) {
        xf = Tensor::empty({tokens, dim}, DType::kF32, Device::kCUDA, "moe.x.f32");
        launch_moe_prep({p.x.data<uint16_t>(), xf.data<float>(), tokens, dim, run.act_quant, run.ue8m0}, stream_);
    }
    if (device_grouped) {
        // Decode: grouping on the device, no host round trip.
        Tensor ids = device_indices(p.ids, num_experts, "moe ids");
        const int64_t vexperts = num_experts + (fused_shared ? 1 : 0), max_groups = std::min(vpairs, vexperts);
        Tensor packed = take_route_groups(p.ids, num_experts, fused_shared);  // DSA_FUSED_GROUP: made by moe_route
        if (!packed.defined()) {
            packed = Tensor::empty({moe_groups_words(max_groups, vpairs)}, DType::kI32, Device::kCUDA, "moe.groups");
            MoeGroupBuildParams gp{ids.data<int32_t>(), packed.data<int32_t>(), vpairs, vexperts, max_groups};
            if (fused_shared) {
                gp.top_k = top_k;
                gp.shared_expert = static_cast<int32_t>(num_experts);
            }
            launch_moe_group_pairs(gp, stream_);
        }
        const MoeGroups groups = moe_groups_view(packed.data<int32_t>(), max_groups);
        if (streamed) {
            // A group holds at most `tokens` rows when a token's experts are distinct (the router's output), at
            // most the routed pairs always (the shared group: `tokens`); past the planned bound the kernel
            // re-streams a tile per extra 8 x nt rows.
            const int64_t bound = std::min(pairs, tokens);
            const bool bounded = pairs <= kFp8StreamMaxRows;
            const int64_t rows = bounded ? pairs : std::min(bound, kFp8StreamMaxRows);  // more: passes
            Fp8StreamPlan gate_up = fp8_stream_plan(max_groups, 2 * table.inter, dim, rows, num_sms_, bounded);
            Fp8StreamPlan down = fp8_stream_plan(max_groups, dim, table.inter, rows, num_sms_, bounded);
            if (streamk && bounded) {  // one token: every group exists (distinct experts), the units split evenly
                gate_up = fp8_stream_streamk_plan(gate_up, max_groups, dim, num_sms_);
                down = fp8_stream_streamk_plan(down, max_groups, table.inter, num_sms_);
            }
            const auto [ws, counters] = stream_workspace(std::max(gate_up.ws_floats, down.ws_floats),
                                                         std::max(gate_up.counters, down.counters));
            // x's act_quant: its norm's where it made one (the same bits), else one launch here.
            const QuantizedAct xa{p.x, p.x_q8, p.x_scales};
            const QuantizedAct* pre = norm_q8(xa);
            Tensor xq = pre ? pre->q8 : Tensor::empty({tokens, dim}, DType::kF8E4M3, Device::kCUDA, "moe.x.fp8");
            Tensor xs = pre ? pre->scales : Tensor::empty({dim / 128, tokens}, DType::kF32, Device::kCUDA, "moe.x.scales");
            if (pre == nullptr) {
                launch_act_quant({p.x.data<uint16_t>(), xq.data<uint8_t>(), xs.data<float>(), nullptr, tokens, dim,
                                  tokens, run.ue8m0},
                                 stream_);
            }
            run_streamed(run, groups, xq, xs, tokens, {&gate_up, &down, ws, counters}, y, stream_);
            last_moe_path_ = MoePath::kStream;
            if (fused_shared) g_shared_fused.fetch_add(1, std::memory_order_relaxed);
        } else {
            run_grouped(run, groups, xf, y, stream_);
            last_moe_path_ = MoePath::kDeviceGemv;
        }
    } else {
        // Prefill: group on the host; large groups go through dense_mlp, the rest through the grouped kernels.
        last_moe_path_ = MoePath::kHostGrouped;
        const HostGroups g = group_on_host(p.ids.device() == Device::kCUDA ? to_host(p.ids) : p.ids, num_experts);
        std::vector<size_t> small, large;
        for (size_t i = 0; i < g.expert.size(); ++i) {
            const int64_t m = g.count[i];
            bool gemm = m >= kGemmMinRows;
            if (gemm && table.fp8) {
                gemm = run.act_quant && gemm_->fp8_block_supported(GemmOutput::kBF16, m, table.inter, dim) &&
                       gemm_->fp8_block_supported(GemmOutput::kBF16, m, dim, table.inter);
            }
            (gemm ? large : small).push_back(i);
        }
        const auto ns = static_cast<int64_t>(small.size());
        Tensor packed = Tensor::empty({moe_groups_words(ns, pairs)}, DType::kI32, Device::kCPU, "moe.groups");
        int32_t* w = packed.data<int32_t>();
        w[0] = static_cast<int32_t>(ns);
        for (int64_t j = 0; j < ns; ++j) {
            w[1 + j] = g.expert[small[j]];
            w[1 + ns + j] = g.start[small[j]];
            w[1 + 2 * ns + j] = g.count[small[j]];
        }
        std::copy(g.rows.begin(), g.rows.end(), w + 1 + 3 * ns);
        Tensor dpacked = to_device(packed);
        const int32_t* drows = dpacked.data<int32_t>() + 1 + 3 * ns;
        if (ns > 0) run_grouped(run, moe_groups_view(dpacked.data<int32_t>(), ns), xf, y, stream_);
        for (size_t i : large) {
            const int64_t m = g.count[i];
            const int32_t* map = drows + g.start[i];
            Tensor xe = Tensor::empty({m, dim}, DType::kBF16, Device::kCUDA, "moe.expert_in");
            launch_moe_row_copy({p.x.data<uint16_t>(), xe.data<uint16_t>(), map, m, dim, top_k, true}, stream_);
            Tensor ye = dense_mlp(xe, p.experts[g.expert[i]]);
            launch_moe_row_copy({ye.data<uint16_t>(), y.data<uint16_t>(), map, m, dim, 1, false}, stream_);
        }
    }
    if (addend != nullptr) DSA_CUDA_CHECK(cudaStreamWaitEvent(stream_, addend->ready, 0));
    launch_moe_combine({y.data<uint16_t>(), weights.data<float>(), out.data<uint16_t>(), tokens, top_k, dim, fused_shared,
                        addend != nullptr ? addend->y.data<uint16_t>() : nullptr},
                       stream_);
    return out;
}

}  // namespace dsa::backend::cuda
