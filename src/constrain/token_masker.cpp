// Vocabulary trie construction and the per-request mask walk with its state-keyed cache.
#include "constrain/token_masker.h"

#include <algorithm>
#include <numeric>

namespace dsa::constrain {
namespace {

constexpr size_t kMaxCachedMasks = 256;

}  // namespace

std::shared_ptr<const TokenTrie> TokenTrie::from_tokenizer(const text::Tokenizer& tok) {
    std::vector<std::pair<int32_t, std::string>> tokens;
    for (int32_t id = 0; id < tok.vocab_size(); ++id) {
        if (tok.is_special(id)) continue;
        std::string_view b = tok.token_bytes(id);
        if (!b.empty()) tokens.emplace_back(id, std::string(b));
    }
    return from_tokens(tokens, tok.vocab_size());
}

namespace {

bool plain_for(FreeText kind, const std::string& bytes) {
    int32_t need = 0, range = 0;
    for (char ch : bytes) {
        const auto c = static_cast<uint8_t>(ch);
        if (!Utf8Check::step(need, range, c)) return false;
        if (kind == FreeText::kNoLt && c == '<') return false;
        if (kind == FreeText::kNoQuote && c == '"') return false;
        if (kind == FreeText::kJsonString && (c == '"' || c == '\\' || c < 0x20)) return false;
    }
    return need == 0;
}

}  // namespace

std::shared_ptr<const TokenTrie> TokenTrie::from_tokens(const std::vector<std::pair<int32_t, std::string>>& tokens,
                                                        int32_t vocab_size) {
    auto t = std::shared_ptr<TokenTrie>(new TokenTrie());
    t->vocab_size_ = vocab_size;
    t->bytes_.assign(static_cast<size_t>(vocab_size), {});
    t->in_trie_.assign(static_cast<size_t>(vocab_size), 0);
    for (const auto& [id, bytes] : tokens) {
        if (id < 0 || id >= vocab_size || bytes.empty()) continue;
        t->bytes_[static_cast<size_t>(id)] = bytes;
        t->in_trie_[static_cast<size_t>(id)] = 1;
        t->max_depth_ = std::max(t->max_depth_, static_cast<int32_t>(bytes.size()));
    }
    std::vector<std::pair<int32_t, const std::string*>> all;
    for (int32_t id = 0; id < vocab_size; ++id)
        if (t->in_trie_[static_cast<size_t>(id)]) all.emplace_back(id, &t->bytes_[static_cast<size_t>(id)]);
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
        return *a.second != *b.second ? *a.second < *b.second : a.first < b.first;
    });
    t->all_ = build_view(all);
    for (FreeText kind : {FreeText::kNoLt, FreeText::kNoQuote, FreeText::kJsonString}) {
        FreeTextSplit& split = t->splits_[static_cast<size_t>(kind)];
        split.plain.assign(mask_words(vocab_size), 0);
        std::vector<std::pair<int32_t, const std::string*>> rest;
        for (const auto& tok : all) {
            if (plain_for(kind, *tok.second)) {
                split.plain[static_cast<size_t>(tok.first) / 64] |= uint64_t{1} << (tok.first % 64);
            } else {
                rest.push_back(tok);
            }
        }
        split.rest = build_view(rest);
    }
    return t;
}

// `tokens` sorted by bytes: sorted strings give the preorder directly. A token shares its path with the
// previous one up to their common prefix; `open` holds the node index at each depth of the current path.
TokenTrie::View TokenTrie::build_view(const std::vector<std::pair<int32_t, const std::string*>>& tokens) {
    View v;
    std::vector<int32_t> open;
    const std::string* prev = nullptr;
    auto close_to = [&](size_t depth) {
        while (open.size() > depth) {
            v.nodes[static_cast<size_t>(open.back())].end = static_cast<int32_t>(v.nodes.size());
            open.pop_back();
        }
    };
    for (const auto& [id, bytes_ptr] : tokens) {
        const std::string& bytes = *bytes_ptr;
        size_t common = 0;
        if (prev) {
            while (common < prev->size() && common < bytes.size() && (*prev)[common] == bytes[common]) ++common;
        }
        close_to(common);
        for (size_t d = common; d < bytes.size(); ++d) {
            open.push_back(static_cast<int32_t>(v.nodes.size()));
            Node node;
            node.byte = static_cast<uint8_t>(bytes[d]);
            node.depth = static_cast<uint16_t>(d + 1);
            v.nodes.push_back(node);
        }
        Node& leaf = v.nodes[static_cast<size_t>(open.back())];
        if (leaf.tok_end == leaf.tok_begin) leaf.tok_begin = static_cast<int32_t>(v.token_ids.size());
        v.token_ids.push_back(id);
        leaf.tok_end = static_cast<int32_t>(v.token_ids.size());
        prev = &bytes;
    }
    close_to(0);
    return v;
}

const std::string* TokenTrie::bytes_of(int32_t id) const {
    if (id < 0 || id >= vocab_size_ || !in_trie_[static_cast<size_t>(id)]) return nullptr;
    return &bytes_[static_cast<size_t>(id)];
}

TokenMasker::TokenMasker(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const TokenTrie> trie)
    : grammar_(std::move(grammar)),
      trie_(std::move(trie)),
      state_(grammar_->start()),
      stack_(static_cast<size_t>(trie_->max_depth()) + 1) {}

bool TokenMasker::sync(std::span<const int32_t> ids) {
    const bool extends = ids.size() >= seen_.size() && std::equal(seen_.begin(), seen_.end(), ids.begin());
    if (!extends) {
        state_ = grammar_->start();
        seen_.clear();
        broken_ = false;
    }
    for (size_t i = seen_.size(); i < ids.size(); ++i) {
        seen_.push_back(ids[i]);
        if (broken_) continue;
        const std::string* bytes = trie_->bytes_of(ids[i]);
        broken_ = bytes == nullptr || !grammar_->feed(state_, *bytes);
    }
    return !broken_;
}

bool TokenMasker::fill_mask(std::span<uint64_t> mask) {
    std::fill(mask.begin(), mask.end(), 0);
    if (broken_) return true;
    const bool end_ok = grammar_->can_end(state_);
    if (state_.size == 0) return end_ok;
    const std::string key(state_.key());
    if (auto it = cache_.find(key); it != cache_.end()) {
        ++cache_hits_;
        const size_t n = std::min(mask.size(), it->second.words.size());
        std::copy_n(it->second.words.begin(), n, mask.begin());
        return it->second.can_end;
    }
    const FreeText kind = grammar_->free_text(state_);
    if (kind == FreeText::kNone) {
        walk(trie_->all(), mask);
    } else {
        const TokenTrie::FreeTextSplit& split = trie_->split(kind);
        std::copy_n(split.plain.begin(), std::min(split.plain.size(), mask.size()), mask.begin());
        walk(split.rest, mask);
    }
    if (cache_.size() >= kMaxCachedMasks) cache_.clear();
    cache_[key] = CachedMask{std::vector<uint64_t>(mask.begin(), mask.end()), end_ok};
    return end_ok;
}

bool TokenMasker::fill_next(std::span<const int32_t> ids, std::span<uint64_t> mask) {
    sync(ids);
    return fill_mask(mask);
}

void TokenMasker::walk(const TokenTrie::View& view, std::span<uint64_t> mask) {
    const auto& nodes = view.nodes;
    const auto& ids = view.token_ids;
    const size_t limit = mask.size() * 64;
    stack_[0].copy_from(state_);
    const auto n = static_cast<int32_t>(nodes.size());
    for (int32_t i = 0; i < n;) {
        const TokenTrie::Node& node = nodes[static_cast<size_t>(i)];
        MatchState& st = stack_[node.depth];
        st.copy_from(stack_[node.depth - 1u]);
        if (!grammar_->feed(st, node.byte)) {
            i = node.end;
            continue;
        }
        for (int32_t k = node.tok_begin; k < node.tok_end; ++k) {
            const auto id = static_cast<size_t>(ids[static_cast<size_t>(k)]);
            if (id < limit) mask[id / 64] |= uint64_t{1} << (id % 64);
        }
        ++i;
    }
}

}  // namespace dsa::constrain
