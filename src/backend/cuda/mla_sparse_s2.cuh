// Device pieces of the sparse MLA kernel s2 (mla_sparse_s2.cu): its shared-memory layout (Q, two 64-key tiles; a
// tile's P lives in the tile's own k_pe block once S is done), the mbarrier hand-overs between the two
// warpgroups, and warpgroup 1's tile gather (a row part loaded into registers a tile before its buffer frees: FP8
// rows' e4m3 bytes, dequantized on the store, bf16 rows' first 256 columns; the rest by cp.async completing on an
// mbarrier). Swizzle, wgmma issues and softmax: s1's.
#pragma once

#include <cstddef>

#include "backend/cuda/mla_sparse_wgmma.cuh"

namespace dsa::backend::cuda::mla_s2 {

using namespace mla_wg;

constexpr int kPBlock = kLatent / 64 * kBlockBytes;  // byte offset of a tile's k_pe block (columns 512..575)

struct S2Smem {
    uint8_t q[kTileBytes];
    uint8_t kv[2][kTileBytes];
    float scale[2][kHeads];  // O rescale factors of the tile in buffer b (written by warpgroup 0)
    float row_sum[2][kHeads];
    int32_t slot[2][kRows];
    uint64_t full[2];   // tile b gathered: 128 cp.async arrivals (noinc) + 128 arrivals of warpgroup 1
    uint64_t ready[2];  // P and scale of tile b written: 128 arrivals of warpgroup 0
    uint64_t freed[2];  // warpgroup 0's P V of tile b done (buffer reusable): 128 arrivals of warpgroup 0
};
constexpr size_t kS2SmemBytes = sizeof(S2Smem) + 1024;  // + slack to align the tiles to 1024 bytes
static_assert(kS2SmemBytes <= 227 * 1024, "s2 sparse MLA shared memory exceeds the sm_90 per-CTA limit");
static_assert(offsetof(S2Smem, full) % 8 == 0, "mbarriers must be 8-byte aligned");

// Arrives on `bar` once every cp.async this thread issued before has completed (counts as one expected arrival).
__device__ __forceinline__ void cp_async_arrive_noinc(uint32_t bar) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p)); }
// mbar_wait (wgmma_util.cuh) with the whole retry loop in one asm block: a C++ loop is a divergent path to ptxas,
// which then serializes the wgmmas still in flight around it. Traps after ~2^31 clocks (a lost arrival).
__device__ __forceinline__ void mbar_wait_flat(uint32_t bar, uint32_t parity) {
    asm volatile(
        "{\n.reg .pred p;\n.reg .u64 t0, t1;\n"
        "mov.u64 t0, %%clock64;\n"
        "S2_WAIT:\n"
        "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
        "@p bra.uni S2_DONE;\n"
        "mov.u64 t1, %%clock64;\n"
        "sub.u64 t1, t1, t0;\n"
        "setp.gt.u64 p, t1, 2147483648;\n"
        "@p trap;\n"
        "bra.uni S2_WAIT;\n"
        "S2_DONE:\n}\n" ::"r"(bar),
        "r"(parity)
        : "memory");
}
// Barrier among the 128 threads of warpgroup 0 only (id 1; id 0 is __syncthreads).
__device__ __forceinline__ void wg0_sync() { asm volatile("bar.sync 1, 128;\n" ::: "memory"); }

// O *= the rows' factors; skipped when every factor of the warp is 1 (the running max did not move: same bits).
__device__ __forceinline__ void rescale_o(float (&o)[32][4], const float (&alpha)[2]) {
    if (__all_sync(0xffffffffu, alpha[0] == 1.0f && alpha[1] == 1.0f)) return;
#pragma unroll
    for (int i = 0; i < 32; ++i) {
        o[i][0] *= alpha[0];
        o[i][1] *= alpha[0];
        o[i][2] *= alpha[1];
        o[i][3] *= alpha[1];
    }
}

// Warpgroup 1 thread u = tid - 128 gathers half of tile row u / 2: 16-byte chunks h + 2 k (h = u % 2).
// Row part in flight in registers (loaded a tile before its buffer frees): FP8: the e4m3 chunks h + 2 k (k < 16)
// of the row and its 4 scales; bf16: the bf16 chunks h + 2 k, k < 16 (columns 0..255; the rest goes by cp.async).
struct S2RowStage {
    uint4 raw[16];
    float4 scale;
};
constexpr int kStagedBf16 = 16;  // bf16 chunks per thread staged in registers (of kChunks / 2 = 36)

__device__ __forceinline__ void load_row_stage(const MlaSparseKernelParams& p, int32_t s, int h, S2RowStage& st) {
    const int64_t row = s < 0 ? 0 : s;  // masked: row 0, dropped by the store
    const uint8_t* src = p.store + row * (p.fp8 ? kFp8RowBytes : kBf16RowBytes);
#pragma unroll
    for (int k = 0; k < 16; ++k) st.raw[k] = __ldg(reinterpret_cast<const uint4*>(src + (h + 2 * k) * 16));
    if (p.fp8) st.scale = __ldg(reinterpret_cast<const float4*>(src + kFp8ScaleOffset));
}

// L2 prefetch of this thread's half of a row that a gather reads two tiles later (every 128-byte line of the row:
// addresses 128 apart from its start, and its last byte).
__device__ __forceinline__ void prefetch_row(const MlaSparseKernelParams& p, int32_t s, int h) {
    if (s < 0) return;
    const int bytes = p.fp8 ? kFp8RowBytes : kBf16RowBytes;
    const uint8_t* src = p.store + static_cast<int64_t>(s) * bytes;
    for (int off = h * 128; off < bytes; off += 256) prefetch_l2(src + off);
    if (h == 1) prefetch_l2(src + bytes - 1);
}

// Writes row r's half of a tile into buffer `buf` and arrives twice on full[buf]: once when this thread's cp.async
// copies land (noinc), once now (after its slot entry and dequantized stores, made visible to the async proxy).
__device__ __forceinline__ void gather_half_row(const MlaSparseKernelParams& p, S2Smem& sm, int buf, int32_t s, int r,
                                                int h, const S2RowStage& st) {
    uint8_t* dst = sm.kv[buf];
    if (h == 0) sm.slot[buf][r] = s;
    const int64_t row = s < 0 ? 0 : s;  // masked rows: a valid address, never read (src size 0)
    if (!p.fp8) {
        const uint8_t* src = p.store + row * kBf16RowBytes;
#pragma unroll
        for (int k = kStagedBf16; k < kChunks / 2; ++k) {
            cp_async16(dst + sw128(r, h + 2 * k), src + (h + 2 * k) * 16, s >= 0);
        }
        const uint32_t keep = s >= 0 ? 0xffffffffu : 0u;  // a masked row becomes zeros
#pragma unroll
        for (int k = 0; k < kStagedBf16; ++k) {
            const uint4 v = st.raw[k];
            *reinterpret_cast<uint4*>(dst + sw128(r, h + 2 * k)) =
                make_uint4(v.x & keep, v.y & keep, v.z & keep, v.w & keep);
        }
    } else {
        const uint8_t* src = p.store + row * kFp8RowBytes;
#pragma unroll
        for (int k = 0; k < 4; ++k) {  // k_pe (bf16): chunks 64 .. 71
            const int c = h + 2 * k;
            cp_async16(dst + sw128(r, kLatent / 8 + c), src + kFp8RopeOffset + c * 16, s >= 0);
        }
        const bool ok = s >= 0;
        const uint32_t keep = ok ? 0xffffffffu : 0u;
        const float sc[4] = {ok ? st.scale.x : 0.0f, ok ? st.scale.y : 0.0f, ok ? st.scale.z : 0.0f,
                             ok ? st.scale.w : 0.0f};
#pragma unroll
        for (int k = 0; k < 16; ++k) store_fp8_chunk(dst, r, h + 2 * k, st.raw[k], keep, sc[k >> 2]);  // (h+2k)/8
    }
    const uint32_t bar = smem_addr(&sm.full[buf]);
    cp_async_arrive_noinc(bar);
    fence_async_smem();
    mbar_arrive(bar);
}

}  // namespace dsa::backend::cuda::mla_s2
