// EngineConfig validation: messages name the SGLang flag a user would change.
#include "engine/engine_config.h"

namespace dsa::engine {

Status EngineConfig::validate() const {
    if (max_running_requests < 1)
        return invalid_argument("--max-running-requests must be at least 1, got {}", max_running_requests);
    if (page_size < 1) return invalid_argument("--page-size must be positive, got {}", page_size);
    if (chunked_prefill_size > 0 && chunked_prefill_size < page_size) {
        return invalid_argument("--chunked-prefill-size must be -1 (off) or at least the page size {}, got {}",
                                page_size, chunked_prefill_size);
    }
    if (max_prefill_tokens < 1)
        return invalid_argument("--max-prefill-tokens must be at least 1, got {}", max_prefill_tokens);
    if (context_length < 2) return invalid_argument("--context-length must be at least 2, got {}", context_length);
    if (kv_budget_bytes < 1) return invalid_argument("the KV byte budget must be positive, got {}", kv_budget_bytes);
    if (!(schedule_conservativeness > 0.0))
        return invalid_argument("--schedule-conservativeness must be positive, got {}", schedule_conservativeness);
    if (clip_max_new_tokens_estimation < 1)
        return invalid_argument("clip_max_new_tokens_estimation must be positive, got {}",
                                clip_max_new_tokens_estimation);
    for (int32_t id : eos_token_ids) {
        if (id < 0) return invalid_argument("EOS token ids must be non-negative, got {}", id);
    }
    return Status::ok();
}

SchedulerConfig EngineConfig::scheduler_config() const {
    return SchedulerConfig{.max_running_requests = max_running_requests,
                           .chunked_prefill_size = chunked_prefill_size,
                           .max_prefill_tokens = max_prefill_tokens,
                           .page_size = page_size,
                           .clip_max_new_tokens_estimation = clip_max_new_tokens_estimation};
}

}  // namespace dsa::engine
