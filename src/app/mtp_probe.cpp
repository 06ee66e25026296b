// `dsaserve mtp-probe`: per prompt, greedy decoding (stop at EOS or max_new_tokens), then one full pass of the
// main model over prompt + generation and one MTP pass over it; counts MTP argmax == greedy token at t+2 for
// every t from the last prompt position to the third-to-last token. Prints one JSON line.
#include "app/mtp_probe.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include "app/serve_command.h"
#include "backend/backend.h"
#include "base/json.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/sequence_runner.h"
#include "model/transformer.h"
#include "model/weights.h"
#include "text/tokenizer.h"

namespace dsa::app {
namespace {

constexpr int64_t kPageSize = 64;

struct ProbeArgs {
    std::string model_path;
    std::string prompts_path;
    int64_t max_new_tokens = 16;
    std::string numerics = "fp32";
};

StatusOr<backend::Numerics> probe_numerics(const std::string& name) {
    if (name == "fp32") return backend::Numerics::fp32();
    if (name == "bf16") return backend::Numerics::bf16();
    return invalid_argument("--numerics: unknown '{}' (supported: fp32, bf16)", name);
}

bool is_eos(const model::ModelConfig& c, int32_t id) {
    return std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), id) != c.eos_token_ids.end();
}

model::KvStores new_kv(const model::ModelConfig& c, const backend::Numerics& n, int64_t tokens) {
    const int64_t pages = (tokens + kPageSize - 1) / kPageSize + 1;  // + the reserved page 0
    return model::allocate_kv_stores(c, n.mla_kv_format(), n.indexer_key_format(), pages, kPageSize,
                                     /*num_mtp_layers=*/1);
}

// Greedy continuation of `prompt` (EOS included when produced).
std::vector<int32_t> greedy(model::DsaModel& m, const backend::Numerics& n, const MtpProbePrompt& p) {
    model::KvStores kv = new_kv(m.config(), n, static_cast<int64_t>(p.ids.size()) + p.max_new_tokens);
    model::SequenceRunner runner(m, kv, kPageSize);
    model::ForwardOutput out = runner.prefill(p.ids, /*chunk=*/0, /*all_logits=*/false);
    std::vector<int32_t> gen;
    while (static_cast<int64_t>(gen.size()) < p.max_new_tokens) {
        int32_t next = model::argmax_row(out.logits, 0);
        gen.push_back(next);
        if (is_eos(m.config(), next) || static_cast<int64_t>(gen.size()) == p.max_new_tokens) break;
        out = runner.step(std::span<const int32_t>(&next, 1), /*all_logits=*/false);
    }
    return gen;
}

// Adds the MTP agreement of one prompt + its greedy generation to `r`.
void score_mtp(model::DsaModel& m, const backend::Numerics& n, const std::vector<int32_t>& prompt,
               const std::vector<int32_t>& gen, MtpProbeResult& r) {
    std::vector<int32_t> x = prompt;
    x.insert(x.end(), gen.begin(), gen.end());
    const int64_t total = static_cast<int64_t>(x.size()), plen = static_cast<int64_t>(prompt.size());
    model::KvStores kv = new_kv(m.config(), n, total);
    model::SequenceRunner runner(m, kv, kPageSize);
    model::ForwardOutput main = runner.step(x, /*all_logits=*/false);
    // MTP position t: the embedding of token t+1 and the main model's hidden state at t (MODEL_SPEC §6).
    std::vector<int32_t> next(x.begin() + 1, x.end());
    std::vector<int32_t> pages;
    for (int64_t p = 1; p <= (total + kPageSize - 1) / kPageSize; ++p) pages.push_back(static_cast<int32_t>(p));
    model::SequenceStep s{next, 0, pages, /*all_logits=*/true};
    model::ForwardBatch batch = model::build_forward_batch(std::span<const model::SequenceStep>(&s, 1), kPageSize);
    model::ForwardOutput mtp = m.forward_mtp(batch, main.hidden.slice(0, total - 1), kv);
    for (int64_t t = plen - 1; t + 2 < total; ++t) {
        r.accepted += model::argmax_row(mtp.logits, t) == x[t + 2];
        ++r.positions;
    }
}

StatusOr<std::vector<MtpProbePrompt>> read_prompts(const ProbeArgs& a, const model::ModelConfig& c,
                                                   const text::Tokenizer& tok) {
    std::ifstream in(a.prompts_path);
    if (!in) return not_found("--prompts: cannot open {}", a.prompts_path);
    auto encode = [&tok](const std::string& t) { return tok.encode(t); };
    std::vector<MtpProbePrompt> out;
    std::string line;
    for (int64_t no = 1; std::getline(in, line); ++no) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        StatusOr<MtpProbePrompt> p = parse_mtp_probe_line(line, a.max_new_tokens, c.vocab_size, encode);
        if (!p.is_ok()) return invalid_argument("{} line {}: {}", a.prompts_path, no, p.status().message());
        out.push_back(std::move(p).value());
    }
    if (out.empty()) return invalid_argument("--prompts: {} has no prompts", a.prompts_path);
    return out;
}

Status run_probe(const ProbeArgs& a) {
    if (a.max_new_tokens < 2) return invalid_argument("--max-new-tokens must be >= 2");
    DSA_ASSIGN_OR_RETURN(backend::Numerics numerics, probe_numerics(a.numerics));
    const std::string dir = a.model_path.empty() ? bundled_model_dir() : a.model_path;
    DSA_ASSIGN_OR_RETURN(model::ModelConfig config, model::load_model_config(dir, ""));
    if (config.num_nextn_predict_layers < 1) return invalid_argument("{}: the model has no MTP layer", dir);
    DSA_ASSIGN_OR_RETURN(auto tok, text::Tokenizer::from_file(dir + "/tokenizer.json"));
    DSA_ASSIGN_OR_RETURN(std::vector<MtpProbePrompt> prompts, read_prompts(a, config, *tok));
    DSA_ASSIGN_OR_RETURN(model::Checkpoint ckpt, model::Checkpoint::open(dir));
    DSA_ASSIGN_OR_RETURN(model::ModelWeights weights,
                         model::load_model_weights(ckpt, config, {.mtp = model::MtpLoad::kLoad}));
    int64_t longest = 0;
    for (const MtpProbePrompt& p : prompts) longest = std::max<int64_t>(longest, p.ids.size() + p.max_new_tokens);
    std::unique_ptr<backend::Backend> be = backend::make_cpu_backend(numerics);
    model::DsaModel model(config, weights, *be, {.max_positions = longest});

    auto t0 = std::chrono::steady_clock::now();
    MtpProbeResult r;
    for (const MtpProbePrompt& p : prompts) {
        std::vector<int32_t> gen = greedy(model, numerics, p);
        ++r.prompts;
        r.generated_tokens += static_cast<int64_t>(gen.size());
        if (gen.size() >= 2) score_mtp(model, numerics, p.ids, gen, r);
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    OrderedJson j{{"rate", r.positions ? static_cast<double>(r.accepted) / r.positions : 0.0},
                  {"accepted", r.accepted},
                  {"positions", r.positions},
                  {"prompts", r.prompts},
                  {"generated_tokens", r.generated_tokens},
                  {"numerics", a.numerics},
                  {"model_path", dir},
                  {"probe_seconds", secs}};
    std::printf("%s\n", j.dump().c_str());
    return Status::ok();
}

}  // namespace

StatusOr<MtpProbePrompt> parse_mtp_probe_line(const std::string& line, int64_t default_max_new, int64_t vocab,
                                              const std::function<std::vector<int32_t>(const std::string&)>& encode) {
    OrderedJson j = OrderedJson::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return invalid_argument("not a JSON object");
    MtpProbePrompt p;
    p.max_new_tokens = default_max_new;
    if (auto it = j.find("max_new_tokens"); it != j.end()) {
        if (!it->is_number_integer() || it->get<int64_t>() < 2) return invalid_argument("max_new_tokens: integer >= 2");
        p.max_new_tokens = it->get<int64_t>();
    }
    auto text = j.find("text"), ids = j.find("input_ids");
    if ((text == j.end()) == (ids == j.end())) return invalid_argument("give exactly one of text, input_ids");
    if (text != j.end()) {
        if (!text->is_string()) return invalid_argument("text: a string");
        p.ids = encode(text->get<std::string>());
    } else {
        if (!ids->is_array()) return invalid_argument("input_ids: a list of integers");
        for (const auto& v : *ids) {
            if (!v.is_number_integer()) return invalid_argument("input_ids: a list of integers");
            const int64_t id = v.get<int64_t>();
            if (id < 0 || id >= vocab)
                return invalid_argument("token id {} is outside the vocabulary [0, {})", id, vocab);
            p.ids.push_back(static_cast<int32_t>(id));
        }
    }
    if (p.ids.empty()) return invalid_argument("empty prompt");
    for (int32_t id : p.ids) {
        if (id >= vocab) return invalid_argument("token id {} is outside the vocabulary [0, {})", id, vocab);
    }
    return p;
}

void add_mtp_probe_command(CLI::App& app, int* exit_code) {
    auto args = std::make_shared<ProbeArgs>();
    CLI::App* cmd = app.add_subcommand("mtp-probe", "MTP draft acceptance under greedy decoding (reference model)");
    cmd->add_option("--model-path,--model", args->model_path, "Checkpoint directory (default: the bundled model)");
    cmd->add_option("--prompts", args->prompts_path, "JSONL: {\"text\"|\"input_ids\", \"max_new_tokens\"?} per line")
        ->required();
    cmd->add_option("--max-new-tokens", args->max_new_tokens, "Default generation length")->capture_default_str();
    cmd->add_option("--numerics", args->numerics, "CPU reference numerics: fp32 | bf16")->capture_default_str();
    cmd->callback([args, exit_code] {
        Status st = run_probe(*args);
        if (!st.is_ok()) {
            std::fprintf(stderr, "dsaserve mtp-probe: %s\n", st.message().c_str());
            *exit_code = 2;
        }
    });
}

}  // namespace dsa::app
