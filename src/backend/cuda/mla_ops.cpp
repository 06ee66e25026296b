// MLA on the GPU: latent KV-cache writes/reads (bf16 and the 656-byte FP8 layout), the absorbed q/o
// projections, the expanded (MHA) form and sparse/dense attention.
#include "backend/cuda/cuda_backend_impl.h"

namespace dsa::backend::cuda {

void CudaBackend::mla_kv_write(const MlaKvWriteParams&) { not_implemented("mla_kv_write"); }
Tensor CudaBackend::mla_kv_read(const MlaKvStore&, const Tensor&) { not_implemented("mla_kv_read"); }
Tensor CudaBackend::mla_absorb_q(const Tensor&, const LinearWeight&, const MlaHeadDims&) {
    not_implemented("mla_absorb_q");
}
Tensor CudaBackend::mla_absorb_o(const Tensor&, const LinearWeight&, const MlaHeadDims&) {
    not_implemented("mla_absorb_o");
}
MlaExpandedKv CudaBackend::mla_expand_kv(const Tensor&, const LinearWeight&, const MlaHeadDims&) {
    not_implemented("mla_expand_kv");
}
Tensor CudaBackend::mla_sparse_attention(const MlaSparseParams&) { not_implemented("mla_sparse_attention"); }
Tensor CudaBackend::mla_dense_attention(const MlaDenseParams&) { not_implemented("mla_dense_attention"); }

}  // namespace dsa::backend::cuda
