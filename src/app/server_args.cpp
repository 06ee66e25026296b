// Registration of the SGLang-compatible `serve` flags, their validation, and the "not supported yet" gate.
#include "app/server_args.h"

#include <algorithm>
#include <array>
#include <string_view>

namespace dsa::app {
namespace {

void add_model_group(CLI::App& cmd, ServerArgs& a) {
    const char* g = "Model";
    cmd.add_option("--model-path,--model", a.model_path, "Checkpoint directory (default: the bundled model)")
        ->group(g);
    cmd.add_option("--tokenizer-path", a.tokenizer_path, "Tokenizer directory (default: the model path)")->group(g);
    cmd.add_option("--served-model-name", a.served_model_name, "Name reported by /v1/models")->group(g);
    cmd.add_flag("--trust-remote-code", a.trust_remote_code, "Accepted for compatibility (no Python code runs)")
        ->group(g);
    cmd.add_option("--json-model-override-args", a.json_model_override_args, "JSON merged over config.json")
        ->group(g);
    cmd.add_option("--quantization", a.quantization, "fp8 (read from the checkpoint when empty)")->group(g);
    cmd.add_option("--weight-version", a.weight_version, "Reported by /get_model_info")->group(g);
    cmd.add_option("--device", a.device, "auto | cuda | cpu")->check(CLI::IsMember({"auto", "cuda", "cpu"}))
        ->group(g);
}

void add_http_group(CLI::App& cmd, ServerArgs& a) {
    const char* g = "HTTP server";
    cmd.add_option("--host", a.host, "Listen address")->capture_default_str()->group(g);
    cmd.add_option("--port", a.port, "Listen port")->capture_default_str()->check(CLI::Range(1, 65535))->group(g);
    cmd.add_option("--api-key", a.api_key, "Require 'Authorization: Bearer KEY' on every route but /health")
        ->group(g);
    cmd.add_flag("--enable-metrics", a.enable_metrics, "Serve Prometheus metrics at /metrics")->group(g);
    cmd.add_flag("--collect-tokens-histogram", a.collect_tokens_histogram, "Prompt/generation length histograms")
        ->group(g);
    cmd.add_option("--tokenizer-worker-num", a.tokenizer_worker_num,
                   "Front-end threads that parse, tokenize and detokenize requests (at least 4 run)")->capture_default_str()
        ->group(g);
    cmd.add_option("--watchdog-timeout", a.watchdog_timeout, "Seconds a step may take before the server aborts")
        ->capture_default_str()->group(g);
    cmd.add_option("--log-level", a.log_level, "debug | info | warning | error")->capture_default_str()->group(g);
}

void add_chat_group(CLI::App& cmd, ServerArgs& a) {
    const char* g = "Chat and parsing";
    cmd.add_option("--chat-template", a.chat_template, "A .jinja chat template file")->group(g);
    cmd.add_option("--tool-call-parser", a.tool_call_parser, "deepseekv31 | deepseekv32 | glm47 | glm45")->group(g);
    cmd.add_option("--reasoning-parser", a.reasoning_parser, "deepseek-v3 | glm45")->group(g);
    cmd.add_option("--default-chat-template-kwargs", a.default_chat_template_kwargs, "JSON merged under requests'")
        ->group(g);
    cmd.add_option("--preferred-sampling-params", a.preferred_sampling_params, "JSON default sampling params")
        ->group(g);
    cmd.add_option("--sampling-defaults", a.sampling_defaults, "model | openai")
        ->check(CLI::IsMember({"model", "openai"}))->capture_default_str()->group(g);
    cmd.add_flag("--allow-auto-truncate", a.allow_auto_truncate, "Truncate over-long prompts instead of failing")
        ->group(g);
    cmd.add_flag("--enable-cache-report", a.enable_cache_report, "Report cached prompt tokens in usage")->group(g);
    cmd.add_flag("--stream-response-default-include-usage", a.stream_response_default_include_usage,
                 "Streams include usage unless the request says otherwise")->group(g);
    cmd.add_flag("--incremental-streaming-output", a.incremental_streaming_output,
                 "/generate streams deltas instead of cumulative text")->group(g);
}

void add_memory_group(CLI::App& cmd, ServerArgs& a) {
    const char* g = "Memory and scheduling";
    cmd.add_option("--mem-fraction-static", a.mem_fraction_static, "Fraction of GPU memory for weights + KV")
        ->check(CLI::Range(0.01, 0.99))->group(g);
    cmd.add_option("--max-running-requests", a.max_running_requests, "Running requests per step")
        ->check(CLI::PositiveNumber)->group(g);
    cmd.add_option("--chunked-prefill-size", a.chunked_prefill_size, "Prefill chunk in tokens (-1 = off)")->group(g);
    cmd.add_option("--max-prefill-tokens", a.max_prefill_tokens, "Prefill tokens per step")->capture_default_str()
        ->check(CLI::PositiveNumber)->group(g);
    cmd.add_option("--schedule-conservativeness", a.schedule_conservativeness,
                   "Admission caution: scales the reserved share of future output")
        ->capture_default_str()->check(CLI::PositiveNumber)->group(g);
    cmd.add_option("--context-length", a.context_length, "Max tokens per request (default: the model's)")
        ->check(CLI::PositiveNumber)->group(g);
    cmd.add_option("--page-size", a.page_size, "KV page size (DSA kernels need 64)")->capture_default_str()->group(g);
    cmd.add_option("--kv-cache-dtype", a.kv_cache_dtype, "auto | bf16 | bfloat16 | fp8_e4m3")
        ->check(CLI::IsMember({"auto", "bf16", "bfloat16", "fp8_e4m3"}))->capture_default_str()->group(g);
    cmd.add_flag("--disable-radix-cache", a.disable_radix_cache, "No prefix sharing")->group(g);
    cmd.add_option("--cuda-graph-max-bs", a.cuda_graph_max_bs, "Largest decode batch captured in a CUDA graph")
        ->check(CLI::PositiveNumber)->group(g);
    cmd.add_option("--cuda-graph-bs", a.cuda_graph_bs, "Decode batch sizes captured in CUDA graphs")
        ->check(CLI::PositiveNumber)->group(g);
    cmd.add_flag("--disable-cuda-graph", a.disable_cuda_graph, "Run decode steps without CUDA graphs")->group(g);
    cmd.add_option("--nsa-prefill-backend", a.nsa_prefill_backend, "Accepted for compatibility; dsaserve kernels")
        ->group(g);
    cmd.add_option("--nsa-decode-backend", a.nsa_decode_backend, "Accepted for compatibility; dsaserve kernels")
        ->group(g);
}

void add_parallel_group(CLI::App& cmd, ServerArgs& a) {
    const char* g = "Parallelism and deployment";
    cmd.add_option("--tp-size,--tp", a.tp_size, "Tensor parallel size")->capture_default_str()->group(g);
    cmd.add_option("--dp-size,--dp", a.dp_size, "Data parallel size")->capture_default_str()->group(g);
    cmd.add_option("--ep-size,--ep", a.ep_size, "Expert parallel size")->capture_default_str()->group(g);
    cmd.add_option("--pp-size", a.pp_size, "Pipeline parallel size")->capture_default_str()->group(g);
    cmd.add_flag("--enable-dp-attention", a.enable_dp_attention, "Data-parallel attention")->group(g);
    cmd.add_option("--dist-init-addr", a.dist_init_addr, "host:port of rank 0 (multi-node)")->group(g);
    cmd.add_option("--nnodes", a.nnodes, "Number of nodes")->capture_default_str()->group(g);
    cmd.add_option("--node-rank", a.node_rank, "This node's rank")->capture_default_str()->group(g);
    cmd.add_flag("--enable-nsa-prefill-context-parallel", a.enable_nsa_prefill_context_parallel,
                 "Context-parallel DSA prefill")->group(g);
    cmd.add_option("--attn-cp-size", a.attn_cp_size, "Attention context-parallel size")->group(g);
    cmd.add_option("--nsa-prefill-cp-mode", a.nsa_prefill_cp_mode, "Context-parallel split mode")->group(g);
    cmd.add_option("--moe-dense-tp-size", a.moe_dense_tp_size, "TP size of the dense MLP layers")->group(g);
    cmd.add_option("--moe-runner-backend", a.moe_runner_backend, "Accepted for compatibility; dsaserve kernels")
        ->group(g);
    cmd.add_option("--disaggregation-mode", a.disaggregation_mode, "null | prefill | decode")
        ->check(CLI::IsMember({"null", "prefill", "decode"}))->group(g);
    cmd.add_option("--disaggregation-transfer-backend", a.disaggregation_transfer_backend, "KV transfer backend")
        ->group(g);
    cmd.add_option("--disaggregation-bootstrap-port", a.disaggregation_bootstrap_port, "PD bootstrap port")
        ->group(g);
    cmd.add_option("--disaggregation-ib-device", a.disaggregation_ib_device, "RDMA device")->group(g);
}

void add_speculative_group(CLI::App& cmd, ServerArgs& a) {
    const char* g = "Speculative decoding (MTP)";
    cmd.add_option("--speculative-algorithm", a.speculative_algorithm, "EAGLE | NEXTN (the MTP layer)")->group(g);
    cmd.add_option("--speculative-num-steps", a.speculative_num_steps, "Draft steps")->group(g);
    cmd.add_option("--speculative-eagle-topk", a.speculative_eagle_topk, "Draft branching (1 = chain)")->group(g);
    cmd.add_option("--speculative-num-draft-tokens", a.speculative_num_draft_tokens, "Tokens verified per step")
        ->group(g);
    cmd.add_option("--speculative-draft-model-path", a.speculative_draft_model_path, "Draft model (default: MTP)")
        ->group(g);
}

}  // namespace

void register_server_args(CLI::App& cmd, ServerArgs& args) {
    add_model_group(cmd, args);
    add_http_group(cmd, args);
    add_chat_group(cmd, args);
    add_memory_group(cmd, args);
    add_parallel_group(cmd, args);
    add_speculative_group(cmd, args);
}

Status validate_server_args(const ServerArgs& a) {
    if (a.tp_size < 1 || a.dp_size < 1 || a.ep_size < 1 || a.pp_size < 1 || a.nnodes < 1)
        return invalid_argument("--tp-size, --dp-size, --ep-size, --pp-size and --nnodes must be >= 1");
    if (a.node_rank < 0 || a.node_rank >= a.nnodes)
        return invalid_argument("--node-rank {} is outside [0, --nnodes {})", a.node_rank, a.nnodes);
    if (a.page_size != 64)
        return invalid_argument("--page-size {}: the DSA indexer cache and sparse kernels need 64", a.page_size);
    if (a.tokenizer_worker_num < 1) return invalid_argument("--tokenizer-worker-num must be >= 1");
    if (a.watchdog_timeout <= 0) return invalid_argument("--watchdog-timeout must be > 0");
    if (a.chunked_prefill_size && *a.chunked_prefill_size != -1 && *a.chunked_prefill_size < a.page_size)
        return invalid_argument("--chunked-prefill-size {} must be -1 or >= the page size {}",
                                *a.chunked_prefill_size, a.page_size);
    static constexpr std::array<std::string_view, 5> kLevels = {"debug", "info", "warning", "error", "critical"};
    if (std::find(kLevels.begin(), kLevels.end(), a.log_level) == kLevels.end())
        return invalid_argument("--log-level '{}' (supported: debug, info, warning, error, critical)", a.log_level);
    return Status::ok();
}

Status check_supported(const ServerArgs& a) {
    auto no = [](std::string_view flag, std::string_view why) {
        return unimplemented("not supported yet: {} ({})", flag, why);
    };
    if (a.tp_size > 1) return no("--tp-size", "multi-GPU tensor parallelism is not built yet");
    if (a.dp_size > 1) return no("--dp-size", "data parallelism is not built yet");
    if (a.ep_size > 1) return no("--ep-size", "expert parallelism is not built yet");
    if (a.pp_size > 1) return no("--pp-size", "pipeline parallelism is not built yet");
    if (a.enable_dp_attention) return no("--enable-dp-attention", "DP attention is not built yet");
    if (a.nnodes > 1 || !a.dist_init_addr.empty()) return no("--nnodes/--dist-init-addr", "multi-node");
    if (a.enable_nsa_prefill_context_parallel || a.attn_cp_size > 1 || !a.nsa_prefill_cp_mode.empty())
        return no("--enable-nsa-prefill-context-parallel/--attn-cp-size", "context-parallel prefill");
    if (a.moe_dense_tp_size && *a.moe_dense_tp_size > 1) return no("--moe-dense-tp-size", "needs tensor parallelism");
    if (a.disaggregation_mode != "null") return no("--disaggregation-mode", "PD disaggregation");
    if (!a.speculative_algorithm.empty()) return no("--speculative-algorithm", "MTP speculative decoding");
    if (a.speculative_num_steps || a.speculative_eagle_topk || a.speculative_num_draft_tokens)
        return no("--speculative-*", "MTP speculative decoding");
    if (a.collect_tokens_histogram) return no("--collect-tokens-histogram", "length histograms");
    if (!a.quantization.empty() && a.quantization != "fp8")
        return no("--quantization " + a.quantization, "only the checkpoint's own fp8 format is read");
    return Status::ok();
}

}  // namespace dsa::app
