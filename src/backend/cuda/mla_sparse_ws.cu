// Sparse absorbed MLA attention, warp-specialized wgmma kernel "ws" (DSA_MLA_KERNEL=ws; s1 stays the default):
// 3 warpgroups per (query token, 64-head group). Warpgroup 0 produces: it gathers the 64-row KV tiles (bf16 rows by
// cp.async, L2-prefetched two tiles ahead; FP8 rows loaded into registers a tile ahead, dequantized when a stage
// frees) into two shared-memory stages guarded by full / empty mbarriers. Warpgroups 1 and 2 consume: each computes
// S for its 32 keys (m64n32k16), they exchange row maxima through shared memory and write bf16 P for their keys,
// then each accumulates its 256 output columns over all 64 keys (m64n256k16) and returns the stage.
// Registers: 384 threads at 168 each (504 per three lanes); the producer drops to 136, the consumers rise to 184.
#include <cstdlib>
#include <cstring>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/mla_sparse_wgmma.cuh"
#include "backend/cuda/pdl.cuh"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {

using namespace mla_wg;

constexpr int kWsThreads = 384, kProducerRegs = 136, kConsumerRegs = 184;
// __launch_bounds__(384, 1) gives 168 registers a thread: 3 x 168 = 504 per lane triple; an increase that does not
// fit blocks forever, so the split must not exceed it.
static_assert(kProducerRegs + 2 * kConsumerRegs <= 3 * 168, "setmaxnreg split exceeds the launch's registers");
constexpr int kConsumerBarrier = 1;  // named barrier of the 256 consumer threads (0 is __syncthreads)

struct WsSmem {
    WgSmem w;  // q, kv[2] stages, p, row_max (exchanged maxima), row_sum, slot[2]
    uint64_t full[2], empty[2];
};
constexpr size_t kWsSmemBytes = sizeof(WsSmem) + 1024;
static_assert(kWsSmemBytes <= 227 * 1024, "ws sparse MLA shared memory exceeds the sm_90 per-CTA limit");

__device__ __forceinline__ void consumer_sync() {
    asm volatile("bar.sync %0, %1;\n" ::"n"(kConsumerBarrier), "n"(2 * 128) : "memory");
}
template <int kRegs>
__device__ __forceinline__ void setmaxnreg_dec() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}
template <int kRegs>
__device__ __forceinline__ void setmaxnreg_inc() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}

// D(64 x 32) (+)= A(64 x 16, K-major) B(16 x 32, K-major); scale_d = 0 overwrites D.
__device__ __forceinline__ void wgmma_m64n32_ss(float* d, uint64_t a, uint64_t b, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\n"
        "setp.ne.b32 p, %18, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, "
        "%16, %17, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
          "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
        : "l"(a), "l"(b), "r"(scale_d));
}

// S(64 heads x keys 32 ch .. +32) = Q K^T over the 576 dims; key rows 32 ch.. start 4 swizzle atoms into each block.
// The first k-step overwrites S: no non-wgmma write to S while the previous tile's P V is in flight (that would
// serialize the wgmmas).
__device__ __forceinline__ void issue_qk32(float (&s)[4][4], uint32_t q_addr, uint32_t kv_addr, int ch) {
#pragma unroll
    for (int kk = 0; kk < kKvDim / 16; ++kk) {
        const uint32_t off = (kk >> 2) * kBlockBytes + (kk & 3) * 32;
        wgmma_m64n32_ss(&s[0][0], sw128_desc(q_addr + off, 16, 1024),
                        sw128_desc(kv_addr + ch * 32 * 128 + off, 16, 1024), kk > 0);
    }
}

// ---- producer (warpgroup 0): two threads per tile row, `half` takes every other 16-byte chunk ----

// Q (64 heads x 576) into sm.q by cp.async; rows past the head count are zero-filled.
__device__ __forceinline__ void load_q(const MlaSparseKernelParams& p, WgSmem& sm, int64_t tok, int64_t h0, int ptid) {
    for (int idx = ptid; idx < kHeads * kChunks; idx += 128) {
        const int r = idx / kChunks, c = idx % kChunks;
        const bool ok = h0 + r < p.heads;
        cp_async16(sm.q + sw128(r, c), p.q + (tok * p.heads + (ok ? h0 + r : 0)) * kKvDim + c * 8, ok);
    }
}

// This thread's half of an FP8 row in registers: its 16 e4m3 latent chunks (every other one), its 4 k_pe chunks,
// the row's 4 scales and the entry (< 0: masked; the loads then read row 0, and the store writes zeros). Loaded
// before the producer waits for a free stage, so the load latency overlaps the consumers' work.
struct Fp8Half {
    uint4 raw[16], rope[4];
    float4 scale;
    int32_t s;
};

__device__ __forceinline__ void load_fp8_half(const MlaSparseKernelParams& p, int32_t s, int half, Fp8Half& h) {
    h.s = s;
    const uint8_t* src = p.store + static_cast<int64_t>(s < 0 || s >= p.num_slots ? 0 : s) * kFp8RowBytes;
#pragma unroll
    for (int k = 0; k < 16; ++k) h.raw[k] = __ldg(reinterpret_cast<const uint4*>(src + (half + 2 * k) * 16));
#pragma unroll
    for (int k = 0; k < 4; ++k)
        h.rope[k] = __ldg(reinterpret_cast<const uint4*>(src + kFp8RopeOffset + (half + 2 * k) * 16));
    h.scale = __ldg(reinterpret_cast<const float4*>(src + kFp8ScaleOffset));
}

// The loaded half row into row r of tile `dst`: e4m3 chunk c = bf16 chunks 2c, 2c + 1 times scale c / 8; k_pe
// into chunks 64 + c.
__device__ __forceinline__ void store_fp8_half(uint8_t* dst, int r, int half, const Fp8Half& h) {
    const bool ok = h.s >= 0;
    const uint32_t keep = ok ? 0xffffffffu : 0u;
    const float sc[4] = {h.scale.x, h.scale.y, h.scale.z, h.scale.w};
#pragma unroll
    for (int k = 0; k < 16; ++k) {
        const int c = half + 2 * k;
        store_fp8_chunk(dst, r, c, h.raw[k], keep, ok ? sc[c >> 3] : 0.0f);
    }
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        const uint4 v = h.rope[k];
        *reinterpret_cast<uint4*>(dst + sw128(r, kLatent / 8 + half + 2 * k)) =
            make_uint4(v.x & keep, v.y & keep, v.z & keep, v.w & keep);
    }
}

// This thread's list entry of tile `tile` (-1 past the width).
__device__ __forceinline__ int32_t tile_slot(const MlaSparseKernelParams& p, int64_t tok, int64_t tile, int ptid) {
    const int64_t j = tile * kRows + (ptid >> 1);
    return j < p.width ? __ldg(p.slots + tok * p.width + j) : -1;
}

// Slot of this thread's row into sm.slot (range-checked: the CPU reference aborts on out-of-range entries) and,
// for bf16 rows, the row's chunks by cp.async (masked rows zero-filled).
__device__ __forceinline__ void gather_tile(const MlaSparseKernelParams& p, WgSmem& sm, int32_t raw, int buf,
                                            int ptid) {
    const int r = ptid >> 1, half = ptid & 1;
    if (raw >= p.num_slots) __trap();
    const int32_t s = raw >= 0 ? raw : -1;
    if (half == 0) sm.slot[buf][r] = s;
    if (p.fp8) return;  // FP8 rows: store_fp8_half
    uint8_t* dst = sm.kv[buf];
    const uint8_t* src = p.store + static_cast<int64_t>(s < 0 ? 0 : s) * kBf16RowBytes;
#pragma unroll 12
    for (int k = 0; k < kChunks / 2; ++k) cp_async16(dst + sw128(r, half + 2 * k), src + (half + 2 * k) * 16, s >= 0);
}

// L2 prefetch of a whole row (one bulk request, no shared memory), for entries in range.
__device__ __forceinline__ void prefetch_row(const MlaSparseKernelParams& p, int32_t s) {
    if (s < 0 || s >= p.num_slots) return;
    const uint32_t bytes = p.fp8 ? kFp8RowBytes : kBf16RowBytes;
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p.store + static_cast<int64_t>(s) * bytes),
                 "r"(bytes)
                 : "memory");
}

// The producer loop. Entries are loaded two tiles ahead (a register pipeline: raw = tile n, next = n + 1,
// ahead = n + 2); with kPrefetch the rows of tile n + 2 are prefetched into L2 before waiting for tile n's stage,
// so the gather after the stage frees mostly hits L2.
template <bool kPrefetch>
__device__ __forceinline__ void produce(const MlaSparseKernelParams& p, WsSmem& sm, int64_t tok, int64_t h0,
                                        int64_t first, int64_t num_tiles) {
    const int ptid = threadIdx.x;
    auto entry = [&](int64_t n) { return n < num_tiles ? tile_slot(p, tok, first + n, ptid) : -1; };
    int32_t raw = entry(0), next = entry(1), ahead = entry(2);
    Fp8Half h;  // FP8: tile n's half row, loaded during tile n - 1
    if (p.fp8 && num_tiles > 0) load_fp8_half(p, raw, ptid & 1, h);
    for (int64_t n = 0; n < num_tiles; ++n) {
        const int buf = static_cast<int>(n & 1);
        if (kPrefetch && (ptid & 1) == 0) prefetch_row(p, ahead);
        const int32_t later = entry(n + 3);
        if (n >= 2) mbar_wait(smem_addr(&sm.empty[buf]), static_cast<uint32_t>(((n >> 1) - 1) & 1));
        if (n == 0) load_q(p, sm.w, tok, h0, ptid);
        gather_tile(p, sm.w, raw, buf, ptid);
        if (p.fp8) store_fp8_half(sm.w.kv[buf], ptid >> 1, ptid & 1, h);
        cp_async_commit();
        cp_async_wait<0>();
        fence_async_smem();
        mbar_arrive(smem_addr(&sm.full[buf]));
        if (p.fp8 && n + 1 < num_tiles) load_fp8_half(p, next, ptid & 1, h);
        raw = next;
        next = ahead;
        ahead = later;
    }
}

// ---- consumers (warpgroups 1, 2 = ch 0, 1) ----

// Softmax of this warpgroup's S part (rows g, g + 8 of warp rows r0; keys 32 ch + 8 nt + 2 t + e): mask, scale,
// the row max over both halves (quad shuffle, then the other warpgroup's through shared memory), the running
// state's rescale factors `alpha` (equal in both warpgroups), bf16 P of these keys into the P block.
__device__ __forceinline__ void softmax_half(WgSmem& sm, float (&s)[4][4], float (&m_run)[2], float (&l_run)[2],
                                             float (&alpha)[2], int buf, int ch, int r0, int g, int t,
                                             float scale_log2) {
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int key = 32 * ch + nt * 8 + 2 * t + (e & 1);
            s[nt][e] = sm.slot[buf][key] >= 0 ? s[nt][e] * scale_log2 : -INFINITY;
            mx[e >> 1] = fmaxf(mx[e >> 1], s[nt][e]);
        }
    }
#pragma unroll
    for (int hlf = 0; hlf < 2; ++hlf) {
        mx[hlf] = fmaxf(mx[hlf], __shfl_xor_sync(0xffffffffu, mx[hlf], 1));
        mx[hlf] = fmaxf(mx[hlf], __shfl_xor_sync(0xffffffffu, mx[hlf], 2));
    }
    if (t == 0) {
        sm.row_max[ch][r0 + g] = mx[0];
        sm.row_max[ch][r0 + g + 8] = mx[1];
    }
    consumer_sync();
#pragma unroll
    for (int hlf = 0; hlf < 2; ++hlf) {
        const float m_new = fmaxf(m_run[hlf], fmaxf(mx[hlf], sm.row_max[ch ^ 1][r0 + g + 8 * hlf]));
        alpha[hlf] = exp2f(m_run[hlf] - m_new);
        m_run[hlf] = m_new;
        l_run[hlf] *= alpha[hlf];
    }
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
#pragma unroll
        for (int hlf = 0; hlf < 2; ++hlf) {
            const float p0 = round_bf16(exp2f(s[nt][2 * hlf] - m_run[hlf]));
            const float p1 = round_bf16(exp2f(s[nt][2 * hlf + 1] - m_run[hlf]));
            l_run[hlf] += p0 + p1;
            const int row = r0 + g + 8 * hlf, key = 32 * ch + nt * 8 + 2 * t;
            *reinterpret_cast<uint32_t*>(sm.p + sw128(row, key >> 3) + (key & 7) * 2) = pack_bf16x2(p0, p1);
        }
    }
}

// Consumer-side mbarrier wait, bounded like mbar_wait (~2^31 clocks) but returning false instead of trapping: a
// trap in the consumer path makes ptxas ignore the raised register limit (spills, serialized wgmmas).
__device__ __forceinline__ bool consumer_wait(uint32_t bar, uint32_t parity) {
    if (mbar_try_wait(bar, parity)) return true;
    const long long start = clock64();
    while (!mbar_try_wait(bar, parity)) {
        if (clock64() - start > (1ll << 31)) return false;
    }
    return true;
}

// One tile: S of this warpgroup's keys, the softmax and P exchange, P V over all 64 keys, then the stage goes back
// to the producer. Returns false if the tile never arrived (a pipeline bug: the caller poisons the output).
__device__ __forceinline__ bool consume_tile(WsSmem& sm, float (&o)[32][4], float (&m_run)[2], float (&l_run)[2], int n,
                                             int ch, int warp, int lane, float scale_log2) {
    const int buf = static_cast<int>(n & 1), r0 = (warp & 3) * 16, g = lane >> 2, t = lane & 3;
    if (!consumer_wait(smem_addr(&sm.full[buf]), static_cast<uint32_t>((n >> 1) & 1))) return false;
    fence_async_smem();
    // Opaque to the compiler: otherwise it hoists the loop-invariant descriptors out of the tile loop and spills.
    uint32_t kv_addr = smem_addr(sm.w.kv[buf]), q_addr = smem_addr(sm.w.q), p_addr = smem_addr(sm.w.p);
    asm volatile("" : "+r"(kv_addr), "+r"(q_addr), "+r"(p_addr));
    float s[4][4];
    wgmma_fence();
    issue_qk32(s, q_addr, kv_addr, ch);
    wgmma_commit();
    wgmma_wait_all();
    fence_regs<16>(&s[0][0]);
    float alpha[2];
    softmax_half(sm.w, s, m_run, l_run, alpha, buf, ch, r0, g, t, scale_log2);
#pragma unroll
    for (int i = 0; i < 32; ++i) {
        o[i][0] *= alpha[0];
        o[i][1] *= alpha[0];
        o[i][2] *= alpha[1];
        o[i][3] *= alpha[1];
    }
    fence_async_smem();
    consumer_sync();  // both halves of P written
    fence_regs<128>(&o[0][0]);
    wgmma_fence();
    issue_pv(o, p_addr, kv_addr, ch);
    wgmma_commit();
    wgmma_wait_all();
    fence_regs<128>(&o[0][0]);
    if (lane == 0) mbar_arrive(smem_addr(&sm.empty[buf]));
    return true;
}

// The rows' sums (both halves) through shared memory, then the normalized output or the split's partials.
__device__ __forceinline__ void consumer_finish(const MlaSparseKernelParams& p, WgSmem& sm, const float (&o)[32][4],
                                                const float (&m_run)[2], float (&l_run)[2], int64_t tok, int64_t h0,
                                                int ch, int warp, int lane) {
    const int r0 = (warp & 3) * 16, g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int hlf = 0; hlf < 2; ++hlf) {
        l_run[hlf] += __shfl_xor_sync(0xffffffffu, l_run[hlf], 1);
        l_run[hlf] += __shfl_xor_sync(0xffffffffu, l_run[hlf], 2);
    }
    if (t == 0) {
        sm.row_sum[ch][r0 + g] = l_run[0];
        sm.row_sum[ch][r0 + g + 8] = l_run[1];
    }
    consumer_sync();
    if (p.splits > 1) {
        mla_sparse::write_partials(p, sm, o, m_run, tok, h0, r0 + g, ch * 256 + 2 * t, ch == 0 && t == 0);
    } else {
        write_output(p, sm, o, tok, h0, r0 + g, ch * 256 + 2 * t);
    }
}

template <bool kPrefetch>
__global__ void __launch_bounds__(kWsThreads, 1) mla_sparse_ws_kernel(MlaSparseKernelParams p) {
    extern __shared__ __align__(128) uint8_t smem_raw[];
    const uint32_t pad = (1024u - (smem_addr(smem_raw) & 1023u)) & 1023u;
    WsSmem& sm = *reinterpret_cast<WsSmem*>(smem_raw + pad);
    const int64_t tok = blockIdx.x, h0 = static_cast<int64_t>(blockIdx.y) * kHeads;
    const int64_t total_tiles = (p.width + kRows - 1) / kRows;
    const int64_t first = static_cast<int64_t>(blockIdx.z) * (p.splits > 1 ? p.tiles_per_split : total_tiles);
    const int64_t num_tiles = p.splits > 1 ? min(p.tiles_per_split, total_tiles - first) : total_tiles;
    const int wg = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x >> 7), 0);  // warp-uniform for ptxas
    if (threadIdx.x == 0) {
        for (int b = 0; b < 2; ++b) {
            mbar_init(smem_addr(&sm.full[b]), 128);  // every producer thread, after its copies landed
            mbar_init(smem_addr(&sm.empty[b]), 8);   // one lane per consumer warp
        }
        mbar_fence_init();
    }
    pdl_wait();  // q, the slot lists and the store are written by earlier kernels
    pdl_trigger();
    __syncthreads();
    if (wg == 0) {
        setmaxnreg_dec<kProducerRegs>();
        produce<kPrefetch>(p, sm, tok, h0, first, num_tiles);
        return;
    }
    setmaxnreg_inc<kConsumerRegs>();
    const int ch = wg - 1, warp = (threadIdx.x >> 5) & 7, lane = threadIdx.x & 31;
    const float scale_log2 = p.softmax_scale * kLog2e;
    float o[32][4];
#pragma unroll
    for (int i = 0; i < 32; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m_run[2] = {kNoMax, kNoMax}, l_run[2] = {0.0f, 0.0f};
    const int tiles = static_cast<int>(num_tiles);  // < 2^31: width is an int64 but the slots are 32-bit rows
    bool ok = true;
    for (int n = 0; n < tiles && ok; ++n) ok = consume_tile(sm, o, m_run, l_run, n, ch, warp, lane, scale_log2);
    if (!ok) {
#pragma unroll
        for (int i = 0; i < 32; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = __int_as_float(0x7fc00000);  // NaN
    }
    consumer_finish(p, sm.w, o, m_run, l_run, tok, h0, ch, warp, lane);
}

}  // namespace

void launch_mla_sparse_ws(const MlaSparseKernelParams& p, cudaStream_t stream) {
    if (p.num_tokens == 0 || p.heads == 0) return;
    // Masked FP8 entries read row 0, so an empty store goes to the mma.sync kernel.
    if (p.num_slots == 0) return launch_mla_sparse_attention(p, stream);
    DSA_CHECK(host::aligned16(p.q) && host::aligned16(p.store))
        << "sparse MLA: q and the store must be 16-byte aligned";
    DSA_CHECK((reinterpret_cast<uintptr_t>(p.out) & 3u) == 0) << "sparse MLA: out must be 4-byte aligned";
    DSA_CHECK(p.width >= 0 && p.num_slots <= 0x7fffffff) << "sparse MLA: width " << p.width;
    const int64_t head_groups = (p.heads + kHeads - 1) / kHeads;
    DSA_CHECK(p.num_tokens <= 0x7fffffff && head_groups <= 65535) << "sparse MLA grid";
    DSA_CHECK(p.splits >= 1 && (p.splits == 1 || (p.part_o != nullptr && p.part_ml != nullptr &&
                                                  p.tiles_per_split * (p.splits - 1) < (p.width + kRows - 1) / kRows)))
        << "sparse MLA: bad split " << p.splits << " x " << p.tiles_per_split;
    // DSA_MLA_WS_PREFETCH=0 turns the L2 row prefetch off (a host decision, read on every call).
    const char* pf = std::getenv("DSA_MLA_WS_PREFETCH");
    const auto kernel =
        pf != nullptr && std::strcmp(pf, "0") == 0 ? mla_sparse_ws_kernel<false> : mla_sparse_ws_kernel<true>;
    DSA_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kWsSmemBytes)));
    const dim3 grid(static_cast<unsigned>(p.num_tokens), static_cast<unsigned>(head_groups),
                    static_cast<unsigned>(p.splits));
    host::launch_pdl(kernel, grid, dim3(kWsThreads), kWsSmemBytes, stream, p);
    if (p.splits > 1) launch_mla_sparse_combine(p, stream);
}

}  // namespace dsa::backend::cuda
