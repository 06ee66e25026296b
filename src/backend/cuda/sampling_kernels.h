// Parameter structs and launcher of the batched sampling kernels (sampling_kernels.cu). Greedy rows: a two-level
// argmax + sum-exp in one read of the logits (4096 ids per CTA, partial states merged by a second kernel; round-1
// path: a cluster of kSampleCluster CTAs per row). Sampled rows: a cluster of CTAs per row (one vocab chunk each,
// partial results exchanged through distributed shared memory): max, sum-exp, a
// radix select of the top-k / top-p cut over the logits' order, min-p, and the CPU sampler's draw (kept ids in
// increasing order). Plain structs only (the op layer packs them; edits sorted by token within a row).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace dsa::backend::cuda {

constexpr int kSampleCluster = 8;  // CTAs per row

struct SampleRowDesc {
    double temperature, top_p, min_p, frequency_penalty, presence_penalty, repetition_penalty, uniform;
    int64_t logits_row;
    int32_t top_k;       // <= 0 or >= vocab: off
    int32_t greedy;      // 1: argmax
    int32_t edit_begin;  // this row's entries of SamplingKernelParams::edits, sorted by token
    int32_t edit_end;
    int32_t out_index;  // slot of SamplingKernelParams::out
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
    const SampleRowDesc* greedy_rows = nullptr;  // [num_greedy]
    int64_t num_greedy = 0;
    const SampleRowDesc* sampled_rows = nullptr;  // [num_sampled]
    int64_t num_sampled = 0;
    const SampleEditDesc* edits = nullptr;  // [num_edits]
    int64_t num_edits = 0;
    SampleOutDesc* out = nullptr;  // [num_greedy + num_sampled]
    // Filled by launch_sampling.
    int64_t chunk = 0;        // tokens per CTA (a multiple of 32)
    int32_t staged = 0;       // 1: sampled rows copy their chunk into shared memory
    double mass_scale = 0.0;  // fixed-point scale of the weights (sums of vocab weights <= 1 fit in 63 bits)
    int64_t greedy_splits = 0;  // CTAs per greedy row on the split path
    // Device scratch of the split greedy path (sampling_workspace_bytes); too small -> the round-1 cluster path.
    void* workspace = nullptr;
    int64_t workspace_bytes = 0;
    int32_t legacy = 0;  // 1: the round-1 kernels (greedy cluster path, round-1 histogram adds)
    // 1: sampled rows' weights by the library's double exp (implied by legacy); 0: a table-driven double exp. Set by
    // launch_sampling from DSA_SAMPLING_EXACT_EXP=1 (not 0 / empty).
    int32_t exact_exp = 0;
};

// Tokens per CTA for `vocab` (a multiple of 32, kSampleCluster chunks cover the row).
int64_t sampling_chunk(int64_t vocab);
// Bytes of SamplingKernelParams::workspace the split greedy path needs for num_greedy rows.
int64_t sampling_workspace_bytes(int64_t num_greedy, int64_t vocab);
// DSA_SAMPLING_LEGACY=1 (not 0 / empty) selects the round-1 kernels.
bool sampling_legacy_from_env();
void launch_sampling(SamplingKernelParams p, cudaStream_t stream);

}  // namespace dsa::backend::cuda
