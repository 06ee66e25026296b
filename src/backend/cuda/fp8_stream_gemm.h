// The FP8 weight-streaming decode GEMM (fp8_stream_gemm.cu): y = x · W^T for at most 64 token rows per pass on
// tensor cores (mma.sync m16n8k32 e4m3, weights as the 16-row A operand, tokens as the 8-column B operand), W [N, K]
// e4m3 with 128x128 f32 block scales, x act_quant-ed to e4m3 with per-token 1x128 f32 scales; split-K with a
// deterministic last-warp reduction. Dense (one weight, a dense MLP's gate + up, or several weights over one x),
// or grouped over routed experts (MoE decode, groups on the device), plus the SwiGLU + act_quant kernel between the
// MLP / MoE GEMMs. Launched with programmatic dependent launch (pdl.cuh): dense launches prefetch weights first.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/moe_kernels.h"

namespace dsa::backend::cuda {

constexpr int64_t kFp8StreamMaxRows = 64;   // token rows per (group of a) launch
constexpr int64_t kFp8StreamTileRows = 16;  // weight rows per warp
constexpr int64_t kFp8StreamKBlock = 128;    // K per weight-scale block (one ring stage)
constexpr int64_t kFp8StreamCtaWarps = 8;    // warps per CTA of the staged and wgmma kernels (128 weight rows)

// The kernel a plan is made for. kStaged (DSA_FP8_STREAM_KERNEL=staged): a CTA of 8 warps streams 128 weight rows
// through a cp.async shared-memory ring that also holds the activation block, shared by all warps. kRing
// (DSA_FP8_STREAM_KERNEL=ring, the first version): one warp per 16 rows with a register ring, activations from
// global / L1. kWgmma (DSA_FP8_STREAM_KERNEL=wgmma): the staged CTA and ring, but the 128-byte wgmma swizzle and
// each warpgroup multiplying its 64 weight rows by all token rows with wgmma m64nNk32 e4m3 (N = 8 nt).
// kAuto (default; DSA_FP8_STREAM_KERNEL=auto): kWgmma for dense plans with at least kFp8StreamWgmmaMinRows (32)
// token rows, for the joint multi plan with at most kFp8StreamMultiWgmmaMaxRows (8) and for grouped plans with at most
// kFp8StreamGroupedWgmmaMaxRows (16, below), kStaged for every other plan (a plan's kernel is never kAuto). From the H200 benches: wgmma took 0.71-0.95x of staged's time at M = 32 on
// every V3.2 shape (--decode-linears); at M = 48 / 64 (--m64) 0.74-0.85x on every shape under 4096 rows (it was
// chosen above since session 8), and q_a + kv_a + wk (linear_multi) 0.83x at M = 64, 0.88x at 48, 0.92x at 1 and 8.
enum class Fp8StreamKernel { kRing = 1, kStaged = 2, kWgmma = 3, kAuto = 4 };
constexpr int64_t kFp8StreamWgmmaMinRows = 32;
constexpr int64_t kFp8StreamMultiWgmmaMaxRows = 8;  // joint multi plans
// kAuto also runs grouped (MoE) plans made for at most kFp8StreamGroupedWgmmaMaxRows token rows per group on wgmma:
// the decode launches of 1 and 2 tokens (8 / 16 routed pairs; 9 with the shared expert as a group). H200,
// moe_bench --quick, same binary, graphs: routed experts B = 1 108.2 -> 101.7 us, B = 2 192.5 -> 185.8; the MoE
// layer 126.4 -> 119.6 / 217.2 -> 212.1. DSA_FP8_GROUPED_WGMMA=0 (read once, or the setter) keeps them on staged.
constexpr int64_t kFp8StreamGroupedWgmmaMaxRows = 16;
bool fp8_stream_grouped_wgmma();
void set_fp8_stream_grouped_wgmma(bool on);
Fp8StreamKernel fp8_stream_variant();           // from DSA_FP8_STREAM_KERNEL on first use, or the last set
void set_fp8_stream_variant(Fp8StreamKernel k); // later plans (tests and benches compare the two)

// How a launch is split over K: `splits` warps per 16-row tile (staged: CTAs per 128-row block), each over `chunk`
// 128-blocks of K. The workspace holds ws_floats f32 partials and `counters` i32 tile counters (zero before the
// first launch; every launch leaves them zero).
// Stream-K plans (streamk_units > 0): CTA c takes the units (group, 128-row block, K block) [c chunk, (c + 1) chunk)
// of streamk_units, row-block-major; splits is then the most CTAs that share one row block.
struct Fp8StreamPlan {
    int64_t tiles = 0, splits = 1, chunk = 1;
    int nt = 1;  // n-tiles of 8 tokens (1, 2, 4 or 8)
    Fp8StreamKernel kernel = Fp8StreamKernel::kStaged;
    int64_t ws_floats = 0, counters = 0;
    int64_t streamk_units = 0;
    // > 1: a cluster plan (below): the `cluster` = splits CTAs of a 128-row block form one thread-block cluster.
    int cluster = 0;
    // The global split-K finish: 0 the first (per-lane partials, fence.sc, atomic), 1 the coalesced one (default,
    // below); set by the launchers from fp8_stream_finish_v2().
    int finish = 0;
};
// groups: 1 (dense) or max_groups; rows: the output features N (gate_up: 2F); max_tokens: the token rows per
// group the tiles are sized for. bounded = false: a group may hold more (then K is not split and the kernel
// streams a tile once per max_tokens rows).
Fp8StreamPlan fp8_stream_plan(int64_t groups, int64_t rows, int64_t k, int64_t max_tokens, int num_sms,
                              bool bounded = true);
// Grouped plans (MoE experts, groups > 1, bounded): the fixed grid by default (split only to reach 2 CTAs per SM).
// Joint (DSA_MOE_PLAN=joint or set_fp8_stream_grouped_joint(true); slower on the H200 at T = 1-2: 139 vs 136 us
// per B = 1 layer, its many short CTAs): one K chunk for the CTAs of all groups, the one with the fewest 128-blocks
// streamed per slot of 2 CTAs per SM (whole waves; each CTA counted one block more for its start and reduction,
// chunks of >= 4 blocks): 9 experts' gate_up at one token (V3.2: 288 row blocks of 56 blocks on 132 SMs) takes
// 2016 CTAs of 8 blocks instead of 288 of 56. Both run the same kernel; outputs differ in split-K order only.
bool fp8_stream_grouped_joint();
void set_fp8_stream_grouped_joint(bool joint);
// Stream-K (opt-in: DSA_FP8_STREAMK=1 (both), =dense, =moe, or the setters; never measured yet): dense plans (bounded,
// staged / wgmma; not the multi launch) and the MoE launches at one token (moe_ops: the shared expert then joins
// as a group) give every one of 2 CTAs per SM an equal run of (group, row block, K block) units (>= 4 K blocks;
// nt 1-2: >= 2), cutting row blocks where the runs end: no partial wave (V3.2 at one token: 8 experts' down is
// 448 CTAs of 16 blocks = 1.7 waves on the fixed grid, 256 CTAs of 28 here; 9 experts' gate_up 261 CTAs of 62
// instead of 288 of 56). Outputs differ from the other plans in split-K summation order only.
constexpr int kFp8StreamKDense = 1, kFp8StreamKMoe = 2;  // scope bits
int fp8_stream_streamk_scope();
void set_fp8_stream_streamk_scope(int scope);
bool fp8_stream_streamk();      // dense plans
bool fp8_stream_streamk_moe();  // MoE launches at one token
void set_fp8_stream_streamk(bool on);  // both
// The stream-K version of `plan` (bounded, staged or wgmma; made for `groups` groups and this K).
Fp8StreamPlan fp8_stream_streamk_plan(Fp8StreamPlan plan, int64_t groups, int64_t k, int num_sms);

// Cluster split-K (DSA_FP8_STREAM_CLUSTER): dense staged / wgmma plans (and the joint multi plan with =N) that split
// K put the K splits of each 128-row block into one thread-block cluster of consecutive CTAs and sum their
// partials through distributed shared memory in rank order (fp8_stream_cluster.cuh): no workspace, no counters, no
// global-memory fence or atomic. The split count is the cluster size: about 2 CTAs per SM over all row blocks, at
// most N (> 8: a non-portable cluster size), each CTA at least one K block. Unset / auto (default): dense single
// weights of >= 7168 rows and K >= 2048 at 33..64 token rows, and the joint multi plan, clusters of up to 8 (H200,
// M = 64: 7168x2048 12.5 vs 15.7 us with the global finish, o_proj 41.7 vs 43.8; it lost on smaller single
// weights; q_a + kv_a + wk on the wgmma kernel: M = 1 9.85 -> 9.56 us, 8 11.34 -> 9.69, 48 18.45 -> 14.73, 64
// 18.91 -> 15.19); =N (2..16): every dense plan that splits K, and the joint multi plan; =0 off. A separate multi
// plan (not joint) takes each weight's lone plan. Outputs differ from the other plans in split-K summation order only.
constexpr int kFp8StreamMaxCluster = 16;
constexpr int kFp8StreamClusterAuto = -1;
int fp8_stream_cluster_max();
void set_fp8_stream_cluster_max(int max_cluster);  // kFp8StreamClusterAuto, 0 (off) or 2..16
// `plan` (dense, staged or wgmma; `rowblocks` 128-row blocks over all of a launch's problems, K = k) as a cluster
// plan, or unchanged where fewer than 2 CTAs per row block would do.
Fp8StreamPlan fp8_stream_cluster_plan(Fp8StreamPlan plan, int64_t k, int64_t rowblocks, int num_sms, int max_cluster);

// The global split-K finish (every kernel and launch that splits K through the workspace): default (v2) partials
// stored lane-contiguous (a warp's store covers 512 contiguous bytes), the tile counter bumped by one acq_rel atomic
// of lane 0 after a warp barrier; DSA_FP8_STREAM_FINISH=v1 the first finish (every lane's fence.sc). The same sums
// in the same order: the same bits. H200, M = 64: 1536x7168 39.3 -> 22.7 us, 7168x2048 32.1 -> 15.7, o_proj 55.8
// -> 43.8, q_a+kv_a+wk 47.3 -> 23.3; M = 1 equal or slightly faster.
bool fp8_stream_finish_v2();
void set_fp8_stream_finish_v2(bool on);

struct Fp8StreamParams {
    // Dense: w, w_scale ([ceil(N/128), scale_ld] f32), tokens 0..m-1. Grouped (experts != nullptr): group a of
    // groups takes expert[a]'s weights and its pairs rows[start..start+count); gate_up: output features [0, F) from
    // gate, [F, 2F) from up (n = 2F, F % 16 == 0), else down (n = D).
    const uint8_t* w = nullptr;
    const float* w_scale = nullptr;
    // Dense gate_up (a dense MLP's gate and up in one launch): rows [0, n/2) from w, [n/2, n) from w2.
    const uint8_t* w2 = nullptr;
    const float* w2_scale = nullptr;
    const MoeExpertPtrs* experts = nullptr;
    MoeGroups groups;
    bool gate_up = false;
    int64_t m = 0;  // dense token rows
    // x [*, k] e4m3 and its scales x_scale[kb * x_scale_ld + row]; grouped: the x row of pair p is p / x_row_div.
    const uint8_t* x = nullptr;
    const float* x_scale = nullptr;
    int64_t x_scale_ld = 0, x_row_div = 1;
    uint16_t* out = nullptr;  // [token rows (dense) or pairs (grouped), n] bf16
    int64_t n = 0, k = 0, scale_ld = 0;
    float* ws = nullptr;          // plan.ws_floats
    int32_t* counters = nullptr;  // plan.counters, zero
};
void launch_fp8_stream_gemm(const Fp8StreamParams& p, const Fp8StreamPlan& plan, cudaStream_t stream);

// Several dense weights over the same x in one launch (linear_multi: q_a, kv_a and the indexer's wk). Problem i
// takes CTAs [cta0_i, cta0_i + its grid) and runs exactly what a lone launch with its plan runs (the same split-K
// and reduction order: bit-identical outputs) with its own workspace and counter ranges. All plans share nt and
// the kernel variant; the ring variant (or plans of different kernels or cluster sizes) launches the problems one
// after another.
constexpr int kFp8StreamMaxProblems = 4;
struct Fp8StreamProblem {
    const uint8_t* w = nullptr;
    const float* w_scale = nullptr;
    uint16_t* out = nullptr;
    int64_t n = 0, scale_ld = 0;
    Fp8StreamPlan plan;
    float* ws = nullptr;
    int32_t* counters = nullptr;
    int64_t cta0 = 0;  // filled by the launcher
};
struct Fp8StreamMulti {
    Fp8StreamProblem prob[kFp8StreamMaxProblems];
    int count = 0;
};
// Plans for the problems of one multi launch (n of each set; all planned for max_tokens rows). Joint (default): one
// K chunk for all, chosen so that the CTAs fill whole waves of 2 per SM (the fewest waves x blocks per CTA, ties to
// the larger chunk): q_a + kv_a + wk at M = 1 take 252 CTAs of 4 blocks instead of 396 (1.5 waves). Outputs then
// differ from separate linear() calls in split-K summation order only (and at <= 8 token rows in the kernel: kAuto
// runs the joint plan on wgmma there). Separate (set_fp8_stream_multi_joint(false) or DSA_FP8_MULTI_PLAN=separate;
// always for the ring variant): each problem's lone plan, bit-identical to separate calls.
void fp8_stream_multi_plan(Fp8StreamMulti& multi, int64_t k, int64_t max_tokens, int num_sms);
bool fp8_stream_multi_joint();
void set_fp8_stream_multi_joint(bool joint);
// x, x_scale, x_scale_ld, m and k come from `shared` (dense: no experts, no gate_up).
void launch_fp8_stream_multi(const Fp8StreamParams& shared, Fp8StreamMulti multi, cudaStream_t stream);

// h = bf16(silu(bf16 g) * bf16 u) from gu [rows, 2F] (g in [0, F), u in [F, 2F)), then DeepSeek act_quant of h:
// q [rows, F] e4m3 and scales[kb * rows + row] (F % 128 == 0), the arithmetic of launch_act_quant / moe_prep.
struct SwigluQuantParams {
    const uint16_t* gu = nullptr;
    uint8_t* q = nullptr;
    float* scales = nullptr;
    int64_t rows = 0, f = 0;
    bool ue8m0 = false;
};
void launch_swiglu_quant(const SwigluQuantParams& p, cudaStream_t stream);

}  // namespace dsa::backend::cuda
