// MoE on the GPU: the sigmoid group-limited router and the routed experts (token permutation, grouped
// GEMMs, combine with the routing weights).
#include "backend/cuda/cuda_backend_impl.h"

namespace dsa::backend::cuda {

RouterResult CudaBackend::moe_route(const RouterParams&) { not_implemented("moe_route"); }
Tensor CudaBackend::moe_experts(const MoeParams&) { not_implemented("moe_experts"); }

}  // namespace dsa::backend::cuda
