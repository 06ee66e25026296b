// The CUDA backend (H200, sm_90a): a Backend whose activations are BF16 device tensors. This header carries no
// CUDA headers. Implemented on the GPU: to_device/to_host, embedding, rms_norm, add_rms_norm, layer_norm, add,
// narrow_last, concat_last, make_rope_table/apply_rope, linear (BF16/F32 weights; FP8 128x128 block weights),
// lm_head, dense_mlp, the MLA ops (mla_kv_read returns the latent as BF16: exact for both store layouts), the
// indexer ops (indexer_k_write, indexer_topk, causal_indices), sample (the batched sampler). Every other op
// aborts with "not implemented on the CUDA backend yet: <op>": moe_route, moe_experts.
#pragma once

#include <memory>

#include "backend/backend.h"

namespace dsa::backend {

// Number of usable CUDA devices; 0 when there is no driver or no device (never aborts).
int cuda_device_count();

// A CUDA backend on `device`. Requires numerics.round_activations_to_bf16 (activations are stored as BF16).
// Installs the process-wide Tensor device allocator (a caching allocator on that device).
std::unique_ptr<Backend> make_cuda_backend(const Numerics& numerics, int device = 0);

}  // namespace dsa::backend
