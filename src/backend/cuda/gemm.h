// LtGemm: the cuBLASLt GEMMs of the CUDA backend, row-major y[M, N] = x[M, K] · w[N, K]^T with FP32
// accumulation. BF16 and F32 operands, and FP8 e4m3 with DeepSeek block scales (1x128 on x, 128x128 on w).
// Plans (descriptors + the heuristic's algorithm) are cached per shape; the FP8 block-scaled path is used only
// where cuBLASLt returns a heuristic for it (it has none for M = 1, for example): fp8_block_supported() says so
// and the caller falls back. This header carries no cuBLASLt headers.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include <cuda_runtime_api.h>

namespace dsa::backend::cuda {

enum class GemmOperand : uint8_t { kBF16, kF32, kFp8Block };
enum class GemmOutput : uint8_t { kBF16, kF32 };

class LtGemm {
public:
    explicit LtGemm(cudaStream_t stream);
    ~LtGemm();
    LtGemm(const LtGemm&) = delete;
    LtGemm& operator=(const LtGemm&) = delete;

    // x [M, K] bf16, w [N, K] bf16 -> y [M, N] (bf16 or f32).
    void bf16(const void* x, const void* w, void* y, GemmOutput out, int64_t m, int64_t n, int64_t k);
    // x [M, K] f32, w [N, K] f32 -> y [M, N] f32, full FP32 math (cuBLASLt has no f32 x f32 -> bf16 GEMM).
    void f32(const void* x, const void* w, void* y, int64_t m, int64_t n, int64_t k);
    // Whether cuBLASLt has a block-scaled FP8 algorithm for this shape and output (cached).
    bool fp8_block_supported(GemmOutput out, int64_t m, int64_t n, int64_t k);
    // xq [M, K] e4m3 with x_scales [ceil(K/128), round_up(M, 4)] f32 (M-major), wq [N, K] e4m3 with
    // w_scales [ceil(N/128), round_up(ceil(K/128), 4)] f32 -> y [M, N]. Requires fp8_block_supported().
    void fp8_block(const void* xq, const float* x_scales, const void* wq, const float* w_scales, void* y,
                   GemmOutput out, int64_t m, int64_t n, int64_t k);

    // Leading dimensions of the block-scale tensors that fp8_block expects.
    static int64_t x_scale_ld(int64_t m) { return (m + 3) / 4 * 4; }
    static int64_t w_scale_ld(int64_t k) { return ((k + 127) / 128 + 3) / 4 * 4; }

private:
    struct Plan;
    using Key = std::tuple<GemmOperand, GemmOutput, int64_t, int64_t, int64_t>;
    Plan& plan(GemmOperand op, GemmOutput out, int64_t m, int64_t n, int64_t k);
    void run(Plan& p, const void* a, const void* b, void* d);

    cudaStream_t stream_;
    void* handle_ = nullptr;  // cublasLtHandle_t
    void* workspace_ = nullptr;
    size_t workspace_bytes_ = 0;
    std::mutex mu_;
    std::map<Key, std::unique_ptr<Plan>> plans_;
};

}  // namespace dsa::backend::cuda
