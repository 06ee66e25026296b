// PageAllocator (all-or-nothing, deterministic, double-free detection), ReqToPages (slot mapping,
// extend, truncate/rollback) and KvPool (store shapes, one slot space for both stores).
#include "kvcache/page_allocator.h"

#include <gtest/gtest.h>

#include "kvcache/kv_pool.h"
#include "kvcache/req_to_pages.h"

namespace dsa::kvcache {
namespace {

TEST(PageAllocator, LowestIdsFirstAndPageZeroReserved) {
    PageAllocator a(8);
    EXPECT_EQ(a.num_free(), 8);
    auto p = a.alloc(3);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(*p, (std::vector<PageId>{1, 2, 3}));
    a.free(2);
    auto q = a.alloc(2);
    ASSERT_TRUE(q.has_value());
    EXPECT_EQ(*q, (std::vector<PageId>{2, 4}));
    EXPECT_EQ(a.num_free() + a.num_used(), a.num_pages());
    EXPECT_EQ(a.num_used(), 4);
}

TEST(PageAllocator, ExhaustionIsAllOrNothing) {
    PageAllocator a(5);
    auto p = a.alloc(4);
    ASSERT_TRUE(p.has_value());
    EXPECT_FALSE(a.alloc(2).has_value());
    EXPECT_EQ(a.num_free(), 1);  // the failed call took nothing
    auto last = a.alloc(1);
    ASSERT_TRUE(last.has_value());
    EXPECT_EQ(*last, std::vector<PageId>{5});
    EXPECT_FALSE(a.alloc(1).has_value());
    auto none = a.alloc(0);
    ASSERT_TRUE(none.has_value());
    EXPECT_TRUE(none->empty());
    a.free(*p);
    EXPECT_EQ(a.num_free(), 4);
    a.reset();
    EXPECT_EQ(a.num_free(), 5);
}

TEST(PageAllocatorDeathTest, DoubleFreeAndBadIdsDie) {
    PageAllocator a(4);
    auto p = a.alloc(2);
    ASSERT_TRUE(p.has_value());
    a.free((*p)[0]);
    EXPECT_DEATH(a.free((*p)[0]), "double free of page 1");
    EXPECT_DEATH(a.free(PageId{3}), "double free of page 3");  // never allocated
    EXPECT_DEATH(a.free(kReservedPage), "outside");
    EXPECT_DEATH(a.free(PageId{5}), "outside");
}

TEST(ReqToPages, SlotMapping) {
    PageAllocator a(10);
    ReqToPages r(/*page_size=*/4);
    ASSERT_TRUE(a.alloc(1).has_value());  // page 1 taken by someone else: the request gets 2, 3, 4
    ASSERT_TRUE(r.extend(9, a));
    EXPECT_EQ(r.pages(), (std::vector<PageId>{2, 3, 4}));
    EXPECT_EQ(r.capacity_tokens(), 12);
    EXPECT_EQ(r.slot(0), 8);
    EXPECT_EQ(r.slot(3), 11);
    EXPECT_EQ(r.slot(4), 12);
    EXPECT_EQ(r.slot(9), 4 * 4 + 1);
    std::vector<int64_t> slots;
    r.append_slots(2, 6, &slots);
    EXPECT_EQ(slots, (std::vector<int64_t>{10, 11, 12, 13}));
    ASSERT_TRUE(r.extend(12, a));  // still inside the tail page
    EXPECT_EQ(r.num_pages(), 3);
    ASSERT_TRUE(r.extend(13, a));
    EXPECT_EQ(r.num_pages(), 4);
    EXPECT_DEATH(r.slot(16), "position 16");
}

TEST(ReqToPages, ExtendIsAllOrNothing) {
    PageAllocator a(3);
    ReqToPages r(4);
    ASSERT_TRUE(r.extend(8, a));
    EXPECT_FALSE(r.extend(20, a));  // needs 3 more pages, 1 free
    EXPECT_EQ(r.num_pages(), 2);
    EXPECT_EQ(a.num_free(), 1);
}

TEST(ReqToPages, TruncateRollsBackRejectedTokens) {
    PageAllocator a(10);
    ReqToPages r(4);
    ASSERT_TRUE(r.extend(5, a));      // committed 5
    ASSERT_TRUE(r.extend(5 + 8, a));  // speculative reserve of 8: 4 pages
    EXPECT_EQ(r.num_pages(), 4);
    EXPECT_EQ(r.truncate(7, a), 2);  // 2 drafts accepted: keep page_ceil(7) = 2 pages
    EXPECT_EQ(r.pages(), (std::vector<PageId>{1, 2}));
    EXPECT_EQ(a.num_free(), 8);
    EXPECT_TRUE(a.is_free(3));
    EXPECT_EQ(r.truncate(8, a), 0);
    EXPECT_EQ(r.truncate(0, a), 2);
    EXPECT_EQ(a.num_free(), 10);
}

TEST(ReqToPages, CachedPrefixIsNotTheRequestsToFree) {
    PageAllocator a(10);
    auto tree_pages = a.alloc(2);  // stands for pages a prefix cache owns
    ASSERT_TRUE(tree_pages.has_value());
    ReqToPages r(4);
    r.adopt_cached_prefix(*tree_pages, /*node=*/nullptr);
    EXPECT_EQ(r.num_cached_tokens(), 8);
    ASSERT_TRUE(r.extend(10, a));
    EXPECT_EQ(r.owned_pages().size(), 1u);
    EXPECT_DEATH(r.truncate(4, a), "owned by the prefix cache");
    EXPECT_EQ(r.release_owned(a), 1);
    EXPECT_EQ(a.num_free(), 8);  // the two cache pages are still taken
    EXPECT_EQ(r.num_pages(), 0);
}

TEST(KvPool, StoresShareOneSlotSpace) {
    KvCacheConfig c;
    c.num_layers = 4;
    c.num_mtp_layers = 1;
    c.mla_format = MlaKvFormat::kFp8;
    c.layer_indexer_modes = {IndexerMode::kFull, IndexerMode::kShared, IndexerMode::kFull, IndexerMode::kShared};
    KvPool pool(c, /*num_pages=*/3);
    EXPECT_EQ(pool.num_slots(), 4 * 64);
    EXPECT_EQ(pool.num_layers(), 5);
    for (int l = 0; l < pool.num_layers(); ++l) {
        EXPECT_EQ(pool.latent(l).shape(), (Shape{256, 656}));
        EXPECT_EQ(pool.latent(l).dtype(), DType::kU8);
    }
    EXPECT_TRUE(pool.has_indexer(0));
    EXPECT_FALSE(pool.has_indexer(1));
    EXPECT_TRUE(pool.has_indexer(4));  // MTP layer
    EXPECT_EQ(pool.indexer(2).shape(), (Shape{4, 8448}));
    EXPECT_EQ(pool.indexer(4).shape(), (Shape{4, 8448}));
    EXPECT_DEATH(pool.indexer(1), "no indexer cache");
    EXPECT_EQ(pool.mla_bytes(), 5 * 256 * 656);
    EXPECT_EQ(pool.indexer_bytes(), 3 * 4 * 8448);
    EXPECT_EQ(pool.total_bytes(), c.pool_bytes(3));
    EXPECT_EQ(pool.latent(0).data<uint8_t>()[0], 0);
    // Slot of (page 2, offset 5) is latent row 133 and indexer page 2, row 5.
    EXPECT_EQ(slot_of(2, 5, 64), 133);
    EXPECT_EQ(slot_of(2, 5, 64) / 64, 2);
}

TEST(KvPool, Bf16Rows) {
    KvCacheConfig c;
    c.num_layers = 2;
    KvPool pool(c, 1);
    EXPECT_EQ(pool.latent(1).shape(), (Shape{128, 1152}));
    EXPECT_EQ(pool.total_bytes(), c.pool_bytes(1));
}

}  // namespace
}  // namespace dsa::kvcache
