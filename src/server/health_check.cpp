// /health and /health_generate (API_SPEC §2.9): 503 while starting or shutting down; otherwise a 1-token
// greedy generation on input_ids [0], 200 with an empty body as soon as the engine answers, 503 on timeout.
#include <memory>

#include "api/generation.h"
#include "base/logging.h"
#include "server/router.h"

namespace dsa::server {
namespace {

struct HealthState {
    bool done = false;
    std::string rid;
    std::shared_ptr<HttpExchange> exchange;  // held until the reply; touched only on the I/O thread
};

// Replies once; later calls (timeout after success, late engine output) do nothing.
void finish_health(HealthState& state, engine::EngineClient* engine, int status) {
    if (state.done) return;
    state.done = true;
    auto ex = std::move(state.exchange);
    engine->abort(state.rid, engine::AbortReason::kClientGone);
    if (status != 200) {
        DSA_LOG(kWarning) << "health check failed with " << status;
    }
    ex->reply(status, "text/plain", "");
}

}  // namespace

void Router::health(const std::shared_ptr<HttpExchange>& ex) {
    if (!ctx_.ready.load()) return ex->reply(503, "text/plain", "");
    auto state = std::make_shared<HealthState>();
    state->rid = "HEALTH_CHECK_" + api::random_request_id();
    state->exchange = ex;
    engine::EngineClient* engine = ctx_.engine;
    auto stream = std::make_shared<engine::TokenStream>();
    std::weak_ptr<HttpExchange> weak = ex;  // the engine thread only ever sees a weak pointer
    stream->set_notifier([weak, state, engine] {
        if (auto e = weak.lock()) e->post([state, engine] { finish_health(*state, engine, 200); });
    });
    engine::GenerateRequest req;
    req.rid = state->rid;
    req.input_ids = {0};
    req.sampling.temperature = 0.0;
    req.sampling.max_new_tokens = 1;
    if (!engine->submit(std::move(req), stream).is_ok()) return finish_health(*state, engine, 503);
    ex->on_disconnect([state, engine] {
        state->done = true;
        state->exchange.reset();
        engine->abort(state->rid, engine::AbortReason::kClientGone);
    });
    ex->post_after(ctx_.config.health_timeout, [state, engine, stream] { finish_health(*state, engine, 503); });
}

}  // namespace dsa::server
