// FP8 lightning-indexer logits, chained wgmma with key blocks loaded by the tensor memory accelerator (the default,
// as tmaef; DSA_INDEXER_LOGITS=tma / tma3 / tmaef): the kernel of indexer_logits_wgmma.cu (4 CTAs per SM, 4 k-steps
// chained) except that a 64-key block whose visible slots are one page-aligned run (one page of the key store: how
// the page allocator lays out a request) arrives as ONE 3-D bulk tensor copy of its 64 x 128 key bytes (128-byte
// swizzle, the layout of the cp.async gather) plus a 256-byte bulk copy of its scales, completing on the stage's
// mbarrier, instead of 4.5 cp.async per thread. Other blocks fall back to the gather. The tensor map over the key
// store is encoded on the host (driver entry point through the runtime) and cached by (pointer, pages).
#include <cuda.h>

#include <map>
#include <mutex>
#include <utility>

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

// kCtas 4 (the default and DSA_INDEXER_LOGITS=tma / tmaef): chain4's 5-stage ring (6 at 8 heads); 3 (=tma3): 7
// stages, more bytes in flight per CTA, fewer warps per SM.
template <int N, int kCtas>
struct TmaConfig {
    static constexpr int kStages = kCtas == 4 ? (N <= 8 ? 6 : 5) : 7;
    static constexpr int kCtasPerSm = kCtas;
    static constexpr int kQBytes = (N * kDim + 1023) / 1024 * 1024;
    static constexpr int kSmem = kQBytes + kStages * (kBlockKeyBytes + kScaleBytes) + KeyPipe<kStages>::kSlotBytes +
                                 kStages * 8 + 1024;  // + the stages' mbarriers + alignment
    static_assert(kCtasPerSm * (kSmem + 1024) <= 228 * 1024, "CTAs per SM (1 KB reserved per CTA)");
};

// 3-D tensor copy (box 128 x 64 x 1 bytes) of key page `page` into shared memory, completing on `bar`, with the L2
// policy `policy` (createpolicy).
__device__ __forceinline__ void tma_key_page(uint32_t dst, const CUtensorMap* map, int32_t page, uint32_t bar,
                                             uint64_t policy) {
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1, {%2, "
        "%3, %4}], [%5], %6;\n" ::"r"(dst),
        "l"(reinterpret_cast<uint64_t>(map)), "r"(0), "r"(0), "r"(page), "r"(bar), "l"(policy)
        : "memory");
}

// The L2 policy of the key copies: evict-first (keys are read once per step; the logits rows the top-k reads next
// then stay in L2) or evict-normal (the default policy).
__device__ __forceinline__ uint64_t key_policy(bool evict_first) {
    uint64_t pol;
    if (evict_first) {
        asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(pol));
    } else {
        asm volatile("createpolicy.fractional.L2::evict_normal.b64 %0, 1.0;\n" : "=l"(pol));
    }
    return pol;
}

// Whether block i's visible slots are one page-aligned run of a page of the store (every warp computes the same
// answer from the slot ring: lanes check keys lane and lane + 32).
template <typename Pipe>
__device__ __forceinline__ bool block_is_page(const Pipe& pipe, int i, int64_t num_slots, int lane) {
    const int32_t* e = pipe.entry(i);
    const int64_t pos0 = pipe.block_of(i) * kBlockKeys;
    const int32_t base = e[0];
    bool ok = base >= 0 && (base & (kPageTokens - 1)) == 0 && base < num_slots;
    if (pos0 + lane <= pipe.limit) ok = ok && e[lane] == base + lane;
    if (pos0 + lane + 32 <= pipe.limit) ok = ok && e[lane + 32] == base + lane + 32;
    return __all_sync(kFull, ok);
}

// Issues block i into stage buffers (keys_st, scales_st): one tensor copy + one bulk copy by thread 0 when the
// block is a page, else the cp.async gather of every thread. Thread 0 arrives on the stage's barrier once either way
// (with the page's bytes as its transaction count), so the consumer waits on the barrier and the cp.async group.
template <typename Pipe>
__device__ __forceinline__ void issue_block_tma(const IndexerLogitsParams& p, const CUtensorMap* map,
                                                const Pipe& pipe, int i, uint8_t* keys_st, uint8_t* scales_st,
                                                uint32_t bar, uint64_t policy, int tid) {
    if (block_is_page(pipe, i, p.num_slots, tid & 31)) {
        if (tid == 0) {
            const int32_t page = pipe.entry(i)[0] / kPageTokens;
            mbar_arrive_expect_tx(bar, kBlockKeyBytes + kScaleBytes);
            tma_key_page(smem_addr(keys_st), map, page, bar, policy);
            bulk_g2s_hint(smem_addr(scales_st),
                          p.pages + static_cast<int64_t>(page) * kFp8PageBytes + kFp8ScaleOffset, kScaleBytes, bar,
                          policy);
        }
        return;
    }
    int32_t slots[kChunksPerThread];
    pipe.slots_of(i, slots);
    issue_block(p, keys_st, scales_st, slots, tid);
    if (tid == 0) mbar_arrive(bar);
}

// The 4 chained k-steps of one block from precomputed descriptors (a k-step adds 32 bytes = 2 descriptor units).
template <int N>
__device__ __forceinline__ void issue_block_mma_desc(float (&acc)[N / 2], uint64_t k_desc, uint64_t q_desc) {
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < kKSteps; ++ks) wgmma_e4m3<N>(acc, k_desc + 2 * ks, q_desc + 2 * ks, ks > 0 ? 1 : 0);
    wgmma_commit();
}

// Lane (g, tig): sum over the heads of wt_h ReLU(acc) of key g (tig even) or key g + 8 (tig odd) of the warp's 16
// rows, over the whole quad: each level of the quad sum sends the partial of the key the lane does not keep (2
// shuffles instead of head_sum's 4); two FMA chains per key instead of one.
template <int N>
__device__ __forceinline__ float head_sum_quad(const float (&acc)[N / 2], const float (&w)[N / 8][2], int tig) {
    float ra[2] = {0.0f, 0.0f}, rb[2] = {0.0f, 0.0f};
#pragma unroll
    for (int i = 0; i < N / 8; ++i) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            ra[e] = fmaf(fmaxf(acc[4 * i + e], 0.0f), w[i][e], ra[e]);
            rb[e] = fmaf(fmaxf(acc[4 * i + 2 + e], 0.0f), w[i][e], rb[e]);
        }
    }
    const bool odd = (tig & 1) != 0;
    const float a = ra[0] + ra[1], b = rb[0] + rb[1];
    float keep = odd ? b : a;
    keep += __shfl_xor_sync(kFull, odd ? a : b, 1);
    keep += __shfl_xor_sync(kFull, keep, 2);
    return keep;
}

// Grid and schedule of indexer_logits_wgmma_kernel (CTA c: row c % T, blocks c / T + m j).
template <int N, int kCtas>
__global__ void __launch_bounds__(kLogitsThreads, kCtas)
    indexer_logits_tma_kernel(IndexerLogitsParams p, int m, bool evict_first,
                              const __grid_constant__ CUtensorMap key_map) {
    using Cfg = TmaConfig<N, kCtas>;
    constexpr int kStages = Cfg::kStages;
    using Pipe = KeyPipe<kStages>;
    extern __shared__ uint8_t smem_raw[];
    uint8_t* qs = smem_raw + ((1024 - (smem_addr(smem_raw) & 1023)) & 1023);
    uint8_t* keys = qs + Cfg::kQBytes;
    uint8_t* scales = keys + kStages * kBlockKeyBytes;
    int32_t* slot_ring = reinterpret_cast<int32_t*>(scales + kStages * kScaleBytes);
    const uint32_t full = smem_addr(slot_ring) + Pipe::kSlotBytes;  // kStages mbarriers, 8 bytes each
    pdl_wait();
    pdl_trigger();
    const int64_t t = blockIdx.x % p.num_tokens, first = blockIdx.x / p.num_tokens;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, tig = lane & 3;
    const QueryRow qr = query_row(p.query_request, p.query_limit, t, p.num_requests, p.max_len);
    const int64_t last = qr.limit / kBlockKeys;
    if (first > last) return;
    if (tid == 0) {
        for (int s = 0; s < kStages; ++s) mbar_init(full + 8 * s, 1);
        mbar_fence_init();  // the barrier in pipe.start_at orders it before every use
    }
    const Pipe pipe{p.key_slots + qr.request * p.max_len, slot_ring, first, qr.limit, m,
                    static_cast<int>((last - first) / m + 1), tid};
    const uint64_t policy = key_policy(evict_first);
    auto issue_at = [&](int st, int i) {
        issue_block_tma(p, &key_map, pipe, i, keys + st * kBlockKeyBytes, scales + st * kScaleBytes, full + 8 * st,
                        policy, tid);
    };
    issue_q<N>(p, t, qs, tid);  // joins the slots' group
    pipe.start_at(issue_at);
    float w[N / 8][2];
    load_head_weights<N>(p, t, tig, w);
    const uint64_t q_desc = sw128_kmajor_desc(smem_addr(qs)), k_desc = sw128_kmajor_desc(smem_addr(keys));
    const int key = warp * 16 + g + 8 * (tig & 1);  // the key this lane's head sum ends on (stored by tig < 2)
    float* srow = p.scores + t * p.max_len + key;
    const float* sc = reinterpret_cast<const float*>(scales) + key;
    int st = 0;
    uint32_t phase = 0;
    for (int i = 0; i < pipe.iters; ++i) {
        cp_async_wait<kStages - 2>();
        mbar_wait(full + 8 * st, phase);
        fence_async_smem();
        __syncthreads();  // block i landed for every thread; the stage refilled below was consumed at i - 1
        pipe.advance_at(i, issue_at);
        float acc[N / 2];
        issue_block_mma_desc<N>(acc, k_desc + st * (kBlockKeyBytes >> 4), q_desc);
        wgmma_wait_all();
        fence_regs<N / 2>(acc);
        const float v = head_sum_quad<N>(acc, w, tig) * sc[st * (kScaleBytes / 4)];
        const int64_t pos = pipe.block_of(i) * kBlockKeys;
        if (tig < 2 && pos + key <= qr.limit) srow[pos] = v;
        if (++st == kStages) st = 0, phase ^= 1;
    }
    cp_async_wait<0>();  // every issued block was waited on above; no gather copy may outlive the CTA
}

// ---- host: the tensor map over a key store, [pages] x [64 rows] x [128 bytes] with the page stride ----

using EncodeTiledFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                   const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                   CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

EncodeTiledFn encode_tiled() {
    static const EncodeTiledFn fn = [] {
        void* f = nullptr;
        cudaDriverEntryPointQueryResult q{};
        DSA_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q));
        DSA_CHECK(q == cudaDriverEntryPointSuccess && f != nullptr) << "cuTensorMapEncodeTiled is not available";
        return reinterpret_cast<EncodeTiledFn>(f);
    }();
    return fn;
}

CUtensorMap encode_key_map(const uint8_t* pages, int64_t num_pages) {
    CUtensorMap map{};
    const cuuint64_t dims[3] = {static_cast<cuuint64_t>(kDim), static_cast<cuuint64_t>(kPageTokens),
                                static_cast<cuuint64_t>(num_pages)};
    const cuuint64_t strides[2] = {static_cast<cuuint64_t>(kDim), static_cast<cuuint64_t>(kFp8PageBytes)};
    const cuuint32_t box[3] = {static_cast<cuuint32_t>(kDim), static_cast<cuuint32_t>(kPageTokens), 1};
    const cuuint32_t elem_strides[3] = {1, 1, 1};
    const CUresult r = encode_tiled()(&map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 3, const_cast<uint8_t*>(pages), dims,
                                      strides, box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                      CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                      CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    DSA_CHECK(r == CUDA_SUCCESS) << "indexer key tensor map: cuTensorMapEncodeTiled error " << static_cast<int>(r)
                                 << " (" << num_pages << " pages)";
    return map;
}

// The map of a store, encoded once per (pointer, pages): host work only, so it is safe under graph capture.
CUtensorMap key_map_of(const uint8_t* pages, int64_t num_pages) {
    static std::mutex mu;
    static std::map<std::pair<const uint8_t*, int64_t>, CUtensorMap> cache;
    const std::lock_guard<std::mutex> lock(mu);
    const auto key = std::make_pair(pages, num_pages);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
    if (cache.size() >= 1024) cache.clear();  // one store per indexer layer, long-lived; bound the cache anyway
    return cache.emplace(key, encode_key_map(pages, num_pages)).first->second;
}

template <int N, int kCtas>
void launch_tma(const IndexerLogitsParams& p, const CUtensorMap& map, bool evict_first, cudaStream_t stream) {
    constexpr int kSmem = TmaConfig<N, kCtas>::kSmem;
    auto* kernel = indexer_logits_tma_kernel<N, kCtas>;
    static SmemLimit limit;
    limit.ensure(reinterpret_cast<const void*>(kernel), kSmem);
    static const int64_t resident = [kernel] {
        int per_sm = 0;
        DSA_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kLogitsThreads, kSmem));
        return static_cast<int64_t>(per_sm < 1 ? 1 : per_sm) * num_sms();
    }();
    const int64_t blocks_per_row = (p.max_len + kBlockKeys - 1) / kBlockKeys;
    int64_t m = resident / p.num_tokens;
    m = m < 1 ? 1 : (m > blocks_per_row ? blocks_per_row : m);
    host::launch_pdl(kernel, dim3(static_cast<unsigned>(p.num_tokens * m)), dim3(kLogitsThreads), kSmem, stream, p,
                     static_cast<int>(m), evict_first, map);
}

template <int kCtas>
void launch_tma_heads(const IndexerLogitsParams& p, const CUtensorMap& map, bool evict_first,
                      cudaStream_t stream) {
    switch (p.heads) {
        case 8: return launch_tma<8, kCtas>(p, map, evict_first, stream);
        case 16: return launch_tma<16, kCtas>(p, map, evict_first, stream);
        case 32: return launch_tma<32, kCtas>(p, map, evict_first, stream);
        case 64: return launch_tma<64, kCtas>(p, map, evict_first, stream);
        default: DSA_CHECK(false) << "indexer TMA logits: " << p.heads << " heads (8, 16, 32 or 64)";
    }
}

}  // namespace

void launch_indexer_logits_tma(const IndexerLogitsParams& p, cudaStream_t stream, int ctas_per_sm, bool evict_first) {
    DSA_CHECK(indexer_logits_tma_applies(p))
        << "indexer TMA logits: " << p.num_slots << " slots (whole pages of " << kPageTokens << ")";
    DSA_CHECK(ctas_per_sm == 3 || ctas_per_sm == 4) << "indexer TMA logits: " << ctas_per_sm << " CTAs per SM";
    const CUtensorMap map = key_map_of(p.pages, p.num_slots / kPageTokens);
    if (ctas_per_sm == 3) return launch_tma_heads<3>(p, map, evict_first, stream);
    launch_tma_heads<4>(p, map, evict_first, stream);
}

}  // namespace dsa::backend::cuda
