// Token masks from a grammar: every vocabulary token's bytes (byte-level BPE decoded; special added tokens and
// empty tokens left out) sit in a trie, stored in preorder so a mask is one linear walk that skips the subtree
// under any rejected byte. A TokenMasker follows one request's output (token ids) and returns the set of ids
// that keep the text inside the grammar, plus whether the text may end here. Masks are cached per matcher
// state, so a repeated state (e.g. inside a long string) costs one lookup.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "constrain/grammar.h"
#include "text/tokenizer.h"

namespace dsa::constrain {

class TokenTrie {
  public:
    struct Node {
        uint8_t byte = 0;
        uint16_t depth = 0;                  // 1 for a token's first byte
        int32_t end = 0;                     // index just past this node's subtree
        int32_t tok_begin = 0, tok_end = 0;  // ids ending here: token_ids()[tok_begin, tok_end)
    };

    // Every id with non-empty bytes that is not a special added token.
    static std::shared_ptr<const TokenTrie> from_tokenizer(const text::Tokenizer& tok);
    // Explicit (id, bytes) pairs; ids in [0, vocab_size).
    static std::shared_ptr<const TokenTrie> from_tokens(const std::vector<std::pair<int32_t, std::string>>& tokens,
                                                        int32_t vocab_size);

    // A trie over some of the tokens, in preorder.
    struct View {
        std::vector<Node> nodes;
        std::vector<int32_t> token_ids;
    };
    // For a kind of free text: the tokens that are plain for it (as a mask) and a trie of all the others.
    struct FreeTextSplit {
        std::vector<uint64_t> plain;
        View rest;
    };

    int32_t vocab_size() const { return vocab_size_; }
    int32_t max_depth() const { return max_depth_; }
    const std::vector<Node>& nodes() const { return all_.nodes; }
    const View& all() const { return all_; }
    const FreeTextSplit& split(FreeText kind) const { return splits_[static_cast<size_t>(kind)]; }
    // The bytes of `id`, or nullptr when the id is not in the trie (special, empty or out of range).
    const std::string* bytes_of(int32_t id) const;

  private:
    static View build_view(const std::vector<std::pair<int32_t, const std::string*>>& tokens);

    View all_;
    std::array<FreeTextSplit, kNumFreeText> splits_;
    std::vector<std::string> bytes_;
    std::vector<uint8_t> in_trie_;
    int32_t vocab_size_ = 0;
    int32_t max_depth_ = 0;
};

class TokenMasker {
  public:
    TokenMasker(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const TokenTrie> trie);

    // Follows `ids` (the whole output so far): new ids are fed incrementally; a history that does not extend
    // the one already seen is replayed from the start. Returns false once any id broke the grammar.
    bool sync(std::span<const int32_t> ids);
    // Sets bit id (word id / 64) for every allowed next token; `mask` is zeroed first. Returns whether the text
    // may end here (the caller then also allows its end-of-sequence ids). After a broken history: no bits, true.
    bool fill_mask(std::span<uint64_t> mask);
    // sync + fill_mask.
    bool fill_next(std::span<const int32_t> ids, std::span<uint64_t> mask);

    bool broken() const { return broken_; }
    bool can_end() const { return broken_ || grammar_->can_end(state_); }
    // Nothing more can be written (the grammar is complete).
    bool finished() const { return !broken_ && state_.size == 0; }
    int64_t num_cache_hits() const { return cache_hits_; }

  private:
    void walk(const TokenTrie::View& view, std::span<uint64_t> mask);

    struct CachedMask {
        std::vector<uint64_t> words;
        bool can_end = false;
    };

    std::shared_ptr<const Grammar> grammar_;
    std::shared_ptr<const TokenTrie> trie_;
    MatchState state_;
    std::vector<int32_t> seen_;
    bool broken_ = false;
    std::vector<MatchState> stack_;  // walk scratch: state after each trie depth
    std::unordered_map<std::string, CachedMask> cache_;
    int64_t cache_hits_ = 0;
};

// Number of 64-bit words of a mask over `vocab_size` ids.
inline size_t mask_words(int64_t vocab_size) { return static_cast<size_t>((vocab_size + 63) / 64); }

}  // namespace dsa::constrain
