// CudaBackend: decode steps with device-resident inputs and CUDA graphs. decode_slots expands page tables on the
// device, copy_into writes host data into fixed device buffers, capture_graph records the ops a callback issues
// on the backend's stream (cudaStreamCaptureModeRelaxed, allocations from the allocator's graph pool) and
// replay_graph launches the instantiated graph on the same stream. A body that synchronizes (an op that reads
// device data on the host, e.g. host-side MoE grouping of a large batch) ends the capture with an error
// instead of aborting: the caller then runs that step eagerly.
#include <string>

#include "backend/cuda/allocator.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/decode_inputs.h"

namespace dsa::backend::cuda {
namespace {

class CudaGraph final : public BackendGraph {
public:
    CudaGraph(cudaGraph_t graph, cudaGraphExec_t exec) : graph_(graph), exec_(exec) {}
    ~CudaGraph() override {
        if (exec_ != nullptr) cudaGraphExecDestroy(exec_);
        if (graph_ != nullptr) cudaGraphDestroy(graph_);
    }
    CudaGraph(const CudaGraph&) = delete;
    CudaGraph& operator=(const CudaGraph&) = delete;
    cudaGraphExec_t exec() const { return exec_; }

private:
    cudaGraph_t graph_;
    cudaGraphExec_t exec_;
};

// Routes allocations to the graph pool and marks the backend as capturing for the scope's life.
struct CaptureScope {
    CaptureScope(int device, bool& capturing) : alloc(CachingAllocator::instance(device)), flag(capturing) {
        alloc.set_graph_capture(true);
        flag = true;
    }
    ~CaptureScope() {
        alloc.set_graph_capture(false);
        flag = false;
    }
    CaptureScope(const CaptureScope&) = delete;
    CaptureScope& operator=(const CaptureScope&) = delete;
    CachingAllocator& alloc;
    bool& flag;
};

}  // namespace

DecodeSlots CudaBackend::decode_slots(const Tensor& page_table, const Tensor& positions, int64_t page_size,
                                      int64_t width) {
    Tensor pt = page_table.device() == Device::kCUDA ? page_table : to_device(page_table);
    Tensor pos = positions.device() == Device::kCUDA ? positions : to_device(positions);
    check_decode_slots_args(pt, pos, page_size, width, Device::kCUDA);
    const int64_t rows = pt.dim(0);
    DSA_CHECK(rows <= 65535) << "decode_slots over " << rows << " rows";
    DecodeSlots r;
    r.key_slots = Tensor::empty({rows, width}, DType::kI32, Device::kCUDA, "key_slots");
    r.out_slots = Tensor::empty({rows}, DType::kI32, Device::kCUDA, "out_slots");
    launch_decode_slots({pt.data<int32_t>(), pos.data<int32_t>(), r.key_slots.data<int32_t>(),
                         r.out_slots.data<int32_t>(), rows, pt.dim(1), page_size, width},
                        stream_);
    return r;
}

void CudaBackend::copy_into(const Tensor& host, Tensor& dst) {
    check_copy_into_args(host, dst);
    DSA_CHECK(dst.device() == Device::kCUDA) << "copy_into a host tensor on the CUDA backend";
    if (host.numel() == 0) return;
    const auto esize = static_cast<size_t>(dtype_size(host.dtype()));
    if (host.ndim() == 1) {
        DSA_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), host.raw_data(), host.nbytes(), cudaMemcpyHostToDevice,
                                       stream_));
    } else {
        const size_t width = static_cast<size_t>(host.dim(1)) * esize;
        DSA_CUDA_CHECK(cudaMemcpy2DAsync(dst.raw_data(), static_cast<size_t>(dst.dim(1)) * esize, host.raw_data(),
                                         width, width, static_cast<size_t>(host.dim(0)), cudaMemcpyHostToDevice,
                                         stream_));
    }
    synchronize();  // the caller may reuse the host buffer as soon as we return
}

StatusOr<std::unique_ptr<BackendGraph>> CudaBackend::capture_graph(const std::function<void()>& body) {
    synchronize();  // nothing of the eager work may be pending in the capture
    cudaGraph_t graph = nullptr;
    {
        CaptureScope scope(device_, capturing_);
        DSA_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed));
        std::string broken;
        try {
            body();
        } catch (const GraphCaptureBreak& e) {
            broken = e.what();
        }
        const cudaError_t err = cudaStreamEndCapture(stream_, &graph);
        if (!broken.empty() || err != cudaSuccess) {
            (void)cudaGetLastError();
            if (graph != nullptr) cudaGraphDestroy(graph);
            return make_error(StatusCode::kInternal, "CUDA graph capture failed: {}",
                              broken.empty() ? cudaGetErrorString(err) : broken);
        }
    }
    cudaGraphExec_t exec = nullptr;
    const cudaError_t err =
        cudaGraphInstantiate(&exec, graph, node_priority_ ? cudaGraphInstantiateFlagUseNodePriority : 0);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        cudaGraphDestroy(graph);
        return make_error(StatusCode::kInternal, "CUDA graph instantiation failed: {}", cudaGetErrorString(err));
    }
    return std::unique_ptr<BackendGraph>(new CudaGraph(graph, exec));
}

void CudaBackend::replay_graph(BackendGraph& graph) {
    auto* g = dynamic_cast<CudaGraph*>(&graph);
    DSA_CHECK(g != nullptr) << "replay_graph of a graph another backend captured";
    DSA_CUDA_CHECK(cudaGraphLaunch(g->exec(), stream_));
}

int64_t CudaBackend::graph_pool_bytes() const {
    return static_cast<int64_t>(CachingAllocator::instance(device_).graph_pool_bytes());
}

}  // namespace dsa::backend::cuda
