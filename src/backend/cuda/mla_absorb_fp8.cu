// FP8 MLA absorb kernels (see mla_absorb_fp8.h): bf16 mma.sync m16n8k16 with the e4m3 weights converted to bf16
// in registers (exact) and the tokens padded to MT x 16 rows. A CTA is one head x 32 * NG output columns; its
// warps split the reduction into slices inside one 128x128 scale block (absorb_q: 32 weight rows, absorb_o: 128
// weight columns), scale their FP32 partial sums and add them through shared memory in slice order (fixed order:
// repeatable bits). Each lane loads its weight bytes straight into registers before the PDL wait (weights are never
// written by kernels); the reduction index k is permuted the same way in both operands, so every lane's fragments
// come from contiguous bytes (absorb_q: 4 columns x 8 rows, absorb_o: 16 columns x 4 rows per k64 chunk).
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/mla_absorb_fp8.h"
#include "backend/cuda/mma_util.cuh"
#include "backend/cuda/pdl.cuh"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {

constexpr int kLatent = 512;
constexpr int kMaxWarps = 8;
constexpr int kNT = 4;                        // absorb_o's n8 tiles per warp (absorb_q: 4 or 8)
constexpr int kQSlice = 32;                   // absorb_q: weight rows per warp slice
constexpr int kOSlice = 128;                  // absorb_o: weight columns per warp slice (one scale block)
constexpr int kRedBytesPerTile = 16 * 8 * 4;  // one warp's partial sums per m16n8 tile
constexpr int kMaxSmem = 48 * 1024;

__device__ __forceinline__ void load_weight8(const uint8_t* p, uint32_t (&v)[2]) {
    asm volatile("ld.global.nc.L1::no_allocate.v2.u32 {%0, %1}, [%2];" : "=r"(v[0]), "=r"(v[1]) : "l"(p));
}

__device__ __forceinline__ uint32_t load_weight4(const uint8_t* p) {
    uint32_t v;
    asm volatile("ld.global.nc.L1::no_allocate.u32 %0, [%1];" : "=r"(v) : "l"(p));
    return v;
}

// Two e4m3 codes (low byte first) -> two bf16 (low half first); exact: e4m3 -> f16 -> f32 -> bf16 loses nothing.
__device__ __forceinline__ uint32_t e4m3x2_to_bf16x2(uint32_t pair) {
    const __half2_raw h2 = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(pair & 0xffffu), __NV_E4M3);
    const float2 f = __half22float2(__half2(h2));
    return pack_bf16x2(f.x, f.y);
}

// 8 bf16 of an activation row (16 bytes at p), zeros for a padding row.
__device__ __forceinline__ uint4 load_act16(const uint16_t* p, bool valid) {
    return valid ? __ldg(reinterpret_cast<const uint4*>(p)) : make_uint4(0, 0, 0, 0);
}

template <int MT, int NT>
__device__ __forceinline__ void scale_acc(float (&acc)[MT][NT][4], float s) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int r = 0; r < 4; ++r) acc[mt][j][r] *= s;
}

// Slices 1.. store their scaled partials; slice 0 adds them in slice order. red: (slices - 1) regions per n-group,
// element e of lane l at [e * 32 + l] (conflict free).
template <int MT, int NT>
__device__ __forceinline__ void reduce_slices(float (&acc)[MT][NT][4], float* red, int slice, int slices, int lane) {
    constexpr int kElems = MT * NT * 4;
    if (slice > 0) {
        float* mine = red + (slice - 1) * kElems * 32;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int j = 0; j < NT; ++j)
#pragma unroll
                for (int r = 0; r < 4; ++r) mine[((mt * NT + j) * 4 + r) * 32 + lane] = acc[mt][j][r];
    }
    __syncthreads();
    if (slice != 0) return;
    for (int s = 1; s < slices; ++s) {
        const float* theirs = red + (s - 1) * kElems * 32;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int j = 0; j < NT; ++j)
#pragma unroll
                for (int r = 0; r < 4; ++r) acc[mt][j][r] += theirs[((mt * NT + j) * 4 + r) * 32 + lane];
    }
}

// absorb_q. Warp slice s covers weight rows h*B + 32s + [0, 32) and 8 NT columns n0 + [0, 8 NT). Lane (g, q)
// loads rows 32s + 8q + [0, 8) at columns n0 + NT g + [0, NT): k16 step u uses rows 8q + 4u + {0,1} (b0) and
// {2,3} (b1); n tile j takes byte j, so its column c (= g) is n0 + NT c + j. Grid (512 / (8 NT NG), H, token tile
// groups), block 32 x S x NG.
template <int MT, int NT>
__global__ void __launch_bounds__(kMaxWarps * 32) absorb_q_fp8_kernel(AbsorbFp8Params p, int ngroups) {
    static_assert(NT == 4 || NT == 8);
    extern __shared__ float red[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, q = lane & 3;
    const int slices = static_cast<int>(p.nope_dim / kQSlice), slice = warp % slices, ng = warp / slices;
    const int64_t h = blockIdx.y, block = p.nope_dim + p.v_dim;
    const int n0 = (blockIdx.x * ngroups + ng) * (NT * 8);
    const int64_t m0 = static_cast<int64_t>(blockIdx.z) * MT * 16;
    const int64_t row0 = h * block + slice * kQSlice;
    const uint8_t* wp = p.w + (row0 + 8 * q) * kLatent + n0 + NT * g;
    uint32_t wv[8][NT / 4];
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        if constexpr (NT == 4) {
            wv[i][0] = load_weight4(wp + i * kLatent);
        } else {
            load_weight8(wp + i * kLatent, wv[i]);
        }
    }
    const float scale = __ldg(p.w_scale + (row0 / 128) * p.scale_ld + n0 / 128);
    pdl_wait();
    pdl_trigger();
    uint4 av[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
            const int64_t m = m0 + mt * 16 + hf * 8 + g;
            av[mt][hf] = load_act16(p.x + (m * p.heads + h) * p.nope_dim + slice * kQSlice + 8 * q, m < p.tokens);
        }
    float acc[MT][NT][4] = {};
#pragma unroll
    for (int u = 0; u < 2; ++u) {
#pragma unroll
        for (int j = 0; j < NT; ++j) {
            const int word = j / 4, byte = j % 4;
            const uint32_t sel01 = static_cast<uint32_t>(byte) | static_cast<uint32_t>(4 + byte) << 4;
            const uint32_t b0 = e4m3x2_to_bf16x2(__byte_perm(wv[4 * u][word], wv[4 * u + 1][word], sel01));
            const uint32_t b1 = e4m3x2_to_bf16x2(__byte_perm(wv[4 * u + 2][word], wv[4 * u + 3][word], sel01));
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                const uint32_t* lo = reinterpret_cast<const uint32_t*>(&av[mt][0]);
                const uint32_t* hi = reinterpret_cast<const uint32_t*>(&av[mt][1]);
                const uint32_t a[4] = {lo[2 * u], hi[2 * u], lo[2 * u + 1], hi[2 * u + 1]};
                mma_bf16(acc[mt][j], a, b0, b1);
            }
        }
    }
    scale_acc<MT, NT>(acc, scale);
    reduce_slices<MT, NT>(acc, red + ng * (slices - 1) * MT * NT * 4 * 32, slice, slices, lane);
    // Lane (g, q) holds columns n0 + 2NT q + [0, 2NT) of rows g and g + 8: tile j's c0/c2 at 2NT q + j, c1/c3 at
    // 2NT q + NT + j.
    if (slice != 0) return;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
            const int64_t m = m0 + mt * 16 + hf * 8 + g;
            if (m >= p.tokens) continue;
            uint32_t o[NT];
#pragma unroll
            for (int i = 0; i < NT; ++i) {
                const int c = i < NT / 2 ? 2 * hf : 2 * hf + 1, j = 2 * (i % (NT / 2));
                o[i] = pack_bf16x2(acc[mt][j][c], acc[mt][j + 1][c]);
            }
            uint4* dst = reinterpret_cast<uint4*>(p.y + (m * p.heads + h) * kLatent + n0 + 2 * NT * q);
#pragma unroll
            for (int v = 0; v < NT / 4; ++v) dst[v] = make_uint4(o[4 * v], o[4 * v + 1], o[4 * v + 2], o[4 * v + 3]);
        }
    }
}

// absorb_o. Warp slice s covers weight columns 128s + [0, 128) of the 32 rows h*B + d_n + n0 + [0, 32). Lane
// (g, q) loads, per k64 chunk c and n tile j, row n0 + 8j + g at columns 128s + 64c + 16q + [0, 16): k16 step u
// uses bytes 4u + {0,1} (b0) and {2,3} (b1). Grid (d_v / (32 NG), H), block 32 x 4 x NG.
template <int MT>
__global__ void __launch_bounds__(kMaxWarps * 32) absorb_o_fp8_kernel(AbsorbFp8Params p, int ngroups) {
    extern __shared__ float red[];
    constexpr int slices = kLatent / kOSlice;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, q = lane & 3;
    const int slice = warp % slices, ng = warp / slices;
    const int64_t h = blockIdx.y, block = p.nope_dim + p.v_dim;
    const int n0 = (blockIdx.x * ngroups + ng) * (kNT * 8);
    const int64_t m0 = static_cast<int64_t>(blockIdx.z) * MT * 16;
    const int64_t row0 = h * block + p.nope_dim + n0;
    const int k0 = slice * kOSlice;
    uint4 wv[2][kNT];
#pragma unroll
    for (int c = 0; c < 2; ++c)
#pragma unroll
        for (int j = 0; j < kNT; ++j)
            wv[c][j] = load_stream16(p.w + (row0 + 8 * j + g) * kLatent + k0 + 64 * c + 16 * q);
    const float scale = __ldg(p.w_scale + (row0 / 128) * p.scale_ld + k0 / 128);
    pdl_wait();
    pdl_trigger();
    float acc[MT][kNT][4] = {};
#pragma unroll
    for (int c = 0; c < 2; ++c) {
        uint4 av[MT][2][2];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
                const int64_t m = m0 + mt * 16 + hf * 8 + g;
                const uint16_t* xp = p.x + (m * p.heads + h) * kLatent + k0 + 64 * c + 16 * q;
                av[mt][hf][0] = load_act16(xp, m < p.tokens);
                av[mt][hf][1] = load_act16(xp + 8, m < p.tokens);
            }
#pragma unroll
        for (int u = 0; u < 4; ++u) {
#pragma unroll
            for (int j = 0; j < kNT; ++j) {
                const uint32_t word = reinterpret_cast<const uint32_t*>(&wv[c][j])[u];
                const uint32_t b0 = e4m3x2_to_bf16x2(word), b1 = e4m3x2_to_bf16x2(word >> 16);
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    // Step u's k values 16q + 4u + [0, 4) are words 2u, 2u + 1 of the row's 32 bytes.
                    const uint32_t* lo = reinterpret_cast<const uint32_t*>(&av[mt][0][u / 2]);
                    const uint32_t* hi = reinterpret_cast<const uint32_t*>(&av[mt][1][u / 2]);
                    const int w0 = (2 * u) % 4;
                    const uint32_t a[4] = {lo[w0], hi[w0], lo[w0 + 1], hi[w0 + 1]};
                    mma_bf16(acc[mt][j], a, b0, b1);
                }
            }
        }
    }
    scale_acc<MT, kNT>(acc, scale);
    reduce_slices<MT, kNT>(acc, red + ng * (slices - 1) * MT * kNT * 4 * 32, slice, slices, lane);
    // Lane (g, q) holds columns n0 + 8j + 2q + {0, 1} of rows g (c0, c1) and g + 8 (c2, c3).
    if (slice != 0) return;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
            const int64_t m = m0 + mt * 16 + hf * 8 + g;
            if (m >= p.tokens) continue;
            uint16_t* yp = p.y + (m * p.heads + h) * p.v_dim + n0 + 2 * q;
#pragma unroll
            for (int j = 0; j < kNT; ++j) {
                *reinterpret_cast<uint32_t*>(yp + 8 * j) = pack_bf16x2(acc[mt][j][2 * hf], acc[mt][j][2 * hf + 1]);
            }
        }
    }
}

bool common_supported(const AbsorbFp8Params& p) {
    return p.tokens >= 1 && p.tokens <= kAbsorbFp8MaxTokens && p.heads >= 1 && p.heads <= 65535 && p.nope_dim > 0 &&
           p.v_dim > 0 && p.nope_dim % 32 == 0 && p.v_dim % 32 == 0 && p.scale_ld >= kLatent / 128 &&
           host::aligned16(p.x) && host::aligned16(p.w) && host::aligned16(p.y) && p.w_scale != nullptr;
}

int mtiles(int64_t tokens) { return static_cast<int>((tokens + 15) / 16); }

std::atomic<int> g_max_mtiles{0}, g_ngroups{0}, g_q_cols{0};  // set_absorb_fp8_tuning; 0: default
// Defaults from the H200 round (absorb_bench, DeepSeek-V3.2 shape): one 32-column group per CTA was faster at every
// B (e.g. B = 1 absorb_q 5.45 vs 5.78 us with two), and at most 2 m16 token tiles per CTA from 33 tokens on (the
// rest along grid z; B = 64 absorb_o 10.0 vs 11.1 us with 4 per CTA; equal at B = 32).
constexpr int kDefaultMaxMtiles = 2, kDefaultNgroups = 1;

// m16 tiles per CTA: all of the tokens' up to the cap; the rest go to more CTAs along z.
int cta_mtiles(int64_t tokens) {
    const int all = mtiles(tokens), forced = g_max_mtiles.load(std::memory_order_relaxed);
    const int cap = forced > 0 ? forced : kDefaultMaxMtiles;
    return cap < all ? cap : all;
}

// Shared bytes of the slice reduction for `slices` warps per n-group, mt m16 tiles and nt n8 tiles per warp.
int red_bytes(int slices, int ngroups, int mt, int nt) { return (slices - 1) * ngroups * mt * nt * kRedBytesPerTile; }

bool ngroups_fit(int ng, int slices, int64_t columns, int mt, int nt) {
    return ng >= 1 && ng * slices <= kMaxWarps && columns % (8 * nt * ng) == 0 &&
           red_bytes(slices, ng, mt, nt) <= kMaxSmem;
}

// n-groups per CTA (more: a head's activations read by fewer CTAs): the forced or default count when it fits, else 1.
int pick_ngroups(int slices, int64_t columns, int mt, int nt) {
    const int forced = g_ngroups.load(std::memory_order_relaxed), ng = forced > 0 ? forced : kDefaultNgroups;
    return ngroups_fit(ng, slices, columns, mt, nt) ? ng : 1;
}

template <int MT, int NT>
void launch_q_nt(const AbsorbFp8Params& p, cudaStream_t stream) {
    const int slices = static_cast<int>(p.nope_dim / kQSlice), ng = pick_ngroups(slices, kLatent, MT, NT);
    const dim3 grid(kLatent / (8 * NT * ng), static_cast<unsigned>(p.heads), (mtiles(p.tokens) + MT - 1) / MT);
    host::launch_pdl(absorb_q_fp8_kernel<MT, NT>, grid, dim3(32 * slices * ng),
                     static_cast<size_t>(red_bytes(slices, ng, MT, NT)), stream, p, ng);
}

// absorb_q: 32 columns per warp, or 64 (8-byte weight loads) when asked and the reduction buffer fits.
template <int MT>
void launch_q(const AbsorbFp8Params& p, cudaStream_t stream) {
    const int slices = static_cast<int>(p.nope_dim / kQSlice);
    if (g_q_cols.load(std::memory_order_relaxed) == 64 && ngroups_fit(1, slices, kLatent, MT, 8)) {
        return launch_q_nt<MT, 8>(p, stream);
    }
    launch_q_nt<MT, 4>(p, stream);
}

template <int MT>
void launch_o(const AbsorbFp8Params& p, cudaStream_t stream) {
    constexpr int slices = kLatent / kOSlice;
    const int ng = pick_ngroups(slices, p.v_dim, MT, kNT);
    const dim3 grid(static_cast<unsigned>(p.v_dim / (32 * ng)), static_cast<unsigned>(p.heads),
                    (mtiles(p.tokens) + MT - 1) / MT);
    host::launch_pdl(absorb_o_fp8_kernel<MT>, grid, dim3(32 * slices * ng),
                     static_cast<size_t>(red_bytes(slices, ng, MT, kNT)), stream, p, ng);
}

}  // namespace

bool absorb_fp8_wanted(bool absorb_q, int64_t tokens) {
    const char* v = std::getenv("DSA_MLA_ABSORB");
    if (v == nullptr || *v == '\0' || std::strcmp(v, "auto") == 0) {
        return tokens <= (absorb_q ? kAbsorbQAutoTokens : kAbsorbFp8MaxTokens);
    }
    if (std::strcmp(v, "bf16") == 0) return false;
    DSA_CHECK(std::strcmp(v, "fp8") == 0) << "DSA_MLA_ABSORB must be 'auto', 'fp8' or 'bf16', not '" << v << "'";
    return true;
}

bool absorb_q_fp8_supported(const AbsorbFp8Params& p) {
    if (!common_supported(p)) return false;
    const int slices = static_cast<int>(p.nope_dim / kQSlice);
    return slices <= kMaxWarps && red_bytes(slices, 1, mtiles(p.tokens), kNT) <= kMaxSmem;
}

bool absorb_o_fp8_supported(const AbsorbFp8Params& p) { return common_supported(p); }

void set_absorb_fp8_tuning(int max_mtiles, int ngroups, int q_cols_per_warp) {
    g_max_mtiles.store(max_mtiles, std::memory_order_relaxed);
    g_ngroups.store(ngroups, std::memory_order_relaxed);
    g_q_cols.store(q_cols_per_warp, std::memory_order_relaxed);
}

void launch_absorb_q_fp8(const AbsorbFp8Params& p, cudaStream_t stream) {
    DSA_CHECK(absorb_q_fp8_supported(p)) << "absorb_q_fp8: unsupported shape (tokens " << p.tokens << ", d_n "
                                         << p.nope_dim << ", d_v " << p.v_dim << ")";
    switch (cta_mtiles(p.tokens)) {
        case 1:
            return launch_q<1>(p, stream);
        case 2:
            return launch_q<2>(p, stream);
        case 3:
            return launch_q<3>(p, stream);
        default:
            return launch_q<4>(p, stream);
    }
}

void launch_absorb_o_fp8(const AbsorbFp8Params& p, cudaStream_t stream) {
    DSA_CHECK(absorb_o_fp8_supported(p)) << "absorb_o_fp8: unsupported shape (tokens " << p.tokens << ", d_n "
                                         << p.nope_dim << ", d_v " << p.v_dim << ")";
    switch (cta_mtiles(p.tokens)) {
        case 1:
            return launch_o<1>(p, stream);
        case 2:
            return launch_o<2>(p, stream);
        case 3:
            return launch_o<3>(p, stream);
        default:
            return launch_o<4>(p, stream);
    }
}

}  // namespace dsa::backend::cuda
