// RadixCache and the disabled cache: matching, page-granular sharing, locking, eviction order and
// exactness, insert dedup, flush, the request lifecycle and hit-rate counters. Page size 4 keeps it readable.
#include "kvcache/radix_cache.h"

#include <gtest/gtest.h>

#include <numeric>

#include "kvcache/invariants.h"

namespace dsa::kvcache {
namespace {

constexpr int kPage = 4;

std::vector<TokenId> seq(TokenId first, int n) {
    std::vector<TokenId> v(static_cast<size_t>(n));
    std::iota(v.begin(), v.end(), first);
    return v;
}

std::vector<TokenId> concat(std::vector<TokenId> a, const std::vector<TokenId>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

class RadixCacheTest : public ::testing::Test {
  protected:
    std::vector<PageId> take(int64_t n) {
        auto p = allocator_.alloc(n);
        EXPECT_TRUE(p.has_value());
        return p.value_or(std::vector<PageId>{});
    }
    // Inserts `tokens` with freshly allocated pages; returns those pages.
    std::vector<PageId> insert_fresh(const std::vector<TokenId>& tokens) {
        std::vector<PageId> pages = take(static_cast<int64_t>(tokens.size()) / kPage);
        cache_.insert(tokens, pages);
        return pages;
    }
    void check(std::initializer_list<const ReqToPages*> live = {}) {
        cache_.check_invariants();
        std::vector<const ReqToPages*> reqs(live);
        EXPECT_EQ(check_page_partition(allocator_, cache_, reqs), "");
    }

    PageAllocator allocator_{16};
    RadixCache cache_{PrefixCacheConfig{.page_size = kPage}, allocator_};
};

TEST_F(RadixCacheTest, MatchAfterInsert) {
    std::vector<TokenId> a = seq(100, 12);
    std::vector<PageId> pages = insert_fresh(a);
    MatchResult m = cache_.match_prefix(a);
    EXPECT_EQ(m.num_tokens, 12);
    EXPECT_EQ(m.pages, pages);
    EXPECT_EQ(cache_.match_prefix(concat(a, seq(7, 2))).num_tokens, 12);  // a partial extra page is ignored
    MatchResult part = cache_.match_prefix(concat(seq(100, 9), {0, 0, 0}));
    EXPECT_EQ(part.num_tokens, 8);  // diverges inside the third page
    EXPECT_EQ(part.pages, (std::vector<PageId>{pages[0], pages[1]}));
    EXPECT_EQ(cache_.num_nodes(), 2);  // the lookup split the node at the page boundary
    EXPECT_EQ(cache_.match_prefix(seq(5, 12)).num_tokens, 0);
    EXPECT_EQ(cache_.num_evictable_pages(), 3);
    check();
}

TEST_F(RadixCacheTest, PartialPagesAreNotShared) {
    std::vector<TokenId> a = seq(1, 6);  // one whole page + 2 tokens
    std::vector<PageId> pages = take(1);
    cache_.insert(a, pages);  // only the whole page is cached
    EXPECT_EQ(cache_.num_cached_pages(), 1);
    EXPECT_EQ(cache_.match_prefix(a).num_tokens, 4);
    EXPECT_EQ(cache_.match_prefix(seq(1, 3)).num_tokens, 0);  // shorter than a page: never a hit
    // A fully cached 8-token prompt still leaves its last page to compute (at least one token is computed).
    insert_fresh(seq(50, 8));
    ReqToPages r(kPage);
    EXPECT_EQ(cache_.attach_prefix(seq(50, 8), r), 4);
    EXPECT_EQ(r.num_cached_pages(), 1);
    check({&r});
    cache_.release_request(r);
    check();
}

TEST_F(RadixCacheTest, SharedPrefixesSharePages) {
    std::vector<TokenId> a = concat(seq(0, 8), seq(100, 4));
    std::vector<TokenId> b = concat(seq(0, 8), seq(200, 6));
    std::vector<PageId> a_pages = insert_fresh(a);
    ReqToPages r(kPage);
    EXPECT_EQ(cache_.attach_prefix(b, r), 8);
    EXPECT_EQ(r.pages(), (std::vector<PageId>{a_pages[0], a_pages[1]}));
    ASSERT_TRUE(r.extend(14, allocator_));
    check({&r});
    cache_.cache_finished(b, r);  // 3 whole pages: 2 shared + 1 new; the 2-token tail page is freed
    EXPECT_EQ(r.num_pages(), 0);
    EXPECT_EQ(cache_.num_cached_pages(), 4);
    EXPECT_EQ(cache_.num_nodes(), 3);  // shared prefix + two branches
    EXPECT_EQ(allocator_.num_free(), 12);
    MatchResult mb = cache_.match_prefix(b);
    EXPECT_EQ(mb.num_tokens, 12);
    EXPECT_EQ(mb.pages[0], a_pages[0]);
    EXPECT_EQ(mb.pages[1], a_pages[1]);
    EXPECT_NE(mb.pages[2], a_pages[2]);
    check();
}

TEST_F(RadixCacheTest, LockedNodesAreNeverEvicted) {
    std::vector<TokenId> a = seq(0, 12);
    std::vector<PageId> a_pages = insert_fresh(a);
    std::vector<PageId> b_pages = insert_fresh(seq(500, 8));
    insert_fresh(seq(900, 4));
    MatchResult m = cache_.match_prefix(seq(0, 8));  // splits a; locks an inner node (its first two pages)
    cache_.inc_ref(m.node);
    MatchResult leaf = cache_.match_prefix(seq(500, 8));  // locks a whole leaf
    cache_.inc_ref(leaf.node);
    EXPECT_EQ(cache_.num_protected_pages(), 4);
    EXPECT_EQ(cache_.num_evictable_pages(), 2);
    EXPECT_EQ(cache_.evict(100), 2);  // a's third page and the 900 entry only
    EXPECT_EQ(cache_.num_cached_pages(), 4);
    EXPECT_EQ(cache_.match_prefix(a).pages, (std::vector<PageId>{a_pages[0], a_pages[1]}));
    EXPECT_EQ(cache_.match_prefix(seq(500, 8)).pages, b_pages);
    check();
    cache_.dec_ref(m.node);
    cache_.dec_ref(leaf.node);
    EXPECT_EQ(cache_.num_evictable_pages(), 4);
    EXPECT_EQ(cache_.flush(), 4);
    EXPECT_EQ(allocator_.num_free(), 16);
    check();
}

TEST_F(RadixCacheTest, SplitKeepsLockedHandlesValid) {
    std::vector<TokenId> a = seq(0, 12);
    insert_fresh(a);
    MatchResult m = cache_.match_prefix(a);
    cache_.inc_ref(m.node);
    cache_.match_prefix(seq(0, 4));  // splits above the locked node
    cache_.match_prefix(seq(0, 8));  // and again
    EXPECT_EQ(cache_.num_nodes(), 3);
    EXPECT_EQ(cache_.lock_ref(m.node), 1);
    EXPECT_EQ(cache_.num_protected_pages(), 3);
    check();
    cache_.dec_ref(m.node);
    EXPECT_EQ(cache_.num_evictable_pages(), 3);
    check();
    EXPECT_DEATH(cache_.dec_ref(m.node), "without a matching inc_ref");
}

TEST_F(RadixCacheTest, EvictsLeastRecentlyUsedFirst) {
    std::vector<PageId> a = insert_fresh(seq(0, 4));
    std::vector<PageId> b = insert_fresh(seq(10, 4));
    std::vector<PageId> c = insert_fresh(seq(20, 4));
    cache_.match_prefix(seq(0, 4));  // a becomes the most recent
    EXPECT_EQ(cache_.evict(1), 1);
    EXPECT_TRUE(allocator_.is_free(b[0]));
    EXPECT_FALSE(allocator_.is_free(c[0]));
    EXPECT_EQ(cache_.evict(1), 1);
    EXPECT_TRUE(allocator_.is_free(c[0]));
    EXPECT_FALSE(allocator_.is_free(a[0]));
    check();
}

TEST_F(RadixCacheTest, ParentIsEvictedAfterItsLastChild) {
    std::vector<PageId> base = insert_fresh(seq(0, 8));
    std::vector<PageId> x = insert_fresh(concat(seq(0, 8), seq(50, 4)));  // dedups base, adds one leaf page
    std::vector<PageId> other = insert_fresh(seq(900, 4));                // newest
    EXPECT_EQ(cache_.num_cached_pages(), 4);
    // Leaf {50..} is older than {900..}: it goes first, then its parent (now a leaf, same age), then 900.
    EXPECT_EQ(cache_.evict(3), 3);
    EXPECT_TRUE(allocator_.is_free(x[2]));
    EXPECT_TRUE(allocator_.is_free(base[0]) && allocator_.is_free(base[1]));
    EXPECT_FALSE(allocator_.is_free(other[0]));
    check();
}

TEST_F(RadixCacheTest, EvictionFreesExactlyWhatItSays) {
    std::vector<PageId> a = insert_fresh(seq(0, 12));
    int64_t free_before = allocator_.num_free();
    EXPECT_EQ(cache_.evict(2), 2);  // trims the leaf's last two pages
    EXPECT_EQ(allocator_.num_free(), free_before + 2);
    EXPECT_TRUE(allocator_.is_free(a[1]) && allocator_.is_free(a[2]));
    EXPECT_EQ(cache_.match_prefix(seq(0, 12)).num_tokens, 4);
    EXPECT_EQ(cache_.evict(0), 0);
    EXPECT_EQ(cache_.evict(5), 1);  // only one page left to evict
    EXPECT_EQ(cache_.stats().num_evicted_pages, 3);
    check();
}

TEST_F(RadixCacheTest, InsertDedupFreesDuplicatePages) {
    std::vector<TokenId> a = seq(0, 12);
    std::vector<PageId> first = insert_fresh(a);
    std::vector<PageId> dup = take(3);
    InsertResult r = cache_.insert(a, dup);
    EXPECT_EQ(r.num_present_tokens, 12);
    EXPECT_EQ(r.num_freed_pages, 3);
    for (PageId p : dup) EXPECT_TRUE(allocator_.is_free(p));
    // Re-inserting the cache's own pages with one new page frees nothing.
    std::vector<PageId> more = first;
    more.push_back(take(1)[0]);
    r = cache_.insert(seq(0, 16), more);
    EXPECT_EQ(r.num_present_tokens, 12);
    EXPECT_EQ(r.num_freed_pages, 0);
    EXPECT_EQ(cache_.num_cached_pages(), 4);
    check();
}

TEST_F(RadixCacheTest, FlushFreesEveryUnlockedPage) {
    insert_fresh(seq(0, 8));
    insert_fresh(seq(100, 12));
    insert_fresh(concat(seq(100, 8), seq(7, 8)));
    MatchResult m = cache_.match_prefix(seq(100, 8));
    cache_.inc_ref(m.node);
    int64_t unlocked = cache_.num_evictable_pages();
    EXPECT_EQ(cache_.flush(), unlocked);
    EXPECT_EQ(cache_.num_evictable_pages(), 0);
    EXPECT_EQ(cache_.num_protected_pages(), 2);
    EXPECT_EQ(allocator_.num_free(), 14);
    check();
    cache_.dec_ref(m.node);
    EXPECT_EQ(cache_.flush(), 2);
    EXPECT_EQ(cache_.num_nodes(), 0);
    check();
}

TEST_F(RadixCacheTest, ChunkedPrefillSharesThroughCacheUnfinished) {
    std::vector<TokenId> prompt = seq(0, 10);
    ReqToPages r1(kPage);
    ReqToPages r2(kPage);
    EXPECT_EQ(cache_.attach_prefix(prompt, r1), 0);
    EXPECT_EQ(cache_.attach_prefix(prompt, r2), 0);  // both miss: same prompt, same batch
    ASSERT_TRUE(r1.extend(10, allocator_));
    ASSERT_TRUE(r2.extend(10, allocator_));
    cache_.cache_unfinished(prompt, r1);
    EXPECT_EQ(r1.num_cached_pages(), 2);
    EXPECT_EQ(cache_.lock_ref(r1.cache_node()), 1);
    std::vector<PageId> r2_old = r2.pages();
    cache_.cache_unfinished(prompt, r2);  // its two whole pages are duplicates: freed, table rewritten
    EXPECT_EQ(r2.pages()[0], r1.pages()[0]);
    EXPECT_EQ(r2.pages()[1], r1.pages()[1]);
    EXPECT_EQ(r2.pages()[2], r2_old[2]);  // the partial tail page stays the request's own
    EXPECT_TRUE(allocator_.is_free(r2_old[0]) && allocator_.is_free(r2_old[1]));
    EXPECT_EQ(cache_.lock_ref(r2.cache_node()), 2);
    EXPECT_EQ(cache_.num_protected_pages(), 2);
    check({&r1, &r2});
    cache_.release_request(r2);
    cache_.cache_finished(prompt, r1);
    EXPECT_EQ(cache_.num_protected_pages(), 0);
    EXPECT_EQ(allocator_.num_free(), 14);
    check();
}

TEST_F(RadixCacheTest, HitRate) {
    insert_fresh(seq(0, 8));
    ReqToPages r(kPage);
    EXPECT_EQ(cache_.attach_prefix(seq(0, 12), r), 8);
    cache_.release_request(r);
    EXPECT_EQ(cache_.attach_prefix(seq(40, 4), r), 0);
    cache_.release_request(r);
    EXPECT_EQ(cache_.attach_prefix(seq(0, 12), r, HitAccounting::kSkip), 8);  // a retracted re-prefill
    cache_.release_request(r);
    EXPECT_EQ(cache_.stats().num_prompt_tokens, 16);
    EXPECT_EQ(cache_.stats().num_hit_tokens, 8);
    EXPECT_DOUBLE_EQ(cache_.stats().hit_rate(), 0.5);
    cache_.reset_stats();
    EXPECT_EQ(cache_.stats().hit_rate(), 0.0);
    check();
}

TEST(RadixCacheBigram, APositionIsCachedOnlyWithItsNextToken) {
    PageAllocator allocator(16);
    RadixCache cache({.page_size = kPage, .key_mode = CacheKeyMode::kBigram}, allocator);
    EXPECT_EQ(cache.num_keyed_positions(9), 8);
    EXPECT_EQ(cache.num_keyed_positions(0), 0);
    std::vector<TokenId> a = concat(seq(0, 8), {100});
    ReqToPages r(kPage);
    EXPECT_EQ(cache.attach_prefix(a, r), 0);
    ASSERT_TRUE(r.extend(9, allocator));
    cache.cache_finished(a, r);  // 8 keyed positions: 2 pages
    EXPECT_EQ(cache.num_cached_pages(), 2);
    EXPECT_EQ(cache.match_prefix(a).num_tokens, 8);
    // Same first 8 tokens, another 9th: position 7's key (7, 200) differs, so only the first page matches.
    EXPECT_EQ(cache.match_prefix(concat(seq(0, 8), {200})).num_tokens, 4);
    // 8 committed tokens cache only 7 positions: 1 page (token mode would cache 2).
    std::vector<TokenId> b = seq(50, 8);
    ASSERT_TRUE(r.extend(8, allocator));
    cache.cache_finished(b, r);
    EXPECT_EQ(cache.match_prefix(concat(b, {1})).num_tokens, 4);
    EXPECT_EQ(cache.num_cached_pages(), 3);
    // Admission of a fully cached 9-token prompt: 8 positions are servable.
    EXPECT_EQ(cache.attach_prefix(a, r), 8);
    cache.release_request(r);
    cache.check_invariants();
    EXPECT_EQ(check_page_partition(allocator, cache, {}), "");
}

TEST(RadixCacheExtraKey, NamespacesNeverShare) {
    PageAllocator allocator(16);
    RadixCache cache({.page_size = kPage}, allocator);
    auto p1 = allocator.alloc(2).value();
    auto p2 = allocator.alloc(2).value();
    cache.insert(seq(0, 8), p1, /*extra_key=*/1);
    InsertResult r = cache.insert(seq(0, 8), p2, /*extra_key=*/2);
    EXPECT_EQ(r.num_present_tokens, 0);  // not a duplicate: another namespace
    EXPECT_EQ(cache.num_cached_pages(), 4);
    EXPECT_EQ(cache.match_prefix(seq(0, 8), 1).pages, p1);
    EXPECT_EQ(cache.match_prefix(seq(0, 8), 2).pages, p2);
    EXPECT_EQ(cache.match_prefix(seq(0, 8)).num_tokens, 0);
    ReqToPages req(kPage);
    EXPECT_EQ(cache.attach_prefix(seq(0, 10), req, HitAccounting::kCount, /*extra_key=*/2), 8);
    EXPECT_EQ(req.pages(), p2);
    ASSERT_TRUE(req.extend(12, allocator));
    cache.cache_finished(seq(0, 12), req);  // extends namespace 2 only
    EXPECT_EQ(cache.match_prefix(seq(0, 12), 2).num_tokens, 12);
    EXPECT_EQ(cache.match_prefix(seq(0, 12), 1).num_tokens, 8);
    cache.check_invariants();
    EXPECT_EQ(check_page_partition(allocator, cache, {}), "");
}

TEST(RadixCacheLfu, LeastFrequentlyUsedGoesFirst) {
    PageAllocator allocator(8);
    RadixCache cache({.page_size = kPage, .eviction_policy = EvictionPolicy::kLfu}, allocator);
    auto a = allocator.alloc(1).value();
    auto b = allocator.alloc(1).value();
    cache.insert(seq(0, 4), a);
    cache.insert(seq(10, 4), b);
    cache.match_prefix(seq(0, 4));
    cache.match_prefix(seq(0, 4));
    cache.match_prefix(seq(10, 4));  // b is the most recent but the least used
    EXPECT_EQ(cache.evict(1), 1);
    EXPECT_TRUE(allocator.is_free(b[0]));
    EXPECT_FALSE(allocator.is_free(a[0]));
    EXPECT_TRUE(parse_eviction_policy("lfu").is_ok());
    EXPECT_FALSE(parse_eviction_policy("fifo").is_ok());
}

TEST(DisabledPrefixCache, MatchesNothingAndKeepsNothing) {
    PageAllocator allocator(8);
    auto cache = make_prefix_cache({.page_size = kPage, .mode = PrefixCacheMode::kDisabled}, allocator);
    EXPECT_FALSE(cache->enabled());
    auto pages = allocator.alloc(2).value();
    InsertResult ins = cache->insert(seq(0, 8), pages);
    EXPECT_EQ(ins.num_freed_pages, 2);
    EXPECT_EQ(allocator.num_free(), 8);
    ReqToPages r(kPage);
    EXPECT_EQ(cache->attach_prefix(seq(0, 12), r), 0);
    ASSERT_TRUE(r.extend(12, allocator));
    cache->cache_unfinished(seq(0, 12), r);  // the request keeps all its pages
    EXPECT_EQ(r.num_cached_pages(), 0);
    EXPECT_EQ(allocator.num_free(), 5);
    EXPECT_EQ(cache->match_prefix(seq(0, 12)).num_tokens, 0);
    std::vector<const ReqToPages*> live{&r};
    EXPECT_EQ(check_page_partition(allocator, *cache, live), "");
    cache->cache_finished(seq(0, 12), r);
    EXPECT_EQ(allocator.num_free(), 8);
    EXPECT_EQ(cache->evict(4), 0);
    EXPECT_EQ(cache->flush(), 0);
    EXPECT_EQ(cache->num_cached_pages(), 0);
    EXPECT_EQ(cache->stats().num_prompt_tokens, 12);
    EXPECT_EQ(cache->stats().hit_rate(), 0.0);
}

TEST(PagePartition, DetectsLeaksAndDoubleOwnership) {
    PageAllocator allocator(4);
    RadixCache cache({.page_size = kPage}, allocator);
    auto leaked = allocator.alloc(1).value();
    EXPECT_NE(check_page_partition(allocator, cache, {}).find("leaked"), std::string::npos);
    cache.insert(seq(0, 4), leaked);
    EXPECT_EQ(check_page_partition(allocator, cache, {}), "");
    ReqToPages r(kPage);
    ASSERT_TRUE(r.extend(4, allocator));
    std::vector<const ReqToPages*> live{&r};
    EXPECT_EQ(check_page_partition(allocator, cache, live), "");
    ReqToPages thief(kPage);
    thief.adopt_cached_prefix(r.pages(), nullptr);  // borrows a page the cache does not own
    live.push_back(&thief);
    EXPECT_NE(check_page_partition(allocator, cache, live).find("does not own"), std::string::npos);
}

}  // namespace
}  // namespace dsa::kvcache
