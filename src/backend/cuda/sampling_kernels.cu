// Batched sampling entry points: chunk and workspace sizes, the DSA_SAMPLING_LEGACY switch, and launch_sampling,
// which runs the greedy rows (sampling_greedy.cu / sampling_legacy.cu) and the sampled rows (sampling_sampled.cu)
// on one stream (DSA_SAMPLING_EXACT_EXP=1: double exp weights on the sampled rows). Shared device helpers:
// sampling_common.cuh.
#include "backend/cuda/sampling_common.cuh"

namespace dsa::backend::cuda {

using sampling::kCluster;

int64_t sampling_chunk(int64_t vocab) { return ((vocab + kCluster - 1) / kCluster + 31) / 32 * 32; }

int64_t sampling_workspace_bytes(int64_t num_greedy, int64_t vocab) {
    return num_greedy * sampling::greedy_splits(vocab) * static_cast<int64_t>(sizeof(sampling::SumState));
}

bool sampling_legacy_from_env() {
    const char* v = std::getenv("DSA_SAMPLING_LEGACY");
    return v != nullptr && v[0] != '\0' && v[0] != '0';
}

void launch_sampling(SamplingKernelParams p, cudaStream_t stream) {
    if (p.num_greedy + p.num_sampled == 0) return;
    p.chunk = sampling_chunk(p.vocab);
    // Each weight is <= 1 (the maximum's is 1): vocab weights at scale 2^(62 - ceil(log2 vocab)) sum below 2^63.
    p.mass_scale = std::ldexp(1.0, 62 - sampling::ceil_log2(p.vocab));
    const char* exact = std::getenv("DSA_SAMPLING_EXACT_EXP");  // read per call (tests switch it)
    p.exact_exp = exact != nullptr && exact[0] != '\0' && exact[0] != '0' ? 1 : 0;
    if (p.num_greedy > 0) sampling::launch_greedy(p, stream);
    if (p.num_sampled > 0) sampling::launch_sampled(p, stream);
}

}  // namespace dsa::backend::cuda
