// The KV memory planner: a pure function from device memory, mem_fraction_static, weight bytes and the
// workspace reserve to a page count (RUNTIME_NOTES §2.5). mem_fraction_static means what it means in SGLang:
// (weights + KV pools) / device memory free before loading. The plan never lets the pools eat the reserve
// for activations, workspaces and CUDA graphs, and never counts the KV without the indexer cache.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"
#include "kvcache/kv_config.h"

namespace dsa::kvcache {

struct MemoryPlanInput {
    int64_t total_device_bytes = 0;      // the GPU's capacity
    int64_t free_before_load_bytes = 0;  // free memory measured before weights load; 0 means total
    double mem_fraction_static = 0.0;    // (weights + KV) / free_before_load; see default_mem_fraction_static
    int64_t weight_bytes = 0;            // measured after loading
    int64_t reserve_bytes = 0;           // activations, workspaces, CUDA graphs, NCCL, margin
    int64_t max_total_tokens = 0;        // --max-total-tokens cap; 0 means none
};

struct MemoryPlan {
    int64_t kv_budget_bytes = 0;     // free_before_load * fraction - weights (before rounding to pages)
    int64_t num_pages = 0;           // usable pages (page 0 is extra, reserved)
    int64_t num_tokens = 0;          // num_pages * page_size
    int64_t pool_bytes = 0;          // bytes the pools allocate, page 0 included
    int64_t mla_pool_bytes = 0;      // the latent stores' share of pool_bytes
    int64_t indexer_pool_bytes = 0;  // the indexer stores' share of pool_bytes
};

// Plans the KV pools; a fraction that leaves no room for one page, or that eats into the reserve, is a user
// error whose message names the viable range of mem_fraction_static.
StatusOr<MemoryPlan> plan_kv_memory(const KvCacheConfig& config, const MemoryPlanInput& input);

// The reserve SGLang computes when --mem-fraction-static is unset (server_args _handle_gpu_memory_settings).
struct ReserveInput {
    int64_t chunked_prefill_size = 8192;
    int tp_size = 1;
    int pp_size = 1;
    int dp_size = 1;
    bool enable_dp_attention = false;
    int cuda_graph_max_bs = 256;  // largest decode bucket
};
int64_t default_reserve_bytes(const ReserveInput& input, int64_t total_device_bytes);
// The transient device memory of one forward step at its largest, from the model's shapes (plain numbers: the
// engine fills them from the model config). A step holds at most `chunk_tokens` prefill tokens or `max_running`
// decode tokens; one layer's temporaries are live at a time (the caching allocator reuses them layer to
// layer) next to the residual stream. The terms are the backends' real buffers: the indexer's f32 score rows
// over every visible key (tokens x context: the largest at long context), the absorbed attention's q / latent
// output and split-K partials, the expanded (dense MHA) keys and values of a prefill of at most
// dense_prefill_max_kv keys, the MoE's per-(token, expert) rows, and the f32 logits of the step.
struct ActivationInput {
    int64_t hidden = 0, vocab = 0, num_heads = 0, qk_head_dim = 0, v_head_dim = 0, kv_dim = 576, latent_dim = 512;
    int64_t q_lora_rank = 0, index_heads = 0, index_head_dim = 0, index_topk = 0;
    int64_t moe_width = 0, experts_per_token = 0, dense_width = 0;
    int64_t chunk_tokens = 8192, max_running = 256, context_tokens = 0, dense_prefill_max_kv = 2048;
};
struct ActivationEstimate {
    int64_t residual = 0, attention = 0, indexer = 0, ffn = 0, logits = 0;
    int64_t total() const;  // residual + max(attention + indexer, ffn) + logits
};
ActivationEstimate estimate_activation_bytes(const ActivationInput& input);
// The CUDA-graph pool: one decode step's buffers at the largest captured batch `max_bs` (graphs replay one at
// a time and share them; the step also holds its [max_bs, context] key-slot rows), plus the fixed input
// buffers (tokens, positions and page tables over the whole context). 0 when max_bs is 0 (no graphs).
int64_t estimate_graph_bytes(const ActivationInput& input, int64_t max_bs, int64_t page_size);
std::string describe_activations(const ActivationEstimate& e);

// (base - reserve) / base: the fraction used when the flag is unset. `base_bytes` is what the plan measures the
// fraction against: free memory before loading where known (MemoryPlanInput::free_before_load_bytes), else total.
double default_mem_fraction_static(int64_t base_bytes, int64_t reserve_bytes);

// One log line: weights, each pool's bytes, pages and token capacity.
std::string describe_plan(const KvCacheConfig& config, const MemoryPlan& plan, int64_t weight_bytes);

}  // namespace dsa::kvcache
