// The tiny DeepSeek-V3.2 golden checkpoint (tests/golden/deepseek_v32_tiny) loaded on the CPU backend with
// FP32 numerics: config, mapped checkpoint, weights and one DsaModel. Shared by the engine tests that run the
// real model.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "backend/backend.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/transformer.h"
#include "model/weights.h"

namespace dsa::engine::test_models {

struct GoldenModel {
    backend::Numerics numerics = backend::Numerics::fp32();
    model::ModelConfig config;
    std::unique_ptr<model::Checkpoint> ckpt;
    model::ModelWeights weights;
    std::unique_ptr<backend::Backend> backend;
    std::unique_ptr<model::DsaModel> model;

    explicit GoldenModel(int64_t max_positions) {
        const std::string dir = std::string(DSA_SOURCE_DIR) + "/tests/golden/deepseek_v32_tiny";
        auto cfg = model::load_model_config(dir);
        EXPECT_TRUE(cfg.is_ok()) << cfg.status().to_string();
        config = *cfg;
        auto ck = model::Checkpoint::open(dir);
        EXPECT_TRUE(ck.is_ok()) << ck.status().to_string();
        ckpt = std::make_unique<model::Checkpoint>(std::move(ck).value());
        auto w = model::load_model_weights(*ckpt, config);
        EXPECT_TRUE(w.is_ok()) << w.status().to_string();
        weights = std::move(w).value();
        backend = backend::make_cpu_backend(numerics);
        model = std::make_unique<model::DsaModel>(config, weights, *backend,
                                                  model::ModelOptions{.max_positions = max_positions});
    }
};

}  // namespace dsa::engine::test_models
