// Parameter structs and launcher of the batched sampling kernel (sampling_kernels.cu): one CTA per row to sample
// runs the CPU sampler's pipeline (engine/sampler.cpp) in double precision: sparse logit edits, greedy argmax or
// temperature -> softmax -> top-k / top-p / min-p cut found by a radix select on the probabilities (no sort)
// -> inverse-CDF draw over the kept ids in increasing order. Plain structs only (the op layer packs them).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace dsa::backend::cuda {

struct SampleRowDesc {
    double temperature, top_p, min_p, frequency_penalty, presence_penalty, repetition_penalty, uniform;
    int64_t logits_row;
    int32_t top_k;       // <= 0 or >= vocab: off
    int32_t greedy;      // 1: argmax
    int32_t edit_begin;  // this row's entries of SamplingKernelParams::edits
    int32_t edit_end;
    int32_t prob_slot;  // sampled rows: row of the probability scratch; greedy rows: -1
    int32_t pad;
};

struct SampleEditDesc {
    int32_t token;  // in [0, vocab), unique within a row
    int32_t count;
    int32_t masked;
    int32_t pad;
    double bias;
};

struct SampleOutDesc {
    int32_t token;
    int32_t fallback;  // 1: no finite maximum (the CPU samples this row)
    double logprob;
};

struct SamplingKernelParams {
    const float* logits = nullptr;  // [num_logit_rows, vocab] f32
    int64_t num_logit_rows = 0, vocab = 0;
    const SampleRowDesc* rows = nullptr;  // [num_rows]
    int64_t num_rows = 0;
    const SampleEditDesc* edits = nullptr;  // [num_edits]
    int64_t num_edits = 0;
    double* probs = nullptr;  // [num_prob_slots, vocab] f64 scratch (may be null when every row is greedy)
    int64_t num_prob_slots = 0;
    SampleOutDesc* out = nullptr;  // [num_rows]
};

// The kernel's dynamic shared memory for `vocab` (the per-row bitmap of edited tokens).
int64_t sampling_smem_bytes(int64_t vocab);
void launch_sampling(const SamplingKernelParams& p, cudaStream_t stream);

}  // namespace dsa::backend::cuda
