// Sparse absorbed MLA attention on Hopper wgmma, kernel "s3" (opt-in: DSA_MLA_KERNEL=s3). One CTA of three
// warpgroups per (query token, 64-head group), 64-key tiles in three shared-memory buffers. Warpgroup 0 holds Q's
// first 512 columns in registers (setmaxnreg 184) and computes, per 32-key half of a tile, S = Q K^T (register-A
// wgmma; k_pe from shared memory) and the online softmax, writing P (64-byte swizzle) into the k_pe rows that the
// half's S has read and the rows' rescale factors; warpgroups 1 and 2 (160 registers) each accumulate 256 output
// columns (O += P V per half) and gather the tiles three ahead, so S runs beside P V. Hand-overs by mbarriers
// full / ready / freed per buffer (time-bounded waits), no CTA-wide barrier in the tile loop. Numerics as s1 (bf16
// P, f32 accumulation, k-step order) except that the running max moves per 32 keys (s1: 64): close to s1, not
// bit-equal. Split-K as s1.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/mla_sparse_s3.cuh"
#include "backend/cuda/mla_sparse_s3.h"
#include "backend/cuda/pdl.cuh"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {

using namespace mla_s3;

static_assert(kS3Threads == 3 * 128 && kRows == 64, "two O warpgroups: four threads per gathered row");

// Row r's slots of this CTA's tiles: tile j's entry at list[64 j] while 64 j < lim (lim: list positions left from
// the first tile's row r; past the width or a negative entry: -1), -1 past the CTA's num_tiles tiles. Few live
// registers: the O warpgroups run at the edge of their setmaxnreg budget.
struct RowSlots {
    const int32_t* list;
    int lim;
    __device__ __forceinline__ int32_t at(int j, int num_tiles) const {
        if (j >= num_tiles || j * kRows >= lim) return -1;
        const int32_t s = __ldg(list + j * kRows);
        return s >= 0 ? s : -1;
    }
};
__device__ __forceinline__ RowSlots row_slots(const MlaSparseKernelParams& p, int64_t tok, int64_t first, int r) {
    const int64_t pos = first * kRows + r;
    return {p.slots + tok * p.width + pos, static_cast<int>(p.width - pos)};
}

// Warpgroup 0: per tile and 32-key half, S (Q from registers), the softmax, P into the k_pe rows of the half's keys,
// then ready[buf][half].
__device__ __forceinline__ void s3_score_wg(const MlaSparseKernelParams& p, S3Smem& sm, float (&m_run)[2],
                                            float (&l_run)[2], int num_tiles, int r0, int g, int t) {
    uint32_t qf[kQRegSteps][4];
    load_q_frags(qf, sm.kv[2], r0, g, t);
    mbar_arrive(smem_addr(&sm.q_free));
    const float scale_log2 = p.softmax_scale * kLog2e;
    const uint32_t base = smem_addr(&sm);  // every shared address below: base + a constant offset
    constexpr uint32_t kQPe = offsetof(S3Smem, q_pe), kAlpha = offsetof(S3Smem, alpha);
    constexpr uint32_t kValid = offsetof(S3Smem, valid), kFull = offsetof(S3Smem, full);
    constexpr uint32_t kReady = offsetof(S3Smem, ready), kSkip = offsetof(S3Smem, skip);
    const int lane = threadIdx.x & 31;
    for (int i = 0, buf = 0, phase = 0; i < num_tiles; ++i) {
        mbar_wait_flat(base + kFull + 8 * buf, phase);
        fence_async_smem();
        const uint32_t kv_addr = base + buf * kTileBytes;
        const uint64_t mask = valid_mask(base + kValid + buf * kRows, lane);
#pragma unroll 1
        for (int h = 0; h < 2; ++h) {
            // A half without keys (lists padded with -1) is skipped: its P would be 0 and its factors 1.
            const uint32_t bits = static_cast<uint32_t>(mask >> (kHalf * h));
            if (threadIdx.x == 0) st_shared_u8(base + kSkip + 2 * buf + h, bits == 0 ? 1 : 0);
            if (bits == 0) {
                mbar_arrive(base + kReady + 8 * (2 * buf + h));
                continue;
            }
            float s[4][4];
#pragma unroll
            for (int k = 0; k < 4; ++k) s[k][0] = s[k][1] = s[k][2] = s[k][3] = 0.0f;
            fence_regs<16>(&s[0][0]);
            wgmma_fence();
            issue_qk32_rs(s, qf, base + kQPe, kv_addr + h * kHalf * 128);
            wgmma_commit();
            wgmma_wait_all();
            fence_regs<16>(&s[0][0]);
            softmax_half(bits, kv_addr + kPeBlock + h * kPHalfBytes, base + kAlpha + (2 * buf + h) * kHeads * 4, s,
                         m_run, l_run, r0, g, t, scale_log2);
            fence_async_smem();
            mbar_arrive(base + kReady + 8 * (2 * buf + h));
        }
        if (++buf == kBufs) buf = 0, phase ^= 1;
    }
}

// Warpgroups 1, 2 (tiles 0..2 gathered by the prologue), per tile i: O[:, 256 ch ..] += P V per 32-key half with
// warpgroup 0's factors; under each half's wgmma, half of FP8 tile i + 2 dequantized; once both O warpgroups' P V
// of tile i are done, tile i + 3 gathered into the same buffer.
__device__ __forceinline__ void s3_output_wg(const MlaSparseKernelParams& p, S3Smem& sm, float (&o)[32][4],
                                             const RowSlots& rs, int num_tiles, int ch, int r0, int g) {
    const int u = threadIdx.x - 128, r = u >> 2, c0 = u & 3;
    int32_t s_next = rs.at(3, num_tiles);
    for (int i = 0; i < num_tiles; ++i) {
        const int buf = i % kBufs;
        const uint32_t phase = (i / kBufs) & 1;
        const uint32_t kv_addr = smem_addr(sm.kv[buf]);
        const bool dequant = p.fp8 && i >= 1 && i + 2 < num_tiles;  // FP8 tile i + 2 (tile 2: by the prologue)
#pragma unroll 1
        for (int h = 0; h < 2; ++h) {
            mbar_wait_flat(smem_addr(&sm.ready[buf][h]), phase);
            if (!sm.skip[buf][h]) {  // else no keys in this half
                const float alpha[2] = {sm.alpha[buf][h][r0 + g], sm.alpha[buf][h][r0 + g + 8]};
                if (!__all_sync(0xffffffffu, alpha[0] == 1.0f && alpha[1] == 1.0f)) {  // x * 1 = x: same bits
                    wgmma_wait_all();  // the first half's P V before its accumulators are rescaled
                    fence_regs<128>(&o[0][0]);
                    rescale_o(o, alpha);
                }
                fence_regs<128>(&o[0][0]);
                wgmma_fence();
                issue_pv_half(o, kv_addr + kPeBlock + h * kPHalfBytes, kv_addr + 4 * ch * kBlockBytes, h);
                wgmma_commit();
            }
            if (dequant) {  // one block-row under each half's P V (and warpgroup 0's next S)
                if (h == 0) cp_async_wait<0>();
                dequant_fp8_block_row(sm, (i + 2) % kBufs, r, c0 + 4 * h);
            }
        }
        if (dequant) fp8_row_done(sm, (i + 2) % kBufs);
        wgmma_wait_all();
        fence_regs<128>(&o[0][0]);
        mbar_arrive(smem_addr(&sm.freed[buf]));
        if (i + 3 >= num_tiles) continue;
        const int32_t s_gather = s_next;
        s_next = rs.at(i + 4, num_tiles);
        mbar_wait_flat(smem_addr(&sm.freed[buf]), phase);
        gather_row(p, sm, buf, s_gather, r, c0);
        cp_async_commit();
    }
}

// The rows' sums (quad-reduced) and running max of warpgroup 0 into shared memory for the O warpgroups.
__device__ __forceinline__ void publish_row_stats(S3RowStats& st, const float (&m_run)[2], float (&l_run)[2], int r0,
                                                  int g, int t) {
#pragma unroll
    for (int hlf = 0; hlf < 2; ++hlf) {
        l_run[hlf] += __shfl_xor_sync(0xffffffffu, l_run[hlf], 1);
        l_run[hlf] += __shfl_xor_sync(0xffffffffu, l_run[hlf], 2);
        if (t == 0) {
            st.row_sum[0][r0 + g + 8 * hlf] = l_run[hlf];
            st.row_sum[1][r0 + g + 8 * hlf] = 0.0f;
            st.row_max[r0 + g + 8 * hlf] = m_run[hlf];
        }
    }
}

// Prologue: barriers, Q (first 512 columns into buffer 2, k_pe into q_pe), the slot check, tiles 0 and 1.
__device__ __forceinline__ void s3_prologue(const MlaSparseKernelParams& p, S3Smem& sm, int64_t tok, int64_t h0,
                                            int64_t first, int num_tiles) {
    const int tid = threadIdx.x;
    if (tid == 0) {
        for (int b = 0; b < kBufs; ++b) {
            mbar_init(smem_addr(&sm.full[b]), p.fp8 ? 256 : 512);
            mbar_init(smem_addr(&sm.ready[b][0]), 128);
            mbar_init(smem_addr(&sm.ready[b][1]), 128);
            mbar_init(smem_addr(&sm.freed[b]), 256);
        }
        mbar_init(smem_addr(&sm.q_free), 128);
        mbar_fence_init();
    }
    for (int idx = tid; idx < kHeads * kChunks; idx += kS3Threads) {
        const int r = idx / kChunks, c = idx % kChunks;
        const bool ok = h0 + r < p.heads;
        uint8_t* dst = c < kLatent / 8 ? sm.kv[2] + sw128(r, c) : sm.q_pe + sw128(r, c - kLatent / 8);
        cp_async16(dst, p.q + (tok * p.heads + (ok ? h0 + r : 0)) * kKvDim + c * 8, ok);
    }
    cp_async_commit();
    check_slots<kS3Threads>(p, tok, first * kRows, (first + num_tiles) * kRows);
    __syncthreads();  // barriers initialised
    if (tid >= 128) {
        const int u = tid - 128, r = u >> 2, c0 = u & 3;
        const RowSlots rs = row_slots(p, tok, first, r);
        for (int j = 0; j < 2 && j < num_tiles; ++j) gather_row(p, sm, j, rs.at(j, num_tiles), r, c0);
    }
    cp_async_wait<0>();
    fence_async_smem();
    __syncthreads();  // Q complete in shared memory
}

__global__ void __launch_bounds__(kS3Threads, 1) mla_sparse_s3_kernel(MlaSparseKernelParams p) {
    extern __shared__ __align__(128) uint8_t smem_raw[];
    const uint32_t pad = (1024u - (smem_addr(smem_raw) & 1023u)) & 1023u;
    S3Smem& sm = *reinterpret_cast<S3Smem*>(smem_raw + pad);
    const int64_t tok = blockIdx.x, h0 = static_cast<int64_t>(blockIdx.y) * kHeads;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wg = warp >> 2, r0 = (warp & 3) * 16, g = lane >> 2, t = lane & 3;
    const int64_t total_tiles = (p.width + kRows - 1) / kRows;
    const int64_t first = static_cast<int64_t>(blockIdx.z) * (p.splits > 1 ? p.tiles_per_split : total_tiles);
    const int num_tiles = static_cast<int>(p.splits > 1 ? min(p.tiles_per_split, total_tiles - first) : total_tiles);

    pdl_wait();  // q, the slot lists and the store are written by earlier kernels
    pdl_trigger();
    s3_prologue(p, sm, tok, h0, first, num_tiles);
    if (wg == 0) {
        setmaxnreg_inc<kWg0Regs>();
        float m_run[2] = {kNoMax, kNoMax}, l_run[2] = {0.0f, 0.0f};
        s3_score_wg(p, sm, m_run, l_run, num_tiles, r0, g, t);
        publish_row_stats(*reinterpret_cast<S3RowStats*>(sm.q_pe), m_run, l_run, r0, g, t);
        __syncthreads();  // row statistics published
        return;
    }
    setmaxnreg_dec<kOWgRegs>();
    const int ch = wg - 1, u = tid - 128, r = u >> 2, c0 = u & 3;
    const RowSlots rs = row_slots(p, tok, first, r);
    if (p.fp8) {  // tiles 0 and 1 landed (the prologue's wait): dequantize them
        for (int j = 0; j < 2 && j < num_tiles; ++j) dequant_fp8_row(sm, j, r, c0);
    }
    if (num_tiles > 2) {  // tile 2 into buffer 2 once warpgroup 0 holds Q in registers
        mbar_wait_flat(smem_addr(&sm.q_free), 0);
        gather_row(p, sm, 2, rs.at(2, num_tiles), r, c0);
        cp_async_commit();
        if (p.fp8) {
            cp_async_wait<0>();
            dequant_fp8_row(sm, 2, r, c0);
        }
    }
    float o[32][4];
#pragma unroll
    for (int i = 0; i < 32; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    s3_output_wg(p, sm, o, rs, num_tiles, ch, r0, g);
    __syncthreads();  // warpgroup 0's row statistics
    const int row = r0 + g, col = ch * 256 + 2 * t;
    const S3RowStats& st = *reinterpret_cast<const S3RowStats*>(sm.q_pe);
    if (p.splits > 1) {
        const float m_run[2] = {st.row_max[row], st.row_max[row + 8]};
        mla_sparse::write_partials(p, st, o, m_run, tok, h0, row, col, ch == 0 && t == 0);
    } else {
        write_output(p, st, o, tok, h0, row, col);
    }
}

}  // namespace

void launch_mla_sparse_s3(const MlaSparseKernelParams& p, cudaStream_t stream) {
    if (p.num_tokens == 0 || p.heads == 0) return;
    // Masked rows read row 0's address (zero-filled), so an empty store goes to the mma.sync kernel.
    if (p.num_slots == 0) return launch_mla_sparse_attention(p, stream);
    DSA_CHECK(p.width <= (int64_t{1} << 30)) << "sparse MLA s3: width " << p.width;
    launch_sparse_grid(mla_sparse_s3_kernel, kS3Threads, kS3SmemBytes, p, stream);
}

}  // namespace dsa::backend::cuda
