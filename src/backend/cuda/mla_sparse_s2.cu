// Sparse absorbed MLA attention on Hopper wgmma, kernel "s2" (opt-in: DSA_MLA_KERNEL=s2). One CTA of two
// warpgroups per (query token, 64-head group), 64-key tiles in two shared-memory buffers as s1, but no CTA-wide
// barrier in the tile loop: warpgroup 0 computes S (m64n64k16), the softmax and O[:, :256] += P V (issued, waited
// under the next tile's S), warpgroup 1 computes O[:, 256:] of the same tile while warpgroup 0 already runs the
// next S, then refills the buffer (FP8 rows dequantized from registers loaded a tile ahead, bf16 rows' first 256
// columns from registers loaded a tile ahead and the rest by cp.async; rows two tiles ahead prefetched into L2). P goes
// into the tile's k_pe block (unused once S is done). Hand-overs: mbarriers full / ready / freed per buffer
// (time-bounded waits). Numerics and split-K partials as s1.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/mla_sparse_s2.cuh"
#include "backend/cuda/mla_sparse_s2.h"
#include "backend/cuda/pdl.cuh"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {

using namespace mla_s2;

static_assert(kThreads == 2 * 128 && kRows == 64, "warpgroup 1: two threads per gathered row");

// Warpgroup 0: S, softmax, P into the tile's k_pe block, O[:, :256]. Its P V of tile i runs under S of i + 1 and
// frees the buffer as soon as it completes.
__device__ __forceinline__ void s2_compute_wg(const MlaSparseKernelParams& p, S2Smem& sm, float (&o)[32][4],
                                              float (&m_run)[2], float (&l_run)[2], int num_tiles, int r0, int g,
                                              int t) {
    const float scale_log2 = p.softmax_scale * kLog2e;
    const uint32_t q_addr = smem_addr(sm.q);
    for (int i = 0; i < num_tiles; ++i) {
        const int buf = i & 1;
        mbar_wait_flat(smem_addr(&sm.full[buf]), (i >> 1) & 1);
        fence_async_smem();
        const uint32_t kv_addr = smem_addr(sm.kv[buf]);
        float s[8][4];
#pragma unroll
        for (int k = 0; k < 8; ++k) s[k][0] = s[k][1] = s[k][2] = s[k][3] = 0.0f;
        fence_regs<32>(&s[0][0]);
        wgmma_fence();
        issue_qk64(s, q_addr, kv_addr);
        wgmma_commit();
        if (i >= 1) {
            wgmma_wait<1>();  // P V of tile i - 1 (committed before this S): its buffer can be refilled
            if (i + 1 < num_tiles) mbar_arrive(smem_addr(&sm.freed[buf ^ 1]));
        }
        wgmma_wait_all();
        fence_regs<32>(&s[0][0]);
        fence_regs<128>(&o[0][0]);
        float alpha[2];
        softmax_tile64(sm.slot[buf], sm.kv[buf] + kPBlock, s, m_run, l_run, alpha, sm.scale[buf], r0, g, t, scale_log2);
        fence_async_smem();
        wg0_sync();  // every warp's P rows are written before the wgmma reads them
        mbar_arrive(smem_addr(&sm.ready[buf]));
        rescale_o(o, alpha);
        fence_regs<128>(&o[0][0]);
        wgmma_fence();
        issue_pv(o, kv_addr + kPBlock, kv_addr, 0);
        wgmma_commit();
    }
    wgmma_wait_all();
    fence_regs<128>(&o[0][0]);
}

// Slot of tile j's row r (list position (first + j) 64 + r), -1 past this CTA's tiles.
__device__ __forceinline__ int32_t tile_slot(const MlaSparseKernelParams& p, int64_t tok, int64_t first, int num_tiles,
                                             int j, int r) {
    return j < num_tiles ? load_slot(p, tok, (first + j) * kRows + r) : -1;
}

// Warpgroup 1 (tiles 0 and 1 gathered by the kernel's prologue), per tile: O[:, 256:] += P V with warpgroup 0's
// factors, and once both warpgroups' P V of tile i are done, tile i + 2 into the same buffer.
__device__ __forceinline__ void s2_gather_wg(const MlaSparseKernelParams& p, S2Smem& sm, float (&o)[32][4], int64_t tok,
                                             int64_t first, int num_tiles, int r0, int g) {
    const int u = threadIdx.x - 128, r = u >> 1, h = u & 1;
    S2RowStage st;
    int32_t s_next = tile_slot(p, tok, first, num_tiles, 2, r);  // the tile gathered next
    int32_t s_ahead = tile_slot(p, tok, first, num_tiles, 3, r);
    int32_t s_pf = tile_slot(p, tok, first, num_tiles, 4, r);  // prefetched into L2 by the first iteration
    if (num_tiles > 2) load_row_stage(p, s_next, h, st);
    if (!p.fp8) prefetch_row(p, s_next, h);
    prefetch_row(p, s_ahead, h);
    for (int i = 0; i < num_tiles; ++i) {
        const int buf = i & 1;
        mbar_wait_flat(smem_addr(&sm.ready[buf]), (i >> 1) & 1);
        const float alpha[2] = {sm.scale[buf][r0 + g], sm.scale[buf][r0 + g + 8]};
        rescale_o(o, alpha);
        const uint32_t kv_addr = smem_addr(sm.kv[buf]);
        fence_regs<128>(&o[0][0]);
        wgmma_fence();
        issue_pv(o, kv_addr + kPBlock, kv_addr, 1);
        wgmma_commit();
        wgmma_wait_all();
        fence_regs<128>(&o[0][0]);
        if (i + 2 >= num_tiles) continue;
        const int32_t s_gather = s_next, s_load = s_ahead;  // tiles i + 2 and i + 3
        prefetch_row(p, s_pf, h);                           // tile i + 4 (its slot was loaded an iteration ago)
        s_next = s_ahead;
        s_ahead = s_pf;
        s_pf = tile_slot(p, tok, first, num_tiles, i + 5, r);
        mbar_wait_flat(smem_addr(&sm.freed[buf]), (i >> 1) & 1);
        gather_half_row(p, sm, buf, s_gather, r, h, st);
        if (i + 3 < num_tiles) load_row_stage(p, s_load, h, st);
    }
}

__global__ void __launch_bounds__(kThreads, 1) mla_sparse_s2_kernel(MlaSparseKernelParams p) {
    extern __shared__ __align__(128) uint8_t smem_raw[];
    const uint32_t pad = (1024u - (smem_addr(smem_raw) & 1023u)) & 1023u;
    S2Smem& sm = *reinterpret_cast<S2Smem*>(smem_raw + pad);
    const int64_t tok = blockIdx.x, h0 = static_cast<int64_t>(blockIdx.y) * kHeads;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int ch = warp >> 2, r0 = (warp & 3) * 16, g = lane >> 2, t = lane & 3;
    const int64_t total_tiles = (p.width + kRows - 1) / kRows;
    const int64_t first = static_cast<int64_t>(blockIdx.z) * (p.splits > 1 ? p.tiles_per_split : total_tiles);
    const int num_tiles = static_cast<int>(p.splits > 1 ? min(p.tiles_per_split, total_tiles - first) : total_tiles);

    pdl_wait();  // q, the slot lists and the store are written by earlier kernels
    pdl_trigger();
    if (tid == 0) {
        for (int b = 0; b < 2; ++b) {
            mbar_init(smem_addr(&sm.full[b]), 256);
            mbar_init(smem_addr(&sm.ready[b]), 128);
            mbar_init(smem_addr(&sm.freed[b]), 128);
        }
        mbar_fence_init();
    }
    for (int idx = tid; idx < kHeads * kChunks; idx += kThreads) {
        const int r = idx / kChunks, c = idx % kChunks;
        const bool ok = h0 + r < p.heads;
        cp_async16(sm.q + sw128(r, c), p.q + (tok * p.heads + (ok ? h0 + r : 0)) * kKvDim + c * 8, ok);
    }
    cp_async_commit();
    check_slots<kThreads>(p, tok, first * kRows, (first + num_tiles) * kRows);
    __syncthreads();  // barriers initialised, slot entries checked

    float o[32][4];
#pragma unroll
    for (int i = 0; i < 32; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m_run[2] = {kNoMax, kNoMax}, l_run[2] = {0.0f, 0.0f};  // warpgroup 1 keeps l_run = 0
    if (ch == 1) {  // the first two tiles' copies start before Q has landed
        S2RowStage st;
        const int u = tid - 128, r = u >> 1, h = u & 1;
        for (int j = 0; j < 2 && j < num_tiles; ++j) {
            const int32_t s = tile_slot(p, tok, first, num_tiles, j, r);
            load_row_stage(p, s, h, st);
            gather_half_row(p, sm, j, s, r, h, st);
        }
    }
    cp_async_wait<0>();  // this thread's Q chunks (the group committed above)
    fence_async_smem();
    __syncthreads();  // Q complete
    if (ch == 0) {
        s2_compute_wg(p, sm, o, m_run, l_run, num_tiles, r0, g, t);
    } else {
        s2_gather_wg(p, sm, o, tok, first, num_tiles, r0, g);
    }
    finish_tile_walk(p, sm, o, m_run, l_run, tok, h0, ch, r0, g, t);
}

}  // namespace

void launch_mla_sparse_s2(const MlaSparseKernelParams& p, cudaStream_t stream) {
    if (p.num_tokens == 0 || p.heads == 0) return;
    // The FP8 gather reads row 0 for masked entries, so an empty store goes to the mma.sync kernel.
    if (p.num_slots == 0) return launch_mla_sparse_attention(p, stream);
    check_mla_sparse_wgmma_params(p);
    DSA_CHECK(p.width <= (int64_t{1} << 30)) << "sparse MLA s2: width " << p.width;
    const int64_t head_groups = (p.heads + kHeads - 1) / kHeads;
    DSA_CUDA_CHECK(cudaFuncSetAttribute(mla_sparse_s2_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(kS2SmemBytes)));
    const dim3 grid(static_cast<unsigned>(p.num_tokens), static_cast<unsigned>(head_groups),
                    static_cast<unsigned>(p.splits));
    host::launch_pdl(mla_sparse_s2_kernel, grid, dim3(kThreads), kS2SmemBytes, stream, p);
    if (p.splits > 1) launch_mla_sparse_combine(p, stream);
}

}  // namespace dsa::backend::cuda
