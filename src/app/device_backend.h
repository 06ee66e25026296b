// Device selection for `serve` and `generate`: --device auto|cuda|cpu resolved against this build (is the CUDA
// backend compiled in?) and this machine (is a GPU present?), the backend for the choice, and the device
// memory the KV planner needs. The only app file that includes the CUDA backend.
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"
#include "base/status.h"
#include "engine/model_engine.h"

namespace dsa::app {

// Whether this binary was built with the CUDA backend.
bool cuda_backend_built();

// auto: cuda when the CUDA backend is built and a GPU is present, else cpu. cuda without either: an error that
// says which is missing. Anything else: an error naming the choices.
StatusOr<Device> resolve_device(const std::string& flag);

// The CUDA backend stores activations in BF16: FP32 numerics are refused there with a message naming `flag`.
Status check_device_numerics(Device device, const backend::Numerics& numerics, const char* flag);

// The backend for `device` (CUDA: device 0).
StatusOr<std::unique_ptr<backend::Backend>> make_backend(Device device, const backend::Numerics& numerics);

// What ModelEngine needs to build the backend of `device` and to plan its KV memory.
engine::BackendProvider backend_provider(Device device);

}  // namespace dsa::app
