// RadixCache: the radix prefix cache (RUNTIME_NOTES §3). A node's key is a run of whole pages of position
// keys (token ids, or (token, next token) pairs in bigram mode; a non-empty multiple of page_size) and its
// value the page ids holding their KV; children are keyed by their first page of keys plus the extra key, so
// siblings never share a first page and namespaces never share a node. Only whole pages are shared: a prefix
// that ends inside a page is cached up to the last page boundary. lock_ref of a node counts the locks on
// it and on its descendants; locked nodes are never evicted. evictable/protected counters are kept exact.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kvcache/prefix_cache.h"

namespace dsa::kvcache {

class RadixCache final : public PrefixCache {
  public:
    RadixCache(const PrefixCacheConfig& config, PageAllocator& allocator);
    ~RadixCache() override;

    bool enabled() const override { return true; }
    void inc_ref(NodeHandle node) override;
    void dec_ref(NodeHandle node) override;
    int64_t evict(int64_t num_pages) override;
    int64_t num_evictable_pages() const override { return num_evictable_pages_; }
    int64_t num_protected_pages() const override { return num_protected_pages_; }
    void collect_pages(std::vector<PageId>* out) const override;
    void check_invariants() const override;

    int64_t num_nodes() const;  // root excluded
    int64_t lock_ref(NodeHandle node) const;

  private:
    using RadixKey = uint64_t;

    MatchResult do_match_prefix(std::span<const TokenId> tokens, ExtraKey extra_key) override;
    InsertResult do_insert(std::span<const TokenId> tokens, std::span<const PageId> pages, ExtraKey extra_key) override;
    std::vector<RadixKey> make_keys(std::span<const TokenId> tokens) const;
    RadixNode* find_child(RadixNode* node, std::span<const RadixKey> page, ExtraKey extra_key) const;
    int64_t count_matching_pages(const RadixNode* node, std::span<const RadixKey> keys) const;
    RadixNode* split(RadixNode* node, int64_t num_prefix_pages);
    RadixNode* add_leaf(RadixNode* parent, std::span<const RadixKey> key, std::span<const PageId> pages,
                        ExtraKey extra_key);
    int64_t free_leaf_tail(RadixNode* leaf, int64_t num_pages);
    void remove_leaf(RadixNode* leaf);
    void collect_evictable_leaves(RadixNode* node, std::vector<RadixNode*>* out) const;
    bool evicts_before(const RadixNode* a, const RadixNode* b) const;
    void check_subtree(const RadixNode* node, std::vector<PageId>* pages, int64_t* num_evictable,
                       int64_t* num_protected) const;

    EvictionPolicy policy_;
    std::unique_ptr<RadixNode> root_;
    uint64_t clock_ = 0;        // logical time of the last access
    uint64_t num_created_ = 0;  // node ids, the tie-break that keeps eviction order deterministic
    int64_t num_evictable_pages_ = 0;
    int64_t num_protected_pages_ = 0;
};

}  // namespace dsa::kvcache
