// EngineConfig: the engine's own immutable settings (DESIGN §6.7), with SGLang's defaults and validate(). app/
// fills it from the CLI flags (--max-running-requests, --chunked-prefill-size, --max-prefill-tokens,
// --page-size, --context-length, --disable-radix-cache, --schedule-conservativeness); the KV byte budget is
// what the runner's pool was sized from (CPU: a byte budget; GPU: the memory planner).
#pragma once

#include <cstdint>
#include <vector>

#include "base/status.h"
#include "engine/scheduler.h"
#include "kvcache/prefix_cache.h"

namespace dsa::engine {

enum class InvariantChecks : uint8_t { kOff, kEveryStep };  // page-partition check after every step

struct EngineConfig {
    int64_t max_running_requests = 256;
    int64_t chunked_prefill_size = 8192;  // -1 or 0: no chunking
    int64_t max_prefill_tokens = 16384;
    int page_size = 64;
    int64_t context_length = 0;                  // required (> 0): the model's context or --context-length
    // KV pool bytes; the runner sizes its pool from it. ModelEngine on a device backend: <= 0 = planned from
    // device memory (--mem-fraction-static).
    int64_t kv_budget_bytes = int64_t{1} << 30;
    kvcache::PrefixCacheMode radix_cache = kvcache::PrefixCacheMode::kRadix;
    kvcache::EvictionPolicy eviction_policy = kvcache::EvictionPolicy::kLru;
    double schedule_conservativeness = 1.0;
    int64_t clip_max_new_tokens_estimation = 4096;
    std::vector<int32_t> eos_token_ids;  // the model's EOS ids (config / generation config)
    InvariantChecks invariant_checks = InvariantChecks::kOff;

    Status validate() const;
    SchedulerConfig scheduler_config() const;
};

}  // namespace dsa::engine
