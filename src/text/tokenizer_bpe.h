// The byte-level BPE model: vocabulary, merge ranks, and the merge loop that turns one pre-token (raw
// bytes) into ids. Merges apply lowest rank first, leftmost first among equal ranks (Hugging Face's
// BPE::merge_word). Results are cached per pre-token in a bounded, sharded, thread-safe cache.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/json.h"
#include "base/status.h"

namespace dsa::text {

struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// Open-addressing map from a pair of ids to (rank, merged id).
class MergeTable {
public:
    struct Entry {
        uint64_t key = kEmpty;
        int32_t rank = 0;
        int32_t merged = 0;
    };
    static constexpr uint64_t kEmpty = ~uint64_t{0};

    void reserve(size_t n);
    // Keeps the lowest rank when a pair repeats.
    void insert(int32_t a, int32_t b, int32_t rank, int32_t merged);
    const Entry* find(int32_t a, int32_t b) const {
        uint64_t key = pack(a, b);
        for (size_t i = slot(key);; i = (i + 1) & mask_) {
            const Entry& e = slots_[i];
            if (e.key == key) return &e;
            if (e.key == kEmpty) return nullptr;
        }
    }
    size_t size() const { return size_; }

private:
    static uint64_t pack(int32_t a, int32_t b) {
        return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
    }
    size_t slot(uint64_t key) const { return (key * 0x9E3779B97F4A7C15ull >> 20) & mask_; }
    std::vector<Entry> slots_;
    size_t mask_ = 0;
    size_t size_ = 0;
};

// Bounded cache: pre-token bytes -> ids, direct-mapped over fixed 128-byte slots (words of up to 32 bytes
// with up to 18 ids; longer ones are not cached). Lock-free: each slot is a seqlock made of atomics, so readers
// on many threads never write shared memory; a writer that finds a slot busy simply skips caching.
class BpeCache {
public:
    static constexpr size_t kMaxKeyBytes = 32;
    static constexpr size_t kMaxIds = 18;

    explicit BpeCache(size_t num_slots);
    bool lookup(std::string_view word, uint64_t hash, std::vector<int32_t>& out) const;
    void insert(std::string_view word, uint64_t hash, const int32_t* ids, size_t n) const;

private:
    struct alignas(64) Slot {
        // [0] sequence (odd while written), [1] hash, [2] key length | num ids << 8, [3..6] key, [7..15] ids
        std::atomic<uint64_t> w[16];
    };
    size_t mask_;
    std::unique_ptr<Slot[]> slots_;
};

class BpeModel {
public:
    // `model` is the tokenizer.json "model" object (type BPE).
    static StatusOr<std::unique_ptr<BpeModel>> from_json(const Json& model);

    // Appends the ids of one pre-token given as raw bytes.
    void encode_word(std::string_view bytes, std::vector<int32_t>& out) const;

    const TokenMap& vocab() const { return vocab_; }

    static constexpr size_t kCacheSlots = 1 << 15;  // 4 MiB

private:
    BpeModel() : cache_(kCacheSlots) {}
    Status load_merges(const Json& merges);
    void merge_small(std::vector<int32_t>& syms) const;
    void merge_large(std::vector<int32_t>& syms) const;

    TokenMap vocab_;
    MergeTable merges_;
    std::array<int32_t, 256> byte_ids_{};  // id of the one-character token of each byte
    bool ignore_merges_ = false;
    BpeCache cache_;
};

}  // namespace dsa::text
