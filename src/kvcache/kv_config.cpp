// KvCacheConfig validation and byte accounting.
#include "kvcache/kv_config.h"

#include <algorithm>

namespace dsa::kvcache {

const char* mla_kv_format_name(MlaKvFormat f) {
    switch (f) {
        case MlaKvFormat::kF32:
            return "f32";
        case MlaKvFormat::kBF16:
            return "bf16";
        case MlaKvFormat::kFp8:
            return "fp8";
    }
    return "?";
}

const char* indexer_key_format_name(IndexerKeyFormat f) { return f == IndexerKeyFormat::kFp8 ? "fp8" : "f32"; }

Status KvCacheConfig::validate() const {
    if (page_size <= 0) return invalid_argument("kv cache: page_size must be positive, got {}", page_size);
    if (indexer_format == IndexerKeyFormat::kFp8 && page_size != kDefaultPageSize) {
        return invalid_argument("kv cache: the paged FP8 indexer layout needs page_size {}, got {}", kDefaultPageSize,
                                page_size);
    }
    if (num_layers <= 0) return invalid_argument("kv cache: num_layers must be positive, got {}", num_layers);
    if (num_mtp_layers < 0) return invalid_argument("kv cache: num_mtp_layers must be >= 0, got {}", num_mtp_layers);
    if (!layer_indexer_modes.empty()) {
        if (static_cast<int>(layer_indexer_modes.size()) != num_layers) {
            return invalid_argument("kv cache: {} indexer modes for {} layers", layer_indexer_modes.size(), num_layers);
        }
        if (layer_indexer_modes[0] != IndexerMode::kFull) {
            return invalid_argument("kv cache: layer 0 must run its own indexer (IndexCache pattern starts with F)");
        }
    }
    return Status::ok();
}

bool KvCacheConfig::has_indexer_cache(int layer) const {
    DSA_CHECK(layer >= 0 && layer < num_total_layers()) << "layer " << layer << " of " << num_total_layers();
    if (layer >= num_layers || layer_indexer_modes.empty()) return true;
    return layer_indexer_modes[layer] == IndexerMode::kFull;
}

int KvCacheConfig::num_indexer_layers() const {
    int n = 0;
    for (int l = 0; l < num_total_layers(); ++l) n += has_indexer_cache(l) ? 1 : 0;
    return n;
}

int64_t KvCacheConfig::bytes_per_token() const {
    return int64_t{num_total_layers()} * mla_bytes_per_token_per_layer() +
           int64_t{num_indexer_layers()} * indexer_bytes_per_token_per_layer();
}

int64_t KvCacheConfig::num_pages_for_budget(int64_t budget_bytes) const {
    int64_t page_bytes = bytes_per_page();
    DSA_CHECK_GT(page_bytes, 0) << "kv cache config not validated";
    if (budget_bytes <= 0) return 0;
    return std::max<int64_t>(budget_bytes / page_bytes - 1, 0);  // minus the reserved page 0
}

StatusOr<std::vector<IndexerMode>> indexer_modes_from_pattern(std::string_view pattern) {
    std::vector<IndexerMode> modes;
    modes.reserve(pattern.size());
    for (size_t i = 0; i < pattern.size(); ++i) {
        char c = pattern[i];
        if (c != 'F' && c != 'S') return invalid_argument("index_topk_pattern: '{}' at {} is not F or S", c, i);
        modes.push_back(c == 'F' ? IndexerMode::kFull : IndexerMode::kShared);
    }
    if (modes.empty() || modes[0] != IndexerMode::kFull) {
        return invalid_argument("index_topk_pattern must start with F, got \"{}\"", pattern);
    }
    return modes;
}

}  // namespace dsa::kvcache
