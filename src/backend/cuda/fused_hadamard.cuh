// The indexer's Hadamard rotation + act_quant of one 128-vector held by a warp (lane l: elements 4l .. 4l+3), for
// the fused indexer key write: the reference's butterflies with every value getting the same float operations as
// on the CPU, then act_quant.cuh's scale and code rule (one scale per 128-vector). Included by .cu files only.
#pragma once

#include <cstdint>

#include "backend/cuda/act_quant.cuh"
#include "backend/cuda/device_util.cuh"

namespace dsa::backend::cuda {

// Stage h: x[j] = a + b, x[j + h] = a - b for the lower index j; then * scale and the bf16 activation rounding.
__device__ __forceinline__ void hadamard128_lanes(float (&v)[4], int lane, float scale) {
    float a = v[0], b = v[1];
    v[0] = __fadd_rn(a, b);
    v[1] = __fsub_rn(a, b);
    a = v[2];
    b = v[3];
    v[2] = __fadd_rn(a, b);
    v[3] = __fsub_rn(a, b);
    a = v[0];
    b = v[2];
    v[0] = __fadd_rn(a, b);
    v[2] = __fsub_rn(a, b);
    a = v[1];
    b = v[3];
    v[1] = __fadd_rn(a, b);
    v[3] = __fsub_rn(a, b);
#pragma unroll
    for (int m = 1; m < 32; m <<= 1) {  // stage h = 4m: the partner element lives in lane ^ m
        const bool upper = (lane & m) != 0;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const float o = __shfl_xor_sync(0xffffffffu, v[j], m);
            v[j] = upper ? __fsub_rn(o, v[j]) : __fadd_rn(v[j], o);
        }
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) v[j] = round_bf16(__fmul_rn(v[j], scale));
}

// act_quant of the warp's 128-vector: the scale (returned) and the lane's 4 codes packed low element first.
__device__ __forceinline__ float act_quant_lanes(const float (&v)[4], bool ue8m0, uint32_t& packed) {
    float amax = 0.0f;
#pragma unroll
    for (int j = 0; j < 4; ++j) amax = fmaxf(amax, fabsf(v[j]));
    const float s = act_quant_scale(warp_max(amax), ue8m0);
    packed = 0;
#pragma unroll
    for (int j = 0; j < 4; ++j) packed |= static_cast<uint32_t>(act_quant_code(v[j], s)) << (8 * j);
    return s;
}

}  // namespace dsa::backend::cuda
