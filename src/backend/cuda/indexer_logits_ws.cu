// FP8 lightning-indexer logits, warp-specialized (opt-in: DSA_INDEXER_LOGITS=ws): one CTA per SM of a producer
// warp and two consumer warpgroups. The producer streams 64-key blocks (8 KB of keys + 256 B of scales) into a
// 16-stage ring with cp.async in the 128-byte-swizzled layout (any key -> slot map, zero-fill past the limit,
// L2 evict_first on the keys),
// each stage completing on its "full" mbarrier (cp.async.mbarrier.arrive.noinc); the consumers take the stages
// alternately, run the same m64nNk32 wgmma and in-register head sum as indexer_logits_wgmma.cu, and release the
// stage on its "empty" mbarrier as soon as the MMA has read it, so one warpgroup's epilogue overlaps the other's
// MMA and ~135 KB of keys stay in flight per SM. Same contract and numerics as launch_indexer_logits_wgmma.
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

constexpr int kWsStages = 16;
constexpr int kWsConsumers = 2;                                      // warpgroups
constexpr int kWsThreads = kWsConsumers * kLogitsThreads + 32;       // + the producer warp
constexpr int kWsProducerKeys = kBlockKeys / 32;                     // keys per producer lane per block (2)
constexpr int kWsSlotsAhead = 8;                                     // blocks whose slots the producer holds

template <int N>
struct WsLayout {
    static constexpr int kQBytes = (N * kDim + 1023) / 1024 * 1024;
    static constexpr int kKeys = kQBytes;                               // stage s keys at kKeys + s * 8192
    static constexpr int kScales = kKeys + kWsStages * kBlockKeyBytes;  // stage s scales at + s * 256
    static constexpr int kBars = kScales + kWsStages * kScaleBytes;     // full[s], empty[s] (8 bytes each)
    static constexpr int kSmem = kBars + 2 * kWsStages * 8 + 1024;      // + alignment slack
};

// cp.async of 16 bytes (zero-filled when !valid) with an L2 eviction-policy hint (keys are read once: evict_first
// keeps the score rows the top-k reads next in L2).
__device__ __forceinline__ void cp_async16_hint(void* dst, const void* src, bool valid, uint64_t policy) {
    asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2, %3;\n" ::"r"(smem_addr(dst)), "l"(src),
                 "r"(valid ? 16 : 0), "l"(policy)
                 : "memory");
}

__device__ __forceinline__ uint64_t evict_first_policy() {
    uint64_t policy;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(policy));
    return policy;
}

__device__ __forceinline__ void cp_async_mbar_arrive_noinc(uint32_t bar) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}

// The producer lane's keys (lane + 32 j) of block b: slots, kInvisible past the limit.
__device__ __forceinline__ void producer_slots(const int32_t* slot_row, int64_t b, int64_t limit, int lane,
                                               int32_t (&slots)[kWsProducerKeys]) {
#pragma unroll
    for (int j = 0; j < kWsProducerKeys; ++j) {
        const int64_t pos = b * kBlockKeys + lane + 32 * j;
        slots[j] = pos <= limit ? __ldg(slot_row + pos) : kInvisible;
    }
}

// Copies one block into a stage: keys 4 at a time (lane = 8 x key + chunk: each instruction reads 4 whole
// 128-byte rows), the slots taken from the lanes holding them; the scales of the lane's own keys.
__device__ __forceinline__ void producer_copy(const IndexerLogitsParams& p, uint8_t* keys, uint8_t* scales,
                                              const int32_t (&slots)[kWsProducerKeys], int lane, uint64_t policy) {
#pragma unroll
    for (int j = 0; j < kWsProducerKeys; ++j) {
        const int32_t slot = slots[j];
        if (slot != kInvisible && (slot < 0 || slot >= p.num_slots)) __trap();
    }
    const int c = lane & 7;
#pragma unroll
    for (int jj = 0; jj < kBlockKeys / 4; ++jj) {
        const int r = (lane >> 3) + 4 * jj;  // r / 32 == jj / 8 for every lane
        const int32_t slot = __shfl_sync(kFull, slots[jj / 8], r & 31);
        const bool valid = slot != kInvisible;
        const uint8_t* src = p.pages + (valid ? static_cast<int64_t>(slot / kPageTokens) * kFp8PageBytes +
                                                    (slot % kPageTokens) * kDim + c * 16
                                              : 0);
        cp_async16_hint(keys + swizzled(r, c), src, valid, policy);
    }
#pragma unroll
    for (int j = 0; j < kWsProducerKeys; ++j) {
        const int32_t slot = slots[j];
        const bool valid = slot != kInvisible;
        const uint8_t* src = p.pages + (valid ? static_cast<int64_t>(slot / kPageTokens) * kFp8PageBytes +
                                                    kFp8ScaleOffset + (slot % kPageTokens) * 4
                                              : 0);
        cp_async4(scales + (lane + 32 * j) * 4, src, valid);
    }
}

// CTA c of the grid [T x m] scores row t = c % T, key blocks c / T, c / T + m, ... (local iteration i: block
// c / T + i m, stage i % kWsStages, consumer warpgroup i % 2).
template <int N>
__global__ void __launch_bounds__(kWsThreads, 1) indexer_logits_ws_kernel(IndexerLogitsParams p, int m) {
    using L = WsLayout<N>;
    extern __shared__ uint8_t smem_raw[];
    uint8_t* base = smem_raw + ((1024 - (smem_addr(smem_raw) & 1023)) & 1023);
    const uint32_t bars = smem_addr(base + L::kBars);
    auto full = [&](int s) { return bars + 8u * s; };
    auto empty = [&](int s) { return bars + 8u * (kWsStages + s); };
    pdl_wait();  // q8, wt, key_slots and the limits come from earlier kernels / copies
    pdl_trigger();
    const int64_t t = blockIdx.x % p.num_tokens, first = blockIdx.x / p.num_tokens;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const QueryRow qr = query_row(p.query_request, p.query_limit, t, p.num_requests, p.max_len);
    const int64_t last = qr.limit / kBlockKeys;
    if (first > last) return;  // whole CTA
    const int iters = static_cast<int>((last - first) / m + 1);
    const int32_t* slot_row = p.key_slots + qr.request * p.max_len;
    auto block_of = [&](int i) { return first + static_cast<int64_t>(i) * m; };

    if (tid < kLogitsThreads) issue_q<N>(p, t, base, tid);
    cp_async_commit();
    if (tid == 0) {
        for (int s = 0; s < kWsStages; ++s) {
            mbar_init(full(s), 32);  // one no-increment cp.async arrival per producer lane
            mbar_init(empty(s), 4);  // one arrival per warp of the consuming warpgroup
        }
        mbar_fence_init();
    }
    cp_async_wait<0>();
    fence_async_smem();
    __syncthreads();

    if (warp == kWsConsumers * 4) {  // producer warp
        // The slots of the next kWsSlotsAhead blocks stay in flight in a register ring (a block takes ~0.2 us at
        // full bandwidth, a slot load from HBM several times that).
        const uint64_t policy = evict_first_policy();
        int32_t ring[kWsSlotsAhead][kWsProducerKeys];
#pragma unroll
        for (int d = 0; d < kWsSlotsAhead; ++d) {
            if (d < iters) producer_slots(slot_row, block_of(d), qr.limit, lane, ring[d]);
        }
        for (int i0 = 0; i0 < iters; i0 += kWsSlotsAhead) {
#pragma unroll
            for (int d = 0; d < kWsSlotsAhead; ++d) {
                const int i = i0 + d;
                if (i >= iters) break;
                const int s = i % kWsStages;
                if (i >= kWsStages) mbar_wait(empty(s), ((i / kWsStages) - 1) & 1);
                producer_copy(p, base + L::kKeys + s * kBlockKeyBytes, base + L::kScales + s * kScaleBytes, ring[d],
                              lane, policy);
                cp_async_mbar_arrive_noinc(full(s));
                if (i + kWsSlotsAhead < iters) {
                    producer_slots(slot_row, block_of(i + kWsSlotsAhead), qr.limit, lane, ring[d]);
                }
            }
        }
        cp_async_wait<0>();  // no copy may outlive the CTA
        return;
    }

    const int wg = warp >> 2, wwarp = warp & 3, g = lane >> 2, tig = lane & 3;
    float w[N / 8][2];
    load_head_weights<N>(p, t, tig, w);
    const uint32_t q_addr = smem_addr(base), k_addr = smem_addr(base + L::kKeys);
    float* srow = p.scores + t * p.max_len;
    for (int i = wg; i < iters; i += kWsConsumers) {
        const int s = i % kWsStages;
        mbar_wait(full(s), (i / kWsStages) & 1);
        fence_async_smem();  // the producer's cp.async bytes (generic proxy) -> this warpgroup's wgmma reads
        float acc[kKSteps][N / 2];
        issue_block_mma<N>(acc, k_addr + s * kBlockKeyBytes, q_addr);
        const float* sc = reinterpret_cast<const float*>(base + L::kScales + s * kScaleBytes);
        const float sa = sc[wwarp * 16 + g], sb = sc[wwarp * 16 + g + 8];
        wgmma_wait_all();
        fence_regs<kKSteps * N / 2>(&acc[0][0]);
        __syncwarp();
        if (lane == 0) mbar_arrive(empty(s));  // this warp is done with the stage (MMA and scales read)
        float ra, rb;
        head_sum<N>(acc, w, ra, rb);
        store_key_scores(srow, block_of(i) * kBlockKeys + wwarp * 16, qr.limit, lane, ra, rb, sa, sb);
    }
}

template <int N>
void launch_ws(const IndexerLogitsParams& p, cudaStream_t stream) {
    constexpr int kSmem = WsLayout<N>::kSmem;
    static SmemLimit limit;
    limit.ensure(reinterpret_cast<const void*>(indexer_logits_ws_kernel<N>), kSmem);
    const int64_t blocks_per_row = (p.max_len + kBlockKeys - 1) / kBlockKeys;
    int64_t m = num_sms() / p.num_tokens;  // one CTA per SM
    m = m < 1 ? 1 : (m > blocks_per_row ? blocks_per_row : m);
    host::launch_pdl(indexer_logits_ws_kernel<N>, dim3(static_cast<unsigned>(p.num_tokens * m)), dim3(kWsThreads),
                     kSmem, stream, p, static_cast<int>(m));
}

}  // namespace

void launch_indexer_logits_ws(const IndexerLogitsParams& p, cudaStream_t stream) {
    switch (p.heads) {
        case 8: return launch_ws<8>(p, stream);
        case 16: return launch_ws<16>(p, stream);
        case 32: return launch_ws<32>(p, stream);
        case 64: return launch_ws<64>(p, stream);
        default: DSA_CHECK(false) << "indexer ws logits: " << p.heads << " heads (8, 16, 32 or 64)";
    }
}

}  // namespace dsa::backend::cuda
