// Fused decode-path kernels that replace chains of small launches: the MLA latent write (RMSNorm of c_kv, RoPE
// of k_pe and the KV-cache row write; one 64-thread block per token), the absorbed query (copy of the absorbed
// q_nope + RoPE of q_pe; one warp per head) and the indexer key write (LayerNorm, RoPE,
// Hadamard + act_quant and the page write; one warp per token). Each piece uses the same arithmetic in the same
// order as the kernel it replaces (norm_kernels.cu, elementwise_kernels.cu, the MLA and indexer key writes), with
// the shared rules of act_quant.cuh / fused_hadamard.cuh, so the stored bytes are identical. Launched with PDL.
#include "backend/cuda/act_quant.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/fused_hadamard.cuh"
#include "backend/cuda/indexer_common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/pdl.cuh"
#include "base/check.h"

namespace dsa::backend::cuda {
namespace {

constexpr int kLatent = 512, kRope = 64, kHalf = kRope / 2, kTile = 128;
constexpr int kLatentThreads = kLatent / 8;  // 64: 8 c_kv values per thread, 16 threads per FP8 tile
constexpr int64_t kMlaFp8Row = 656, kMlaFp8Scales = 512, kMlaFp8Rope = 528, kMlaBf16Row = 1152;  // row layouts

// c_kv slice of this thread (8 values at column 8 * threadIdx.x) -> its row: bf16 copy or e4m3 tile codes + scale.
__device__ __forceinline__ void store_latent(const MlaLatentWriteKernelParams& p, uint8_t* row, const float (&v)[8]) {
    const int i = threadIdx.x * 8;
    if (!p.fp8) {
        store_bf16<8>(reinterpret_cast<uint16_t*>(row) + i, v);
        return;
    }
    float amax = 0.0f;
#pragma unroll
    for (int j = 0; j < 8; ++j) amax = fmaxf(amax, fabsf(v[j]));
    const float s = mla_kv_tile_scale(half_warp_max(amax));
    uint8_t q[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) q[j] = mla_kv_tile_code(v[j], s);
    *reinterpret_cast<uint2*>(row + i) = pack_e4m3x8(q);
    if ((threadIdx.x & 15) == 0) reinterpret_cast<float*>(row + kMlaFp8Scales)[i / kTile] = s;
}

// Rotation pair threadIdx.x (< 32) of k_pe into the row's rope part.
__device__ __forceinline__ void store_rope(const MlaLatentWriteKernelParams& p, const uint16_t* pe, int64_t pos,
                                           uint16_t* dst) {
    const int i = threadIdx.x;
    const float c = p.cos[pos * kHalf + i], s = p.sin[pos * kHalf + i];
    const int ia = p.interleaved ? 2 * i : i, ib = p.interleaved ? 2 * i + 1 : i + kHalf;
    float ra, rb;
    rope_rotate(bf16_bits_to_f32(pe[ia]), bf16_bits_to_f32(pe[ib]), c, s, ra, rb);
    dst[ia] = f32_to_bf16_bits(ra);
    dst[ib] = f32_to_bf16_bits(rb);
}

__global__ void __launch_bounds__(kLatentThreads) mla_latent_write_kernel(MlaLatentWriteKernelParams p) {
    pdl_trigger();
    const int i = threadIdx.x * 8;
    float w[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) w[j] = p.weight[i + j];  // a parameter: no earlier kernel writes it
    pdl_wait();  // kv_a, positions and slots come from earlier kernels; the store is written below
    const int64_t tok = blockIdx.x;
    const int64_t slot = p.slots[tok];
    if (slot < 0) return;  // block-uniform
    const int64_t pos = p.positions[tok];
    if (slot >= p.num_slots || pos < 0 || pos >= p.max_positions) __trap();  // broken invariant (device data)
    const uint16_t* x = p.kv_a + tok * (kLatent + kRope);
    float v[8];
    load_bf16<8>(x + i, v);
    float ss = 0.0f;
#pragma unroll
    for (int j = 0; j < 8; ++j) ss += v[j] * v[j];
    ss = block_sum(ss);
    const float inv = 1.0f / sqrtf(ss / static_cast<float>(kLatent) + p.eps);
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = round_bf16(w[j] * (v[j] * inv));  // the bf16 c_kv rms_norm stores
    uint8_t* row = p.store + slot * (p.fp8 ? kMlaFp8Row : kMlaBf16Row);
    store_latent(p, row, v);
    if (threadIdx.x < kHalf) {
        uint16_t* rope = reinterpret_cast<uint16_t*>(row + (p.fp8 ? kMlaFp8Rope : kLatent * 2));
        store_rope(p, x + kLatent, pos, rope);
    }
}

// ---- absorbed MLA query: one warp per (token, head) row ----

__global__ void mla_query_kernel(MlaQueryKernelParams p) {
    pdl_trigger();
    pdl_wait();  // every input comes from earlier kernels
    const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (row >= p.rows) return;  // whole warps
    const int64_t pos = p.positions[row / p.heads];
    if (pos < 0 || pos >= p.max_positions) __trap();  // broken invariant (device data)
    const uint4* src = reinterpret_cast<const uint4*>(p.q_absorbed + row * kLatent);
    uint4* dst = reinterpret_cast<uint4*>(p.out + row * (kLatent + kRope));
    dst[lane] = src[lane];
    dst[lane + 32] = src[lane + 32];
    const uint16_t* pe = p.q + row * p.q_dim + p.q_dim - kRope;
    const int ia = p.interleaved ? 2 * lane : lane, ib = p.interleaved ? 2 * lane + 1 : lane + kHalf;
    float ra, rb;
    rope_rotate(bf16_bits_to_f32(pe[ia]), bf16_bits_to_f32(pe[ib]), p.cos[pos * kHalf + lane],
                p.sin[pos * kHalf + lane], ra, rb);
    uint16_t* rope = p.out + row * (kLatent + kRope) + kLatent;
    rope[ia] = f32_to_bf16_bits(ra);
    rope[ib] = f32_to_bf16_bits(rb);
}

// ---- indexer key: lane l holds elements 4l .. 4l+3 ----

// The layer_norm kernel's block sum at width 128: 16 threads of 8 elements, each summed in order, then the
// warp butterfly. Here lane 2t holds the first 4 of thread t's elements and lane 2t+1 the last 4.
template <typename Term>
__device__ __forceinline__ float layer_norm_sum128(const float (&v)[4], int lane, Term term) {
    float a = 0.0f;
#pragma unroll
    for (int j = 0; j < 4; ++j) a += term(v[j]);
    float b = __shfl_sync(0xffffffffu, a, lane & ~1);  // the even lane's partial continues on the odd lane
#pragma unroll
    for (int j = 0; j < 4; ++j) b += term(v[j]);
    float t = __shfl_sync(0xffffffffu, b, (2 * lane + 1) & 31);  // thread t's partial -> lane t
    return warp_sum(lane < 16 ? t : 0.0f);
}

// bf16 LayerNorm of the warp's 128-vector (the layer_norm kernel's expressions).
__device__ __forceinline__ void layer_norm128(const IndexerKeyWriteKernelParams& p, float (&v)[4], int lane,
                                              const float (&w)[4], const float (&b)[4]) {
    const float mean = layer_norm_sum128(v, lane, [](float x) { return x; }) / 128.0f;
    const float var = layer_norm_sum128(v, lane, [mean](float x) { return (x - mean) * (x - mean); });
    const float inv = 1.0f / sqrtf(var / 128.0f + p.eps);
#pragma unroll
    for (int j = 0; j < 4; ++j) v[j] = round_bf16((v[j] - mean) * inv * w[j] + b[j]);
}

__global__ void indexer_key_write_kernel(IndexerKeyWriteKernelParams p) {
    pdl_trigger();
    const int lane = threadIdx.x & 31;
    float w[4], b[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) w[j] = p.weight[4 * lane + j], b[j] = p.bias[4 * lane + j];  // parameters
    pdl_wait();  // wk_x, positions and slots come from earlier kernels; the pages are written below
    const int64_t tok = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
    if (tok >= p.num_tokens) return;  // whole warps
    const int64_t slot = p.slots[tok];
    if (slot < 0) return;  // whole warp
    const int64_t pos = p.positions[tok];
    if (slot >= p.num_slots || pos < 0 || pos >= p.max_positions) __trap();  // broken invariant (device data)
    float v[4];
    load4_bf16(p.wk_x + tok * kDim + lane * 4, v);
    layer_norm128(p, v, lane, w, b);
    rope64_lanes(v, lane, p.cos + pos * kHalf, p.sin + pos * kHalf, p.interleaved);
    store_indexer_key(p.pages, slot, lane, v, p.fp8, p.hadamard_scale, p.ue8m0);
}

}  // namespace

void launch_indexer_key_write(const IndexerKeyWriteKernelParams& p, cudaStream_t stream) {
    if (p.num_tokens == 0) return;
    DSA_CHECK(host::aligned16(p.wk_x) && host::aligned16(p.pages))
        << "indexer_key_write buffers must be 16-byte aligned";
    constexpr int kThreads = 128;
    const int64_t blocks = (p.num_tokens * 32 + kThreads - 1) / kThreads;
    DSA_CHECK(blocks <= 0x7fffffff) << "indexer_key_write of " << p.num_tokens << " tokens";
    host::launch_pdl(indexer_key_write_kernel, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0, stream, p);
    DSA_CUDA_CHECK_LAUNCH(indexer_key_write_kernel);
}

void launch_mla_query(const MlaQueryKernelParams& p, cudaStream_t stream) {
    if (p.rows == 0) return;
    DSA_CHECK(host::aligned16(p.q_absorbed) && host::aligned16(p.out)) << "mla_query buffers must be 16-byte aligned";
    DSA_CHECK(p.heads > 0 && p.rows % p.heads == 0 && p.q_dim >= kRope)
        << "mla_query: " << p.rows << " rows of " << p.heads << " heads, q dim " << p.q_dim;
    constexpr int kThreads = 256;
    const int64_t blocks = (p.rows * 32 + kThreads - 1) / kThreads;
    DSA_CHECK(blocks <= 0x7fffffff) << "mla_query of " << p.rows << " rows";
    host::launch_pdl(mla_query_kernel, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0, stream, p);
    DSA_CUDA_CHECK_LAUNCH(mla_query_kernel);
}

void launch_mla_latent_write(const MlaLatentWriteKernelParams& p, cudaStream_t stream) {
    if (p.num_tokens == 0) return;
    DSA_CHECK(host::aligned16(p.kv_a) && host::aligned16(p.store))
        << "mla_latent_write buffers must be 16-byte aligned";
    DSA_CHECK(p.num_tokens <= 0x7fffffff) << "mla_latent_write of " << p.num_tokens << " tokens";
    host::launch_pdl(mla_latent_write_kernel, dim3(static_cast<unsigned>(p.num_tokens)), dim3(kLatentThreads), 0,
                     stream, p);
    DSA_CUDA_CHECK_LAUNCH(mla_latent_write_kernel);
}

}  // namespace dsa::backend::cuda
