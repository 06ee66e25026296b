// FP8 lightning-indexer logits on Hopper wgmma (the default; DSA_INDEXER_LOGITS=f16 / e4m3 select the mma.sync
// kernels): per 64-key block, the keys are the A operand (M = 64 keys, e4m3, K-major from the swizzled cp.async
// ring of indexer_logits_common.cuh) and the query's N = 8/16/32/64 prepared heads are B (e4m3, K-major, staged
// once per CTA); m64nNk32 e4m3 x e4m3 -> f32. Precision: each of the 4 k-steps goes into its own zero-started
// accumulator (Hopper's FP8 MMA keeps ~13 mantissa bits of an accumulator fed back in), summed in f32 afterwards.
// The (key, head) accumulators are in-thread: ReLU, head weight and head sum in registers, two quad shuffles.
// H200: scores 5-9e-5 of the row maximum off the CPU's (the FP8 tensor-core sums of 32 products; the accuracy of
// the DeepGEMM kernel SGLang runs); the mma.sync kernels stay < 4e-7.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/indexer_common.cuh"
#include "backend/cuda/indexer_kernels.h"
#include "backend/cuda/indexer_logits_common.cuh"
#include "backend/cuda/mma_util.cuh"
#include "backend/cuda/pdl.cuh"
#include "backend/cuda/wgmma_util.cuh"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {


// Separate k-step accumulators (A = 4): 3 CTAs per SM (64 heads: 128 accumulator registers, 155 in all; the shared
// memory of 3 CTAs then allows a 7-stage ring, 6 blocks = 50 KB in flight per CTA, and the slot ring; 8 or 16 heads:
// 8 stages). Chained (A = 1, 67 registers at 64 heads): the same 3 x 7 stages, or with kWide 4 CTAs per SM of
// 5 stages (6 at 8 heads), which trades bytes in flight for warps that overlap one another's epilogues.
template <int N, int A, bool kWide = false>
struct WgConfig {
    static constexpr int kStages = kWide ? (N <= 8 ? 6 : 5) : (N >= 32 ? 7 : 8);
    static constexpr int kCtasPerSm = kWide ? 4 : 3;
    static constexpr int kQBytes = (N * kDim + 1023) / 1024 * 1024;  // B tile, 1024-byte aligned stages after it
    static constexpr int kSmem =
        kQBytes + kStages * (kBlockKeyBytes + kScaleBytes) + KeyPipe<kStages>::kSlotBytes + 1024;  // + alignment
    static_assert(kCtasPerSm * (kSmem + 1024) <= 228 * 1024, "CTAs per SM (1 KB reserved per CTA)");
    static_assert(!kWide || A == 1, "4 CTAs per SM only fit the registers of chained accumulators");
};

// CTA c of the grid [T x m] scores row t = c % T, key blocks c / T, c / T + m, ... up to the row's limit (the
// schedule of the mma.sync kernel). One warpgroup; a kStages-deep cp.async ring of 64-key blocks fed by KeyPipe.
// A: accumulators per block (4: one per k-step, the default; 1: the k-steps chained, DSA_INDEXER_LOGITS=chain).
template <int N, int A, bool kWide>
__global__ void __launch_bounds__(kLogitsThreads, WgConfig<N, A, kWide>::kCtasPerSm)
    indexer_logits_wgmma_kernel(IndexerLogitsParams p, int m) {
    using Cfg = WgConfig<N, A, kWide>;
    constexpr int kStages = Cfg::kStages;
    extern __shared__ uint8_t smem_raw[];
    uint8_t* qs = smem_raw + ((1024 - (smem_addr(smem_raw) & 1023)) & 1023);
    uint8_t* keys = qs + Cfg::kQBytes;
    uint8_t* scales = keys + kStages * kBlockKeyBytes;
    int32_t* slot_ring = reinterpret_cast<int32_t*>(scales + kStages * kScaleBytes);
    pdl_wait();  // q8, wt, key_slots and the limits come from earlier kernels / copies
    pdl_trigger();
    const int64_t t = blockIdx.x % p.num_tokens, first = blockIdx.x / p.num_tokens;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, tig = lane & 3;
    const QueryRow qr = query_row(p.query_request, p.query_limit, t, p.num_requests, p.max_len);
    const int64_t last = qr.limit / kBlockKeys;
    if (first > last) return;  // whole CTA
    const KeyPipe<kStages> pipe{p.key_slots + qr.request * p.max_len, slot_ring, first, qr.limit, m,
                                static_cast<int>((last - first) / m + 1), tid};
    auto issue = [&](int st, const int32_t(&slots)[kChunksPerThread]) {
        issue_block(p, keys + st * kBlockKeyBytes, scales + st * kScaleBytes, slots, tid);
    };
    issue_q<N>(p, t, qs, tid);  // joins the slots' group
    pipe.start(issue);
    float w[N / 8][2];
    load_head_weights<N>(p, t, tig, w);
    const uint32_t q_addr = smem_addr(qs), k_addr = smem_addr(keys);
    float* srow = p.scores + t * p.max_len;
    for (int i = 0; i < pipe.iters; ++i) {
        cp_async_wait<kStages - 2>();
        fence_async_smem();  // this thread's landed copies -> visible to wgmma (async proxy)
        __syncthreads();     // block i landed for every thread; the stage refilled below was consumed at i - 1
        pipe.advance(i, issue);
        const int st = i % kStages;
        float acc[A][N / 2];
        issue_block_mma<N, A>(acc, k_addr + st * kBlockKeyBytes, q_addr);
        wgmma_wait_all();
        fence_regs<A * N / 2>(&acc[0][0]);
        float ra, rb;
        head_sum<N, A>(acc, w, ra, rb);
        const float* sc = reinterpret_cast<const float*>(scales + st * kScaleBytes);
        store_key_scores(srow, pipe.block_of(i) * kBlockKeys + warp * 16, qr.limit, lane, ra, rb, sc[warp * 16 + g],
                         sc[warp * 16 + g + 8]);
    }
    cp_async_wait<0>();  // no copy may outlive the CTA
}

template <int N, int A, bool kWide>
void launch_wgmma(const IndexerLogitsParams& p, cudaStream_t stream) {
    constexpr int kSmem = WgConfig<N, A, kWide>::kSmem;
    static SmemLimit limit;
    limit.ensure(reinterpret_cast<const void*>(indexer_logits_wgmma_kernel<N, A, kWide>), kSmem);
    static const int64_t resident = [] {
        int per_sm = 0;
        DSA_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, indexer_logits_wgmma_kernel<N, A, kWide>,
                                                                     kLogitsThreads, kSmem));
        return static_cast<int64_t>(per_sm < 1 ? 1 : per_sm) * num_sms();
    }();
    const int64_t blocks_per_row = (p.max_len + kBlockKeys - 1) / kBlockKeys;
    int64_t m = resident / p.num_tokens;
    m = m < 1 ? 1 : (m > blocks_per_row ? blocks_per_row : m);
    host::launch_pdl(indexer_logits_wgmma_kernel<N, A, kWide>, dim3(static_cast<unsigned>(p.num_tokens * m)),
                     dim3(kLogitsThreads), kSmem, stream, p, static_cast<int>(m));
}

template <int A, bool kWide>
void launch_wgmma_heads(const IndexerLogitsParams& p, cudaStream_t stream) {
    switch (p.heads) {
        case 8: return launch_wgmma<8, A, kWide>(p, stream);
        case 16: return launch_wgmma<16, A, kWide>(p, stream);
        case 32: return launch_wgmma<32, A, kWide>(p, stream);
        case 64: return launch_wgmma<64, A, kWide>(p, stream);
        default: DSA_CHECK(false) << "indexer wgmma logits: " << p.heads << " heads (8, 16, 32 or 64)";
    }
}

}  // namespace

void launch_indexer_logits_wgmma(const IndexerLogitsParams& p, cudaStream_t stream, WgmmaLogits variant) {
    switch (variant) {
        case WgmmaLogits::kSeparate: return launch_wgmma_heads<kKSteps, false>(p, stream);
        case WgmmaLogits::kChained: return launch_wgmma_heads<1, false>(p, stream);
        case WgmmaLogits::kChainedWide: return launch_wgmma_heads<1, true>(p, stream);
    }
}

}  // namespace dsa::backend::cuda
