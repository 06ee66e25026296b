// Pre-tokenizer stages and the split/merge logic of Hugging Face's `split` with its delimiter behaviours.
// Each stage sees one piece at a time as its whole subject, so anchors and look-arounds stop at piece edges.
#include "text/tokenizer_pretok.h"

#include <algorithm>

namespace dsa::text {
namespace {

struct Segment {
    uint32_t begin;
    uint32_t end;
    bool is_match;
};

StatusOr<SplitBehavior> parse_behavior(const std::string& s) {
    if (s == "Removed") return SplitBehavior::kRemoved;
    if (s == "Isolated") return SplitBehavior::kIsolated;
    if (s == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
    if (s == "MergedWithNext") return SplitBehavior::kMergedWithNext;
    if (s == "Contiguous") return SplitBehavior::kContiguous;
    return invalid_argument("unknown Split behavior {:?}", s);
}

StatusOr<SplitStage> regex_stage(std::string_view pattern) {
    SplitStage st;
    DSA_ASSIGN_OR_RETURN(st.regex, Regex::compile(pattern));
    return st;
}

// Finds the matches of the stage in `subject` and lists matched and unmatched segments in order.
void find_segments(const SplitStage& st, std::string_view subject, std::vector<Segment>& segs) {
    size_t prev = 0;
    size_t pos = 0;
    while (pos <= subject.size()) {
        size_t b = 0, e = 0;
        if (st.regex) {
            if (!st.regex->find(subject, pos, &b, &e)) break;
        } else {
            if (st.literal.empty()) break;
            b = subject.find(st.literal, pos);
            if (b == std::string_view::npos) break;
            e = b + st.literal.size();
        }
        if (e == b) {  // empty match: step one code point
            if (b >= subject.size()) break;
            size_t step = 1;
            while (b + step < subject.size() && (static_cast<uint8_t>(subject[b + step]) & 0xC0) == 0x80) ++step;
            pos = b + step;
            continue;
        }
        if (prev != b) segs.push_back({static_cast<uint32_t>(prev), static_cast<uint32_t>(b), false});
        segs.push_back({static_cast<uint32_t>(b), static_cast<uint32_t>(e), true});
        prev = pos = e;
    }
    if (prev != subject.size()) segs.push_back({static_cast<uint32_t>(prev), static_cast<uint32_t>(subject.size()), false});
}

// Applies the delimiter behaviour to the segments in place; removed segments get is_match = true and every
// kept one is_match = false, as in Hugging Face's normalizer.rs `split`.
void apply_behavior(SplitBehavior behavior, std::vector<Segment>& segs) {
    if (behavior == SplitBehavior::kRemoved) return;
    if (behavior == SplitBehavior::kIsolated) {
        for (Segment& s : segs) s.is_match = false;
        return;
    }
    thread_local std::vector<Segment> acc;
    acc.clear();
    bool previous_match = false;
    switch (behavior) {
        case SplitBehavior::kRemoved:
        case SplitBehavior::kIsolated:
            break;
        case SplitBehavior::kContiguous:
            for (const Segment& s : segs) {
                if (s.is_match == previous_match && !acc.empty()) acc.back().end = s.end;
                else acc.push_back({s.begin, s.end, false});
                previous_match = s.is_match;
            }
            break;
        case SplitBehavior::kMergedWithPrevious:
            for (const Segment& s : segs) {
                if (s.is_match && !previous_match && !acc.empty()) acc.back().end = s.end;
                else acc.push_back({s.begin, s.end, false});
                previous_match = s.is_match;
            }
            break;
        case SplitBehavior::kMergedWithNext:
            for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
                if (it->is_match && !previous_match && !acc.empty()) acc.back().begin = it->begin;
                else acc.push_back({it->begin, it->end, false});
                previous_match = it->is_match;
            }
            std::reverse(acc.begin(), acc.end());
            break;
    }
    segs.swap(acc);
}

}  // namespace

StatusOr<PreTokenizer> PreTokenizer::from_json(const Json& j) {
    PreTokenizer p;
    if (!j.is_null()) DSA_RETURN_IF_ERROR(p.add_json(j));
    return p;
}

Status PreTokenizer::add_json(const Json& j) {
    if (!j.is_object() || !j.contains("type")) return invalid_argument("pre_tokenizer entry without a type");
    std::string type = j.at("type").get<std::string>();
    if (type == "Sequence") {
        for (const Json& sub : j.value("pretokenizers", Json::array())) DSA_RETURN_IF_ERROR(add_json(sub));
        return Status::ok();
    }
    if (type == "Split") {
        const Json& pat = j.at("pattern");
        SplitStage st;
        if (pat.contains("Regex")) {
            DSA_ASSIGN_OR_RETURN(st, regex_stage(pat.at("Regex").get<std::string>()));
        } else if (pat.contains("String")) {
            st.literal = pat.at("String").get<std::string>();
        } else {
            return invalid_argument("Split pattern must be Regex or String");
        }
        DSA_ASSIGN_OR_RETURN(st.behavior, parse_behavior(j.value("behavior", std::string("Isolated"))));
        st.invert = j.value("invert", false);
        stages_.push_back(std::move(st));
        return Status::ok();
    }
    if (type == "Digits") {
        DSA_ASSIGN_OR_RETURN(SplitStage st, regex_stage(j.value("individual_digits", false) ? "\\p{N}" : "\\p{N}+"));
        stages_.push_back(std::move(st));
        return Status::ok();
    }
    if (type == "ByteLevel") {
        if (j.value("add_prefix_space", false)) {
            return unimplemented("ByteLevel pre_tokenizer with add_prefix_space=true is not supported");
        }
        has_byte_level_ = true;
        if (j.value("use_regex", true)) {
            DSA_ASSIGN_OR_RETURN(SplitStage st, regex_stage(kByteLevelRegex));
            stages_.push_back(std::move(st));
        }
        return Status::ok();
    }
    return unimplemented("pre_tokenizer type {:?} is not supported (byte-level BPE tokenizers only)", type);
}

void PreTokenizer::apply_stage(const SplitStage& st, std::string_view text, Span piece,
                               std::vector<Span>& out) const {
    thread_local std::vector<Segment> segs;
    segs.clear();
    find_segments(st, text.substr(piece.begin, piece.len), segs);
    if (st.invert) {
        for (Segment& s : segs) s.is_match = !s.is_match;
    }
    apply_behavior(st.behavior, segs);
    for (const Segment& s : segs) {
        if (!s.is_match && s.end > s.begin) out.push_back({piece.begin + s.begin, s.end - s.begin});
    }
}

void PreTokenizer::split(std::string_view text, Span piece, std::vector<Span>& out,
                         std::vector<Span>& scratch) const {
    if (stages_.empty()) {
        if (piece.len > 0) out.push_back(piece);
        return;
    }
    // Ping-pong between `scratch` and a second buffer; the last stage writes straight into `out`.
    thread_local std::vector<Span> other;
    std::vector<Span>* cur = &scratch;
    std::vector<Span>* next = &other;
    cur->assign(1, piece);
    for (size_t k = 0; k < stages_.size(); ++k) {
        bool last = k + 1 == stages_.size();
        std::vector<Span>* dst = last ? &out : next;
        if (!last) dst->clear();
        for (const Span& p : *cur) apply_stage(stages_[k], text, p, *dst);
        if (!last) std::swap(cur, next);
    }
}

}  // namespace dsa::text
