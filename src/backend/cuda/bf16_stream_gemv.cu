// Weight-streaming BF16 GEMV kernels for decode-sized activations (see bf16_stream_gemv.h). Rows layout: each
// warp streams one weight row (or a 1/2, 1/4, 1/8 share of its k range) with 16-byte non-allocating loads, four
// in flight per lane, and the warps of a row add their partial sums through shared memory in a fixed order.
// Columns layout: 64 threads x 8 columns cover 512 outputs per CTA, eight k-groups stream the weight rows (16
// loads in flight per thread for 1-2 token rows, else 8) and are added in a fixed order. Short rows (k <= 512,
// the W_UV absorb): a warp loads 2-4 whole rows into registers before the PDL dependency wait
// (DSA_BF16_GEMV_SHORT=0: the general kernel). All launch with PDL; before the wait only weights are read (L2
// prefetches, or register loads where noted).
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/bf16_stream_gemv.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/pdl.cuh"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kUnroll = 4;        // 16-byte weight loads in flight per lane
constexpr int kColsPerCta = 512;  // columns layout: 64 threads x 8 columns
constexpr int kColGroups = 8;     // columns layout: k-groups per CTA
constexpr int kColThreads = 64 * kColGroups;
constexpr int kColUnroll = 8;  // columns layout: 16-byte weight loads in flight per thread
constexpr int64_t kColsMaxK = 1024;
constexpr int64_t kShortMaxK = 512;  // rows layout: the short-row kernel's k (2 vectors per lane)

__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

__device__ __forceinline__ void unpack8(const uint4& u, float (&f)[8]) {
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const float2 t = __bfloat1622float2(h[j]);
        f[2 * j] = t.x;
        f[2 * j + 1] = t.y;
    }
}

__device__ __forceinline__ void store_out(const Bf16GemvParams& p, int64_t offset, float v) {
    if (p.y_f32) {
        static_cast<float*>(p.y)[offset] = v;
    } else {
        static_cast<uint16_t*>(p.y)[offset] = f32_to_bf16_bits(v);
    }
}

// Rows layout. Grid: ceil(batch * n / rows_per_cta) CTAs; warp w handles row blockIdx.x * rows_per_cta +
// w / warps_per_row and the (w % warps_per_row)-th share of its k vectors (8 elements each).
template <int MT>
__global__ void __launch_bounds__(kThreads) bf16_gemv_rows_kernel(Bf16GemvParams p, int warps_per_row) {
    __shared__ float partial[kWarps][MT];
    const int warp = static_cast<int>(threadIdx.x >> 5), lane = static_cast<int>(threadIdx.x & 31);
    const int rows_per_cta = kWarps / warps_per_row;
    const int64_t total_rows = p.batch * p.n;
    const int64_t row = static_cast<int64_t>(blockIdx.x) * rows_per_cta + warp / warps_per_row;
    const int64_t vecs = p.k / 8, share = (vecs + warps_per_row - 1) / warps_per_row;
    const int64_t v0 = (warp % warps_per_row) * share, v1 = v0 + share < vecs ? v0 + share : vecs;
    const bool active = row < total_rows;
    const int64_t b = active ? row / p.n : 0, col = active ? row % p.n : 0;
    const uint16_t* wrow = p.w + b * p.w_batch_stride + col * p.ldw;
    const uint16_t* xb = p.x + b * p.x_batch_stride;
    if (active) {
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
            const int64_t v = v0 + lane + u * 32;
            if (v < v1) prefetch_l2(wrow + v * 8);
        }
    }
    pdl_wait();
    pdl_trigger();
    float acc[MT];
#pragma unroll
    for (int m = 0; m < MT; ++m) acc[m] = 0.0f;
    if (active) {
        // With one or two rows of x, its vectors are loaded together with the weights (one memory round trip
        // per iteration instead of two); with more rows they would cost too many registers.
        constexpr bool kEarlyX = MT <= 2;
        for (int64_t v = v0 + lane; v < v1; v += 32 * kUnroll) {
            uint4 wv[kUnroll];
            uint4 xv[kEarlyX ? kUnroll : 1][kEarlyX ? MT : 1];
#pragma unroll
            for (int u = 0; u < kUnroll; ++u) {
                const int64_t idx = v + u * 32;
                wv[u] = idx < v1 ? load_stream16(wrow + idx * 8) : make_uint4(0, 0, 0, 0);
                if constexpr (kEarlyX) {
#pragma unroll
                    for (int m = 0; m < MT; ++m) {
                        const int64_t xm = m < p.m ? m : 0;  // rows past m re-read row 0; their sums are dropped
                        xv[u][m] = idx < v1 ? __ldg(reinterpret_cast<const uint4*>(xb + xm * p.ldx + idx * 8))
                                            : make_uint4(0, 0, 0, 0);
                    }
                }
            }
#pragma unroll
            for (int u = 0; u < kUnroll; ++u) {
                const int64_t idx = v + u * 32;
                if (idx < v1) {
                    float wf[8];
                    unpack8(wv[u], wf);
#pragma unroll
                    for (int m = 0; m < MT; ++m) {
                        float xf[8];
                        if constexpr (kEarlyX) {
                            unpack8(xv[u][m], xf);
                        } else {
                            const int64_t xm = m < p.m ? m : 0;
                            unpack8(__ldg(reinterpret_cast<const uint4*>(xb + xm * p.ldx + idx * 8)), xf);
                        }
#pragma unroll
                        for (int j = 0; j < 8; ++j) acc[m] = fmaf(xf[j], wf[j], acc[m]);
                    }
                }
            }
        }
    }
#pragma unroll
    for (int m = 0; m < MT; ++m) acc[m] = warp_sum(acc[m]);
    if (lane == 0) {
#pragma unroll
        for (int m = 0; m < MT; ++m) partial[warp][m] = acc[m];
    }
    __syncthreads();
    const int t = static_cast<int>(threadIdx.x);
    if (t < rows_per_cta * MT) {
        const int r = t / MT, m = t % MT;
        const int64_t out_row = static_cast<int64_t>(blockIdx.x) * rows_per_cta + r;
        if (out_row < total_rows && m < p.m) {
            float s = 0.0f;
            for (int w = 0; w < warps_per_row; ++w) s += partial[r * warps_per_row + w][m];
            const int64_t ob = out_row / p.n, on = out_row % p.n;
            store_out(p, ob * p.y_batch_stride + m * p.ldy + on, s);
        }
    }
}

// Rows layout, short rows (k <= kShortMaxK: at most two 8-element vectors per lane): warp w of CTA i takes the R
// rows (i * kWarps + w) * R .. + R - 1 and loads all their weight vectors into registers before the dependency wait
// (weights are never written by kernels), so one wave of CTAs requests the whole weight at once (W_UV: 16384 rows
// of 512 in 512 CTAs); then the products with x, one warp sum per (row, token row) in lane order.
template <int MT, int R>
__global__ void __launch_bounds__(kThreads) bf16_gemv_rows_short_kernel(Bf16GemvParams p) {
    const int warp = static_cast<int>(threadIdx.x >> 5), lane = static_cast<int>(threadIdx.x & 31);
    const int64_t total_rows = p.batch * p.n, vecs = p.k / 8;
    const int64_t row0 = (static_cast<int64_t>(blockIdx.x) * kWarps + warp) * R;
    uint4 wv[R][2];
#pragma unroll
    for (int r = 0; r < R; ++r) {
        const int64_t row = row0 + r;
        const bool active = row < total_rows;
        const uint16_t* wrow = p.w + (active ? (row / p.n) * p.w_batch_stride + (row % p.n) * p.ldw : 0);
#pragma unroll
        for (int u = 0; u < 2; ++u) {
            const int64_t v = lane + 32 * u;
            wv[r][u] = active && v < vecs ? load_stream16(wrow + v * 8) : make_uint4(0, 0, 0, 0);
        }
    }
    pdl_wait();
    pdl_trigger();
#pragma unroll
    for (int r = 0; r < R; ++r) {
        const int64_t row = row0 + r;
        if (row >= total_rows) break;  // warp-uniform
        const int64_t b = row / p.n, col = row % p.n;
        const uint16_t* xb = p.x + b * p.x_batch_stride;
        float acc[MT];
#pragma unroll
        for (int m = 0; m < MT; ++m) acc[m] = 0.0f;
#pragma unroll
        for (int u = 0; u < 2; ++u) {
            const int64_t v = lane + 32 * u;
            if (v >= vecs) break;
            float wf[8];
            unpack8(wv[r][u], wf);
#pragma unroll
            for (int m = 0; m < MT; ++m) {
                if (m >= p.m) break;
                float xf[8];
                unpack8(__ldg(reinterpret_cast<const uint4*>(xb + m * p.ldx + v * 8)), xf);
#pragma unroll
                for (int j = 0; j < 8; ++j) acc[m] = fmaf(xf[j], wf[j], acc[m]);
            }
        }
#pragma unroll
        for (int m = 0; m < MT; ++m) acc[m] = warp_sum(acc[m]);
        if (lane == 0) {
#pragma unroll
            for (int m = 0; m < MT; ++m) {
                if (m < p.m) store_out(p, b * p.y_batch_stride + m * p.ldy + col, acc[m]);
            }
        }
    }
}

// One batch of U weight rows (k = k0, k0 + kColGroups, ...) of this thread's 8 columns into registers.
template <int U>
__device__ __forceinline__ void load_cols(uint4 (&wv)[U], const uint16_t* wb, int64_t k0, const Bf16GemvParams& p,
                                          bool active) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
        const int64_t kk = k0 + u * kColGroups;
        wv[u] = active && kk < p.k ? load_stream16(wb + kk * p.ldw) : make_uint4(0, 0, 0, 0);
    }
}

// Columns layout. Grid: (ceil(n / 512), batch). Thread t: columns n0 = blockIdx.x * 512 + (t % 64) * 8 .. +8,
// k rows t / 64, t / 64 + kColGroups, ...; the groups' sums are added in group order. The first batch of weight
// rows (16 per thread for 1..2 token rows: all of a 128-deep head) is loaded into registers before the dependency
// wait: weights are never written by kernels, so their latency overlaps the previous kernel's tail.
template <int MT>
__global__ void __launch_bounds__(kColThreads) bf16_gemv_cols_kernel(Bf16GemvParams p) {
    constexpr int U = MT <= 2 ? 2 * kColUnroll : kColUnroll;
    __shared__ float xs[MT][kColsMaxK];
    __shared__ float red[kColGroups - 1][kColsPerCta];
    const int t = static_cast<int>(threadIdx.x), group = t / 64, c = t % 64;
    const int64_t b = blockIdx.y, n0 = static_cast<int64_t>(blockIdx.x) * kColsPerCta + c * 8;
    const bool active = n0 < p.n;
    const uint16_t* wb = p.w + b * p.w_batch_stride + n0;
    uint4 wv[U];
    load_cols<U>(wv, wb, group, p, active);
    pdl_wait();
    pdl_trigger();
    const uint16_t* xb = p.x + b * p.x_batch_stride;
    for (int64_t i = t; i < MT * p.k; i += kColThreads) {
        const int64_t m = i / p.k, kk = i % p.k;
        xs[m][kk] = m < p.m ? bf16_bits_to_f32(xb[m * p.ldx + kk]) : 0.0f;
    }
    __syncthreads();
    float acc[MT][8];
#pragma unroll
    for (int m = 0; m < MT; ++m) {
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[m][j] = 0.0f;
    }
    if (active) {
        for (int64_t k0 = group; k0 < p.k; k0 += kColGroups * U) {
            if (k0 != group) load_cols<U>(wv, wb, k0, p, true);
#pragma unroll
            for (int u = 0; u < U; ++u) {
                const int64_t kk = k0 + u * kColGroups;
                if (kk >= p.k) break;
                float wf[8];
                unpack8(wv[u], wf);
#pragma unroll
                for (int m = 0; m < MT; ++m) {
                    const float xv = xs[m][kk];
#pragma unroll
                    for (int j = 0; j < 8; ++j) acc[m][j] = fmaf(xv, wf[j], acc[m][j]);
                }
            }
        }
    }
#pragma unroll
    for (int m = 0; m < MT; ++m) {
        if (group > 0) {
#pragma unroll
            for (int j = 0; j < 8; ++j) red[group - 1][c * 8 + j] = acc[m][j];
        }
        __syncthreads();
        if (group == 0 && active && m < p.m) {
            const int64_t o = b * p.y_batch_stride + m * p.ldy + n0;
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                float s = acc[m][j];
#pragma unroll
                for (int g = 0; g < kColGroups - 1; ++g) s += red[g][c * 8 + j];
                store_out(p, o + j, s);
            }
        }
        __syncthreads();
    }
}

bool aligned_elems(int64_t v) { return v % 8 == 0; }

bool common_supported(const Bf16GemvParams& p) {
    return p.m >= 1 && p.m <= kBf16GemvMaxRows && p.n >= 1 && p.k >= 1 && p.batch >= 1 && host::aligned16(p.x) &&
           host::aligned16(p.w) && aligned_elems(p.ldx) && aligned_elems(p.ldw) && aligned_elems(p.x_batch_stride) &&
           aligned_elems(p.w_batch_stride);
}

// Rows per CTA: warps share a row's k range while that keeps at least one 8-element vector per lane and there
// are fewer than two CTAs per SM's worth of rows.
int rows_warps_per_row(const Bf16GemvParams& p) {
    const int64_t rows = p.batch * p.n, vecs = p.k / 8;
    int w = 1;
    while (w < kWarps && (rows * w + kWarps - 1) / kWarps < 264 && vecs / (2 * w) >= 32) w *= 2;
    return w;
}

// Rows per warp of the short-row kernel: 4, or 2, while that leaves at least two CTAs of 8 warps per SM (264);
// 1: the general kernel instead.
int short_rows_per_warp(int64_t rows) {
    for (int r = 4; r > 1; r /= 2) {
        if ((rows + kWarps * r - 1) / (kWarps * r) >= 264) return r;
    }
    return 1;
}

std::atomic<int> g_rows_short{-1};  // -1: not yet read from the environment

}  // namespace

bool bf16_gemv_short_rows() {
    int v = g_rows_short.load(std::memory_order_relaxed);
    if (v < 0) {
        const char* e = std::getenv("DSA_BF16_GEMV_SHORT");
        v = e == nullptr || std::strcmp(e, "0") != 0 ? 1 : 0;
        g_rows_short.store(v, std::memory_order_relaxed);
    }
    return v == 1;
}

void set_bf16_gemv_short_rows(bool on) { g_rows_short.store(on ? 1 : 0, std::memory_order_relaxed); }

namespace {

template <int R>
void launch_rows_short_r(const Bf16GemvParams& p, cudaStream_t stream) {
    const dim3 grid(static_cast<unsigned>((p.batch * p.n + kWarps * R - 1) / (kWarps * R)));
    if (p.m == 1) {
        host::launch_pdl(bf16_gemv_rows_short_kernel<1, R>, grid, dim3(kThreads), 0, stream, p);
    } else if (p.m <= 2) {
        host::launch_pdl(bf16_gemv_rows_short_kernel<2, R>, grid, dim3(kThreads), 0, stream, p);
    } else if (p.m <= 4) {
        host::launch_pdl(bf16_gemv_rows_short_kernel<4, R>, grid, dim3(kThreads), 0, stream, p);
    } else {
        host::launch_pdl(bf16_gemv_rows_short_kernel<8, R>, grid, dim3(kThreads), 0, stream, p);
    }
}

void launch_rows_short(const Bf16GemvParams& p, int r, cudaStream_t stream) {
    if (r == 4) {
        launch_rows_short_r<4>(p, stream);
    } else {
        launch_rows_short_r<2>(p, stream);
    }
}

}  // namespace

bool bf16_gemv_rows_supported(const Bf16GemvParams& p) { return common_supported(p) && aligned_elems(p.k); }

bool bf16_gemv_cols_supported(const Bf16GemvParams& p) {
    return common_supported(p) && aligned_elems(p.n) && p.k <= kColsMaxK && aligned_elems(p.ldy) &&
           aligned_elems(p.y_batch_stride);
}

void launch_bf16_gemv_rows(const Bf16GemvParams& p, cudaStream_t stream) {
    DSA_CHECK(bf16_gemv_rows_supported(p)) << "bf16 gemv (rows): unsupported shape or alignment";
    if (bf16_gemv_short_rows() && p.k <= kShortMaxK) {
        const int r = short_rows_per_warp(p.batch * p.n);
        if (r > 1) {
            launch_rows_short(p, r, stream);
            return;
        }
    }
    const int wpr = rows_warps_per_row(p);
    const int64_t rows_per_cta = kWarps / wpr;
    const dim3 grid(static_cast<unsigned>((p.batch * p.n + rows_per_cta - 1) / rows_per_cta));
    if (p.m == 1) {
        host::launch_pdl(bf16_gemv_rows_kernel<1>, grid, dim3(kThreads), 0, stream, p, wpr);
    } else if (p.m <= 2) {
        host::launch_pdl(bf16_gemv_rows_kernel<2>, grid, dim3(kThreads), 0, stream, p, wpr);
    } else if (p.m <= 4) {
        host::launch_pdl(bf16_gemv_rows_kernel<4>, grid, dim3(kThreads), 0, stream, p, wpr);
    } else {
        host::launch_pdl(bf16_gemv_rows_kernel<8>, grid, dim3(kThreads), 0, stream, p, wpr);
    }
}

void launch_bf16_gemv_cols(const Bf16GemvParams& p, cudaStream_t stream) {
    DSA_CHECK(bf16_gemv_cols_supported(p)) << "bf16 gemv (columns): unsupported shape or alignment";
    const dim3 grid(static_cast<unsigned>((p.n + kColsPerCta - 1) / kColsPerCta), static_cast<unsigned>(p.batch));
    if (p.m == 1) {
        host::launch_pdl(bf16_gemv_cols_kernel<1>, grid, dim3(kColThreads), 0, stream, p);
    } else if (p.m <= 2) {
        host::launch_pdl(bf16_gemv_cols_kernel<2>, grid, dim3(kColThreads), 0, stream, p);
    } else if (p.m <= 4) {
        host::launch_pdl(bf16_gemv_cols_kernel<4>, grid, dim3(kColThreads), 0, stream, p);
    } else {
        host::launch_pdl(bf16_gemv_cols_kernel<8>, grid, dim3(kColThreads), 0, stream, p);
    }
}

}  // namespace dsa::backend::cuda
