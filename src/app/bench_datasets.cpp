// bench-serving's datasets (see bench_datasets.h).
#include "app/bench_datasets.h"

#include <algorithm>

#include "base/json.h"

namespace dsa::app {
namespace {

bool is_human(const Json& turn) {
    auto it = turn.find("from");
    if (it == turn.end()) it = turn.find("role");
    if (it == turn.end() || !it->is_string()) return false;
    const std::string& who = it->get_ref<const std::string&>();
    return who == "human" || who == "user";
}

// The entry's turns: "conversations" (ShareGPT) or "conversation" (some copies of it).
const Json* turns_of(const Json& entry) {
    if (!entry.is_object()) return nullptr;
    for (const char* key : {"conversations", "conversation"}) {
        auto it = entry.find(key);
        if (it != entry.end() && it->is_array()) return &*it;
    }
    return nullptr;
}

StatusOr<std::optional<SharegptPair>> pair_of(const Json& turns, size_t entry_index) {
    for (size_t t = 0; t < turns.size(); ++t) {
        const Json& turn = turns[t];
        auto v = turn.is_object() ? turn.find("value") : turn.end();
        if (!turn.is_object() || v == turn.end() || !v->is_string())
            return invalid_argument("ShareGPT entry {} turn {}: expected an object with a string \"value\"",
                                    entry_index, t);
    }
    for (size_t t = 0; t + 1 < turns.size(); ++t) {
        if (is_human(turns[t]))
            return std::optional<SharegptPair>(
                SharegptPair{turns[t]["value"].get<std::string>(), turns[t + 1]["value"].get<std::string>()});
    }
    return std::optional<SharegptPair>();
}

}  // namespace

std::vector<int> sample_lengths(int len, double range_ratio, int n, std::mt19937_64& rng, int min_len) {
    int lo = std::max(min_len, static_cast<int>(len * range_ratio));
    int hi = std::max(lo, len);
    std::uniform_int_distribution<int> dist(lo, hi);
    std::vector<int> out(static_cast<size_t>(std::max(0, n)));
    for (int& v : out) v = dist(rng);
    return out;
}

StatusOr<std::vector<SharegptPair>> parse_sharegpt(std::string_view json_text) {
    Json j = Json::parse(json_text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return invalid_argument("ShareGPT file: not valid JSON");
    if (!j.is_array()) return invalid_argument("ShareGPT file: expected a JSON list of conversations");
    std::vector<SharegptPair> out;
    for (size_t i = 0; i < j.size(); ++i) {
        const Json* turns = turns_of(j[i]);
        if (!turns || turns->size() < 2) continue;
        DSA_ASSIGN_OR_RETURN(std::optional<SharegptPair> p, pair_of(*turns, i));
        if (p) out.push_back(std::move(*p));
    }
    return out;
}

StatusOr<std::vector<DatasetRow>> sample_sharegpt(std::vector<SharegptPair> pairs, const SharegptOptions& opt,
                                                  const EncodeFn& encode) {
    if (opt.fixed_output_len && *opt.fixed_output_len < 4)
        return invalid_argument("--sharegpt-output-len {}: too small (at least 4)", *opt.fixed_output_len);
    std::mt19937_64 rng(opt.seed);
    std::shuffle(pairs.begin(), pairs.end(), rng);
    std::vector<DatasetRow> rows;
    for (const SharegptPair& p : pairs) {
        if (static_cast<int>(rows.size()) >= opt.num_prompts) break;
        DatasetRow row;
        row.prompt = p.prompt;
        if (opt.chat_template) {
            DSA_ASSIGN_OR_RETURN(row.prompt, opt.chat_template(p.prompt));
        }
        row.prompt_len = static_cast<int>(encode(row.prompt).size());
        row.output_len = opt.fixed_output_len ? *opt.fixed_output_len : static_cast<int>(encode(p.completion).size());
        if (row.prompt_len < 2 || row.output_len < 2) continue;
        if (opt.context_len && row.prompt_len + row.output_len > *opt.context_len) continue;
        rows.push_back(std::move(row));
    }
    return rows;
}

std::vector<DatasetRow> sample_random_ids(const RandomOptions& opt) {
    std::mt19937_64 rng(opt.seed);
    std::vector<int> in_lens = sample_lengths(opt.input_len, opt.range_ratio, opt.num_prompts, rng);
    std::vector<int> out_lens = sample_lengths(opt.output_len, opt.range_ratio, opt.num_prompts, rng);
    std::uniform_int_distribution<int32_t> tok(0, std::max(1, opt.vocab_size) - 1);
    std::vector<DatasetRow> rows(in_lens.size());
    for (size_t i = 0; i < rows.size(); ++i) {
        rows[i].prompt_ids.resize(static_cast<size_t>(in_lens[i]));
        for (int32_t& t : rows[i].prompt_ids) t = tok(rng);
        rows[i].prompt_len = in_lens[i];
        rows[i].output_len = out_lens[i];
    }
    return rows;
}

StatusOr<std::vector<DatasetRow>> sample_random_from_sharegpt(std::vector<SharegptPair> pairs, const RandomOptions& opt,
                                                              const EncodeFn& encode) {
    std::mt19937_64 rng(opt.seed);
    std::vector<int> in_lens = sample_lengths(opt.input_len, opt.range_ratio, opt.num_prompts, rng);
    std::vector<int> out_lens = sample_lengths(opt.output_len, opt.range_ratio, opt.num_prompts, rng);
    std::shuffle(pairs.begin(), pairs.end(), rng);
    std::vector<std::vector<int32_t>> sources;
    for (const SharegptPair& p : pairs) {
        std::vector<int32_t> ids = encode(p.prompt);
        if (!ids.empty()) sources.push_back(std::move(ids));
        if (sources.size() >= in_lens.size()) break;
    }
    if (sources.empty() && !in_lens.empty()) return invalid_argument("random dataset: no usable ShareGPT prompt");
    std::vector<DatasetRow> rows(in_lens.size());
    for (size_t i = 0; i < rows.size(); ++i) {
        const std::vector<int32_t>& src = sources[i % sources.size()];  // reused when the file is small
        for (int k = 0; k < in_lens[i]; ++k) rows[i].prompt_ids.push_back(src[static_cast<size_t>(k) % src.size()]);
        rows[i].prompt_len = in_lens[i];
        rows[i].output_len = out_lens[i];
    }
    return rows;
}

}  // namespace dsa::app
