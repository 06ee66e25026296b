// Side branches (Backend::begin_side_branch .. join_side_branch) on the CUDA backend: between begin and end the
// backend's ops launch on side_stream_, forked from stream_ by an event; stream_ waits on the branch's end event
// at the join. Frees are held back in the allocator from begin to join, so neither branch gets a block the other
// still uses. Inside a graph capture the fork and join become parallel graph branches. DSA_SIDE_BRANCH=N branches
// at steps of T <= N rows (read at every call; unset / 0: off. On the H200, layer_bench's MoE layer from graph
// replays, same binary: B = 1 / 4K 228.5 -> 236.2 us, B = 4 481.1 -> 484.2: it loses. An earlier "no gain" reading
// never took the branch: the bench's recording wrapper did not forward the branch calls).
#include "backend/cuda/allocator.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "base/env.h"

namespace dsa::backend::cuda {
namespace {

int64_t side_branch_tokens() {
    return env_count("DSA_SIDE_BRANCH", 0, "CUDA: side branches (latent write + absorbed query beside the indexer) at "
                                           "steps of at most N tokens; 0 = off");
}

}  // namespace

bool CudaBackend::begin_side_branch(int64_t tokens) {
    if (branch_ != Branch::kNone || tokens < 1 || tokens > side_branch_tokens()) return false;
    DSA_CUDA_CHECK(cudaEventRecord(branch_fork_event_, stream_));
    DSA_CUDA_CHECK(cudaStreamWaitEvent(side_stream_, branch_fork_event_, 0));
    CachingAllocator::instance(device_).set_deferred_free(true);
    main_stream_ = stream_;
    stream_ = side_stream_;
    branch_ = Branch::kOpen;
    ++side_branches_taken_;
    return true;
}

void CudaBackend::end_side_branch() {
    DSA_CHECK(branch_ == Branch::kOpen) << "end_side_branch without an open side branch";
    DSA_CUDA_CHECK(cudaEventRecord(branch_join_event_, stream_));
    stream_ = main_stream_;
    branch_ = Branch::kEnded;
}

void CudaBackend::join_side_branch() {
    DSA_CHECK(branch_ == Branch::kEnded) << "join_side_branch before end_side_branch";
    DSA_CUDA_CHECK(cudaStreamWaitEvent(stream_, branch_join_event_, 0));
    CachingAllocator::instance(device_).set_deferred_free(false);
    branch_ = Branch::kNone;
}

}  // namespace dsa::backend::cuda
