// Tokenizer loading (tokenizer.json sections: model, pre_tokenizer, normalizer, decoder, added_tokens) and
// the encode / decode pipelines. Component parsing lives in tokenizer_bpe / tokenizer_pretok /
// tokenizer_added; this file composes them and owns the id tables.
#include "text/tokenizer.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "base/check.h"
#include "base/mapped_file.h"
#include "text/byte_level.h"
#include "text/tokenizer_utf8.h"

namespace dsa::text {
namespace {

constexpr uint8_t kFlagAdded = 1;
constexpr uint8_t kFlagSpecial = 2;

}  // namespace

// ---- loading ------------------------------------------------------------------------------------------------

StatusOr<std::shared_ptr<const Tokenizer>> Tokenizer::from_file(const std::string& path) {
    DSA_ASSIGN_OR_RETURN(std::string text, read_file(path));
    auto tok = from_json_text(text);
    if (!tok.is_ok()) return Status(tok.status().code(), fmt::format("{}: {}", path, tok.status().message()));
    return tok;
}

StatusOr<std::shared_ptr<const Tokenizer>> Tokenizer::from_json_text(std::string_view json_text) {
    Json j = Json::parse(json_text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return data_loss("tokenizer.json is not valid JSON");
    return from_json(j);
}

StatusOr<std::shared_ptr<const Tokenizer>> Tokenizer::from_json(const Json& j) {
    std::shared_ptr<Tokenizer> tok(new Tokenizer());
    try {
        DSA_RETURN_IF_ERROR(tok->load(j));
    } catch (const Json::exception& e) {
        return data_loss("malformed tokenizer.json: {}", e.what());
    }
    return std::shared_ptr<const Tokenizer>(std::move(tok));
}

Status Tokenizer::load(const Json& j) {
    if (!j.is_object() || !j.contains("model")) return data_loss("tokenizer.json has no \"model\"");
    DSA_RETURN_IF_ERROR(check_normalizer(j.value("normalizer", Json())));
    DSA_RETURN_IF_ERROR(check_decoder(j.value("decoder", Json())));
    DSA_ASSIGN_OR_RETURN(model_, BpeModel::from_json(j.at("model")));
    DSA_ASSIGN_OR_RETURN(pre_tokenizer_, PreTokenizer::from_json(j.value("pre_tokenizer", Json())));
    if (!pre_tokenizer_.has_byte_level()) {
        return unimplemented("only byte-level BPE tokenizers are supported (no ByteLevel pre_tokenizer found)");
    }
    DSA_RETURN_IF_ERROR(load_added_tokens(j.value("added_tokens", Json::array())));
    build_id_tables();
    return Status::ok();
}

Status Tokenizer::check_normalizer(const Json& j) const {
    if (j.is_null()) return Status::ok();
    std::string type = j.value("type", "");
    if (type == "Sequence") {
        for (const Json& sub : j.value("normalizers", Json::array())) DSA_RETURN_IF_ERROR(check_normalizer(sub));
        return Status::ok();
    }
    return unimplemented("normalizer {:?} is not supported (only none or an empty Sequence)", type);
}

Status Tokenizer::check_decoder(const Json& j) const {
    std::string type = j.is_object() ? j.value("type", "") : "";
    if (type == "ByteLevel") return Status::ok();
    if (type == "Sequence" && !j.value("decoders", Json::array()).empty()) {
        for (const Json& sub : j.at("decoders")) DSA_RETURN_IF_ERROR(check_decoder(sub));
        return Status::ok();
    }
    return unimplemented("decoder {:?} is not supported (ByteLevel only)", type.empty() ? "none" : type);
}

Status Tokenizer::load_added_tokens(const Json& j) {
    for (const Json& tj : j) {
        DSA_ASSIGN_OR_RETURN(AddedToken t, AddedToken::from_json(tj));
        if (t.id < 0) return data_loss("added token {:?} has a negative id", t.content);
        added_to_id_[t.content] = t.id;
        added_.push_back(std::move(t));
    }
    raw_matcher_.build(added_, /*normalized_set=*/false);
    normalized_matcher_.build(added_, /*normalized_set=*/true);
    return Status::ok();
}

void Tokenizer::build_id_tables() {
    int32_t max_id = -1;
    for (const auto& [tok, id] : model_->vocab()) max_id = std::max(max_id, id);
    for (const AddedToken& t : added_) max_id = std::max(max_id, t.id);
    id_to_token_.assign(max_id + 1, std::string());
    id_flags_.assign(max_id + 1, 0);
    for (const auto& [tok, id] : model_->vocab()) {
        if (id >= 0) id_to_token_[id] = tok;
    }
    for (const AddedToken& t : added_) {
        id_to_token_[t.id] = t.content;
        id_flags_[t.id] = kFlagAdded | (t.special ? kFlagSpecial : 0);
    }
    id_bytes_.resize(id_to_token_.size());
    for (size_t i = 0; i < id_to_token_.size(); ++i) id_bytes_[i] = byte_level_decode_token(id_to_token_[i]);
}

// ---- lookups ------------------------------------------------------------------------------------------------

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
    if (auto it = added_to_id_.find(token); it != added_to_id_.end()) return it->second;
    if (auto it = model_->vocab().find(token); it != model_->vocab().end()) return it->second;
    return std::nullopt;
}

std::optional<std::string_view> Tokenizer::id_to_token(int32_t id) const {
    if (id < 0 || id >= vocab_size() || id_to_token_[id].empty()) return std::nullopt;
    return std::string_view(id_to_token_[id]);
}

bool Tokenizer::is_special(int32_t id) const { return id >= 0 && id < vocab_size() && (id_flags_[id] & kFlagSpecial); }

bool Tokenizer::is_added(int32_t id) const { return id >= 0 && id < vocab_size() && (id_flags_[id] & kFlagAdded); }

std::string_view Tokenizer::token_bytes(int32_t id) const {
    if (id < 0 || id >= vocab_size()) return {};
    return id_bytes_[id];
}

// ---- encode / decode ----------------------------------------------------------------------------------------

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 4);
    encode_append(text, out);
    return out;
}

void Tokenizer::encode_append(std::string_view text, std::vector<int32_t>& out) const {
    if (utf8_is_valid(text)) {
        encode_valid(text, out);
    } else {
        std::string fixed = utf8_lossy(text);
        encode_valid(fixed, out);
    }
}

void Tokenizer::encode_valid(std::string_view text, std::vector<int32_t>& out) const {
    DSA_CHECK_LT(text.size(), size_t{UINT32_MAX}) << "text too large to tokenize in one piece";
    if (text.empty()) return;
    thread_local std::vector<TextPiece> pieces, split;
    thread_local std::vector<Span> words, scratch;
    pieces.assign(1, TextPiece{0, static_cast<uint32_t>(text.size()), -1});
    split.clear();
    raw_matcher_.split(text, pieces, split);
    pieces.clear();
    normalized_matcher_.split(text, split, pieces);
    for (const TextPiece& p : pieces) {
        if (p.added_id >= 0) {
            out.push_back(p.added_id);
            continue;
        }
        words.clear();
        pre_tokenizer_.split(text, Span{p.begin, p.len}, words, scratch);
        for (const Span& w : words) model_->encode_word(text.substr(w.begin, w.len), out);
    }
}

std::vector<std::vector<int32_t>> Tokenizer::encode_batch(std::span<const std::string> texts, int num_threads) const {
    std::vector<std::vector<int32_t>> results(texts.size());
    size_t n = num_threads > 0 ? static_cast<size_t>(num_threads) : std::max(1u, std::thread::hardware_concurrency());
    n = std::min(n, texts.size());
    std::atomic<size_t> next{0};
    auto worker = [&] {
        for (size_t i = next.fetch_add(1); i < texts.size(); i = next.fetch_add(1)) results[i] = encode(texts[i]);
    };
    std::vector<std::thread> threads;
    for (size_t t = 1; t < n; ++t) threads.emplace_back(worker);
    worker();
    for (std::thread& t : threads) t.join();
    return results;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, SpecialTokens special) const {
    std::string bytes;
    for (int32_t id : ids) {
        if (id < 0 || id >= vocab_size()) continue;
        if (special == SpecialTokens::kSkip && (id_flags_[id] & kFlagSpecial)) continue;
        bytes += id_bytes_[id];
    }
    if (utf8_is_valid(bytes)) return bytes;
    return utf8_lossy(bytes);
}

}  // namespace dsa::text
