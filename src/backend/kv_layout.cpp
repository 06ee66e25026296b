// Names of the KV store formats (for check messages and logs).
#include "backend/kv_layout.h"

namespace dsa::backend {

const char* mla_kv_format_name(MlaKvFormat f) {
    switch (f) {
        case MlaKvFormat::kF32: return "f32-576";
        case MlaKvFormat::kBF16: return "bf16-576";
        case MlaKvFormat::kFp8: return "fp8-656";
    }
    return "?";
}

const char* indexer_key_format_name(IndexerKeyFormat f) {
    return f == IndexerKeyFormat::kFp8 ? "fp8-132" : "f32-512";
}

}  // namespace dsa::backend
