// Generation base: choice bookkeeping, frontend-finished rids, shared finish-reason helpers.
#include "api/generation.h"

#include <chrono>
#include <random>

namespace dsa::api {

Generation::Generation(const ApiContext& ctx, bool streaming)
    : ctx_(ctx), streaming_(streaming), id_(ctx.make_request_id ? ctx.make_request_id() : random_request_id()) {}

std::vector<std::string> Generation::take_frontend_finished() {
    std::vector<std::string> out;
    for (auto& c : choices_)
        if (c.take_stop_abort()) out.push_back(c.rid());
    return out;
}

bool Generation::done() const {
    for (const auto& c : choices_)
        if (!c.finished()) return false;
    return true;
}

std::string Generation::stream_error(const ApiError& error) const {
    return openai_stream_error_event(error) + kSseDone;
}

const ChoiceFinish* Generation::error_finish() const {
    for (const auto& c : choices_)
        if (c.finish().kind == engine::FinishKind::kAbort && c.finish().status_code >= 400) return &c.finish();
    return nullptr;
}

std::string finish_reason_name(const ChoiceFinish& f) {
    switch (f.kind) {
        case engine::FinishKind::kStop: return "stop";
        case engine::FinishKind::kLength: return "length";
        case engine::FinishKind::kAbort: return "abort";
        default: return "";
    }
}

OrderedJson matched_stop_json(const ChoiceFinish& f) {
    if (f.kind != engine::FinishKind::kStop) return nullptr;
    if (f.matched_string) return *f.matched_string;
    if (f.matched_token) return *f.matched_token;
    return nullptr;
}

ApiError abort_error(const ChoiceFinish& f) {
    std::string type = f.status_code == 400 ? "BadRequestError" : f.status_code >= 500 ? "InternalServerError" : "BadRequest";
    return ApiError{f.status_code, f.message, type};
}

std::string random_request_id() {
    thread_local std::mt19937_64 rng(std::random_device{}());
    static constexpr char kHex[] = "0123456789abcdef";
    std::string s(32, '0');
    uint64_t a = rng(), b = rng();
    for (int i = 0; i < 16; ++i) s[i] = kHex[(a >> (4 * i)) & 15];
    for (int i = 0; i < 16; ++i) s[16 + i] = kHex[(b >> (4 * i)) & 15];
    s[12] = '4';                      // uuid4 version nibble
    s[16] = kHex[8 + (b & 3)];        // variant bits
    return s;
}

int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

StatusOr<std::shared_ptr<engine::TokenConstraint>> make_request_constraint(const ApiContext& ctx,
                                                                           const ConstraintSpec& spec) {
    if (!ctx.services.make_constraint) return unimplemented("constrained decoding is not available on this server");
    return ctx.services.make_constraint(spec);
}

}  // namespace dsa::api
