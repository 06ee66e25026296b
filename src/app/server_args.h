// ServerArgs: the `dsaserve serve` command line, flag for flag with `python -m sglang.launch_server` for the
// options the DeepSeek-V3.2 / GLM-5 deployment guides use. Parsing only; app/ turns it into the per-module
// configs. A flag that parses but whose feature is not built yet fails at start-up with
// "not supported yet: --flag" (check_supported), never silently ignored.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "base/status.h"

namespace dsa::app {

struct ServerArgs {
    // Model and tokenizer.
    std::string model_path;
    std::string tokenizer_path;
    std::string served_model_name;
    bool trust_remote_code = false;
    std::string json_model_override_args;
    std::string quantization;
    std::string weight_version = "default";
    std::string device = "auto";  // auto | cuda | cpu

    // HTTP.
    std::string host = "127.0.0.1";
    int port = 30000;
    std::string api_key;
    bool enable_metrics = false;
    bool collect_tokens_histogram = false;
    int tokenizer_worker_num = 1;
    double watchdog_timeout = 300;
    std::string log_level = "info";

    // Chat front end.
    std::string chat_template;
    std::string tool_call_parser;
    std::string reasoning_parser;
    std::string default_chat_template_kwargs;
    std::string preferred_sampling_params;
    std::string sampling_defaults = "model";
    bool allow_auto_truncate = false;
    bool enable_cache_report = false;
    bool stream_response_default_include_usage = false;
    bool incremental_streaming_output = false;

    // Memory and scheduling.
    std::optional<double> mem_fraction_static;
    std::optional<int> max_running_requests;
    std::optional<int> chunked_prefill_size;
    int max_prefill_tokens = 16384;
    double schedule_conservativeness = 1.0;  // scales the new-token ratio (lower admits more, retracts more)
    std::optional<int> context_length;
    int page_size = 64;
    std::string kv_cache_dtype = "auto";
    bool disable_radix_cache = false;
    std::optional<int> cuda_graph_max_bs;
    std::vector<int> cuda_graph_bs;  // batch sizes to capture (empty: the default list up to the max)
    bool disable_cuda_graph = false;
    std::string nsa_prefill_backend;
    std::string nsa_decode_backend;

    // Parallelism and deployment (not built yet beyond the single-GPU / CPU defaults).
    int tp_size = 1;
    int dp_size = 1;
    int ep_size = 1;
    int pp_size = 1;
    bool enable_dp_attention = false;
    std::string dist_init_addr;
    int nnodes = 1;
    int node_rank = 0;
    bool enable_nsa_prefill_context_parallel = false;
    int attn_cp_size = 1;
    std::string nsa_prefill_cp_mode;
    std::optional<int> moe_dense_tp_size;
    std::string moe_runner_backend = "auto";
    std::string disaggregation_mode = "null";
    std::string disaggregation_transfer_backend;
    std::optional<int> disaggregation_bootstrap_port;
    std::string disaggregation_ib_device;

    // Speculative decoding.
    std::string speculative_algorithm;
    std::optional<int> speculative_num_steps;
    std::optional<int> speculative_eagle_topk;
    std::optional<int> speculative_num_draft_tokens;
    std::string speculative_draft_model_path;
};

// Adds every flag to `cmd`, grouped for --help.
void register_server_args(CLI::App& cmd, ServerArgs& args);

// Range and choice checks that CLI11 does not express (a message naming the flag).
Status validate_server_args(const ServerArgs& args);

// "not supported yet: --flag (...)" for the first option whose feature is not built yet.
Status check_supported(const ServerArgs& args);

}  // namespace dsa::app
