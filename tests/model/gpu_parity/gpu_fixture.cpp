// Fixture loading and helpers of the GPU model-parity tests (gpu_fixture.h).
#include "gpu_fixture.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>

#include "backend/cuda/cuda_backend.h"
#include "base/check.h"
#include "../golden_io.h"
#include "model/safetensors.h"

namespace dsa::model::gpu_testing {
using golden::must;
using golden::to_ids;

std::string golden_dir(const std::string& name) { return golden::fixture_dir(name); }

std::vector<RefPrompt> load_ref_prompts(const std::string& dir, const ModelConfig& config) {
    auto ref = SafetensorsFile::open(dir + "/reference.safetensors");
    DSA_CHECK(ref.is_ok()) << ref.status().to_string();
    const SafetensorsFile& rf = **ref;
    std::vector<RefPrompt> prompts;
    for (int i = 0; rf.tensor(fmt::format("p{}.input_ids", i)).is_ok(); ++i) {
        const std::string p = fmt::format("p{}.", i);
        RefPrompt g;
        g.ids = to_ids(must(rf, p + "input_ids"));
        g.greedy = to_ids(must(rf, p + "greedy_ids"));
        g.topk.resize(config.num_hidden_layers);
        for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
            const std::string name = fmt::format("{}topk.l{}", p, l);
            if (rf.tensor(name).is_ok()) g.topk[l] = must(rf, name);
        }
        if (g.ids.size() >= 2) g.mtp_topk = must(rf, p + "mtp_topk");
        prompts.push_back(std::move(g));
    }
    DSA_CHECK(!prompts.empty()) << "no prompts in " << dir;
    return prompts;
}

TwoBackendFixture::TwoBackendFixture(const std::string& name, const backend::Numerics& numerics) {
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
    cpu_be_ = backend::make_cpu_backend(numerics);
    gpu_be_ = backend::make_cuda_backend(numerics, /*device=*/0);
    const ModelOptions options{.max_positions = 2048};
    cpu_model_ = std::make_unique<DsaModel>(config_, weights_, *cpu_be_, options);
    gpu_model_ = std::make_unique<DsaModel>(config_, weights_, *gpu_be_, options);
    ref_be_ = backend::make_cpu_backend(backend::Numerics::fp32());
    ref_model_ = std::make_unique<DsaModel>(config_, weights_, *ref_be_, options);
    prompts_ = load_ref_prompts(dir, config_);
}

backend::Backend& TwoBackendFixture::backend_of(const DsaModel& m) {
    if (&m == cpu_model_.get()) return *cpu_be_;
    return &m == gpu_model_.get() ? *gpu_be_ : *ref_be_;
}

KvStores TwoBackendFixture::new_kv(DsaModel& m, int64_t num_pages) {
    return allocate_kv_stores(backend_of(m), config_, num_pages, /*page_size=*/64,
                              /*num_mtp_layers=*/config_.num_nextn_predict_layers);
}

std::vector<int32_t> greedy_decode(DsaModel& model, KvStores& kv, const std::vector<int32_t>& prompt,
                                   int64_t num_tokens) {
    SequenceRunner runner(model, kv, /*page_size=*/64);
    Tensor logits = runner.step(prompt, /*all_logits=*/false).logits;
    std::vector<int32_t> out;
    for (int64_t i = 0; i < num_tokens; ++i) {
        int32_t next = argmax_row(logits, 0);
        out.push_back(next);
        if (i + 1 < num_tokens) logits = runner.step(std::span<const int32_t>(&next, 1), /*all_logits=*/false).logits;
    }
    return out;
}

double relative_l2(const Tensor& a, const Tensor& b) {
    DSA_CHECK(a.shape() == b.shape()) << shape_to_string(a.shape()) << " vs " << shape_to_string(b.shape());
    DSA_CHECK(a.device() == Device::kCPU && b.device() == Device::kCPU && a.dtype() == DType::kF32 &&
              b.dtype() == DType::kF32);
    double num = 0, den = 0;
    for (int64_t i = 0; i < a.numel(); ++i) {
        const double x = a.data<float>()[i], y = b.data<float>()[i];
        num += std::isfinite(x) ? (x - y) * (x - y) : 1e30;  // a non-finite logit fails any bound
        den += y * y;
    }
    return std::sqrt(num / std::max(den, 1e-30));
}

std::string ids_to_string(const std::vector<int32_t>& ids) { return fmt::format("[{}]", fmt::join(ids, ",")); }

}  // namespace dsa::model::gpu_testing
