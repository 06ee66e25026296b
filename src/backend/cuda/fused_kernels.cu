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
#include "backend/cuda/norm_row.cuh"
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

// The latent write of token `tok` by a block of kLatentThreads or more threads (the extra warps only take part in
// the block sum, with zeros: the same sum). pdl_wait inside, after the parameter loads.
__device__ __forceinline__ void latent_write_block(const MlaLatentWriteKernelParams& p, int64_t tok) {
    const bool active = threadIdx.x < kLatentThreads;  // whole warps
    const int i = active ? threadIdx.x * 8 : 0;
    float w[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) w[j] = p.weight[i + j];  // a parameter: no earlier kernel writes it
    pdl_wait();  // kv_a, positions and slots come from earlier kernels; the store is written below
    const int64_t slot = p.slots[tok];
    if (slot < 0) return;  // block-uniform
    const int64_t pos = p.positions[tok];
    if (slot >= p.num_slots || pos < 0 || pos >= p.max_positions) __trap();  // broken invariant (device data)
    const uint16_t* x = p.kv_a + tok * (kLatent + kRope);
    float v[8] = {};
    if (active) load_bf16<8>(x + i, v);
    float ss = 0.0f;
#pragma unroll
    for (int j = 0; j < 8; ++j) ss += v[j] * v[j];
    ss = block_sum(ss);
    if (!active) return;
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

__global__ void __launch_bounds__(kLatentThreads) mla_latent_write_kernel(MlaLatentWriteKernelParams p) {
    pdl_trigger();
    latent_write_block(p, blockIdx.x);
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

// The key write of the warp's token: warp `first_warp + threadIdx.x / 32` of the launch's key part. pdl_wait
// inside, after the parameter loads.
__device__ __forceinline__ void key_write_warp(const IndexerKeyWriteKernelParams& p, int64_t first_warp) {
    const int lane = threadIdx.x & 31;
    float w[4], b[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) w[j] = p.weight[4 * lane + j], b[j] = p.bias[4 * lane + j];  // parameters
    pdl_wait();  // wk_x, positions and slots come from earlier kernels; the pages are written below
    const int64_t tok = first_warp + (threadIdx.x >> 5);
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

__global__ void indexer_key_write_kernel(IndexerKeyWriteKernelParams p) {
    pdl_trigger();
    key_write_warp(p, static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5));
}

// ---- the q_a RMSNorm (+ act_quant) with the latent and key writes: one launch, a role per block ----

// Blocks [0, norm rows): norm_row's one-pass row (the rms_norm kernel's code at >= its thread count: the extra
// warps add zeros to the block sum); then one block per latent token; then the key writes, a warp per token.
__global__ void decode_writes_kernel(DecodeWritesKernelParams p, int latent_blocks) {
    pdl_trigger();
    const int64_t b = blockIdx.x, norm_blocks = p.norm.rows;
    if (b < norm_blocks) {
        pdl_wait();  // PDL: nothing is read or written before the previous kernel is done
        const RmsNormParams& n = p.norm;
        norm_row::rms_norm_row_in_registers<8>(n, n.residual + b * n.dim, nullptr, n.out + b * n.dim, b);
    } else if (b < norm_blocks + latent_blocks) {
        latent_write_block(p.latent, b - norm_blocks);
    } else {
        key_write_warp(p.key, (b - norm_blocks - latent_blocks) * (blockDim.x >> 5));
    }
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

// Threads per block: the rms_norm kernel's one-pass count for the row (dim / 8 rounded up to warps), at least the
// latent write's 64.
int decode_writes_threads(const DecodeWritesKernelParams& p) {
    const int64_t t = (p.norm.dim / 8 + 31) / 32 * 32;
    return static_cast<int>(t < kLatentThreads ? kLatentThreads : t);
}

bool decode_writes_supported(const DecodeWritesKernelParams& p) {
    const RmsNormParams& n = p.norm;
    return n.rows >= 1 && n.delta == nullptr && n.dim % 8 == 0 && n.dim <= 1024 * 8 && host::aligned16(n.residual) &&
           host::aligned16(n.out) && (n.q8 == nullptr || (n.q8_scales != nullptr && rms_norm_quant_supported(n))) &&
           p.latent.num_tokens >= 1 && host::aligned16(p.latent.kv_a) && host::aligned16(p.latent.store) &&
           (p.key.num_tokens == 0 || (host::aligned16(p.key.wk_x) && host::aligned16(p.key.pages)));
}

void launch_decode_writes(const DecodeWritesKernelParams& p, cudaStream_t stream) {
    DSA_CHECK(decode_writes_supported(p)) << "decode_writes: unsupported (norm dim " << p.norm.dim << ")";
    const int threads = decode_writes_threads(p);
    const int64_t key_blocks = (p.key.num_tokens + threads / 32 - 1) / (threads / 32);
    const int64_t blocks = p.norm.rows + p.latent.num_tokens + key_blocks;
    DSA_CHECK(blocks <= 0x7fffffff) << "decode_writes of " << blocks << " blocks";
    host::launch_pdl(decode_writes_kernel, dim3(static_cast<unsigned>(blocks)), dim3(threads), 0, stream, p,
                     static_cast<int>(p.latent.num_tokens));
    DSA_CUDA_CHECK_LAUNCH(decode_writes_kernel);
}

}  // namespace dsa::backend::cuda
