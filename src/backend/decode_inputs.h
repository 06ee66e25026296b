// Host-side helpers shared by every backend's decode_slots / copy_into (Backend, "decode steps with
// device-resident inputs"): the argument checks, and the reference expansion of page tables into key slots
// that the CPU backend runs and the CUDA kernel reproduces.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace dsa::backend {

// Checks page_table [B, P] i32 and positions [B] i32 on `device`, page_size > 0 and width > 0.
void check_decode_slots_args(const Tensor& page_table, const Tensor& positions, int64_t page_size, int64_t width,
                             Device device);
// Host data: key_slots [B, width] / out_slots [B] as Backend::decode_slots defines them; a position outside
// [0, min(width, P * page_size)) or a negative page is a checked error.
void decode_slots_host(const Tensor& page_table, const Tensor& positions, int64_t page_size, Tensor& key_slots,
                       Tensor& out_slots);
// Checks copy_into's shapes: host rank 1 or 2 on the CPU, dst the same rank and dtype with every dim >= host's.
void check_copy_into_args(const Tensor& host, const Tensor& dst);

}  // namespace dsa::backend
