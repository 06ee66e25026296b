// BPE model loading (vocab + merges, both merge syntaxes) and the merge loop: a linear scan over cached pair
// ranks for short words, a heap over a linked list of symbols for long ones (runs of spaces, long CJK runs).
#include "text/tokenizer_bpe.h"

#include <climits>
#include <cstring>
#include <queue>

#include "text/byte_level.h"

namespace dsa::text {

// ---- MergeTable ---------------------------------------------------------------------------------------------

void MergeTable::reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots_.assign(cap, Entry{});
    mask_ = cap - 1;
    size_ = 0;
}

void MergeTable::insert(int32_t a, int32_t b, int32_t rank, int32_t merged) {
    uint64_t key = pack(a, b);
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
        Entry& e = slots_[i];
        if (e.key == kEmpty) {
            e = Entry{key, rank, merged};
            ++size_;
            return;
        }
        if (e.key == key) return;  // an earlier (lower) rank wins
    }
}

// ---- BpeCache -----------------------------------------------------------------------------------------------

BpeCache::BpeCache(size_t num_slots) : mask_(num_slots - 1), slots_(std::make_unique<Slot[]>(num_slots)) {
    for (size_t i = 0; i < num_slots; ++i) {
        for (auto& w : slots_[i].w) w.store(0, std::memory_order_relaxed);
    }
}

bool BpeCache::lookup(std::string_view word, uint64_t hash, std::vector<int32_t>& out) const {
    if (word.size() > kMaxKeyBytes) return false;
    const Slot& s = slots_[hash & mask_];
    uint64_t seq = s.w[0].load(std::memory_order_acquire);
    if ((seq & 1) != 0 || s.w[1].load(std::memory_order_relaxed) != hash) return false;
    uint64_t meta = s.w[2].load(std::memory_order_relaxed);
    size_t key_len = meta & 0xFF, num_ids = (meta >> 8) & 0xFF;
    if (key_len != word.size() || num_ids > kMaxIds) return false;
    uint64_t key[4], ids[9];
    for (int i = 0; i < 4; ++i) key[i] = s.w[3 + i].load(std::memory_order_relaxed);
    for (size_t i = 0; i < (num_ids + 1) / 2; ++i) ids[i] = s.w[7 + i].load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s.w[0].load(std::memory_order_relaxed) != seq) return false;  // torn read
    if (std::memcmp(key, word.data(), key_len) != 0) return false;
    for (size_t i = 0; i < num_ids; ++i) {
        out.push_back(static_cast<int32_t>(static_cast<uint32_t>(ids[i / 2] >> (32 * (i % 2)))));
    }
    return true;
}

void BpeCache::insert(std::string_view word, uint64_t hash, const int32_t* ids, size_t n) const {
    if (word.size() > kMaxKeyBytes || n > kMaxIds) return;
    Slot& s = slots_[hash & mask_];
    uint64_t seq = s.w[0].load(std::memory_order_relaxed);
    if ((seq & 1) != 0 || !s.w[0].compare_exchange_strong(seq, seq + 1, std::memory_order_relaxed)) return;
    std::atomic_thread_fence(std::memory_order_release);
    uint64_t key[4] = {0, 0, 0, 0}, packed[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
    std::memcpy(key, word.data(), word.size());
    for (size_t i = 0; i < n; ++i) packed[i / 2] |= static_cast<uint64_t>(static_cast<uint32_t>(ids[i])) << (32 * (i % 2));
    s.w[1].store(hash, std::memory_order_relaxed);
    s.w[2].store(word.size() | (n << 8), std::memory_order_relaxed);
    for (int i = 0; i < 4; ++i) s.w[3 + i].store(key[i], std::memory_order_relaxed);
    for (size_t i = 0; i < (n + 1) / 2; ++i) s.w[7 + i].store(packed[i], std::memory_order_relaxed);
    s.w[0].store(seq + 2, std::memory_order_release);
}

// ---- BpeModel loading ---------------------------------------------------------------------------------------

StatusOr<std::unique_ptr<BpeModel>> BpeModel::from_json(const Json& model) {
    if (model.value("type", std::string("BPE")) != "BPE") {
        return unimplemented("tokenizer model type {:?} is not supported (BPE only)", model.value("type", ""));
    }
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
        if (model.contains(key) && !model.at(key).is_null() && !model.at(key).get<std::string>().empty()) {
            return unimplemented("BPE {} is not supported", key);
        }
    }
    if (model.contains("dropout") && !model.at("dropout").is_null() && model.at("dropout").get<double>() > 0.0) {
        return unimplemented("BPE dropout is not supported");
    }
    std::unique_ptr<BpeModel> m(new BpeModel());
    for (const auto& [token, id] : model.at("vocab").items()) m->vocab_.emplace(token, id.get<int32_t>());
    m->ignore_merges_ = model.value("ignore_merges", false);
    for (int b = 0; b < 256; ++b) {
        std::string ch;
        byte_level_encode_append(std::string_view(reinterpret_cast<const char*>(&b), 1), ch);
        auto it = m->vocab_.find(ch);
        if (it == m->vocab_.end()) return data_loss("byte-level BPE vocab has no token for byte 0x{:02X}", b);
        m->byte_ids_[b] = it->second;
    }
    DSA_RETURN_IF_ERROR(m->load_merges(model.at("merges")));
    return m;
}

Status BpeModel::load_merges(const Json& merges) {
    merges_.reserve(merges.size());
    std::string left, right;
    int32_t rank = 0;
    for (const Json& mj : merges) {
        if (mj.is_array() && mj.size() == 2) {
            left = mj[0].get<std::string>();
            right = mj[1].get<std::string>();
        } else if (mj.is_string()) {
            const std::string& s = mj.get_ref<const std::string&>();
            size_t sp = s.find(' ');
            if (sp == std::string::npos) return data_loss("BPE merge {:?} is not two tokens", s);
            left = s.substr(0, sp);
            right = s.substr(sp + 1);
        } else {
            return data_loss("BPE merge #{} is neither \"a b\" nor [a, b]", rank);
        }
        auto a = vocab_.find(left), b = vocab_.find(right), ab = vocab_.find(left + right);
        if (a == vocab_.end() || b == vocab_.end() || ab == vocab_.end()) {
            return data_loss("BPE merge #{} ({:?} {:?}) uses a token missing from the vocab", rank, left, right);
        }
        merges_.insert(a->second, b->second, rank++, ab->second);
    }
    return Status::ok();
}

// ---- merge loop ---------------------------------------------------------------------------------------------

void BpeModel::merge_small(std::vector<int32_t>& syms) const {
    thread_local std::vector<const MergeTable::Entry*> pairs;
    pairs.resize(syms.size() - 1);
    for (size_t i = 0; i + 1 < syms.size(); ++i) pairs[i] = merges_.find(syms[i], syms[i + 1]);
    while (!pairs.empty()) {
        size_t best = SIZE_MAX;
        int32_t best_rank = INT32_MAX;
        for (size_t i = 0; i < pairs.size(); ++i) {
            if (pairs[i] != nullptr && pairs[i]->rank < best_rank) {
                best_rank = pairs[i]->rank;
                best = i;
            }
        }
        if (best == SIZE_MAX) break;
        syms[best] = pairs[best]->merged;
        syms.erase(syms.begin() + static_cast<ptrdiff_t>(best) + 1);
        pairs.erase(pairs.begin() + static_cast<ptrdiff_t>(best));
        if (best > 0) pairs[best - 1] = merges_.find(syms[best - 1], syms[best]);
        if (best < pairs.size()) pairs[best] = merges_.find(syms[best], syms[best + 1]);
    }
}

void BpeModel::merge_large(std::vector<int32_t>& syms) const {
    struct Sym {
        int32_t id, prev, next;
        bool alive;
    };
    struct Cand {
        int32_t rank, pos, merged;
        bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    const auto n = static_cast<int32_t>(syms.size());
    std::vector<Sym> s(n);
    std::priority_queue<Cand, std::vector<Cand>, std::greater<>> heap;
    for (int32_t i = 0; i < n; ++i) s[i] = {syms[i], i - 1, i + 1 < n ? i + 1 : -1, true};
    auto push = [&](int32_t pos) {
        if (pos < 0 || s[pos].next < 0) return;
        if (const auto* e = merges_.find(s[pos].id, s[s[pos].next].id)) heap.push({e->rank, pos, e->merged});
    };
    for (int32_t i = 0; i + 1 < n; ++i) push(i);
    while (!heap.empty()) {
        Cand c = heap.top();
        heap.pop();
        Sym& left = s[c.pos];
        if (!left.alive || left.next < 0) continue;
        const auto* e = merges_.find(left.id, s[left.next].id);
        if (e == nullptr || e->merged != c.merged) continue;  // stale candidate
        Sym& right = s[left.next];
        left.id = c.merged;
        right.alive = false;
        left.next = right.next;
        if (left.next >= 0) s[left.next].prev = c.pos;
        push(left.prev);
        push(c.pos);
    }
    syms.clear();
    for (int32_t i = 0; i >= 0 && i < n; i = s[i].next) syms.push_back(s[i].id);
}

void BpeModel::encode_word(std::string_view bytes, std::vector<int32_t>& out) const {
    if (bytes.empty()) return;
    if (bytes.size() == 1) {
        out.push_back(byte_ids_[static_cast<uint8_t>(bytes[0])]);
        return;
    }
    const bool cacheable = bytes.size() <= BpeCache::kMaxKeyBytes;
    const uint64_t hash = cacheable ? StringHash{}(bytes) : 0;
    if (cacheable && cache_.lookup(bytes, hash, out)) return;
    thread_local std::vector<int32_t> syms;
    syms.clear();
    if (ignore_merges_) {
        thread_local std::string mapped;
        mapped.clear();
        byte_level_encode_append(bytes, mapped);
        if (auto it = vocab_.find(mapped); it != vocab_.end()) syms.push_back(it->second);
    }
    if (syms.empty()) {
        for (char c : bytes) syms.push_back(byte_ids_[static_cast<uint8_t>(c)]);
        if (syms.size() <= 64) merge_small(syms);
        else merge_large(syms);
    }
    out.insert(out.end(), syms.begin(), syms.end());
    if (cacheable) cache_.insert(bytes, hash, syms.data(), syms.size());
}

}  // namespace dsa::text
