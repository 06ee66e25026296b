// `dsaserve serve`: flag -> module-config composition, startup, and signal-driven shutdown.
#include "app/serve_command.h"

#include <algorithm>
#include <csignal>
#include <ctime>
#include <memory>

#include "app/device_backend.h"
#include "app/text_services.h"
#include "base/env.h"
#include "base/logging.h"
#include "base/mapped_file.h"
#include "engine/model_engine.h"
#include "model/config.h"
#include "server/http_server.h"
#include "server/server_context.h"

#ifndef DSA_BUNDLED_MODEL_DIR
#define DSA_BUNDLED_MODEL_DIR "models/dsv32-tiny"
#endif

namespace dsa::app {
namespace {

// BF16 activations on both devices (the same numerics whichever device serves); --kv-cache-dtype fp8_e4m3
// selects the 656-byte FP8 latent cache as in SGLang.
// What SGLang runs: for an FP8 checkpoint DeepSeek's deployed numerics (W8A8 block GEMMs with the 1x128
// per-token activation quantization, UE8M0 scales where the config says so, the FP8 indexer), bf16 activations
// otherwise; the 656-byte FP8 latent cache with --kv-cache-dtype fp8_e4m3. DSA_SERVING_NUMERICS=bf16 keeps
// bf16 activations and the F32 indexer even for FP8 checkpoints (debugging).
backend::Numerics serving_numerics(const ServerArgs& a, const model::ModelConfig& mc) {
    backend::Numerics n = backend::Numerics::bf16();
    const std::string mode = env_string("DSA_SERVING_NUMERICS", "auto",
                                        "auto: DeepSeek's FP8 numerics for FP8 checkpoints; bf16: bf16 activations");
    if (mc.quant.method == model::QuantMethod::kFp8 && mode != "bf16") {
        n.fp8_activation_quant = true;
        n.ue8m0_scales = mc.quant.scale_fmt_ue8m0();
        n.indexer_fp8 = true;
    }
    n.kv_cache_fp8 = a.kv_cache_dtype == "fp8_e4m3";
    return n;
}

engine::EngineConfig engine_config(const ServerArgs& a, Device device) {
    engine::EngineConfig c;
    if (a.max_running_requests) c.max_running_requests = *a.max_running_requests;
    if (a.chunked_prefill_size) c.chunked_prefill_size = *a.chunked_prefill_size;
    c.max_prefill_tokens = a.max_prefill_tokens;
    c.schedule_conservativeness = a.schedule_conservativeness;
    c.page_size = a.page_size;
    if (a.context_length) c.context_length = *a.context_length;
    c.radix_cache = a.disable_radix_cache ? kvcache::PrefixCacheMode::kDisabled : kvcache::PrefixCacheMode::kRadix;
    // GPU: 0 = planned from device memory and --mem-fraction-static (ModelEngine).
    c.kv_budget_bytes = device == Device::kCPU
                            ? env_int("DSA_CPU_KV_CACHE_BYTES", int64_t{1} << 30, "KV pool bytes on the CPU backend")
                            : 0;
    return c;
}

// --sampling-defaults model: generation_config.json's sampling fields become the chat defaults.
api::ChatSamplingDefaults model_sampling_defaults(const std::string& model_dir) {
    api::ChatSamplingDefaults d;
    StatusOr<std::string> text = read_file(join_path(model_dir, "generation_config.json"));
    if (!text.is_ok()) return d;
    OrderedJson j = OrderedJson::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) return d;
    auto num = [&](const char* k) -> std::optional<double> {
        auto it = j.find(k);
        return it != j.end() && it->is_number() ? std::optional<double>(it->get<double>()) : std::nullopt;
    };
    d.temperature = num("temperature");
    d.top_p = num("top_p");
    if (auto k = num("top_k")) d.top_k = static_cast<int32_t>(*k);
    d.min_p = num("min_p");
    d.repetition_penalty = num("repetition_penalty");
    return d;
}

StatusOr<OrderedJson> parse_json_object(const std::string& text, const char* flag) {
    if (text.empty()) return OrderedJson::object();
    OrderedJson j = OrderedJson::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return invalid_argument("{} must be a JSON object", flag);
    return j;
}

StatusOr<api::ApiConfig> api_config(const ServerArgs& a, const std::string& model_dir, const std::string& tok_dir,
                                    const model::ModelConfig& mc, int64_t context_length) {
    api::ApiConfig c;
    c.served_model_name = a.served_model_name.empty() ? model_dir : a.served_model_name;
    c.model_path = model_dir;
    c.tokenizer_path = tok_dir;
    c.model_type = mc.model_type;
    c.architectures = OrderedJson(mc.architectures);
    c.context_length = static_cast<int32_t>(context_length);
    c.context_length_explicit = a.context_length.has_value();
    c.allow_auto_truncate = a.allow_auto_truncate;
    c.enable_cache_report = a.enable_cache_report;
    c.stream_include_usage_default = a.stream_response_default_include_usage;
    c.incremental_streaming_output = a.incremental_streaming_output;
    c.weight_version = a.weight_version;
    DSA_ASSIGN_OR_RETURN(c.default_chat_template_kwargs,
                         parse_json_object(a.default_chat_template_kwargs, "--default-chat-template-kwargs"));
    if (a.sampling_defaults == "model") c.chat_defaults = model_sampling_defaults(model_dir);
    c.created_unix = static_cast<int64_t>(std::time(nullptr));
    return c;
}

// Blocks until SIGINT or SIGTERM.
void wait_for_shutdown_signal() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = 0;
    sigwait(&set, &sig);
    DSA_LOG(kInfo) << "received signal " << sig << ", shutting down";
}

}  // namespace

std::string bundled_model_dir() {
    return env_string("DSA_BUNDLED_MODEL", DSA_BUNDLED_MODEL_DIR, "model served when --model-path is not given");
}

Status run_serve(const ServerArgs& a) {
    DSA_RETURN_IF_ERROR(validate_server_args(a));
    DSA_RETURN_IF_ERROR(check_supported(a));
    if (!a.preferred_sampling_params.empty()) return unimplemented("not supported yet: --preferred-sampling-params");
    LogLevel level;
    if (parse_log_level(a.log_level, &level)) set_log_level(level);
    // Signals go to sigwait only: block them before any thread starts so every thread inherits the mask.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);

    const std::string model_dir = a.model_path.empty() ? bundled_model_dir() : a.model_path;
    const std::string tok_dir = a.tokenizer_path.empty() ? model_dir : a.tokenizer_path;
    DSA_ASSIGN_OR_RETURN(Device device, resolve_device(a.device));
    engine::ModelEngineOptions eo;
    eo.model_path = model_dir;
    eo.json_model_override_args = a.json_model_override_args;
    DSA_ASSIGN_OR_RETURN(const model::ModelConfig numerics_config,
                         model::load_model_config(model_dir, a.json_model_override_args));
    eo.numerics = serving_numerics(a, numerics_config);
    DSA_LOG(kInfo) << "numerics: activations bf16" << (eo.numerics.fp8_activation_quant ? " with FP8 act_quant" : "")
                   << (eo.numerics.ue8m0_scales ? " (UE8M0 scales)" : "") << ", indexer "
                   << (eo.numerics.indexer_fp8 ? "FP8" : "F32") << ", KV cache "
                   << backend::mla_kv_format_name(eo.numerics.mla_kv_format());
    eo.engine = engine_config(a, device);
    eo.backend = backend_provider(device);
    eo.mem_fraction_static = a.mem_fraction_static;
    eo.graphs.enabled = !a.disable_cuda_graph;
    if (a.cuda_graph_max_bs) eo.graphs.max_bs = *a.cuda_graph_max_bs;
    eo.graphs.batch_sizes.assign(a.cuda_graph_bs.begin(), a.cuda_graph_bs.end());
    DSA_ASSIGN_OR_RETURN(std::unique_ptr<engine::ModelEngine> me, engine::ModelEngine::load(eo));
    const model::ModelConfig& mc = me->model_config();
    TextSetup ts{tok_dir, a.chat_template, a.tool_call_parser, a.reasoning_parser};
    DSA_ASSIGN_OR_RETURN(LoadedText text, load_text_services(ts, mc));

    auto ctx = std::make_unique<server::ServerContext>();
    ctx->config.host = a.host;
    ctx->config.port = a.port;
    // SGLang's tokenizer workers are processes; here tokenization and detokenization run on the I/O threads
    ctx->config.num_io_threads = std::max(ctx->config.num_io_threads, a.tokenizer_worker_num);
    ctx->config.api_key = a.api_key;
    ctx->config.enable_metrics = a.enable_metrics;
    DSA_ASSIGN_OR_RETURN(ctx->api.config, api_config(a, model_dir, tok_dir, mc, me->engine().config().context_length));
    ctx->api.services = text.services;
    if (auto id = text.tokenizer->token_to_id("</think>")) ctx->api.think_end_token = *id;
    ctx->engine = &me->engine();
    ctx->server_args = OrderedJson{{"model_path", model_dir}, {"host", a.host}, {"port", a.port},
                                   {"tool_call_parser", a.tool_call_parser}, {"reasoning_parser", a.reasoning_parser},
                                   {"page_size", a.page_size}, {"kv_cache_dtype", a.kv_cache_dtype},
                                   {"disable_radix_cache", a.disable_radix_cache}, {"device", device_name(device)}};

    me->engine().start();
    server::HttpServer http(*ctx);
    DSA_ASSIGN_OR_RETURN(int port, http.start());
    DSA_LOG(kInfo) << "serving " << model_dir << " (" << mc.model_type << ", prompts: " << text.prompt_format
                   << ", device " << device_name(device) << ") on http://" << a.host << ":" << port;
    wait_for_shutdown_signal();
    ctx->ready = false;
    http.stop();
    me->engine().stop();
    return Status::ok();
}

}  // namespace dsa::app
