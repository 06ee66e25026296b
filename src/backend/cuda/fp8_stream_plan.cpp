// Host side of the FP8 weight-streaming GEMM (fp8_stream_gemm.h): which kernel variant runs (DSA_FP8_STREAM_KERNEL),
// the launch plans (row tiles, token tiles, split-K chunks and their workspace; the joint grouped and multi-weight
// plans) and their environment switches. The kernels and launchers are in fp8_stream_gemm.cu.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "backend/cuda/fp8_stream_gemm.h"
#include "base/check.h"
#include "base/env.h"

namespace dsa::backend::cuda {
namespace {

std::atomic<int> g_variant{0};  // 0: not yet read from the environment

}  // namespace

Fp8StreamKernel fp8_stream_variant() {
    int v = g_variant.load(std::memory_order_relaxed);
    if (v == 0) {
        const char* e = std::getenv("DSA_FP8_STREAM_KERNEL");
        v = e != nullptr && std::strcmp(e, "ring") == 0    ? static_cast<int>(Fp8StreamKernel::kRing)
            : e != nullptr && std::strcmp(e, "wgmma") == 0 ? static_cast<int>(Fp8StreamKernel::kWgmma)
            : e != nullptr && std::strcmp(e, "staged") == 0 ? static_cast<int>(Fp8StreamKernel::kStaged)
                                                            : static_cast<int>(Fp8StreamKernel::kAuto);
        g_variant.store(v, std::memory_order_relaxed);
    }
    return static_cast<Fp8StreamKernel>(v);
}

void set_fp8_stream_variant(Fp8StreamKernel k) { g_variant.store(static_cast<int>(k), std::memory_order_relaxed); }

namespace {

std::atomic<int> g_multi_joint{-1};    // -1: not yet read from the environment
std::atomic<int> g_grouped_joint{-1};  // -1: not yet read from the environment
std::atomic<int> g_streamk{-1};        // -1: not yet read from the environment
std::atomic<int> g_cluster{-2};        // -2: not yet read from the environment
std::atomic<int> g_finish{-1};         // -1: not yet read from the environment
std::atomic<int> g_grouped_wgmma{-1};  // -1: not yet read from the environment

// `plan` (dense) with K split into chunks of `chunk` 128-blocks (its workspace sized to match).
void set_chunk(Fp8StreamPlan& plan, int64_t nkb, int64_t chunk) {
    plan.chunk = chunk;
    plan.splits = (nkb + chunk - 1) / chunk;
    plan.ws_floats = plan.splits > 1 ? plan.splits * plan.tiles * 32 * plan.nt * 4 : 0;
    plan.counters = plan.splits > 1 ? plan.tiles : 0;
}

// 128-row CTAs per K split of `plan` (the staged and wgmma kernels).
int64_t row_ctas(const Fp8StreamPlan& plan) { return (plan.tiles + kFp8StreamCtaWarps - 1) / kFp8StreamCtaWarps; }

// The K chunk (in 128-blocks, nkb down to min_chunk; ties keep the larger) whose CTAs cost least: ceil(CTAs /
// slots) rounds, each streaming `chunk + per_cta_extra` blocks, for `rowblocks` CTAs per K split.
int64_t cheapest_chunk(int64_t nkb, int64_t min_chunk, int64_t rowblocks, int64_t slots, int64_t per_cta_extra) {
    int64_t best = nkb, best_cost = -1;
    for (int64_t c = nkb; c >= min_chunk; --c) {
        const int64_t ctas = rowblocks * ((nkb + c - 1) / c);
        const int64_t cost = (ctas + slots - 1) / slots * (c + per_cta_extra);
        if (best_cost < 0 || cost < best_cost) best = c, best_cost = cost;
    }
    return best;
}

// A switch read once from the environment (`cache` < 0: not read yet): `on_value` when it equals `match`.
bool env_switch(std::atomic<int>& cache, const char* name, const char* match, bool on_value) {
    int v = cache.load(std::memory_order_relaxed);
    if (v < 0) {
        const char* e = std::getenv(name);
        v = (e != nullptr && std::strcmp(e, match) == 0) == on_value ? 1 : 0;
        cache.store(v, std::memory_order_relaxed);
    }
    return v == 1;
}

}  // namespace

// Default on (measured on the H200: M = 64 7168x2048 32.1 -> 15.7 us, q_a+kv_a+wk 47.3 -> 23.3); =v1 the first.
bool fp8_stream_finish_v2() { return env_switch(g_finish, "DSA_FP8_STREAM_FINISH", "v1", false); }

void set_fp8_stream_finish_v2(bool on) { g_finish.store(on ? 1 : 0, std::memory_order_relaxed); }

bool fp8_stream_grouped_wgmma() {
    int v = g_grouped_wgmma.load(std::memory_order_relaxed);
    if (v < 0) {
        const int64_t n = env_count("DSA_FP8_GROUPED_WGMMA", 1,
                                    "CUDA: 1 (default) = MoE expert launches planned for <= 16 rows per expert on the "
                                    "wgmma stream kernel, 0 = on the staged one");
        DSA_CHECK(n <= 1) << "DSA_FP8_GROUPED_WGMMA must be 0 or 1, not " << n;
        v = static_cast<int>(n);
        g_grouped_wgmma.store(v, std::memory_order_relaxed);
    }
    return v == 1;
}

void set_fp8_stream_grouped_wgmma(bool on) { g_grouped_wgmma.store(on ? 1 : 0, std::memory_order_relaxed); }

bool fp8_stream_grouped_joint() { return env_switch(g_grouped_joint, "DSA_MOE_PLAN", "joint", true); }

void set_fp8_stream_grouped_joint(bool joint) { g_grouped_joint.store(joint ? 1 : 0, std::memory_order_relaxed); }

int fp8_stream_streamk_scope() {
    int v = g_streamk.load(std::memory_order_relaxed);
    if (v < 0) {
        const char* e = std::getenv("DSA_FP8_STREAMK");
        const std::string s = e != nullptr ? e : "";
        v = s == "1" || s == "all" ? kFp8StreamKDense | kFp8StreamKMoe
            : s == "dense"         ? kFp8StreamKDense
            : s == "moe"           ? kFp8StreamKMoe
                                   : 0;
        g_streamk.store(v, std::memory_order_relaxed);
    }
    return v;
}

void set_fp8_stream_streamk_scope(int scope) { g_streamk.store(scope & 3, std::memory_order_relaxed); }

bool fp8_stream_streamk() { return (fp8_stream_streamk_scope() & kFp8StreamKDense) != 0; }

bool fp8_stream_streamk_moe() { return (fp8_stream_streamk_scope() & kFp8StreamKMoe) != 0; }

void set_fp8_stream_streamk(bool on) { set_fp8_stream_streamk_scope(on ? kFp8StreamKDense | kFp8StreamKMoe : 0); }

Fp8StreamPlan fp8_stream_streamk_plan(Fp8StreamPlan plan, int64_t groups, int64_t k, int num_sms) {
    DSA_CHECK(plan.kernel != Fp8StreamKernel::kRing && groups >= 1 && k >= kFp8StreamKBlock)
        << "fp8 stream GEMM: stream-K plan for the ring variant or K " << k;
    const int64_t nkb = k / kFp8StreamKBlock, slots = 2 * static_cast<int64_t>(num_sms > 0 ? num_sms : 132);
    const int64_t units = groups * row_ctas(plan) * nkb;
    const int64_t min_run = std::min<int64_t>(nkb, plan.nt > 2 ? 4 : 2);
    plan.chunk = std::max((units + slots - 1) / slots, min_run);
    plan.streamk_units = units;
    // A row block's nkb units meet at most (nkb - 1) / chunk + 2 runs (and at most nkb); at least 2 (workspace).
    plan.splits = std::max<int64_t>(2, std::min(nkb, (nkb - 1) / plan.chunk + 2));
    plan.ws_floats = groups * plan.splits * plan.tiles * 32 * plan.nt * 4;
    plan.counters = groups * plan.tiles;
    return plan;
}

namespace {

// The plan without stream-K (fp8_stream_plan's arguments).
Fp8StreamPlan base_plan(int64_t groups, int64_t rows, int64_t k, int64_t max_tokens, int num_sms, bool bounded) {
    DSA_CHECK(groups >= 1 && rows >= 1 && k >= kFp8StreamKBlock && k % kFp8StreamKBlock == 0)
        << "fp8 stream GEMM: groups " << groups << ", N " << rows << ", K " << k << " (K a multiple of 128)";
    DSA_CHECK(max_tokens >= 1 && max_tokens <= kFp8StreamMaxRows)
        << "fp8 stream GEMM: " << max_tokens << " token rows (1.." << kFp8StreamMaxRows << ")";
    Fp8StreamPlan plan;
    const Fp8StreamKernel variant = fp8_stream_variant();
    // kAuto: dense plans with 32..64 token rows and grouped plans with at most 16 take wgmma.
    const bool wide = groups == 1 && max_tokens >= kFp8StreamWgmmaMinRows;
    const bool grouped = groups > 1 && max_tokens <= kFp8StreamGroupedWgmmaMaxRows && fp8_stream_grouped_wgmma();
    plan.kernel = variant != Fp8StreamKernel::kAuto ? variant
                  : wide || grouped                  ? Fp8StreamKernel::kWgmma
                                                     : Fp8StreamKernel::kStaged;
    plan.tiles = (rows + kFp8StreamTileRows - 1) / kFp8StreamTileRows;
    plan.nt = max_tokens <= 8 ? 1 : max_tokens <= 16 ? 2 : max_tokens <= 32 ? 4 : 8;
    const int64_t nkb = k / kFp8StreamKBlock, sms = num_sms > 0 ? num_sms : 132;
    int64_t splits = 1;
    if (plan.kernel == Fp8StreamKernel::kRing) {
        const int64_t warps = groups * plan.tiles, target = sms * 16;  // ~16 warps per SM
        splits = (target + warps / 2) / warps;
    } else {
        splits = 2 * sms / (groups * row_ctas(plan));  // 2 CTAs of 8 warps per SM
    }
    splits = !bounded || splits < 1 ? 1 : splits > nkb ? nkb : splits;
    // Each split's fp32 partial (tokens x 16) must stay small next to its weight bytes (16 x 128 per block).
    const int64_t min_chunk = std::min<int64_t>(nkb, max_tokens > 16 ? 4 : 2);
    plan.chunk = std::max<int64_t>((nkb + splits - 1) / splits, splits > 1 ? min_chunk : 1);
    plan.splits = (nkb + plan.chunk - 1) / plan.chunk;
    if (plan.splits > 1) {
        plan.ws_floats = groups * plan.splits * plan.tiles * 32 * plan.nt * 4;
        plan.counters = groups * plan.tiles;
    }
    if (groups > 1 && bounded && plan.kernel != Fp8StreamKernel::kRing && fp8_stream_grouped_joint()) {
        // Joint grouped plan: one K chunk for the CTAs of all groups, the fewest 128-blocks per slot (2 CTAs per
        // SM) counting one more per CTA for its start and reduction; chunks of >= 4 blocks.
        const int64_t chunk = cheapest_chunk(nkb, std::min<int64_t>(nkb, std::max<int64_t>(min_chunk, 4)),
                                             groups * row_ctas(plan), 2 * sms, 1);
        set_chunk(plan, nkb, chunk);
        plan.ws_floats *= groups;
        plan.counters *= groups;
    }
    return plan;
}

}  // namespace

int fp8_stream_cluster_max() {
    int v = g_cluster.load(std::memory_order_relaxed);
    if (v == -2) {
        const char* e = std::getenv("DSA_FP8_STREAM_CLUSTER");
        const bool unset = e == nullptr || e[0] == '\0' || std::strcmp(e, "auto") == 0;
        const int n = unset ? kFp8StreamClusterAuto
                            : static_cast<int>(env_count("DSA_FP8_STREAM_CLUSTER", 0,
                                                         "CUDA: FP8 stream GEMM cluster split-K: auto (default), "
                                                         "N = clusters of up to N CTAs on every plan, 0 = off"));
        v = n >= 2 ? std::min(n, kFp8StreamMaxCluster) : n == kFp8StreamClusterAuto ? n : 0;
        g_cluster.store(v, std::memory_order_relaxed);
    }
    return v;
}

void set_fp8_stream_cluster_max(int max_cluster) {
    const int v = max_cluster >= 2 ? std::min(max_cluster, kFp8StreamMaxCluster)
                  : max_cluster == kFp8StreamClusterAuto ? max_cluster
                                                         : 0;
    g_cluster.store(v, std::memory_order_relaxed);
}

Fp8StreamPlan fp8_stream_cluster_plan(Fp8StreamPlan plan, int64_t k, int64_t rowblocks, int num_sms, int max_cluster) {
    DSA_CHECK(plan.kernel == Fp8StreamKernel::kStaged || plan.kernel == Fp8StreamKernel::kWgmma)
        << "fp8 stream GEMM: cluster plan for a kernel other than staged / wgmma";
    DSA_CHECK(k >= kFp8StreamKBlock && k % kFp8StreamKBlock == 0 && rowblocks >= 1)
        << "fp8 stream GEMM: cluster K " << k;
    const int64_t nkb = k / kFp8StreamKBlock, slots = 2 * static_cast<int64_t>(num_sms > 0 ? num_sms : 132);
    const int64_t target = std::min<int64_t>({slots / rowblocks, std::min(max_cluster, kFp8StreamMaxCluster), nkb});
    if (target < 2) return plan;
    const int64_t chunk = (nkb + target - 1) / target, cluster = (nkb + chunk - 1) / chunk;  // no empty CTA
    if (cluster < 2) return plan;
    plan.chunk = chunk;
    plan.splits = cluster;
    plan.cluster = static_cast<int>(cluster);
    plan.ws_floats = 0;
    plan.counters = 0;
    plan.streamk_units = 0;
    return plan;
}

namespace {

// A dense single weight's plan (base plan `plan`) with the cluster switch applied: DSA_FP8_STREAM_CLUSTER=N every
// such plan; auto (default) the weights of >= 7168 rows and K >= 2048 at 33..64 token rows, where the H200
// measured it faster than the global finish (M = 64: 7168x2048 12.5 vs 15.7 us, o_proj 41.7 vs 43.8; smaller
// weights, 8192x1536 and the joint q_a+kv_a+wk were slower).
Fp8StreamPlan dense_cluster(const Fp8StreamPlan& plan, int64_t rows, int64_t k, int64_t max_tokens, int num_sms) {
    if (plan.kernel == Fp8StreamKernel::kRing) return plan;
    const int mode = fp8_stream_cluster_max();
    if (mode >= 2) return fp8_stream_cluster_plan(plan, k, row_ctas(plan), num_sms, mode);
    const bool auto_rule = mode == kFp8StreamClusterAuto && max_tokens > 32 && rows >= 7168 && k >= 2048;
    return auto_rule ? fp8_stream_cluster_plan(plan, k, row_ctas(plan), num_sms, 8) : plan;
}

}  // namespace

Fp8StreamPlan fp8_stream_plan(int64_t groups, int64_t rows, int64_t k, int64_t max_tokens, int num_sms, bool bounded) {
    Fp8StreamPlan plan = base_plan(groups, rows, k, max_tokens, num_sms, bounded);
    if (groups != 1 || !bounded || plan.kernel == Fp8StreamKernel::kRing) return plan;
    if (fp8_stream_streamk()) return fp8_stream_streamk_plan(plan, 1, k, num_sms);  // opt-in, before the cluster
    return dense_cluster(plan, rows, k, max_tokens, num_sms);
}

bool fp8_stream_multi_joint() { return env_switch(g_multi_joint, "DSA_FP8_MULTI_PLAN", "separate", false); }

void set_fp8_stream_multi_joint(bool joint) { g_multi_joint.store(joint ? 1 : 0, std::memory_order_relaxed); }

void fp8_stream_multi_plan(Fp8StreamMulti& multi, int64_t k, int64_t max_tokens, int num_sms) {
    int64_t rowblocks = 0;  // 128-row CTAs per K split, over all problems
    for (int i = 0; i < multi.count; ++i) {
        Fp8StreamProblem& q = multi.prob[i];
        q.plan = base_plan(1, q.n, k, max_tokens, num_sms, true);  // a lone call's plan (never stream-K) ...
        rowblocks += row_ctas(q.plan);
    }
    if (multi.count < 1 || multi.prob[0].plan.kernel == Fp8StreamKernel::kRing) return;
    if (!fp8_stream_multi_joint()) {  // ... with its cluster rule (problems of unequal clusters launch one by one)
        for (int i = 0; i < multi.count; ++i) {
            Fp8StreamProblem& q = multi.prob[i];
            q.plan = dense_cluster(q.plan, q.n, k, max_tokens, num_sms);
        }
        return;
    }
    if (fp8_stream_variant() == Fp8StreamKernel::kAuto && max_tokens <= kFp8StreamMultiWgmmaMaxRows) {
        // The joint plan at <= 8 token rows takes wgmma (H200: q_a + kv_a + wk 10.78 -> 9.96 us at M = 1, 12.13 ->
        // 11.21 at M = 8); the lone plans (and so the separate multi plan) keep staged there.
        for (int i = 0; i < multi.count; ++i) multi.prob[i].plan.kernel = Fp8StreamKernel::kWgmma;
    }
    // One cluster size for all problems (whole clusters per problem): =N, or up to 8 on auto.
    const int cmax = fp8_stream_cluster_max() == kFp8StreamClusterAuto ? 8 : fp8_stream_cluster_max();
    if (cmax >= 2) {
        const Fp8StreamPlan c = fp8_stream_cluster_plan(multi.prob[0].plan, k, rowblocks, num_sms, cmax);
        if (c.cluster >= 2) {
            for (int i = 0; i < multi.count; ++i) {
                Fp8StreamPlan& q = multi.prob[i].plan;
                q.chunk = c.chunk, q.splits = c.splits, q.cluster = c.cluster, q.ws_floats = 0, q.counters = 0;
            }
            return;
        }
    }
    const int64_t nkb = k / kFp8StreamKBlock, slots = 2 * (num_sms > 0 ? num_sms : 132);
    const int64_t min_chunk = std::min<int64_t>(nkb, max_tokens > 16 ? 4 : 2);  // as fp8_stream_plan
    const int64_t best = cheapest_chunk(nkb, min_chunk, rowblocks, slots, 0);  // waves x blocks streamed per CTA
    for (int i = 0; i < multi.count; ++i) set_chunk(multi.prob[i].plan, nkb, best);
}

}  // namespace dsa::backend::cuda
