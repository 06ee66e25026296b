// `dsaserve serve`: composes the engine (model + scheduler), the text services and the HTTP server from the
// SGLang-compatible flags, serves until SIGINT / SIGTERM, then shuts down in order (HTTP, then engine).
#pragma once

#include "app/server_args.h"
#include "base/status.h"

namespace dsa::app {

// The bundled model's directory: $DSA_BUNDLED_MODEL if set, else the one built into the binary.
std::string bundled_model_dir();

// Runs the server; returns when it is stopped by a signal (ok) or fails to start (the reason).
Status run_serve(const ServerArgs& args);

}  // namespace dsa::app
