// MLA kernels around attention: latent KV-cache row writes and reads (bf16 and the 656-byte FP8 layout, bit-exact
// with the CPU reference), the per-head batched bf16 GEMM of the absorbed projections (mma.sync, 64x64 tiles,
// cp.async double buffering) and the split of the kv_b output into per-head keys and values.
#include <cuda_fp8.h>

#include "backend/cuda/act_quant.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/mla_kernels.h"
#include "backend/cuda/mma_util.cuh"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {

constexpr int kLatent = 512, kRope = 64, kKvDim = 576, kTile = 128;
constexpr int kFp8RowBytes = 656, kFp8ScaleOffset = 512, kFp8RopeOffset = 528, kBf16RowBytes = 1152;

__device__ __forceinline__ float e4m3_to_f32(uint8_t b) {
    const __half_raw h = __nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(b), __NV_E4M3);
    return __half2float(__half(h));
}

// One block of 128 threads per token: warp w quantizes c_kv tile w (lane l: columns 4l..4l+3), warp 0 also
// copies k_pe. bf16 layout: plain copies.
__global__ void mla_kv_write_kernel(MlaKvWriteKernelParams p) {
    const int64_t tok = blockIdx.x;
    const int64_t slot = p.slots[tok];
    if (slot < 0) return;
    if (slot >= p.num_slots) __trap();
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const uint16_t* c = p.c_kv + tok * kLatent;
    const uint16_t* pe = p.k_pe + tok * kRope;
    if (!p.fp8) {
        uint16_t* row = reinterpret_cast<uint16_t*>(p.store + slot * kBf16RowBytes);
        for (int i = tid; i < kLatent; i += blockDim.x) row[i] = c[i];
        if (tid < kRope) row[kLatent + tid] = pe[tid];
        return;
    }
    uint8_t* row = p.store + slot * kFp8RowBytes;
    float v[4];
    float amax = 0.0f;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        v[j] = bf16_bits_to_f32(c[warp * kTile + lane * 4 + j]);
        amax = fmaxf(amax, fabsf(v[j]));
    }
    amax = warp_max(amax);
    const float scale = mla_kv_tile_scale(amax);  // act_quant.cuh: the one latent FP8 rule
    uint32_t packed = 0;
#pragma unroll
    for (int j = 0; j < 4; ++j) packed |= static_cast<uint32_t>(mla_kv_tile_code(v[j], scale)) << (8 * j);
    *reinterpret_cast<uint32_t*>(row + warp * kTile + lane * 4) = packed;
    if (lane == 0) reinterpret_cast<float*>(row + kFp8ScaleOffset)[warp] = scale;
    if (warp == 0) {
        uint16_t* rope = reinterpret_cast<uint16_t*>(row + kFp8RopeOffset);
        rope[2 * lane] = pe[2 * lane];
        rope[2 * lane + 1] = pe[2 * lane + 1];
    }
}

// One block of 128 threads per slot.
__global__ void mla_kv_read_kernel(MlaKvReadKernelParams p) {
    const int64_t i = blockIdx.x;
    const int64_t slot = p.slots[i];
    if (slot < 0 || slot >= p.num_slots) __trap();
    const int tid = threadIdx.x;
    uint16_t* out = p.out + i * kKvDim;
    if (!p.fp8) {
        const uint16_t* row = reinterpret_cast<const uint16_t*>(p.store + slot * kBf16RowBytes);
        for (int d = tid; d < kKvDim; d += blockDim.x) out[d] = row[d];
        return;
    }
    const uint8_t* row = p.store + slot * kFp8RowBytes;
    const float* scales = reinterpret_cast<const float*>(row + kFp8ScaleOffset);
    for (int d = tid; d < kLatent; d += blockDim.x) {
        out[d] = f32_to_bf16_bits(e4m3_to_f32(row[d]) * scales[d / kTile]);
    }
    const uint16_t* rope = reinterpret_cast<const uint16_t*>(row + kFp8RopeOffset);
    if (tid < kRope) out[kLatent + tid] = rope[tid];
}

// ---- batched GEMM: 64 x 64 CTA tile, K step 64, 4 warps in 2 x 2 (32 x 32 each), cp.async double buffer ----
constexpr int kGemmTile = 64, kGemmK = 64, kGemmThreads = 128, kGemmChunks = kGemmK / 8;  // 8 chunks per row
constexpr int kGemmTileBytes = kGemmTile * kGemmK * 2;                                    // 8 KiB

struct GemmSmem {
    alignas(128) uint8_t a[2][kGemmTileBytes];
    alignas(128) uint8_t b[2][kGemmTileBytes];
};

// A tile rows m0.., cols k0..: [64 m][64 k]; B tile: transposed -> [64 n][64 k], else [64 k][64 n].
__device__ __forceinline__ void gemm_load(const BatchedGemmParams& p, const uint16_t* a, const uint16_t* b, int64_t m0,
                                          int64_t n0, int64_t k0, uint8_t* sa, uint8_t* sb) {
    for (int idx = threadIdx.x; idx < kGemmTile * kGemmChunks; idx += kGemmThreads) {
        const int r = idx / kGemmChunks, c = idx % kGemmChunks;
        const int64_t m = m0 + r, k = k0 + c * 8;
        const bool ok = m < p.m && k < p.k;
        cp_async16(sa + swz(r, c * 8, kGemmChunks), ok ? a + m * p.lda + k : a, ok);
    }
    for (int idx = threadIdx.x; idx < kGemmTile * kGemmChunks; idx += kGemmThreads) {
        const int r = idx / kGemmChunks, c = idx % kGemmChunks;
        bool ok;
        const uint16_t* src;
        if (p.b_transposed) {  // r = n, chunk over k
            const int64_t n = n0 + r, k = k0 + c * 8;
            ok = n < p.n && k < p.k;
            src = b + n * p.ldb + k;
        } else {  // r = k, chunk over n
            const int64_t k = k0 + r, n = n0 + c * 8;
            ok = k < p.k && n < p.n;
            src = b + k * p.ldb + n;
        }
        cp_async16(sb + swz(r, c * 8, kGemmChunks), ok ? src : b, ok);
    }
}

__global__ void __launch_bounds__(kGemmThreads) batched_gemm_kernel(BatchedGemmParams p) {
    __shared__ GemmSmem sm;
    const int64_t batch = blockIdx.z;
    const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kGemmTile, n0 = static_cast<int64_t>(blockIdx.x) * kGemmTile;
    const uint16_t* a = p.a + batch * p.a_batch_stride;
    const uint16_t* b = p.b + batch * p.b_batch_stride;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int wm = (warp & 1) * 32, wn = (warp >> 1) * 32;  // warp's sub-tile within the CTA tile
    const int g = lane >> 2, t = lane & 3;
    float acc[2][4][4] = {};  // [m16 tile][n8 tile][fragment]
    const int64_t k_steps = (p.k + kGemmK - 1) / kGemmK;
    gemm_load(p, a, b, m0, n0, 0, sm.a[0], sm.b[0]);
    cp_async_commit();
    for (int64_t ks = 0; ks < k_steps; ++ks) {
        const int buf = static_cast<int>(ks & 1);
        if (ks + 1 < k_steps) gemm_load(p, a, b, m0, n0, (ks + 1) * kGemmK, sm.a[buf ^ 1], sm.b[buf ^ 1]);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < kGemmK; kk += 16) {
            uint32_t af[2][4];
#pragma unroll
            for (int mi = 0; mi < 2; ++mi) {
                const int row = wm + mi * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
                ldmatrix_x4(af[mi], sm.a[buf] + swz(row, kk + (lane >> 4) * 8, kGemmChunks));
            }
#pragma unroll
            for (int np = 0; np < 2; ++np) {
                uint32_t bf[4];
                if (p.b_transposed) {
                    const int n = wn + np * 16 + (lane & 7) + (lane >> 4) * 8;
                    ldmatrix_x4(bf, sm.b[buf] + swz(n, kk + ((lane >> 3) & 1) * 8, kGemmChunks));
                } else {
                    const int k = kk + (lane & 7) + ((lane >> 3) & 1) * 8;
                    ldmatrix_x4_trans(bf, sm.b[buf] + swz(k, wn + np * 16 + (lane >> 4) * 8, kGemmChunks));
                }
#pragma unroll
                for (int mi = 0; mi < 2; ++mi) {
                    mma_bf16(acc[mi][2 * np], af[mi], bf[0], bf[1]);
                    mma_bf16(acc[mi][2 * np + 1], af[mi], bf[2], bf[3]);
                }
            }
        }
        __syncthreads();  // every warp is done with `buf` before the next iteration's loads refill it
    }
    uint16_t* c = p.c + batch * p.c_batch_stride;
#pragma unroll
    for (int mi = 0; mi < 2; ++mi) {
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
            const int64_t col = n0 + wn + ni * 8 + 2 * t;
            if (col >= p.n) continue;
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                const int64_t row = m0 + wm + mi * 16 + g + half * 8;
                if (row >= p.m) continue;
                *reinterpret_cast<uint32_t*>(c + row * p.ldc + col) =
                    pack_bf16x2(acc[mi][ni][2 * half], acc[mi][ni][2 * half + 1]);
            }
        }
    }
}

// One thread per (key, head, output element of k or v).
__global__ void mla_expand_split_kernel(MlaExpandSplitParams p) {
    const int64_t qk = p.nope_dim + kRope, block = p.nope_dim + p.v_dim, per_head = qk + p.v_dim;
    const int64_t total = p.num_keys * p.heads * per_head;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int64_t e = idx % per_head, sh = idx / per_head;  // sh = s * heads + h
        const int64_t s = sh / p.heads, h = sh % p.heads;
        const uint16_t* src = p.kv + s * p.heads * block + h * block;
        if (e < p.nope_dim)
            p.k[sh * qk + e] = src[e];
        else if (e < qk)
            p.k[sh * qk + e] = p.latent[s * kKvDim + kLatent + (e - p.nope_dim)];
        else
            p.v[sh * p.v_dim + (e - qk)] = src[p.nope_dim + (e - qk)];
    }
}

bool aligned4(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 3u) == 0; }

}  // namespace

void launch_mla_kv_write(const MlaKvWriteKernelParams& p, cudaStream_t stream) {
    if (p.num_tokens == 0) return;
    DSA_CHECK(aligned4(p.store)) << "MLA store must be 4-byte aligned";
    DSA_CHECK(p.num_tokens <= 0x7fffffff) << "mla_kv_write of " << p.num_tokens << " tokens";
    mla_kv_write_kernel<<<static_cast<unsigned>(p.num_tokens), 128, 0, stream>>>(p);
    DSA_CUDA_CHECK_LAUNCH(mla_kv_write_kernel);
}

void launch_mla_kv_read(const MlaKvReadKernelParams& p, cudaStream_t stream) {
    if (p.n == 0) return;
    DSA_CHECK(aligned4(p.store)) << "MLA store must be 4-byte aligned";
    DSA_CHECK(p.n <= 0x7fffffff) << "mla_kv_read of " << p.n << " slots";
    mla_kv_read_kernel<<<static_cast<unsigned>(p.n), 128, 0, stream>>>(p);
    DSA_CUDA_CHECK_LAUNCH(mla_kv_read_kernel);
}

void launch_batched_gemm(const BatchedGemmParams& p, cudaStream_t stream) {
    if (p.m == 0 || p.n == 0 || p.batch == 0) return;
    DSA_CHECK(p.k > 0) << "batched GEMM with K = 0";
    for (int64_t v : {p.k, p.n, p.lda, p.ldb, p.a_batch_stride, p.b_batch_stride}) {
        DSA_CHECK(v % 8 == 0) << "batched GEMM: K, N, lda, ldb and the A/B batch strides must be multiples of 8";
    }
    DSA_CHECK(p.ldc % 2 == 0 && p.c_batch_stride % 2 == 0) << "batched GEMM: ldc and C batch stride must be even";
    DSA_CHECK(host::aligned16(p.a) && host::aligned16(p.b) && aligned4(p.c)) << "batched GEMM operand alignment";
    const int64_t gm = (p.m + kGemmTile - 1) / kGemmTile, gn = (p.n + kGemmTile - 1) / kGemmTile;
    DSA_CHECK(gm <= 65535 && p.batch <= 65535 && gn <= 0x7fffffff)
        << "batched GEMM grid " << gn << "x" << gm << "x" << p.batch;
    const dim3 grid(static_cast<unsigned>(gn), static_cast<unsigned>(gm), static_cast<unsigned>(p.batch));
    batched_gemm_kernel<<<grid, kGemmThreads, 0, stream>>>(p);
    DSA_CUDA_CHECK_LAUNCH(batched_gemm_kernel);
}

void launch_mla_expand_split(const MlaExpandSplitParams& p, cudaStream_t stream) {
    const int64_t total = p.num_keys * p.heads * (p.nope_dim + kRope + p.v_dim);
    if (total == 0) return;
    constexpr int kThreads = 256;
    mla_expand_split_kernel<<<host::grid_for(total, kThreads), kThreads, 0, stream>>>(p);
    DSA_CUDA_CHECK_LAUNCH(mla_expand_split_kernel);
}

}  // namespace dsa::backend::cuda
