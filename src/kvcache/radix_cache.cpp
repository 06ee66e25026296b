// RadixCache: page-granular radix tree over position keys (token ids, or token pairs in bigram mode). match/insert
// split nodes at page boundaries; split keeps the original node object as the lower half, so handles to locked nodes
// stay valid. Eviction takes unlocked leaves in policy order and frees exactly the pages asked for (trimming a leaf's
// tail if needed).
#include "kvcache/radix_cache.h"

#include <algorithm>
#include <queue>
#include <unordered_map>

#include "base/check.h"

namespace dsa::kvcache {

using RadixKey = uint64_t;

// A child's map key: its first page of keys followed by its extra key.
using ChildKey = std::vector<RadixKey>;

struct ChildKeyHash {
    size_t operator()(const ChildKey& k) const noexcept {
        uint64_t h = 1469598103934665603ull;  // FNV-1a style mix over the keys
        for (RadixKey x : k) h = (h ^ x ^ (x >> 29)) * 1099511628211ull;
        return static_cast<size_t>(h);
    }
};

struct RadixNode {
    RadixNode* parent = nullptr;
    std::vector<RadixKey> key;  // whole pages of keyed positions; empty only at the root
    std::vector<PageId> pages;  // key.size() / page_size
    std::unordered_map<ChildKey, std::unique_ptr<RadixNode>, ChildKeyHash> children;
    ExtraKey extra_key = 0;     // namespace, the same for a whole subtree of the root
    int64_t lock_ref = 0;       // locks on this node and its descendants
    int64_t num_own_locks = 0;  // inc_ref(this) minus dec_ref(this)
    uint64_t last_access = 0;
    uint64_t hit_count = 0;
    uint64_t id = 0;
    int64_t num_pages() const { return static_cast<int64_t>(pages.size()); }
};

namespace {
ChildKey child_key(std::span<const RadixKey> keys, int page_size, ExtraKey extra_key) {
    ChildKey k(keys.begin(), keys.begin() + page_size);
    k.push_back(extra_key);
    return k;
}
}  // namespace

RadixCache::RadixCache(const PrefixCacheConfig& config, PageAllocator& allocator)
    : PrefixCache(config, allocator), policy_(config.eviction_policy), root_(std::make_unique<RadixNode>()) {
    DSA_CHECK_GT(config.page_size, 0);
}

// Pages still in the tree are not returned: the allocator may be gone, and the pool with it.
RadixCache::~RadixCache() = default;

std::vector<RadixKey> RadixCache::make_keys(std::span<const TokenId> tokens) const {
    std::vector<RadixKey> keys;
    auto widen = [](TokenId t) { return static_cast<RadixKey>(static_cast<uint32_t>(t)); };
    if (key_mode() == CacheKeyMode::kTokens) {
        keys.reserve(tokens.size());
        for (TokenId t : tokens) keys.push_back(widen(t));
        return keys;
    }
    for (size_t i = 0; i + 1 < tokens.size(); ++i) keys.push_back(widen(tokens[i]) << 32 | widen(tokens[i + 1]));
    return keys;
}

RadixNode* RadixCache::find_child(RadixNode* node, std::span<const RadixKey> page, ExtraKey extra_key) const {
    auto it = node->children.find(child_key(page, page_size(), extra_key));
    return it == node->children.end() ? nullptr : it->second.get();
}

int64_t RadixCache::count_matching_pages(const RadixNode* node, std::span<const RadixKey> keys) const {
    int64_t ps = page_size();
    int64_t limit = std::min(node->num_pages(), static_cast<int64_t>(keys.size()) / ps);
    int64_t m = 0;
    while (m < limit && std::equal(keys.begin() + m * ps, keys.begin() + (m + 1) * ps, node->key.begin() + m * ps)) {
        ++m;
    }
    return m;
}

RadixNode* RadixCache::split(RadixNode* node, int64_t num_prefix_pages) {
    DSA_CHECK(num_prefix_pages > 0 && num_prefix_pages < node->num_pages()) << num_prefix_pages;
    int64_t num_prefix_tokens = num_prefix_pages * page_size();
    RadixNode* parent = node->parent;
    auto slot = parent->children.find(child_key(node->key, page_size(), node->extra_key));
    DSA_CHECK(slot != parent->children.end());
    std::unique_ptr<RadixNode> lower = std::move(slot->second);

    auto upper = std::make_unique<RadixNode>();
    upper->parent = parent;
    upper->key.assign(node->key.begin(), node->key.begin() + num_prefix_tokens);
    upper->pages.assign(node->pages.begin(), node->pages.begin() + num_prefix_pages);
    upper->lock_ref = node->lock_ref;  // every lock below passes through the upper half
    upper->last_access = node->last_access;
    upper->hit_count = node->hit_count;
    upper->extra_key = node->extra_key;
    upper->id = ++num_created_;

    node->key.erase(node->key.begin(), node->key.begin() + num_prefix_tokens);
    node->pages.erase(node->pages.begin(), node->pages.begin() + num_prefix_pages);
    node->parent = upper.get();
    RadixNode* raw = upper.get();
    upper->children.emplace(child_key(node->key, page_size(), node->extra_key), std::move(lower));
    slot->second = std::move(upper);
    return raw;
}

RadixNode* RadixCache::add_leaf(RadixNode* parent, std::span<const RadixKey> key, std::span<const PageId> pages,
                                ExtraKey extra_key) {
    for (PageId p : pages) DSA_CHECK(!allocator().is_free(p)) << "inserting free page " << p;
    auto leaf = std::make_unique<RadixNode>();
    leaf->parent = parent;
    leaf->key.assign(key.begin(), key.end());
    leaf->pages.assign(pages.begin(), pages.end());
    leaf->last_access = clock_;
    leaf->extra_key = extra_key;
    leaf->id = ++num_created_;
    num_evictable_pages_ += leaf->num_pages();
    RadixNode* raw = leaf.get();
    parent->children.emplace(child_key(key, page_size(), extra_key), std::move(leaf));
    return raw;
}

MatchResult RadixCache::do_match_prefix(std::span<const TokenId> tokens, ExtraKey extra_key) {
    MatchResult result;
    uint64_t now = ++clock_;
    int64_t ps = page_size();
    std::vector<RadixKey> keys = make_keys(tokens);
    auto num_full = static_cast<int64_t>(keys.size()) / ps * ps;
    RadixNode* node = root_.get();
    int64_t pos = 0;
    while (pos < num_full) {
        RadixNode* child = find_child(node, std::span<const RadixKey>(keys).subspan(pos, ps), extra_key);
        if (child == nullptr) break;
        int64_t m = count_matching_pages(child, std::span<const RadixKey>(keys).subspan(pos, num_full - pos));
        if (m < child->num_pages()) child = split(child, m);
        child->last_access = now;
        ++child->hit_count;
        result.pages.insert(result.pages.end(), child->pages.begin(), child->pages.end());
        pos += m * ps;
        node = child;
    }
    result.num_tokens = pos;
    result.node = node == root_.get() ? nullptr : node;
    return result;
}

InsertResult RadixCache::do_insert(std::span<const TokenId> tokens, std::span<const PageId> pages, ExtraKey extra_key) {
    int64_t ps = page_size();
    std::vector<RadixKey> keys = make_keys(tokens);
    int64_t num_pages = static_cast<int64_t>(keys.size()) / ps;
    DSA_CHECK_EQ(static_cast<int64_t>(pages.size()), num_pages) << "insert takes one page per whole page of keys";
    InsertResult result;
    uint64_t now = ++clock_;
    RadixNode* node = root_.get();
    int64_t pos = 0;  // in pages
    while (pos < num_pages) {
        auto rest = std::span<const RadixKey>(keys).subspan(pos * ps, (num_pages - pos) * ps);
        RadixNode* child = find_child(node, rest, extra_key);
        if (child == nullptr) {
            node = add_leaf(node, rest, pages.subspan(pos), extra_key);
            break;
        }
        int64_t m = count_matching_pages(child, rest);
        for (int64_t i = 0; i < m; ++i) {
            PageId given = pages[pos + i];
            if (child->pages[i] == given) continue;
            allocator().free(given);  // a duplicate: the tree keeps its own copy
            ++result.num_freed_pages;
        }
        if (m < child->num_pages()) child = split(child, m);
        child->last_access = now;
        pos += m;
        result.num_present_tokens += m * ps;
        node = child;
    }
    result.node = node == root_.get() ? nullptr : node;
    return result;
}

void RadixCache::inc_ref(NodeHandle node) {
    if (node == nullptr || node == root_.get()) return;
    ++node->num_own_locks;
    for (RadixNode* n = node; n != root_.get(); n = n->parent) {
        if (n->lock_ref++ == 0) {
            num_evictable_pages_ -= n->num_pages();
            num_protected_pages_ += n->num_pages();
        }
    }
}

void RadixCache::dec_ref(NodeHandle node) {
    if (node == nullptr || node == root_.get()) return;
    DSA_CHECK_GT(node->num_own_locks, 0) << "dec_ref without a matching inc_ref";
    --node->num_own_locks;
    for (RadixNode* n = node; n != root_.get(); n = n->parent) {
        DSA_CHECK_GT(n->lock_ref, 0);
        if (--n->lock_ref == 0) {
            num_protected_pages_ -= n->num_pages();
            num_evictable_pages_ += n->num_pages();
        }
    }
}

bool RadixCache::evicts_before(const RadixNode* a, const RadixNode* b) const {
    if (policy_ == EvictionPolicy::kLfu && a->hit_count != b->hit_count) return a->hit_count < b->hit_count;
    if (a->last_access != b->last_access) return a->last_access < b->last_access;
    return a->id < b->id;
}

void RadixCache::collect_evictable_leaves(RadixNode* node, std::vector<RadixNode*>* out) const {
    std::vector<RadixNode*> stack{node};
    while (!stack.empty()) {
        RadixNode* n = stack.back();
        stack.pop_back();
        if (n != root_.get() && n->children.empty() && n->lock_ref == 0) out->push_back(n);
        for (auto& [first, child] : n->children) stack.push_back(child.get());
    }
}

int64_t RadixCache::free_leaf_tail(RadixNode* leaf, int64_t num_pages) {
    DSA_CHECK(num_pages > 0 && num_pages < leaf->num_pages());
    int64_t keep = leaf->num_pages() - num_pages;
    allocator().free(std::span<const PageId>(leaf->pages).subspan(static_cast<size_t>(keep)));
    leaf->pages.resize(static_cast<size_t>(keep));
    leaf->key.resize(static_cast<size_t>(keep * page_size()));
    num_evictable_pages_ -= num_pages;
    return num_pages;
}

void RadixCache::remove_leaf(RadixNode* leaf) {
    DSA_CHECK(leaf->children.empty() && leaf->lock_ref == 0);
    allocator().free(leaf->pages);
    num_evictable_pages_ -= leaf->num_pages();
    size_t erased = leaf->parent->children.erase(child_key(leaf->key, page_size(), leaf->extra_key));
    DSA_CHECK_EQ(erased, size_t{1});
}

int64_t RadixCache::evict(int64_t num_pages) {
    if (num_pages <= 0) return 0;
    std::vector<RadixNode*> leaves;
    collect_evictable_leaves(root_.get(), &leaves);
    auto later = [this](const RadixNode* a, const RadixNode* b) { return evicts_before(b, a); };
    std::priority_queue<RadixNode*, std::vector<RadixNode*>, decltype(later)> heap(later, std::move(leaves));
    int64_t num_freed = 0;
    while (num_freed < num_pages && !heap.empty()) {
        RadixNode* leaf = heap.top();
        heap.pop();
        int64_t wanted = num_pages - num_freed;
        if (wanted < leaf->num_pages()) {
            num_freed += free_leaf_tail(leaf, wanted);
            break;
        }
        RadixNode* parent = leaf->parent;
        num_freed += leaf->num_pages();
        remove_leaf(leaf);  // destroys leaf
        if (parent != root_.get() && parent->children.empty() && parent->lock_ref == 0) heap.push(parent);
    }
    count_evicted(num_freed);
    return num_freed;
}

void RadixCache::collect_pages(std::vector<PageId>* out) const {
    std::vector<const RadixNode*> stack{root_.get()};
    while (!stack.empty()) {
        const RadixNode* n = stack.back();
        stack.pop_back();
        out->insert(out->end(), n->pages.begin(), n->pages.end());
        for (const auto& [first, child] : n->children) stack.push_back(child.get());
    }
}

int64_t RadixCache::num_nodes() const {
    int64_t n = 0;
    std::vector<const RadixNode*> stack{root_.get()};
    while (!stack.empty()) {
        const RadixNode* node = stack.back();
        stack.pop_back();
        n += node != root_.get() ? 1 : 0;
        for (const auto& [first, child] : node->children) stack.push_back(child.get());
    }
    return n;
}

int64_t RadixCache::lock_ref(NodeHandle node) const { return node == nullptr ? 0 : node->lock_ref; }

void RadixCache::check_subtree(const RadixNode* node, std::vector<PageId>* pages, int64_t* num_evictable,
                               int64_t* num_protected) const {
    int64_t ps = page_size();
    int64_t child_locks = 0;
    for (const auto& [first, child] : node->children) {
        DSA_CHECK(child->parent == node) << "broken parent link";
        DSA_CHECK(!child->key.empty()) << "empty key below the root";
        DSA_CHECK_EQ(static_cast<int64_t>(child->key.size()), child->num_pages() * ps);
        DSA_CHECK(first == child_key(child->key, page_size(), child->extra_key)) << "child filed under a wrong key";
        DSA_CHECK(node == root_.get() || child->extra_key == node->extra_key) << "extra key changes below the root";
        child_locks += child->lock_ref;
        check_subtree(child.get(), pages, num_evictable, num_protected);
    }
    if (node == root_.get()) return;
    DSA_CHECK_GE(node->num_own_locks, 0);
    DSA_CHECK_EQ(node->lock_ref, node->num_own_locks + child_locks) << "lock_ref out of sync";
    (node->lock_ref == 0 ? *num_evictable : *num_protected) += node->num_pages();
    for (PageId p : node->pages) DSA_CHECK(!allocator().is_free(p)) << "cached page " << p << " is free";
    pages->insert(pages->end(), node->pages.begin(), node->pages.end());
}

void RadixCache::check_invariants() const {
    DSA_CHECK(root_->key.empty() && root_->pages.empty() && root_->lock_ref == 0);
    std::vector<PageId> pages;
    int64_t num_evictable = 0;
    int64_t num_protected = 0;
    check_subtree(root_.get(), &pages, &num_evictable, &num_protected);
    DSA_CHECK_EQ(num_evictable, num_evictable_pages_);
    DSA_CHECK_EQ(num_protected, num_protected_pages_);
    std::sort(pages.begin(), pages.end());
    DSA_CHECK(std::adjacent_find(pages.begin(), pages.end()) == pages.end()) << "a page is in two nodes";
}

}  // namespace dsa::kvcache
