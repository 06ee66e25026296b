// Randomized stress of the radix cache with simulated requests on a small pool: admission with prefix hits,
// chunked prefill, decode, speculative over-allocation and rollback, finish, abort, external locks, evict and
// flush, in two extra-key namespaces. After every step: the tree's own invariants, the page-ownership
// partition, and a shadow KV check: each slot carries a stamp (hash of the token prefix whose KV it holds),
// and every position a request reads, computed by itself or served by the cache, must carry its own stamp.
#include <gtest/gtest.h>

#include <random>

#include "kvcache/invariants.h"
#include "kvcache/radix_cache.h"

namespace dsa::kvcache {
namespace {

constexpr int kPage = 4;
constexpr int64_t kNumPages = 40;
constexpr uint64_t kPoison = 0xdeadbeefull;

struct SimRequest {
    std::vector<TokenId> tokens;  // prompt, then committed outputs
    int64_t prompt_len = 0;
    int64_t num_computed = 0;  // positions whose KV is written
    ReqToPages table{kPage};
};

class Simulation {
  public:
    Simulation(uint32_t seed, PrefixCacheMode mode, CacheKeyMode key_mode = CacheKeyMode::kTokens)
        : rng_(seed),
          cache_(make_prefix_cache({.page_size = kPage, .mode = mode, .key_mode = key_mode}, allocator_)),
          stamps_(static_cast<size_t>((kNumPages + 1) * kPage), kPoison) {
        for (int d = 0; d < 4; ++d) documents_.push_back(random_tokens(24));
    }

    void step() {
        switch (uniform(0, 9)) {
            case 0:
            case 1:
                admit();
                break;
            case 2:
            case 3:
            case 4:
                advance(pick());
                break;
            case 5:
                finish(pick());
                break;
            case 6:
                abort(pick());
                break;
            case 7:
                external_lock();
                break;
            case 8:
                cache_->evict(uniform(0, 6));
                break;
            default:
                if (uniform(0, 9) == 0)
                    cache_->flush();
                else
                    external_unlock();
                break;
        }
        check();
    }

    void drain() {
        while (!live_.empty()) finish(0);
        while (!external_.empty()) external_unlock();
        cache_->flush();
        check();
        EXPECT_EQ(allocator_.num_free(), kNumPages);
    }

    int64_t num_hits() const { return cache_->stats().num_hit_tokens; }
    int64_t num_finished() const { return num_finished_; }

  private:
    int64_t uniform(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng_); }
    std::vector<TokenId> random_tokens(int64_t n) {
        std::vector<TokenId> t;
        for (int64_t i = 0; i < n; ++i) t.push_back(static_cast<TokenId>(uniform(0, 2)));  // tiny vocabulary
        return t;
    }
    int64_t pick() { return live_.empty() ? -1 : uniform(0, static_cast<int64_t>(live_.size()) - 1); }

    // Stamp of the KV at position p of `tokens`: a hash of tokens[0..p].
    static uint64_t stamp_of(const std::vector<TokenId>& tokens, int64_t p) {
        uint64_t h = 1469598103934665603ull;
        for (int64_t i = 0; i <= p; ++i) h = (h ^ static_cast<uint64_t>(tokens[i] + 7)) * 1099511628211ull;
        return h;
    }
    void verify_positions(const SimRequest& r, int64_t end) const {
        for (int64_t p = 0; p < end; ++p) {
            ASSERT_EQ(stamps_[static_cast<size_t>(r.table.slot(p))], stamp_of(r.tokens, p)) << "position " << p;
        }
    }
    void write_positions(SimRequest& r, int64_t begin, int64_t end) {
        for (int64_t p = begin; p < end; ++p) stamps_[static_cast<size_t>(r.table.slot(p))] = stamp_of(r.tokens, p);
    }
    // Grows the table to `num_tokens`, evicting if needed; new pages are poisoned. False when out of memory.
    bool grow(SimRequest& r, int64_t num_tokens) {
        int64_t old_pages = r.table.num_pages();
        cache_->ensure_free(page_ceil(num_tokens, kPage) - old_pages);
        if (!r.table.extend(num_tokens, allocator_)) return false;
        for (int64_t s = old_pages * kPage; s < r.table.capacity_tokens(); ++s) {
            stamps_[static_cast<size_t>(r.table.slot(s))] = kPoison;
        }
        return true;
    }

    void admit() {
        if (live_.size() >= 5) return;
        auto r = std::make_unique<SimRequest>();
        const auto& doc = documents_[static_cast<size_t>(uniform(0, 3))];
        r->tokens.assign(doc.begin(), doc.begin() + uniform(0, 24));
        auto tail = random_tokens(uniform(1, 6));
        r->tokens.insert(r->tokens.end(), tail.begin(), tail.end());
        r->prompt_len = static_cast<int64_t>(r->tokens.size());
        ExtraKey extra_key = uniform(0, 3) == 0 ? 1 : 0;  // a second namespace
        r->num_computed = cache_->attach_prefix(r->tokens, r->table, HitAccounting::kCount, extra_key);
        EXPECT_LT(r->num_computed, r->prompt_len);
        EXPECT_EQ(r->num_computed % kPage, 0);
        verify_positions(*r, r->num_computed);  // a hit serves exactly this prompt's KV
        live_.push_back(std::move(r));
    }

    void advance(int64_t i) {
        if (i < 0) return;
        SimRequest& r = *live_[static_cast<size_t>(i)];
        if (r.num_computed < r.prompt_len) return prefill_chunk(i);
        if (uniform(0, 2) == 0) return speculate(i);
        r.tokens.push_back(static_cast<TokenId>(uniform(0, 2)));
        if (!grow(r, r.num_computed + 1)) return abort(i);  // retraction
        write_positions(r, r.num_computed, r.num_computed + 1);
        ++r.num_computed;
    }

    void prefill_chunk(int64_t i) {
        SimRequest& r = *live_[static_cast<size_t>(i)];
        int64_t end = std::min(r.prompt_len, r.num_computed + uniform(1, 9));
        if (!grow(r, end)) return abort(i);
        write_positions(r, r.num_computed, end);
        r.num_computed = end;
        std::span<const TokenId> computed(r.tokens.data(), static_cast<size_t>(r.num_computed));
        cache_->cache_unfinished(computed, r.table);
        verify_positions(r, r.num_computed);  // the rewritten table still holds this request's KV
    }

    // Reserve 4 draft slots past the committed length, write drafts, accept some, roll back the rest.
    void speculate(int64_t i) {
        SimRequest& r = *live_[static_cast<size_t>(i)];
        int64_t committed = r.num_computed;
        if (!grow(r, committed + 4)) return abort(i);
        int64_t num_accepted = uniform(0, 4);
        for (int64_t k = 0; k < 4; ++k) {
            auto slot = static_cast<size_t>(r.table.slot(committed + k));
            if (k < num_accepted) {
                r.tokens.push_back(static_cast<TokenId>(uniform(0, 2)));
                stamps_[slot] = stamp_of(r.tokens, committed + k);
            } else {
                stamps_[slot] = kPoison;  // rejected draft KV: garbage nobody may read
            }
        }
        r.num_computed = committed + num_accepted;
        r.table.truncate(r.num_computed, allocator_);
    }

    void finish(int64_t i) {
        if (i < 0) return;
        SimRequest& r = *live_[static_cast<size_t>(i)];
        if (r.num_computed < r.prompt_len) return abort(i);
        verify_positions(r, r.num_computed);
        std::span<const TokenId> committed(r.tokens.data(), static_cast<size_t>(r.num_computed));
        cache_->cache_finished(committed, r.table);
        live_.erase(live_.begin() + i);
        ++num_finished_;
    }

    void abort(int64_t i) {
        if (i < 0) return;
        cache_->release_request(live_[static_cast<size_t>(i)]->table);
        live_.erase(live_.begin() + i);
    }

    void external_lock() {
        SimRequest probe;
        probe.tokens = documents_[static_cast<size_t>(uniform(0, 3))];
        MatchResult m = cache_->match_prefix(probe.tokens, /*extra_key=*/uniform(0, 1));
        probe.table.adopt_cached_prefix(m.pages, m.node);
        verify_positions(probe, m.num_tokens);
        cache_->inc_ref(m.node);
        external_.push_back(m.node);
    }

    void external_unlock() {
        if (external_.empty()) return;
        auto it = external_.begin() + uniform(0, static_cast<int64_t>(external_.size()) - 1);
        cache_->dec_ref(*it);
        external_.erase(it);
    }

    void check() {
        cache_->check_invariants();
        std::vector<const ReqToPages*> tables;
        int64_t num_owned = 0;
        for (const auto& r : live_) {
            tables.push_back(&r->table);
            num_owned += static_cast<int64_t>(r->table.owned_pages().size());
        }
        ASSERT_EQ(check_page_partition(allocator_, *cache_, tables), "");
        ASSERT_EQ(allocator_.num_free() + cache_->num_cached_pages() + num_owned, kNumPages);
    }

    std::mt19937 rng_;
    PageAllocator allocator_{kNumPages};
    std::unique_ptr<PrefixCache> cache_;
    std::vector<uint64_t> stamps_;  // per slot
    std::vector<std::vector<TokenId>> documents_;
    std::vector<std::unique_ptr<SimRequest>> live_;
    std::vector<NodeHandle> external_;
    int64_t num_finished_ = 0;
};

TEST(RadixStress, RandomOperationsKeepEveryInvariant) {
    for (uint32_t seed = 1; seed <= 4; ++seed) {
        Simulation sim(seed, PrefixCacheMode::kRadix);
        for (int step = 0; step < 3000; ++step) {
            sim.step();
            if (::testing::Test::HasFatalFailure()) FAIL() << "seed " << seed << " step " << step;
        }
        sim.drain();
        EXPECT_GT(sim.num_hits(), 0) << "the workload must exercise prefix hits";
        EXPECT_GT(sim.num_finished(), 50);
    }
}

TEST(RadixStress, BigramKeysKeepEveryInvariant) {
    Simulation sim(11, PrefixCacheMode::kRadix, CacheKeyMode::kBigram);
    for (int step = 0; step < 3000; ++step) {
        sim.step();
        if (::testing::Test::HasFatalFailure()) FAIL() << "step " << step;
    }
    sim.drain();
    EXPECT_GT(sim.num_hits(), 0);
}

TEST(RadixStress, DisabledCacheKeepsEveryInvariant) {
    Simulation sim(7, PrefixCacheMode::kDisabled);
    for (int step = 0; step < 3000; ++step) {
        sim.step();
        if (::testing::Test::HasFatalFailure()) FAIL() << "step " << step;
    }
    sim.drain();
    EXPECT_EQ(sim.num_hits(), 0);
}

}  // namespace
}  // namespace dsa::kvcache
