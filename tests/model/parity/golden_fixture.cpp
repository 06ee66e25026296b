// Golden fixture loading for the parity tests.
#include "golden_fixture.h"

#include <cmath>
#include <cstring>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "base/check.h"
#include "../golden_io.h"

namespace dsa::model::testing {
using golden::must;
using golden::to_ids;

std::string golden_dir(const std::string& name) { return golden::fixture_dir(name); }

GoldenFixture::GoldenFixture(const std::string& name, backend::Numerics numerics) : numerics_(numerics) {
    const std::string dir = golden_dir(name);
    StatusOr<ModelConfig> cfg = load_model_config(dir);
    DSA_CHECK(cfg.is_ok()) << cfg.status().to_string();
    config_ = *cfg;
    StatusOr<Checkpoint> ck = Checkpoint::open(dir);
    DSA_CHECK(ck.is_ok()) << ck.status().to_string();
    ckpt_ = std::make_unique<Checkpoint>(std::move(ck).value());
    StatusOr<ModelWeights> w = load_model_weights(*ckpt_, config_, {.mtp = MtpLoad::kLoad});
    DSA_CHECK(w.is_ok()) << w.status().to_string();
    weights_ = std::move(w).value();
    backend_ = backend::make_cpu_backend(numerics);
    model_ = std::make_unique<DsaModel>(config_, weights_, *backend_, ModelOptions{.max_positions = 2048});

    auto ref = SafetensorsFile::open(dir + "/reference.safetensors");
    DSA_CHECK(ref.is_ok()) << ref.status().to_string();
    const SafetensorsFile& rf = **ref;
    for (int i = 0;; ++i) {
        const std::string p = fmt::format("p{}.", i);
        if (!rf.tensor(p + "input_ids").is_ok()) break;
        GoldenPrompt g;
        g.ids = to_ids(must(rf, p + "input_ids"));
        g.logits = must(rf, p + "logits");
        g.logits_pos0 = to_ids(must(rf, p + "logits_pos0"))[0];
        g.greedy = to_ids(must(rf, p + "greedy_ids"));
        g.topk.resize(config_.num_hidden_layers);
        g.topk_gap.resize(config_.num_hidden_layers);
        for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
            if (!rf.tensor(fmt::format("{}topk.l{}", p, l)).is_ok()) continue;
            g.topk[l] = must(rf, fmt::format("{}topk.l{}", p, l));
            g.topk_gap[l] = must(rf, fmt::format("{}topk_gap.l{}", p, l));
        }
        if (g.ids.size() >= 2) {
            g.mtp_logits = must(rf, p + "mtp_logits");
            g.mtp_logits_pos0 = to_ids(must(rf, p + "mtp_logits_pos0"))[0];
            g.mtp_topk = must(rf, p + "mtp_topk");
            g.mtp_topk_gap = must(rf, p + "mtp_topk_gap");
        }
        prompts_.push_back(std::move(g));
    }
    DSA_CHECK(!prompts_.empty()) << "no prompts in " << dir;
}

KvStores GoldenFixture::new_kv(int64_t num_pages) const {
    return allocate_kv_stores(config_, numerics_.mla_kv_format(), numerics_.indexer_key_format(), num_pages,
                              /*page_size=*/64, /*num_mtp_layers=*/config_.num_nextn_predict_layers);
}

double relative_l2(const Tensor& a, const Tensor& b) {
    DSA_CHECK(a.shape() == b.shape()) << shape_to_string(a.shape()) << " vs " << shape_to_string(b.shape());
    const float* x = a.data<float>();
    const float* y = b.data<float>();
    double num = 0, den = 0;
    for (int64_t i = 0; i < a.numel(); ++i) {
        num += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
        den += double(y[i]) * y[i];
    }
    return std::sqrt(num / std::max(den, 1e-30));
}

Tensor rows_of(const Tensor& t, int64_t begin, int64_t end) { return t.slice(begin, end).clone(); }

}  // namespace dsa::model::testing
