// `dsaserve generate`: load config + checkpoint, build the backend of --device (CPU reference or CUDA), prefill
// (optionally in chunks), then greedy decode with per-step timing. KV stores live on the backend's device.
#include "app/generate_command.h"

#include <chrono>
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "app/device_backend.h"
#include "backend/backend.h"
#include "base/status.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/sequence_runner.h"
#include "model/transformer.h"
#include "model/weights.h"

namespace dsa::app {
namespace {

struct GenerateArgs {
    std::string model_path;
    std::string prompt_ids;
    int64_t max_new_tokens = 16;
    int64_t chunked_prefill_size = 0;
    std::string device = "auto";
    std::string numerics = "auto";
    std::string override_args;
    bool stop_at_eos = false;
};

StatusOr<std::vector<int32_t>> parse_ids(const std::string& text, int64_t vocab) {
    std::vector<int32_t> ids;
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t comma = text.find(',', pos);
        std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        size_t used = 0;
        long long v = -1;
        try {
            v = std::stoll(item, &used);
        } catch (...) {
            used = 0;
        }
        if (used == 0 || used != item.size()) return invalid_argument("--prompt-ids: '{}' is not an integer", item);
        if (v < 0 || v >= vocab) return invalid_argument("--prompt-ids: id {} is outside the vocabulary [0, {})", v, vocab);
        ids.push_back(static_cast<int32_t>(v));
        if (comma == std::string::npos) break;
        pos = comma + 1;
    }
    if (ids.empty()) return invalid_argument("--prompt-ids is empty");
    return ids;
}

// auto: fp32 on the CPU (the parity reference), bf16 on CUDA (its activation dtype).
StatusOr<backend::Numerics> parse_numerics(const std::string& name, Device device) {
    if (name == "auto") return device == Device::kCPU ? backend::Numerics::fp32() : backend::Numerics::bf16();
    if (name == "fp32") return backend::Numerics::fp32();
    if (name == "bf16") return backend::Numerics::bf16();
    if (name == "deepseek-fp8") return backend::Numerics::deepseek_fp8();
    return invalid_argument("--numerics: unknown '{}' (supported: auto, fp32, bf16, deepseek-fp8)", name);
}

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

Status run_generate(const GenerateArgs& a) {
    if (a.max_new_tokens < 1) return invalid_argument("--max-new-tokens must be >= 1");
    DSA_ASSIGN_OR_RETURN(Device device, resolve_device(a.device));
    DSA_ASSIGN_OR_RETURN(backend::Numerics numerics, parse_numerics(a.numerics, device));
    DSA_RETURN_IF_ERROR(check_device_numerics(device, numerics, "--numerics"));
    DSA_ASSIGN_OR_RETURN(model::ModelConfig config, model::load_model_config(a.model_path, a.override_args));
    DSA_ASSIGN_OR_RETURN(std::vector<int32_t> prompt, parse_ids(a.prompt_ids, config.vocab_size));
    DSA_ASSIGN_OR_RETURN(model::Checkpoint ckpt, model::Checkpoint::open(a.model_path));
    auto t_load = std::chrono::steady_clock::now();
    DSA_ASSIGN_OR_RETURN(model::ModelWeights weights, model::load_model_weights(ckpt, config));
    std::fprintf(stderr, "loaded %s (%s, %lld layers) in %.1f ms; device %s\n", a.model_path.c_str(),
                 model::model_family_name(config.family), static_cast<long long>(config.num_hidden_layers),
                 ms_since(t_load), device_name(device));

    const int64_t page_size = 64;
    const int64_t total = static_cast<int64_t>(prompt.size()) + a.max_new_tokens;
    const int64_t num_pages = (total + page_size - 1) / page_size + 1;  // + the reserved page 0
    DSA_ASSIGN_OR_RETURN(std::unique_ptr<backend::Backend> be, make_backend(device, numerics));
    model::DsaModel model(config, weights, *be, {.max_positions = total});
    model::KvStores kv = model::allocate_kv_stores(*be, config, num_pages, page_size, /*num_mtp_layers=*/0);
    model::SequenceRunner runner(model, kv, page_size);

    auto t0 = std::chrono::steady_clock::now();
    model::ForwardOutput out = runner.prefill(prompt, a.chunked_prefill_size, /*all_logits=*/false);
    std::printf("prefill: %zu tokens in %.2f ms\n", prompt.size(), ms_since(t0));
    std::vector<int32_t> generated;
    for (int64_t i = 0; i < a.max_new_tokens; ++i) {
        int32_t next = model::argmax_row(out.logits, 0);
        generated.push_back(next);
        bool is_eos = std::find(config.eos_token_ids.begin(), config.eos_token_ids.end(), next) !=
                      config.eos_token_ids.end();
        if (i + 1 == a.max_new_tokens || (a.stop_at_eos && is_eos)) break;
        auto ts = std::chrono::steady_clock::now();
        out = runner.step(std::span<const int32_t>(&next, 1), /*all_logits=*/false);
        std::printf("step %lld: token %d, %.2f ms\n", static_cast<long long>(i + 1), next, ms_since(ts));
    }
    std::string joined;
    for (size_t i = 0; i < generated.size(); ++i) joined += (i ? "," : "") + std::to_string(generated[i]);
    std::printf("new ids: %s\n", joined.c_str());
    return Status::ok();
}

}  // namespace

void add_generate_command(CLI::App& app, int* exit_code) {
    auto args = std::make_shared<GenerateArgs>();
    CLI::App* cmd = app.add_subcommand("generate", "Greedy generation from token ids (reference model)");
    cmd->add_option("--model-path,--model", args->model_path, "Checkpoint directory (config.json + safetensors)")
        ->required();
    cmd->add_option("--prompt-ids", args->prompt_ids, "Comma-separated prompt token ids, e.g. 1,2,3")->required();
    cmd->add_option("--max-new-tokens", args->max_new_tokens, "Tokens to generate")->capture_default_str();
    cmd->add_option("--chunked-prefill-size", args->chunked_prefill_size, "Prefill chunk (0 = one shot)")
        ->capture_default_str();
    cmd->add_option("--device", args->device, "auto | cuda | cpu (auto: cuda when a GPU is present)")
        ->check(CLI::IsMember({"auto", "cuda", "cpu"}))->capture_default_str();
    cmd->add_option("--numerics", args->numerics, "auto (cpu: fp32, cuda: bf16) | fp32 | bf16 | deepseek-fp8")
        ->capture_default_str();
    cmd->add_option("--json-model-override-args", args->override_args, "JSON merged over config.json");
    cmd->add_flag("--stop-at-eos", args->stop_at_eos, "Stop after an eos token");
    cmd->callback([args, exit_code] {
        Status st = run_generate(*args);
        if (!st.is_ok()) {
            std::fprintf(stderr, "dsaserve generate: %s\n", st.message().c_str());
            *exit_code = 2;
        }
    });
}

}  // namespace dsa::app
