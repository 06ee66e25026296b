// cuBLASLt plans for LtGemm (gemm.h). Row-major y = x · w^T is computed column-major as D[N, M] = A^T B with
// A = w viewed as a K x N column-major matrix (TRANSA = T) and B = x as K x M (TRANSB = N): the "TN" form that
// Hopper FP8 requires. Block scales: A (weights) BLK128x128_32F, B (activations) VEC128_32F.
#include "backend/cuda/gemm.h"

#include <cublasLt.h>

#include "backend/cuda/cuda_check.h"
#include "base/check.h"

#define DSA_CUBLAS_CHECK(call)                                                                          \
    do {                                                                                                \
        cublasStatus_t _dsa_st = (call);                                                                \
        DSA_CHECK(_dsa_st == CUBLAS_STATUS_SUCCESS) << #call << " failed: " << cublasLtGetStatusName(_dsa_st) \
                                                    << " (" << cublasLtGetStatusString(_dsa_st) << ")";  \
    } while (0)

namespace dsa::backend::cuda {

struct LtGemm::Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo{};
    bool supported = false;
    ~Plan() {
        if (d) cublasLtMatrixLayoutDestroy(d);
        if (b) cublasLtMatrixLayoutDestroy(b);
        if (a) cublasLtMatrixLayoutDestroy(a);
        if (desc) cublasLtMatmulDescDestroy(desc);
    }
};

namespace {
constexpr size_t kWorkspaceBytes = 64ull << 20;

cublasLtHandle_t lt(void* h) { return static_cast<cublasLtHandle_t>(h); }
}  // namespace

LtGemm::LtGemm(cudaStream_t stream) : stream_(stream) {
    cublasLtHandle_t h = nullptr;
    DSA_CUBLAS_CHECK(cublasLtCreate(&h));
    handle_ = h;
    workspace_bytes_ = kWorkspaceBytes;
    DSA_CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
}

LtGemm::~LtGemm() {
    plans_.clear();
    if (workspace_) cudaFree(workspace_);
    if (handle_) cublasLtDestroy(lt(handle_));
}

LtGemm::Plan& LtGemm::plan(GemmOperand op, GemmOutput out, int64_t m, int64_t n, int64_t k) {
    std::lock_guard<std::mutex> lock(mu_);
    const Key key{op, out, m, n, k};
    auto it = plans_.find(key);
    if (it != plans_.end()) return *it->second;
    auto p = std::make_unique<Plan>();
    const cudaDataType_t in_type = op == GemmOperand::kBF16 ? CUDA_R_16BF
                                   : op == GemmOperand::kF32 ? CUDA_R_32F
                                                             : CUDA_R_8F_E4M3;
    const cudaDataType_t out_type = out == GemmOutput::kBF16 ? CUDA_R_16BF : CUDA_R_32F;
    // CUBLAS_COMPUTE_32F: FP32 accumulation; for F32 operands it is full FP32 math (TF32 only when asked for).
    DSA_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    DSA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
    DSA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
    if (op == GemmOperand::kFp8Block) {
        const int32_t a_mode = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
        const int32_t b_mode = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
        DSA_CUBLAS_CHECK(
            cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &a_mode, sizeof(a_mode)));
        DSA_CUBLAS_CHECK(
            cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &b_mode, sizeof(b_mode)));
        // Scale pointers are per call; the heuristic query needs them set to something.
        const void* placeholder = workspace_;
        DSA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &placeholder,
                                                        sizeof(placeholder)));
        DSA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &placeholder,
                                                        sizeof(placeholder)));
    }
    DSA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, in_type, k, n, k));
    DSA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, in_type, k, m, k));
    DSA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->d, out_type, n, m, n));
    cublasLtMatmulPreference_t pref = nullptr;
    DSA_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    DSA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                          &workspace_bytes_, sizeof(workspace_bytes_)));
    cublasLtMatmulHeuristicResult_t result{};
    int returned = 0;
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt(handle_), p->desc, p->a, p->b, p->d, p->d, pref,
                                                             1, &result, &returned);
    cublasLtMatmulPreferenceDestroy(pref);
    p->supported = st == CUBLAS_STATUS_SUCCESS && returned > 0;
    if (p->supported) p->algo = result.algo;
    // BF16/F32 must always work; only the FP8 block-scaled path may legitimately be unsupported.
    DSA_CHECK(p->supported || op == GemmOperand::kFp8Block)
        << "cuBLASLt has no algorithm for a " << (op == GemmOperand::kBF16 ? "bf16" : "f32") << " GEMM M=" << m
        << " N=" << n << " K=" << k << ": " << cublasLtGetStatusName(st);
    return *plans_.emplace(key, std::move(p)).first->second;
}

void LtGemm::run(Plan& p, const void* a, const void* b, void* d) {
    const float alpha = 1.0f, beta = 0.0f;
    DSA_CUBLAS_CHECK(cublasLtMatmul(lt(handle_), p.desc, &alpha, a, p.a, b, p.b, &beta, d, p.d, d, p.d, &p.algo,
                                    workspace_, workspace_bytes_, stream_));
}

void LtGemm::bf16(const void* x, const void* w, void* y, GemmOutput out, int64_t m, int64_t n, int64_t k) {
    if (m == 0 || n == 0) return;
    run(plan(GemmOperand::kBF16, out, m, n, k), w, x, y);
}

void LtGemm::f32(const void* x, const void* w, void* y, int64_t m, int64_t n, int64_t k) {
    if (m == 0 || n == 0) return;
    run(plan(GemmOperand::kF32, GemmOutput::kF32, m, n, k), w, x, y);
}

bool LtGemm::fp8_block_supported(GemmOutput out, int64_t m, int64_t n, int64_t k) {
    if (m == 0 || k % 128 != 0 || n % 16 != 0) return false;
    return plan(GemmOperand::kFp8Block, out, m, n, k).supported;
}

void LtGemm::fp8_block(const void* xq, const float* x_scales, const void* wq, const float* w_scales, void* y,
                       GemmOutput out, int64_t m, int64_t n, int64_t k) {
    DSA_CHECK(fp8_block_supported(out, m, n, k)) << "fp8_block GEMM M=" << m << " N=" << n << " K=" << k
                                                 << " has no cuBLASLt algorithm";
    Plan& p = plan(GemmOperand::kFp8Block, out, m, n, k);
    std::lock_guard<std::mutex> lock(mu_);  // the scale pointers live in the shared descriptor
    DSA_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &w_scales, sizeof(w_scales)));
    DSA_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &x_scales, sizeof(x_scales)));
    run(p, wq, xq, y);
}

}  // namespace dsa::backend::cuda
