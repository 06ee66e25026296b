// The decode-slot kernel of the CUDA backend (Backend::decode_slots): expands each decode row's page table into
// its key-slot row on the device, so a decode step uploads page tables (one int per 64 tokens) instead of
// [B, max_len] key slots, and a CUDA graph can take them from fixed buffers.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

namespace dsa::backend::cuda {
namespace {

constexpr int kThreads = 256;

// grid (ceil(width / (kThreads * 4)), rows): each thread writes 4 consecutive positions of its row.
__global__ void decode_slots_kernel(DecodeSlotsParams p) {
    const int64_t b = blockIdx.y;
    const int64_t pos = p.positions[b];
    if (pos < 0 || pos >= p.width || pos >= p.pages * p.page_size) __trap();
    const int32_t* pt = p.page_table + b * p.pages;
    int32_t* row = p.key_slots + b * p.width;
    const int64_t first = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) * 4;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const int64_t q = first + j;
        if (q >= p.width) break;
        int32_t slot = -1;
        if (q <= pos) {
            const int32_t page = pt[q / p.page_size];
            if (page < 0) __trap();
            slot = static_cast<int32_t>(page * p.page_size + q % p.page_size);
        }
        row[q] = slot;
        if (q == pos) p.out_slots[b] = slot;
    }
}

}  // namespace

void launch_decode_slots(const DecodeSlotsParams& p, cudaStream_t stream) {
    if (p.rows == 0) return;  // rows <= 65535, width > 0, page_size > 0: checked by the op
    const int64_t per_block = kThreads * 4;
    dim3 grid(static_cast<unsigned>((p.width + per_block - 1) / per_block), static_cast<unsigned>(p.rows));
    decode_slots_kernel<<<grid, kThreads, 0, stream>>>(p);
    DSA_CUDA_CHECK_LAUNCH(decode_slots_kernel);
}

}  // namespace dsa::backend::cuda
