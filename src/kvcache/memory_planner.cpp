// KV memory planning (pure arithmetic; unit-tested without a GPU).
#include "kvcache/memory_planner.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace dsa::kvcache {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;

Status check_input(const MemoryPlanInput& in) {
    if (in.total_device_bytes <= 0) return invalid_argument("memory plan: device memory must be positive");
    if (!(in.mem_fraction_static > 0.0 && in.mem_fraction_static <= 1.0)) {
        return invalid_argument("--mem-fraction-static must be in (0, 1], got {}", in.mem_fraction_static);
    }
    if (in.weight_bytes < 0 || in.reserve_bytes < 0 || in.max_total_tokens < 0 || in.free_before_load_bytes < 0) {
        return invalid_argument("memory plan: byte counts must be non-negative");
    }
    return Status::ok();
}

MemoryPlan make_plan(const KvCacheConfig& config, int64_t budget, int64_t num_pages) {
    MemoryPlan plan;
    plan.kv_budget_bytes = budget;
    plan.num_pages = num_pages;
    plan.num_tokens = num_pages * config.page_size;
    int64_t num_slots = (num_pages + 1) * config.page_size;
    plan.mla_pool_bytes = num_slots * config.num_total_layers() * config.mla_bytes_per_token_per_layer();
    plan.indexer_pool_bytes = num_slots * config.num_indexer_layers() * config.indexer_bytes_per_token_per_layer();
    plan.pool_bytes = plan.mla_pool_bytes + plan.indexer_pool_bytes;
    return plan;
}

}  // namespace

StatusOr<MemoryPlan> plan_kv_memory(const KvCacheConfig& config, const MemoryPlanInput& in) {
    DSA_RETURN_IF_ERROR(config.validate());
    DSA_RETURN_IF_ERROR(check_input(in));
    int64_t free_before = in.free_before_load_bytes > 0 ? in.free_before_load_bytes : in.total_device_bytes;
    auto fb = static_cast<double>(free_before);
    int64_t budget = static_cast<int64_t>(std::floor(fb * in.mem_fraction_static)) - in.weight_bytes;
    int64_t room = free_before - in.weight_bytes - in.reserve_bytes;  // what the pools may take at most
    if (budget > room) {
        double max_fraction = static_cast<double>(free_before - in.reserve_bytes) / fb;
        return make_error(StatusCode::kResourceExhausted,
                          "--mem-fraction-static {:.3f} leaves {} MiB for activations and graphs but {} MiB are "
                          "reserved; use at most {:.3f}",
                          in.mem_fraction_static, (free_before - in.weight_bytes - budget) / kMiB,
                          in.reserve_bytes / kMiB, max_fraction);
    }
    int64_t num_pages = config.num_pages_for_budget(budget);
    if (in.max_total_tokens > 0) num_pages = std::min<int64_t>(num_pages, in.max_total_tokens / config.page_size);
    if (num_pages < 1) {
        double min_fraction = static_cast<double>(in.weight_bytes + config.pool_bytes(1)) / fb;
        return make_error(StatusCode::kResourceExhausted,
                          "not enough memory for the KV cache: weights {} MiB, KV budget {} MiB, one page needs {} "
                          "B; --mem-fraction-static must be at least {:.3f}",
                          in.weight_bytes / kMiB, budget / kMiB, config.bytes_per_page(), min_fraction);
    }
    return make_plan(config, budget, num_pages);
}

int64_t default_reserve_bytes(const ReserveInput& in, int64_t total_device_bytes) {
    double mib = 512.0 + 1.5 * static_cast<double>(std::max<int64_t>(in.chunked_prefill_size, 2048)) +
                 1024.0 * in.tp_size * in.pp_size / 8.0;
    double graph_mib = 2.0 * in.cuda_graph_max_bs;
    if (in.enable_dp_attention) {
        graph_mib += 3.0 * in.cuda_graph_max_bs * in.dp_size;
        if (in.cuda_graph_max_bs > 300) graph_mib += 1.5 * in.cuda_graph_max_bs * in.dp_size;
    }
    graph_mib += 1536.0;  // MLA prefill graphs
    auto reserve = static_cast<int64_t>((mib + graph_mib) * static_cast<double>(kMiB));
    if (total_device_bytes > 60 * kGiB) reserve = std::max(reserve, 10 * kGiB);
    return reserve;
}

int64_t ActivationEstimate::total() const { return residual + std::max(attention + indexer, ffn) + logits; }

ActivationEstimate estimate_activation_bytes(const ActivationInput& in) {
    constexpr int64_t kBf16 = 2, kF32 = 4, kI32 = 4;
    const int64_t t = std::max(in.chunk_tokens, in.max_running);  // tokens of the largest step
    const int64_t h = in.num_heads;
    ActivationEstimate e;
    // x, residual, normed x, layer output, and the MLA/indexer inputs (q_a / kv_a rows) beside them.
    e.residual = t * (4 * in.hidden + in.q_lora_rank + in.kv_dim) * kBf16;
    // q (qk and its absorbed 576-wide form), latent and head outputs; expanded k/v of a short prefill; split-K
    // partials (at most one pass of the SMs: 132 CTAs x 64 heads x (512 + 2) f32 in the worst split).
    const int64_t dense_keys = std::min(in.dense_prefill_max_kv, in.context_tokens);
    e.attention = t * h * (in.qk_head_dim + in.kv_dim + in.latent_dim + in.v_head_dim) * kBf16 +
                  dense_keys * h * (in.qk_head_dim + in.v_head_dim) * kBf16 + 132 * 64 * (in.latent_dim + 2) * kF32;
    // q (bf16 + f16 copy), head weights, f32 scores over every visible key, the top-k positions and slots.
    e.indexer = t * in.index_heads * (in.index_head_dim * 2 * kBf16 + 2 * kF32) + t * in.context_tokens * kF32 +
                2 * t * in.index_topk * kI32;
    // Router scores, the f32 prepped input, per-(token, expert) gate/up/SwiGLU rows and outputs; the dense MLP.
    const int64_t pairs = t * in.experts_per_token;
    const int64_t moe = t * in.hidden * kF32 + pairs * (3 * in.moe_width + in.hidden) * kBf16;
    const int64_t dense = t * 3 * in.dense_width * kBf16;
    e.ffn = std::max(moe, dense);
    e.logits = in.max_running * in.vocab * kF32;
    return e;
}

int64_t estimate_graph_bytes(const ActivationInput& input, int64_t max_bs, int64_t page_size) {
    if (max_bs <= 0) return 0;
    ActivationInput decode = input;
    decode.chunk_tokens = 0;
    decode.max_running = max_bs;
    decode.dense_prefill_max_kv = 0;
    const int64_t pages = (input.context_tokens + page_size - 1) / page_size;
    const int64_t key_slots = max_bs * input.context_tokens * 4;
    const int64_t inputs = max_bs * (3 + pages) * 4;
    return estimate_activation_bytes(decode).total() + key_slots + inputs;
}

std::string describe_activations(const ActivationEstimate& e) {
    auto mib = [](int64_t b) { return static_cast<double>(b) / kMiB; };
    return fmt::format("activations {:.0f} MiB (residual {:.0f}, attention {:.0f}, indexer {:.0f}, ffn {:.0f}, "
                       "logits {:.0f})",
                       mib(e.total()), mib(e.residual), mib(e.attention), mib(e.indexer), mib(e.ffn), mib(e.logits));
}

double default_mem_fraction_static(int64_t base_bytes, int64_t reserve_bytes) {
    DSA_CHECK_GT(base_bytes, 0);
    int64_t left = std::max<int64_t>(base_bytes - reserve_bytes, 0);
    return static_cast<double>(left) / static_cast<double>(base_bytes);
}

std::string describe_plan(const KvCacheConfig& config, const MemoryPlan& plan, int64_t weight_bytes) {
    return fmt::format(
        "KV plan: weights {:.2f} GiB, latent pool {:.2f} GiB ({} layers x {} B, {}), indexer pool {:.2f} GiB "
        "({} layers x {} B, {}), {} pages of {} tokens = {} tokens, {} B/token",
        static_cast<double>(weight_bytes) / kGiB, static_cast<double>(plan.mla_pool_bytes) / kGiB,
        config.num_total_layers(), config.mla_bytes_per_token_per_layer(), mla_kv_format_name(config.mla_format),
        static_cast<double>(plan.indexer_pool_bytes) / kGiB, config.num_indexer_layers(),
        config.indexer_bytes_per_token_per_layer(), indexer_key_format_name(config.indexer_format), plan.num_pages,
        config.page_size, plan.num_tokens, config.bytes_per_token());
}

}  // namespace dsa::kvcache
