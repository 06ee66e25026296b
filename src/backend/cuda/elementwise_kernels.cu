// Memory-bound elementwise kernels of the CUDA backend: embedding gather, bf16 add, the fused SwiGLU product,
// bf16 <-> f32 conversion, and RoPE (interleaved and NeoX, a sub-range of each head, f32 cos/sin table).
// Arithmetic is FP32 with one bf16 rounding per output, as in the CPU reference. 16-byte accesses where the
// launcher finds the sizes and pointers aligned; a scalar variant otherwise.
// Decode-path kernels are launched with PDL (pdl.cuh): each lets the next kernel start, then waits first thing.
#include "backend/cuda/act_quant.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/pdl.cuh"

namespace dsa::backend::cuda {
namespace {

constexpr int kThreads = 256;

template <int VEC, bool kTableF32>
__global__ void embedding_kernel(EmbeddingParams p) {
    pdl_trigger();
    pdl_wait();  // PDL: nothing is read or written before the previous kernel is done
    const int64_t t = blockIdx.x;
    const int64_t id = p.ids[t];
    if (id < 0 || id >= p.vocab) __trap();  // broken invariant: ids are checked on the host when they live there
    uint16_t* y = p.out + t * p.dim;
    for (int64_t i = threadIdx.x * VEC; i < p.dim; i += blockDim.x * VEC) {
        float v[VEC];
        if constexpr (kTableF32) {
            const float* row = static_cast<const float*>(p.table) + id * p.dim + i;
#pragma unroll
            for (int j = 0; j < VEC; ++j) v[j] = row[j];
        } else {
            load_bf16<VEC>(static_cast<const uint16_t*>(p.table) + id * p.dim + i, v);
        }
        store_bf16<VEC>(y + i, v);
    }
}

template <int VEC>
__global__ void add_kernel(AddParams p) {
    pdl_trigger();
    pdl_wait();  // PDL: nothing is read or written before the previous kernel is done
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x * VEC;
    for (int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * VEC; i < p.n; i += stride) {
        float a[VEC], b[VEC];
        load_bf16<VEC>(p.a + i, a);
        load_bf16<VEC>(p.b + i, b);
#pragma unroll
        for (int j = 0; j < VEC; ++j) a[j] += b[j];
        store_bf16<VEC>(p.out + i, a);
    }
}

template <int VEC>
__global__ void swiglu_kernel(SwigluParams p) {
    pdl_trigger();
    pdl_wait();  // PDL: nothing is read or written before the previous kernel is done
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x * VEC;
    for (int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * VEC; i < p.n; i += stride) {
        float g[VEC], u[VEC];
        load_bf16<VEC>(p.gate + i, g);
        load_bf16<VEC>(p.up + i, u);
#pragma unroll
        for (int j = 0; j < VEC; ++j) g[j] = g[j] / (1.0f + expf(-g[j])) * u[j];
        store_bf16<VEC>(p.out + i, g);
    }
}

template <int VEC>
__global__ void bf16_to_f32_kernel(Bf16ToF32Params p) {
    pdl_trigger();
    pdl_wait();  // PDL: nothing is read or written before the previous kernel is done
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x * VEC;
    for (int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * VEC; i < p.n; i += stride) {
        float v[VEC];
        load_bf16<VEC>(p.in + i, v);
#pragma unroll
        for (int j = 0; j < VEC; ++j) p.out[i + j] = v[j];
    }
}

__global__ void f32_to_bf16_kernel(F32ToBf16Params p) {
    pdl_trigger();
    pdl_wait();  // PDL: nothing is read or written before the previous kernel is done
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n; i += stride) {
        p.out[i] = f32_to_bf16_bits(p.in[i]);
    }
}

// One thread per (token, head, rotation pair).
__global__ void rope_kernel(RopeKernelParams p) {
    pdl_trigger();
    pdl_wait();  // PDL: nothing is read or written before the previous kernel is done
    const int64_t total = p.num_tokens * p.num_heads * p.half;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int64_t i = idx % p.half;
        const int64_t th = idx / p.half;  // token * num_heads + head
        const int64_t t = th / p.num_heads;
        const int64_t pos = p.positions[t];
        if (pos < 0 || pos >= p.max_positions) __trap();  // broken invariant (checked on the host for host data)
        const float c = p.cos[pos * p.half + i], s = p.sin[pos * p.half + i];
        uint16_t* x = p.x + th * p.head_dim + p.dim_offset;
        const int64_t ia = p.interleaved ? 2 * i : i;
        const int64_t ib = p.interleaved ? 2 * i + 1 : i + p.half;
        const float a = bf16_bits_to_f32(x[ia]), b = bf16_bits_to_f32(x[ib]);
        float ra, rb;
        rope_rotate(a, b, c, s, ra, rb);
        x[ia] = f32_to_bf16_bits(ra);
        x[ib] = f32_to_bf16_bits(rb);
    }
}

}  // namespace

void launch_embedding(const EmbeddingParams& p, cudaStream_t stream) {
    if (p.num_tokens == 0 || p.dim == 0) return;
    const bool vec = p.dim % 8 == 0 && host::aligned16(p.out) && host::aligned16(p.table);
    const int threads = vec ? 128 : kThreads;
    const dim3 grid(static_cast<unsigned>(p.num_tokens));
    if (p.table_f32) {
        if (vec) host::launch_pdl(embedding_kernel<8, true>, grid, threads, 0, stream, p);
        else host::launch_pdl(embedding_kernel<1, true>, grid, threads, 0, stream, p);
    } else {
        if (vec) host::launch_pdl(embedding_kernel<8, false>, grid, threads, 0, stream, p);
        else host::launch_pdl(embedding_kernel<1, false>, grid, threads, 0, stream, p);
    }
    DSA_CUDA_CHECK_LAUNCH(embedding_kernel);
}

void launch_add(const AddParams& p, cudaStream_t stream) {
    if (p.n == 0) return;
    if (p.n % 8 == 0 && host::aligned16(p.a) && host::aligned16(p.b) && host::aligned16(p.out)) {
        host::launch_pdl(add_kernel<8>, host::grid_for(p.n / 8, kThreads), kThreads, 0, stream, p);
    } else {
        host::launch_pdl(add_kernel<1>, host::grid_for(p.n, kThreads), kThreads, 0, stream, p);
    }
    DSA_CUDA_CHECK_LAUNCH(add_kernel);
}

void launch_swiglu(const SwigluParams& p, cudaStream_t stream) {
    if (p.n == 0) return;
    if (p.n % 8 == 0 && host::aligned16(p.gate) && host::aligned16(p.up) && host::aligned16(p.out)) {
        host::launch_pdl(swiglu_kernel<8>, host::grid_for(p.n / 8, kThreads), kThreads, 0, stream, p);
    } else {
        host::launch_pdl(swiglu_kernel<1>, host::grid_for(p.n, kThreads), kThreads, 0, stream, p);
    }
    DSA_CUDA_CHECK_LAUNCH(swiglu_kernel);
}

void launch_bf16_to_f32(const Bf16ToF32Params& p, cudaStream_t stream) {
    if (p.n == 0) return;
    if (p.n % 8 == 0 && host::aligned16(p.in)) {
        host::launch_pdl(bf16_to_f32_kernel<8>, host::grid_for(p.n / 8, kThreads), kThreads, 0, stream, p);
    } else {
        host::launch_pdl(bf16_to_f32_kernel<1>, host::grid_for(p.n, kThreads), kThreads, 0, stream, p);
    }
    DSA_CUDA_CHECK_LAUNCH(bf16_to_f32_kernel);
}

void launch_f32_to_bf16(const F32ToBf16Params& p, cudaStream_t stream) {
    if (p.n == 0) return;
    host::launch_pdl(f32_to_bf16_kernel, host::grid_for(p.n, kThreads), kThreads, 0, stream, p);
    DSA_CUDA_CHECK_LAUNCH(f32_to_bf16_kernel);
}

void launch_rope(const RopeKernelParams& p, cudaStream_t stream) {
    const int64_t total = p.num_tokens * p.num_heads * p.half;
    if (total == 0) return;
    host::launch_pdl(rope_kernel, host::grid_for(total, kThreads), kThreads, 0, stream, p);
    DSA_CUDA_CHECK_LAUNCH(rope_kernel);
}

}  // namespace dsa::backend::cuda
