// CudaBackend construction, the process-wide allocator hook, host/device copies, the checks shared by the ops,
// the parameter and copy caches.
#include <cstdlib>
#include <cstring>

#include "backend/tensor_checks.h"
#include "backend/cuda/allocator.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "tensor/numeric.h"

namespace dsa::backend {

int cuda_device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}

std::unique_ptr<Backend> make_cuda_backend(const Numerics& numerics, int device) {
    return std::make_unique<cuda::CudaBackend>(numerics, device);
}

namespace cuda {

void cuda_call_failed(const char* call, cudaError_t err, const char* file, int line) {
    detail::check_failed(file, line,
                         std::string("CUDA call failed: ") + call + ": " + cudaGetErrorName(err) + " (" +
                             cudaGetErrorString(err) + ")");
}

void check_device_tensor(const Tensor& t, DType dt, std::initializer_list<int64_t> shape, const char* what) {
    check_tensor_on(t, Device::kCUDA, dt, shape, what);
}

void check_activation(const Tensor& t, const char* what) {
    DSA_CHECK(t.defined() && t.ndim() >= 1) << what << " is undefined or 0-d";
    DSA_CHECK(t.device() == Device::kCUDA && t.is_contiguous()) << what << " must be a contiguous CUDA tensor";
    DSA_CHECK(t.dtype() == DType::kBF16) << what << " dtype " << dtype_name(t.dtype()) << ", expected BF16";
}

CudaBackend::CudaBackend(const Numerics& numerics, int device) : numerics_(numerics), device_(device) {
    DSA_CHECK(numerics.round_activations_to_bf16)
        << "the CUDA backend stores activations in BF16: Numerics with round_activations_to_bf16 = false "
           "(FP32 parity numerics) run on the CPU backend only";
    const int count = cuda_device_count();
    DSA_CHECK(device >= 0 && device < count) << "CUDA device " << device << " requested, " << count << " present";
    DSA_CUDA_CHECK(cudaSetDevice(device));
    DSA_CUDA_CHECK(cudaDeviceGetAttribute(&num_sms_, cudaDevAttrMultiProcessorCount, device));
    CachingAllocator& alloc = CachingAllocator::instance(device);
    set_device_allocator(DeviceAllocator{[&alloc](size_t n) { return alloc.alloc(n); },
                                         [&alloc](void* p) { alloc.free(p); }});
    // Blocking streams: ordered with legacy-default-stream work (allocator poisoning, synchronous copies). The side
    // stream carries the shared expert (moe_shared_stream.cpp) and side branches (side_branch.cpp).
    // DSA_MOE_SHARED_STREAM_PRIORITY=low (opt-in, read here): stream_ at the device's greatest priority, the side
    // stream at the least, so pending routed-expert CTAs are dispatched before the shared expert's; graphs then run
    // with the captured per-kernel priorities.
    int least = 0, greatest = 0;
    DSA_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    const char* prio = std::getenv("DSA_MOE_SHARED_STREAM_PRIORITY");
    node_priority_ = prio != nullptr && std::strcmp(prio, "low") == 0;
    if (node_priority_) {
        DSA_CUDA_CHECK(cudaStreamCreateWithPriority(&stream_, cudaStreamDefault, greatest));
        DSA_CUDA_CHECK(cudaStreamCreateWithPriority(&side_stream_, cudaStreamDefault, least));
    } else {
        DSA_CUDA_CHECK(cudaStreamCreate(&stream_));
        DSA_CUDA_CHECK(cudaStreamCreate(&side_stream_));
    }
    // The side stream's fork / join events (shared expert, side branches), made once here.
    for (cudaEvent_t* e : {&fork_event_, &route_event_, &join_event_, &branch_fork_event_, &branch_join_event_}) {
        DSA_CUDA_CHECK(cudaEventCreateWithFlags(e, cudaEventDisableTiming));
    }
    gemm_ = std::make_unique<LtGemm>(stream_);
}

CudaBackend::~CudaBackend() {
    cudaStreamSynchronize(side_stream_);
    cudaStreamSynchronize(stream_);
    route_fork_.reset();
    for (cudaEvent_t e : {fork_event_, route_event_, join_event_, branch_fork_event_, branch_join_event_}) {
        cudaEventDestroy(e);
    }
    cudaStreamDestroy(side_stream_);
    weights_.clear();
    copies_.clear();
    widened_.clear();
    gemm_.reset();
    cudaStreamDestroy(stream_);
}

void CudaBackend::synchronize() {
    if (capturing_) throw GraphCaptureBreak("an op synchronized the stream (it needs device data on the host)");
    DSA_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::set_poison_allocations(bool on) { CachingAllocator::instance(device_).set_poison(on); }

Tensor CudaBackend::to_device(const Tensor& host) {
    DSA_CHECK(host.defined() && host.device() == Device::kCPU) << "to_device expects a host tensor";
    DSA_CHECK(host.is_contiguous()) << "to_device of a non-contiguous tensor " << host.name();
    Tensor t = Tensor::empty(host.shape(), host.dtype(), Device::kCUDA, host.name());
    if (host.nbytes() > 0) {
        DSA_CUDA_CHECK(cudaMemcpyAsync(t.raw_data(), host.raw_data(), host.nbytes(), cudaMemcpyHostToDevice, stream_));
        synchronize();  // the caller may free or reuse the host buffer as soon as we return
    }
    return t;
}

Tensor CudaBackend::to_host(const Tensor& t) {
    DSA_CHECK(t.defined() && t.device() == Device::kCUDA) << "to_host expects a CUDA tensor";
    DSA_CHECK(t.is_contiguous()) << "to_host of a non-contiguous tensor " << t.name();
    Tensor h = Tensor::empty(t.shape(), t.dtype(), Device::kCPU, t.name());
    if (t.nbytes() > 0) {
        DSA_CUDA_CHECK(cudaMemcpyAsync(h.raw_data(), t.raw_data(), t.nbytes(), cudaMemcpyDeviceToHost, stream_));
    }
    synchronize();
    return h;
}

Tensor CudaBackend::cached_device_copy(const Tensor& t) {
    DSA_CHECK(t.defined() && t.is_contiguous()) << "cached_device_copy of " << t.name();
    if (t.device() == Device::kCUDA) return t;
    const void* key = t.raw_data();
    {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = copies_.find(key);
        if (it != copies_.end() && it->second.first.shape() == t.shape() && it->second.first.dtype() == t.dtype()) {
            return it->second.second;
        }
    }
    Tensor d = to_device(t);
    std::lock_guard<std::mutex> lock(mu_);
    copies_[key] = {t, d};
    return d;
}

Tensor CudaBackend::param_f32(const Tensor& t, int64_t n, const char* what) {
    DSA_CHECK(t.defined() && t.is_contiguous()) << what << " is undefined or not contiguous";
    DSA_CHECK(t.dtype() == DType::kF32 || t.dtype() == DType::kBF16) << what << " dtype " << dtype_name(t.dtype());
    DSA_CHECK(t.ndim() == 1 && t.dim(0) == n) << what << " " << shape_to_string(t.shape()) << ", expected [" << n
                                              << "]";
    if (t.dtype() == DType::kF32) return cached_device_copy(t);
    if (t.device() == Device::kCPU) {
        // Widen on the host once; cache under the bf16 tensor's address.
        const void* key = t.raw_data();
        {
            std::lock_guard<std::mutex> lock(mu_);
            auto it = widened_.find(key);
            if (it != widened_.end() && it->second.first.shape() == t.shape()) return it->second.second;
        }
        Tensor f = Tensor::empty({n}, DType::kF32, Device::kCPU, t.name());
        for (int64_t i = 0; i < n; ++i) f.data<float>()[i] = bf16_to_f32(t.data<uint16_t>()[i]);
        Tensor d = to_device(f);
        std::lock_guard<std::mutex> lock(mu_);
        widened_[key] = {t, d};
        return d;
    }
    Tensor f = Tensor::empty({n}, DType::kF32, Device::kCUDA, t.name());
    launch_bf16_to_f32({t.data<uint16_t>(), f.data<float>(), n}, stream_);
    return f;
}

Tensor CudaBackend::device_indices(const Tensor& t, int64_t limit, const char* what) {
    DSA_CHECK(t.defined() && t.is_contiguous() && t.dtype() == DType::kI32) << what << " must be contiguous i32";
    if (t.device() == Device::kCUDA) return t;  // range-checked in the kernel (a trap aborts the process)
    for (int64_t i = 0; i < t.numel(); ++i) {
        const int32_t v = t.data<int32_t>()[i];
        DSA_CHECK(v >= 0 && v < limit) << what << "[" << i << "] = " << v << " outside [0, " << limit << ")";
    }
    return to_device(t);
}

}  // namespace cuda
}  // namespace dsa::backend
