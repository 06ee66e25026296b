// Generation: one HTTP generation request on the output side, transport-neutral. It owns the engine
// requests (one per choice), turns their TokenEvents into SSE bytes (streaming) or one JSON reply, and tells
// the caller which engine requests the front end ended itself (stop strings). The server drives it from one
// thread at a time; it never touches sockets or the engine.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "api/api_error.h"
#include "api/choice_decoder.h"
#include "api/request_types.h"
#include "api/text_services.h"
#include "base/json.h"
#include "engine/engine_client.h"

namespace dsa::api {

struct HttpReply {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
};

// Server-wide context every generation route needs.
struct ApiContext {
    ApiConfig config;
    TextServices services;
    std::optional<int32_t> think_end_token;  // id of "</think>" for reasoning_tokens, when known
    std::function<std::string()> make_request_id;  // 32 hex chars (uuid4) by default
    std::function<int64_t()> now_unix;             // seconds; time(nullptr) by default
};

class Generation {
public:
    virtual ~Generation() = default;

    bool streaming() const { return streaming_; }
    const std::string& id() const { return id_; }
    // One engine request per choice; choice i is engine_requests()[i].
    std::vector<engine::GenerateRequest>& engine_requests() { return requests_; }
    const std::vector<ChoiceDecoder>& choices() const { return choices_; }

    // Feeds one engine event for choice `i`. Streaming: returns SSE bytes to send now (possibly empty).
    virtual std::string on_event(size_t i, const engine::TokenEvent& event) = 0;
    // Engine rids the front end finished itself (stop string matched); abort them in the engine.
    std::vector<std::string> take_frontend_finished();
    bool done() const;
    // After done(). Streaming: body = the closing SSE bytes (usage chunk, [DONE]); otherwise the whole reply.
    // An abort carrying an error status becomes an error reply / error event.
    virtual HttpReply final_reply() = 0;
    // The SSE bytes for an error after the headers were sent: error event + [DONE].
    virtual std::string stream_error(const ApiError& error) const;

protected:
    Generation(const ApiContext& ctx, bool streaming);
    // The first choice that ended with an abort carrying an error status, if any.
    const ChoiceFinish* error_finish() const;

    const ApiContext& ctx_;
    bool streaming_;
    std::string id_;
    std::vector<engine::GenerateRequest> requests_;
    std::vector<ChoiceDecoder> choices_;
};

// Parse + validate + build prompts + sampling params. Errors are user errors (see ApiError::from_status).
StatusOr<std::unique_ptr<Generation>> make_chat_generation(const OrderedJson& body, const ApiContext& ctx);
StatusOr<std::unique_ptr<Generation>> make_completion_generation(const OrderedJson& body, const ApiContext& ctx);
StatusOr<std::unique_ptr<Generation>> make_native_generation(const OrderedJson& body, const ApiContext& ctx);

// Helpers shared by the response builders.
std::string finish_reason_name(const ChoiceFinish& finish);  // "stop", "length", "abort"
OrderedJson matched_stop_json(const ChoiceFinish& finish);    // token id, string or null
std::string random_request_id();                              // 32 lowercase hex chars
int64_t unix_now();
ApiError abort_error(const ChoiceFinish& finish);
// A fresh constraint for one engine request (Unimplemented when the server has no constraint support).
StatusOr<std::shared_ptr<engine::TokenConstraint>> make_request_constraint(const ApiContext& ctx,
                                                                           const ConstraintSpec& spec);

}  // namespace dsa::api
