// Helpers shared by the FP8 stream GEMM tests (linear_ops_test.cpp, fp8_stream_cluster_test.cpp): the act_quant
// numerics, the stream tolerance, the first rows of a host tensor, bit equality, the check that a CUDA-graph replay
// of linear() on new input equals an eager call bit for bit, and one stream linear() checked against the CPU, the
// default plan and itself.
#pragma once

#include <cstring>
#include <string>

#include "ops_test_util.h"

namespace dsa::backend::testing {

inline const Numerics kActQuantUe8m0{.round_activations_to_bf16 = true, .fp8_activation_quant = true,
                                     .ue8m0_scales = true};
inline const Numerics kActQuantF32{.round_activations_to_bf16 = true, .fp8_activation_quant = true,
                                   .ue8m0_scales = false};
constexpr double kStreamTol = 3e-3;

// The first m rows of a host tensor (linear rows are independent: one CPU reference at M = 64 serves every m).
inline Tensor first_rows(const Tensor& t, int64_t m) {
    Tensor r = Tensor::empty({m, t.dim(1)}, t.dtype());
    std::memcpy(r.raw_data(), t.raw_data(), static_cast<size_t>(m * t.dim(1)) * dtype_size(t.dtype()));
    return r;
}

inline bool same_bits(const Tensor& a, const Tensor& b) {
    return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

// linear(x0) captured in a graph, replayed after x2 (host f32) was copied into its input: the replay's output (host)
// must equal an eager linear(x2) bit for bit.
inline Tensor expect_replay_is_eager(Backend& gpu, const Tensor& x0, const LinearWeight& w, const Tensor& x2,
                                     const std::string& what) {
    Tensor xg = gpu.to_device(gpu.to_host(x0)), out;
    auto graph = gpu.capture_graph([&] { out = gpu.linear(xg, w, LinearOutput::kActivation); });
    EXPECT_TRUE(graph.is_ok()) << graph.status().message();
    if (!graph.is_ok()) return Tensor();
    gpu.copy_into(to_bf16(x2), xg);
    gpu.replay_graph(**graph);
    Tensor replay = gpu.to_host(out);
    EXPECT_TRUE(same_bits(replay, gpu.to_host(gpu.linear(gpu.to_device(to_bf16(x2)), w, LinearOutput::kActivation))))
        << what << " graph replay";
    return replay;
}

// linear(xd) (host output) checked against the CPU reference rows `ref` and the default plan's output `plain` (host)
// at the stream tolerance, and repeated: the same bits.
inline Tensor expect_stream_linear(Backend& gpu, const Tensor& xd, const LinearWeight& w, const Tensor& ref,
                                   const Tensor& plain, const std::string& what) {
    Tensor got = gpu.to_host(gpu.linear(xd, w, LinearOutput::kActivation));
    EXPECT_EQ(static_cast<cuda::CudaBackend&>(gpu).last_fp8_path(), cuda::CudaBackend::Fp8Path::kStream) << what;
    expect_close(what, to_f32(got), ref, kStreamTol);
    expect_close(what + " vs default plan", to_f32(got), to_f32(plain), kStreamTol);
    EXPECT_TRUE(same_bits(got, gpu.to_host(gpu.linear(xd, w, LinearOutput::kActivation)))) << what << " repeated";
    return got;
}

}  // namespace dsa::backend::testing
