// CudaBackend: the class behind make_cuda_backend (cuda_backend.h), shared by its .cpp files, the op tests and
// the kernel benchmarks. Activations are contiguous BF16 device tensors. Weights and parameter vectors may be
// host tensors (uploaded once and cached per storage address, the source kept alive so the address is never
// reused) or device tensors. Op families live in one file each: cuda_backend.cpp (memory, shared checks),
// norm_ops.cpp (embedding, norms, elementwise, copies, RoPE), linear_ops.cpp (linear, lm_head, dense_mlp),
// mla_ops.cpp (MLA KV cache and attention), indexer_ops.cpp (indexer keys and top-k), moe_ops.cpp (MoE),
// sampling_ops.cpp (the batched sampler), graph_ops.cpp (decode inputs on the device, CUDA graphs), fused_ops.cpp
// (the fused decode-path KV / indexer key writes, the absorbed query), moe_shared_stream.cpp (the shared expert on a
// side stream), side_branch.cpp (ops of the model's side branches on the side stream).
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include <cuda_runtime_api.h>

#include "backend/backend.h"
#include "backend/cuda/gemm.h"
#include "backend/cuda/mla_kernels.h"

namespace dsa::backend::cuda {

struct RmsNormParams;
struct MlaLatentWriteKernelParams;
struct IndexerKeyWriteKernelParams;

class CudaBackend final : public Backend {
public:
    CudaBackend(const Numerics& numerics, int device);
    ~CudaBackend() override;

    Device device() const override { return Device::kCUDA; }
    const Numerics& numerics() const override { return numerics_; }
    DType activation_dtype() const override { return DType::kBF16; }
    // Raw byte copies: the dtype is kept (convert f32 activations to bf16 on the host first).
    Tensor to_device(const Tensor& host) override;
    Tensor to_host(const Tensor& t) override;

    Tensor embedding(const Tensor& table, const Tensor& ids) override;
    Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) override;
    Tensor add_rms_norm(Tensor& residual, const Tensor& delta, const Tensor& weight, float eps) override;
    QuantizedAct rms_norm_q8(const Tensor& x, const Tensor& weight, float eps) override;
    QuantizedAct add_rms_norm_q8(Tensor& residual, const Tensor& delta, const Tensor& weight, float eps) override;
    Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) override;
    Tensor add(const Tensor& a, const Tensor& b) override;
    Tensor narrow_last(const Tensor& x, int64_t begin, int64_t end) override;
    Tensor concat_last(std::span<const Tensor> parts) override;

    Tensor linear(const Tensor& x, const LinearWeight& w, LinearOutput out) override;
    std::vector<Tensor> linear_multi(const Tensor& x, std::span<const LinearWeight* const> ws,
                                     LinearOutput out) override;
    std::vector<Tensor> linear_multi_q8(const QuantizedAct& x, std::span<const LinearWeight* const> ws,
                                        LinearOutput out) override;
    Tensor lm_head(const Tensor& x, const LinearWeight& head) override;

    RopeTable make_rope_table(std::span<const float> inv_freq, int64_t max_positions) override;
    void apply_rope(const RopeParams& p) override;

    void mla_kv_write(const MlaKvWriteParams& p) override;
    void mla_latent_write(const MlaLatentWriteParams& p) override;  // fused_ops.cpp
    Tensor mla_query(const MlaQueryParams& p) override;               // fused_ops.cpp
    Tensor mla_kv_read(const MlaKvStore& store, const Tensor& slots) override;
    Tensor mla_absorb_q(const Tensor& q_nope, const LinearWeight& kv_b, const MlaHeadDims& dims) override;
    Tensor mla_absorb_o(const Tensor& o_latent, const LinearWeight& kv_b, const MlaHeadDims& dims) override;
    Tensor mla_absorbed_query(const Tensor& q, const LinearWeight& kv_b, const MlaHeadDims& dims,
                              const Tensor& positions, const RopeTable* table, RopeLayout layout) override;
    QuantizedAct mla_absorb_o_q8(const Tensor& o_latent, const LinearWeight& kv_b, const MlaHeadDims& dims) override;
    QuantizedAct mla_sparse_attention_o_q8(const MlaSparseParams& p, const LinearWeight& kv_b,
                                           const MlaHeadDims& dims) override;  // mla_ops.cpp
    MlaExpandedKv mla_expand_kv(const Tensor& latent, const LinearWeight& kv_b, const MlaHeadDims& dims) override;
    Tensor mla_sparse_attention(const MlaSparseParams& p) override;
    Tensor mla_dense_attention(const MlaDenseParams& p) override;

    void indexer_k_write(const IndexerKWriteParams& p) override;
    void indexer_key_write(const IndexerKeyWriteParams& p) override;  // fused_ops.cpp
    QuantizedAct rms_norm_q8_and_writes(const Tensor& x, const Tensor& weight, float eps,
                                        const MlaLatentWriteParams& latent,
                                        const IndexerKeyWriteParams* key) override;  // fused_ops.cpp
    IndexerTopkResult indexer_topk(const IndexerTopkParams& p) override;
    IndexerTopkResult causal_indices(const CausalIndicesParams& p) override;

    RouterResult moe_route(const RouterParams& p) override;
    Tensor moe_experts(const MoeParams& p) override;
    Tensor dense_mlp(const Tensor& x, const MlpWeights& w) override;
    Tensor dense_mlp_q8(const QuantizedAct& x, const MlpWeights& w) override;

    StatusOr<std::vector<SampledToken>> sample(const Tensor& logits, std::span<const SampleRow> rows) override;

    DecodeSlots decode_slots(const Tensor& page_table, const Tensor& positions, int64_t page_size,
                             int64_t width) override;
    void copy_into(const Tensor& host, Tensor& dst) override;
    StatusOr<std::unique_ptr<BackendGraph>> capture_graph(const std::function<void()>& body) override;
    void replay_graph(BackendGraph& graph) override;
    int64_t graph_pool_bytes() const override;

    // ---- for tests and benchmarks ----
    cudaStream_t stream() const { return stream_; }
    LtGemm& gemm() { return *gemm_; }
    // Waits for the stream. During capture_graph a synchronization (an op that needs device data on the host,
    // or a host upload) cannot be recorded: it throws GraphCaptureBreak, which ends the capture with an error.
    void synchronize();
    // Fill every new device allocation with NaN bytes (exposes outputs a kernel failed to write).
    void set_poison_allocations(bool on);
    // Which GEMM the last FP8-weight linear used (benchmarks print it).
    enum class Fp8Path : uint8_t { kNone, kCublasBlockScaled, kDequantizedBf16, kGemv, kStream };
    // FP8-weight linears with at most this many rows and a bf16 output run the weight-streaming GEMV. Measured
    // on the H200 at N 7168 x K 2048: 14.4 us at M = 1 (the bf16 fallback took 18.0), but the kernel streams the
    // weight once per 4 rows, so M = 2 is even (18.7 vs 17.7 us) and M = 16 is 5x slower than cuBLASLt.
    static constexpr int64_t kFp8GemvMaxRows = 1;
    // FP8-weight linears with at most this many rows, a bf16 output, act_quant on and K % 128 == 0 run the
    // tensor-core weight-streaming GEMM (fp8_stream_gemm.cu); the GEMV above then only serves act_quant off.
    static constexpr int64_t kFp8StreamMaxRows = 64;
    Fp8Path last_fp8_path() const { return last_fp8_path_; }
    // Which expert path the last moe_experts took: grouped on the device with the tensor-core streaming GEMM or
    // the CUDA-core GEMV, or grouped on the host (prefill).
    enum class MoePath : uint8_t { kNone, kStream, kDeviceGemv, kHostGrouped };
    MoePath last_moe_path() const { return last_moe_path_; }
    // Whether the last dense_mlp took the fused streaming path (gate + up in one launch, SwiGLU + act_quant, down).
    bool last_mlp_fused() const { return last_mlp_fused_; }
    // Whether the last linear_multi took the grouped streaming launch.
    bool last_linear_multi_fused() const { return last_linear_multi_fused_; }
    // Whether the last linear_multi_q8 read the norm's act_quant (no act_quant launch of its own).
    bool last_linear_used_q8() const { return last_linear_used_q8_; }
    // Whether the last mla_latent_write ran the fused kernel (else the default three ops).
    bool last_latent_write_fused() const { return last_latent_write_fused_; }
    // Whether the last indexer_key_write ran the fused kernel (else the default three ops).
    bool last_key_write_fused() const { return last_key_write_fused_; }
    // Whether the last mla_query ran the fused kernel.
    bool last_query_fused() const { return last_query_fused_; }
    // Whether the last mla_absorbed_query ran the one absorb_q kernel (DSA_FUSED_ABSORB), and whether the last
    // mla_absorb_o_q8 wrote the act_quant of its output.
    bool last_absorbed_query_fused() const { return last_absorbed_query_fused_; }
    bool last_absorb_o_quantized() const { return last_absorb_o_quantized_; }
    // Whether the last mla_sparse_attention_o_q8 merged split-K partials inside absorb_o (DSA_FUSED_COMBINE).
    bool last_combine_fused() const { return last_combine_fused_; }
    // Whether the last moe_experts took the grouping moe_route had written (DSA_FUSED_GROUP: no moe_group launch),
    // and that grouping (plain / with the shared slot) while no moe_experts took it yet (tests).
    bool last_groups_from_route() const { return last_groups_from_route_; }
    const Tensor& route_groups(bool shared) const { return shared ? route_groups_.shared : route_groups_.plain; }
    // Whether the last rms_norm_q8_and_writes ran as one launch (DSA_FUSED_WRITES).
    bool last_writes_fused() const { return last_writes_fused_; }
    // Whether the last indexer_topk with q_rope rotated q inside the q preparation (no apply_rope launch).
    bool last_q_rope_fused() const { return last_q_rope_fused_; }
    // How the last moe_experts given a shared expert ran it: on the side stream (DSA_MOE_SHARED_STREAM) forked at
    // the moe_route of the same x and ids (inside a graph capture) or at moe_experts; kNone: not on the side stream.
    enum class SharedFork : uint8_t { kNone, kAtExperts, kAtRoute };
    SharedFork last_shared_fork() const { return last_shared_fork_; }
    // side_branch.cpp: ops between begin and end launch on side_stream_ (DSA_SIDE_BRANCH=N: at T <= N; default off).
    bool begin_side_branch(int64_t tokens) override;
    void end_side_branch() override;
    void join_side_branch() override;
    int64_t side_branches_taken() const { return side_branches_taken_; }

private:
    // A weight as the GEMMs use it (device memory).
    struct DeviceWeight {
        Tensor source;      // keeps the caller's tensor alive while its address is a cache key
        Tensor w;           // [N, K] bf16 | f32 | e4m3 on the device
        Tensor scales;      // e4m3 only: [ceil(N/128), LtGemm::w_scale_ld(K)] f32 (rows padded for cuBLASLt)
        Tensor dequant;     // e4m3 only, made on first need: [N, K] bf16 = bf16(fp8 * scale) (fallback operand)
        Tensor gemv_table;  // e4m3 only, made on first need: the one-entry expert table the GEMV kernel reads
    };
    DeviceWeight& device_weight(const LinearWeight& w);
    const Tensor& dequantized(DeviceWeight& dw);
    // y[m, n] = bf16(x · w^T) by the grouped expert GEMV (one group of m rows) reading the FP8 weight once:
    // x widened to f32 (act_quant applied when asked), FP32 sums per 128-column scale block.
    void fp8_gemv(const Tensor& x, DeviceWeight& dw, Tensor& y, bool act_quant);
    std::vector<Tensor> gemv_groups_;  // [m] -> the packed one-group buffer of rows 0..m-1 (device i32)
    // y[m, n] = bf16(act_quant(x) · w^T) by the FP8 weight-streaming tensor-core GEMM (m <= kFp8StreamMaxRows).
    // pre: the act_quant of x made by its norm (QuantizedAct with q8), used instead of quantizing x again.
    void fp8_stream(const Tensor& x, DeviceWeight& dw, Tensor& y, const QuantizedAct* pre = nullptr);
    // Whether an FP8 weight takes the streaming path for x (matmul's test, bf16 output, act_quant on).
    bool fp8_stream_fits(const Tensor& x, const DeviceWeight& dw) const;
    bool bf16_stream_gemv(const Tensor& x, const DeviceWeight& dw, Tensor& y);
    // linear_multi of FP8 weights on the streaming path: one act_quant of x, one grouped launch (each weight with
    // the plan a lone fp8_stream would use, so the bits are the same); false (nothing launched) when they do not fit.
    bool fp8_stream_multi(const Tensor& x, std::span<const LinearWeight* const> ws, std::vector<Tensor>& ys,
                          const QuantizedAct* pre = nullptr);
    bool last_linear_multi_fused_ = false;
    bool last_linear_used_q8_ = false;
    bool last_latent_write_fused_ = false;
    bool last_key_write_fused_ = false;
    bool last_query_fused_ = false;
    bool last_absorbed_query_fused_ = false;
    bool last_absorb_o_quantized_ = false;
    bool last_combine_fused_ = false;
    // Split-K partials that sparse_attention left unmerged for mla_sparse_attention_o_q8 (kernel parameters; the
    // buffers stay alive until absorb_o is launched). part_o undefined: the attention did not split.
    struct DeferredCombine {
        MlaSparseKernelParams k;
        Tensor part_o, part_ml;
    };
    // mla_sparse_attention; with `defer`, split-K partials are left unmerged and handed over there (mla_ops.cpp).
    Tensor sparse_attention(const MlaSparseParams& p, DeferredCombine* defer);
    // moe_route's grouping of its ids (DSA_FUSED_GROUP), for moe_experts of the same ids (take_route_groups).
    struct RouteGroups {
        Tensor ids, plain, shared;
        int64_t experts = 0;
    };
    RouteGroups route_groups_;
    bool last_groups_from_route_ = false;
    Tensor take_route_groups(const Tensor& ids, int64_t experts, bool shared);  // moe_ops.cpp
    bool last_writes_fused_ = false;
    bool last_q_rope_fused_ = false;
    // rms_norm / add_rms_norm (delta defined) with, when `quant` and the shapes allow, the act_quant of the output.
    QuantizedAct norm_maybe_quant(Tensor& residual, const Tensor* delta, const Tensor& weight, float eps, bool quant);
    // norm_maybe_quant's output tensors and kernel parameters, nothing launched (the fused decode writes); `w`
    // receives the f32 weight the parameters point at, for the caller to hold until the launch.
    QuantizedAct norm_prepare(Tensor& residual, const Tensor* delta, const Tensor& weight, float eps, bool quant,
                              RmsNormParams& p, Tensor& w);
    // The fused latent / key write kernels' parameters of p (uploads done; the device copies they point at are
    // appended to `keep`, which the caller holds until the launch); false (nothing done) where the fused kernels do
    // not take p (the Backend default then runs the separate ops).
    bool latent_write_params(const MlaLatentWriteParams& p, MlaLatentWriteKernelParams& k, std::vector<Tensor>& keep);
    bool key_write_params(const IndexerKeyWriteParams& p, IndexerKeyWriteKernelParams& k, std::vector<Tensor>& keep);
    // dense_mlp of FP8 weights with act_quant at m <= kFp8StreamMaxRows: one act_quant of x, gate and up in one
    // streaming launch, SwiGLU + act_quant of h, down; false (nothing launched) when the shapes do not fit.
    // pre: the act_quant of x made by its norm (q8 + scales checked), read instead of an act_quant launch.
    bool fused_mlp(const Tensor& x, const MlpWeights& w, Tensor& y, const QuantizedAct* pre = nullptr);
    bool last_mlp_fused_ = false;
    // Whether FP8 MLP weights fit the fused streaming launches at m rows of width d (fused_mlp's test).
    bool fused_mlp_fits(int64_t m, int64_t d, const MlpWeights& w);
    // The device buffers of the fused launches: x and h quantized (e4m3 + [width / 128, m] scales), gate_up [m, 2f]
    // bf16, y [m, n] bf16 and the split-K workspace (counters zero between launches) they share one after the other.
    struct FusedMlpBuffers {
        uint8_t* xq;
        float* xs;
        uint16_t* gu;
        uint8_t* hq;
        float* hs;
        uint16_t* y;
        float* ws;
        int32_t* counters;
    };
    // The fused launches on `st`: act_quant of x (into b.xq / b.xs; none with pre), gate + up in one streaming
    // launch, SwiGLU + act_quant, down.
    void launch_fused_mlp(const Tensor& x, const MlpWeights& w, const FusedMlpBuffers& b, cudaStream_t st,
                          const QuantizedAct* pre = nullptr);
    // &x when it carries a q8 / scales pair for x.x (shapes checked: a mismatch is a caller bug), else null.
    static const QuantizedAct* norm_q8(const QuantizedAct& x);
    // The split-K workspace of the streaming GEMM (f32 partials, i32 tile counters kept zero between launches),
    // made on first need (4 MB + 256 KB, grown when a launch needs more) and shared by all its launches on stream_.
    std::pair<float*, int32_t*> stream_workspace(int64_t ws_floats, int64_t counters);
    Tensor stream_ws_, stream_counters_;
    std::vector<Tensor> stream_retired_;  // outgrown workspaces, kept alive for graphs that captured them
    // A [n] f32 device copy of a bf16/f32 parameter vector (host: cached; device f32: itself).
    Tensor param_f32(const Tensor& t, int64_t n, const char* what);
    // A device tensor with the same bytes (host: uploaded once and cached; device: itself).
    Tensor cached_device_copy(const Tensor& t);
    // A device i32 copy of index data (host data is range-checked against [0, limit) on the host first).
    Tensor device_indices(const Tensor& t, int64_t limit, const char* what);
    // y = x · w^T with the output dtype; act_quant applies DeepSeek act_quant to x for FP8 weights.
    Tensor matmul(const Tensor& x, const LinearWeight& w, GemmOutput out, bool act_quant, const char* what);
    // moe_ops.cpp: the device pointer table of a span of routed experts (all uploaded once, cached per span).
    struct MoeTable;
    const MoeTable& moe_table(std::span<const MlpWeights> experts);
    // moe_shared_stream.cpp: the shared expert on side_stream_ (DSA_MOE_SHARED_STREAM=N: at T <= N) while stream_
    // runs the routed experts; joined on stream_ before the add. Its buffers and split-K workspace (SideMlp) are its
    // own, made eagerly, so nothing it touches is handed to stream_ by the allocator while it runs.
    struct SideMlp;
    SideMlp* side_mlp(const Tensor& x, const MlpWeights& w);
    void side_mlp_launch(const Tensor& x, const MlpWeights& w, SideMlp& s, const QuantizedAct* pre);
    // routed + shared with the shared expert on the side stream; false (nothing launched) where it does not apply.
    bool moe_shared_on_side(const MoeParams& p, Tensor& out);
    // moe_experts of the routed experts (p.shared null) whose combine, after waiting on `ready`, adds `y` [T, D]
    // as the model's add(routed, shared) would (the same bits in one launch); null: moe_experts.
    struct MoeAddend {
        Tensor y;
        cudaEvent_t ready;
    };
    Tensor moe_experts_add(const MoeParams& p, const MoeAddend* addend);
    // moe_route under capture: records route_event_ before the router, so the side stream can start there.
    void note_route_fork(const Tensor& x, const Tensor& ids);
    cudaStream_t side_stream_ = nullptr;
    bool node_priority_ = false;  // DSA_MOE_SHARED_STREAM_PRIORITY=low: graphs keep the per-kernel priorities
    cudaEvent_t fork_event_ = nullptr, route_event_ = nullptr, join_event_ = nullptr;
    struct RouteFork {
        Tensor x, ids;  // held: while held their addresses cannot name other tensors
        unsigned long long capture = 0;
    };
    std::optional<RouteFork> route_fork_;
    std::shared_ptr<SideMlp> side_mlp_;
    std::vector<std::shared_ptr<SideMlp>> side_retired_;  // replaced buffers, kept for graphs that captured them
    SharedFork last_shared_fork_ = SharedFork::kNone;
    enum class Branch : uint8_t { kNone, kOpen, kEnded };
    Branch branch_ = Branch::kNone;
    int64_t side_branches_taken_ = 0;
    cudaStream_t main_stream_ = nullptr;  // stream_ while a side branch is open
    cudaEvent_t branch_fork_event_ = nullptr, branch_join_event_ = nullptr;

    bool capturing_ = false;  // inside capture_graph's body
    Numerics numerics_;
    int device_;
    int num_sms_ = 0;  // streaming multiprocessors of the device (kernel grid sizing)
    cudaStream_t stream_ = nullptr;
    std::unique_ptr<LtGemm> gemm_;
    Fp8Path last_fp8_path_ = Fp8Path::kNone;
    MoePath last_moe_path_ = MoePath::kNone;
    std::mutex mu_;
    std::unordered_map<const void*, DeviceWeight> weights_;
    std::unordered_map<const void*, std::pair<Tensor, Tensor>> copies_;  // host address -> (source, device copy)
    std::unordered_map<const void*, std::pair<Tensor, Tensor>> widened_;  // bf16 host param -> (source, f32 copy)
    std::unordered_map<const void*, std::shared_ptr<MoeTable>> moe_tables_;  // experts span address -> table
};

// Thrown by CudaBackend::synchronize() while a graph is being captured (caught by capture_graph).
struct GraphCaptureBreak : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The decode-path fusions (norms writing act_quant, the fused KV / key writes, the indexer q RoPE in the q prep):
// env DSA_FUSED_DECODE, default on.
bool fused_decode_enabled();
// One decode-fusion switch: env `name` (0 / 1, read on every call; another value fails naming the variable), on only
// while fused_decode_enabled() (fused_ops.cpp).
bool fused_switch(const char* name, bool default_on, const char* help);
// The absorb fusions (mla_absorbed_query in one absorb_q kernel, mla_absorb_o_q8 writing act_quant): env
// DSA_FUSED_ABSORB (0 / 1, read on every call), default on; off with DSA_FUSED_DECODE=0.
bool fused_absorb_enabled();
// mla_sparse_attention_o_q8 merging the split-K partials in absorb_o: env DSA_FUSED_COMBINE (0 / 1, read on every
// call), default on (H200: sparse MLA + absorb_o_q8 B = 1 19.2 -> 18.3 us, B = 8 38.6 -> 33.2, B = 32 106.6 ->
// 81.4); needs fused_absorb_enabled().
bool fused_combine_enabled();
// moe_route writing the pairs' grouping for moe_experts: env DSA_FUSED_GROUP (0 / 1, read on every call), default
// on (one launch fewer; H200 layer B = 1..4 / 4K within run-to-run noise of off); off with DSA_FUSED_DECODE=0.
bool fused_group_enabled();
// rms_norm_q8_and_writes in one launch: env DSA_FUSED_WRITES (0 / 1, read on every call), default on; off with
// DSA_FUSED_DECODE=0.
bool fused_writes_enabled();

// Checks a contiguous device tensor of dtype `dt`; `shape` entries < 0 are not checked.
void check_device_tensor(const Tensor& t, DType dt, std::initializer_list<int64_t> shape, const char* what);
// Checks a contiguous device bf16 tensor with at least one dim.
void check_activation(const Tensor& t, const char* what);

}  // namespace dsa::backend::cuda
