// The lightning indexer on the GPU: key-cache writes (FP8 pages with scales) and logits + exact top-k over the
// paged key cache, plus the causal index lists used when a layer attends to every earlier position.
#include "backend/cuda/cuda_backend_impl.h"

namespace dsa::backend::cuda {

void CudaBackend::indexer_k_write(const IndexerKWriteParams&) { not_implemented("indexer_k_write"); }
IndexerTopkResult CudaBackend::indexer_topk(const IndexerTopkParams&) { not_implemented("indexer_topk"); }
IndexerTopkResult CudaBackend::causal_indices(const CausalIndicesParams&) { not_implemented("causal_indices"); }

}  // namespace dsa::backend::cuda
