// Random weights and pre-filled KV stores for the decoder-layer benchmark (layer_bench_setup.h). Large tensors
// are filled on their device from one random pattern (device-to-device copies at random offsets); small ones
// (router, indexer weights_proj, embedding, norms) are host tensors that the backend uploads once, as it does
// for checkpoint-mapped weights. DSA_HAVE_CUDA is defined when the CUDA backend is linked in.
#include "layer_bench_setup.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <utility>

#include "base/check.h"
#include "tensor/numeric.h"

#ifdef DSA_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "backend/cuda/cuda_check.h"
#endif

namespace dsa::layer_bench {

using backend::LinearWeight;

namespace {

constexpr int64_t kPageSize = 64;
// Row periods of the filled KV stores: the indexer pattern covers more than 128K tokens, so the keys of one
// sequence all differ (no score ties that a top-k could exploit); latent rows only need to be finite.
constexpr int64_t kIndexerPeriodPages = 2053;
constexpr int64_t kMlaPeriodRows = 4099;

Json rope_scaling() {
    return {{"type", "yarn"},       {"factor", 40},   {"original_max_position_embeddings", 4096},
            {"beta_fast", 32},      {"beta_slow", 1}, {"mscale", 1.0},
            {"mscale_all_dim", 1.0}};
}

Json quantization() {
    return {{"activation_scheme", "dynamic"},
            {"fmt", "e4m3"},
            {"quant_method", "fp8"},
            {"scale_fmt", "ue8m0"},
            {"weight_block_size", {128, 128}}};
}

// Widths: DeepSeek-V3.2 (MODEL_SPEC §1.1) or the tiny fixture (models/dsv32-tiny).
Json sizes(bool tiny) {
    if (tiny) {
        return {{"hidden_size", 320},     {"intermediate_size", 960}, {"moe_intermediate_size", 160},
                {"n_routed_experts", 16}, {"num_experts_per_tok", 4}, {"n_group", 4},
                {"topk_group", 2},        {"num_attention_heads", 4}, {"num_key_value_heads", 4},
                {"q_lora_rank", 256},     {"index_n_heads", 4},       {"index_topk", 64}};
    }
    return {{"hidden_size", 7168},     {"intermediate_size", 18432}, {"moe_intermediate_size", 2048},
            {"n_routed_experts", 256}, {"num_experts_per_tok", 8},   {"n_group", 8},
            {"topk_group", 4},         {"num_attention_heads", 128}, {"num_key_value_heads", 128},
            {"q_lora_rank", 1536},     {"index_n_heads", 64},        {"index_topk", 2048}};
}

std::vector<uint8_t> random_fp8(int64_t n, float stddev, std::mt19937& rng) {
    std::normal_distribution<float> d(0.0f, stddev);
    std::vector<uint8_t> v(static_cast<size_t>(n));
    for (uint8_t& b : v) b = f32_to_fp8e4m3(d(rng));
    return v;
}

void put_bf16(uint8_t* dst, int64_t n, float stddev, std::mt19937& rng) {
    std::normal_distribution<float> d(0.0f, stddev);
    for (int64_t i = 0; i < n; ++i) {
        const uint16_t b = f32_to_bf16(d(rng));
        std::memcpy(dst + 2 * i, &b, 2);
    }
}

void put_f32(uint8_t* dst, int64_t n, float value) {
    for (int64_t i = 0; i < n; ++i) std::memcpy(dst + 4 * i, &value, 4);
}

void put_f32_normal(uint8_t* dst, int64_t n, float stddev, std::mt19937& rng) {
    std::normal_distribution<float> d(0.0f, stddev);
    for (int64_t i = 0; i < n; ++i) {
        const float f = d(rng);
        std::memcpy(dst + 4 * i, &f, 4);
    }
}

void device_sync(Device device) {
#ifdef DSA_HAVE_CUDA
    if (device == Device::kCUDA) DSA_CUDA_CHECK(cudaDeviceSynchronize());
#endif
}

// dst (u8 bytes, any device) = `period` repeated: the period goes up once, then doubling copies within dst.
void fill_periodic(const Tensor& dst, const std::vector<uint8_t>& period) {
    const int64_t total = static_cast<int64_t>(dst.nbytes());
    int64_t have = std::min<int64_t>(total, static_cast<int64_t>(period.size()));
    copy_to(dst, 0, period.data(), Device::kCPU, have);
    while (have < total) {
        const int64_t n = std::min(have, total - have);
        copy_to(dst, have, dst.raw_data(), dst.device(), n);
        have += n;
    }
}

int64_t linear_bytes(const LinearWeight& w) {
    if (!w.defined()) return 0;
    return static_cast<int64_t>(w.weight.nbytes() + (w.scale_inv.defined() ? w.scale_inv.nbytes() : 0));
}

int64_t mlp_bytes(const model::MlpWeights& m) {
    return linear_bytes(m.gate_proj) + linear_bytes(m.up_proj) + linear_bytes(m.down_proj);
}

int64_t tensor_bytes(const Tensor& t) { return t.defined() ? static_cast<int64_t>(t.nbytes()) : 0; }

Tensor host_bf16(int64_t rows, int64_t cols, float stddev, std::mt19937& rng, const std::string& name) {
    Tensor t = Tensor::empty({rows, cols}, DType::kBF16, Device::kCPU, name);
    put_bf16(static_cast<uint8_t*>(t.raw_data()), rows * cols, stddev, rng);
    return t;
}

}  // namespace

StatusOr<model::ModelConfig> make_config(bool tiny, int64_t layers, int64_t dense_layers, int64_t vocab) {
    Json j = sizes(tiny);
    const Json common = {{"architectures", {"DeepseekV32ForCausalLM"}},
                         {"model_type", "deepseek_v32"},
                         {"num_hidden_layers", layers},
                         {"num_nextn_predict_layers", 0},
                         {"first_k_dense_replace", dense_layers},
                         {"moe_layer_freq", 1},
                         {"n_shared_experts", 1},
                         {"routed_scaling_factor", 2.5},
                         {"scoring_func", "sigmoid"},
                         {"topk_method", "noaux_tc"},
                         {"norm_topk_prob", true},
                         {"kv_lora_rank", 512},
                         {"qk_nope_head_dim", 128},
                         {"qk_rope_head_dim", 64},
                         {"v_head_dim", 128},
                         {"index_head_dim", 128},
                         {"attention_bias", false},
                         {"hidden_act", "silu"},
                         {"vocab_size", vocab},
                         {"max_position_embeddings", 163840},
                         {"rope_theta", 10000},
                         {"rope_scaling", rope_scaling()},
                         {"rms_norm_eps", 1e-6},
                         {"tie_word_embeddings", false},
                         {"bos_token_id", 0},
                         {"eos_token_id", 1},
                         {"torch_dtype", "bfloat16"},
                         {"quantization_config", quantization()}};
    j.update(common);
    DSA_ASSIGN_OR_RETURN(model::ModelConfig c, model::parse_model_config(j));
    DSA_RETURN_IF_ERROR(c.validate());
    return c;
}

void copy_to(const Tensor& dst, int64_t dst_offset, const void* src, Device src_device, int64_t bytes) {
    DSA_CHECK(dst_offset >= 0 && dst_offset + bytes <= static_cast<int64_t>(dst.nbytes()))
        << "copy of " << bytes << " bytes at " << dst_offset << " into " << dst.nbytes();
    uint8_t* d = static_cast<uint8_t*>(dst.raw_data()) + dst_offset;
    if (dst.device() == Device::kCPU && src_device == Device::kCPU) {
        std::memcpy(d, src, static_cast<size_t>(bytes));
        return;
    }
#ifdef DSA_HAVE_CUDA
    DSA_CUDA_CHECK(cudaMemcpy(d, src, static_cast<size_t>(bytes), cudaMemcpyDefault));
#else
    DSA_CHECK(false) << "device copy in a build without the CUDA backend";
#endif
}

WeightFiller::WeightFiller(Device device, int64_t pattern_bytes, uint32_t seed) : device_(device), rng_(seed) {
    device_sync(device_);
    fp8_pattern_ = Tensor::empty({pattern_bytes}, DType::kU8, device_, "fp8_pattern");
    fill_periodic(fp8_pattern_, random_fp8(pattern_bytes, 1.0f, rng_));
    std::vector<uint8_t> b(static_cast<size_t>(pattern_bytes));
    put_bf16(b.data(), pattern_bytes / 2, 1.0f, rng_);
    bf16_pattern_ = Tensor::empty({pattern_bytes}, DType::kU8, device_, "bf16_pattern");
    fill_periodic(bf16_pattern_, b);
}

void WeightFiller::fill(const Tensor& dst, const Tensor& pattern) {
    const int64_t total = static_cast<int64_t>(dst.nbytes()), period = static_cast<int64_t>(pattern.nbytes());
    std::uniform_int_distribution<int64_t> start(0, period / 256 - 1);
    for (int64_t done = 0; done < total;) {
        const int64_t offset = start(rng_) * 256;  // even: bf16 values stay aligned
        const int64_t n = std::min(total - done, period - offset);
        copy_to(dst, done, static_cast<const uint8_t*>(pattern.raw_data()) + offset, pattern.device(), n);
        done += n;
    }
}

LinearWeight WeightFiller::fp8(int64_t out, int64_t in, const std::string& name) {
    LinearWeight w;
    w.weight = Tensor::empty({out, in}, DType::kF8E4M3, device_, name + ".weight");
    fill(w.weight, fp8_pattern_);
    const int64_t rb = (out + 127) / 128, cb = (in + 127) / 128;
    w.scale_inv = Tensor::empty({rb, cb}, DType::kF32, Device::kCPU, name + ".weight_scale_inv");
    // A power of two near 1/sqrt(in): outputs of unit-variance inputs stay near unit variance.
    const float scale = std::ldexp(1.0f, -static_cast<int>(std::lround(0.5 * std::log2(static_cast<double>(in)))));
    put_f32(static_cast<uint8_t*>(w.scale_inv.raw_data()), rb * cb, scale);
    return w;
}

Tensor WeightFiller::bf16(int64_t rows, int64_t cols, const std::string& name) {
    Tensor t = Tensor::empty({rows, cols}, DType::kBF16, device_, name);
    fill(t, bf16_pattern_);
    device_sync(device_);  // the copies ran on the default stream; the backend's stream reads t next
    return t;
}

Tensor WeightFiller::f32_vector(int64_t n, float mean, float stddev, const std::string& name) {
    Tensor t = Tensor::empty({n}, DType::kF32, Device::kCPU, name);
    std::normal_distribution<float> d(mean, stddev);
    for (int64_t i = 0; i < n; ++i) t.data<float>()[i] = stddev > 0 ? d(rng_) : mean;
    return t;
}

namespace {

model::MlpWeights make_mlp(int64_t width, int64_t hidden, const std::string& p, WeightFiller& f) {
    return {f.fp8(width, hidden, p + "gate_proj"), f.fp8(width, hidden, p + "up_proj"),
            f.fp8(hidden, width, p + "down_proj")};
}

model::AttentionWeights make_attention(const model::ModelConfig& c, const std::string& p, WeightFiller& f) {
    const int64_t d = c.hidden_size, heads = c.num_attention_heads;
    model::AttentionWeights a;
    a.q_a_proj = f.fp8(c.q_lora_rank, d, p + "q_a_proj");
    a.q_a_layernorm = f.f32_vector(c.q_lora_rank, 1.0f, 0.0f, p + "q_a_layernorm.weight");
    a.q_b_proj = f.fp8(heads * c.qk_head_dim(), c.q_lora_rank, p + "q_b_proj");
    a.kv_a_proj_with_mqa = f.fp8(c.kv_lora_rank + c.qk_rope_head_dim, d, p + "kv_a_proj_with_mqa");
    a.kv_a_layernorm = f.f32_vector(c.kv_lora_rank, 1.0f, 0.0f, p + "kv_a_layernorm.weight");
    a.kv_b_proj = f.fp8(heads * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank, p + "kv_b_proj");
    a.o_proj = f.fp8(d, heads * c.v_head_dim, p + "o_proj");
    model::IndexerWeights ix;
    ix.wq_b = f.fp8(c.index_n_heads * c.index_head_dim, c.q_lora_rank, p + "indexer.wq_b");
    ix.wk = f.fp8(c.index_head_dim, d, p + "indexer.wk");
    ix.k_norm_weight = f.f32_vector(c.index_head_dim, 1.0f, 0.0f, p + "indexer.k_norm.weight");
    ix.k_norm_bias = f.f32_vector(c.index_head_dim, 0.0f, 0.0f, p + "indexer.k_norm.bias");
    ix.weights_proj = host_bf16(c.index_n_heads, d, 1.0f / std::sqrt(static_cast<float>(d)), f.rng(),
                                p + "indexer.weights_proj.weight");
    a.indexer = std::move(ix);
    return a;
}

model::MoeWeights make_moe(const model::ModelConfig& c, const std::string& p, WeightFiller& f) {
    const int64_t d = c.hidden_size;
    model::MoeWeights m;
    // Router logits ~ N(0, 1) for unit-variance inputs, so the sigmoid scores spread the tokens over experts.
    m.router_weight =
        host_bf16(c.n_routed_experts, d, 1.0f / std::sqrt(static_cast<float>(d)), f.rng(), p + "gate.weight");
    m.e_score_correction_bias = f.f32_vector(c.n_routed_experts, 0.0f, 0.01f, p + "gate.e_score_correction_bias");
    for (int64_t e = 0; e < c.n_routed_experts; ++e) {
        m.experts.push_back(make_mlp(c.moe_intermediate_size, d, p + "experts." + std::to_string(e) + ".", f));
    }
    m.shared_experts = make_mlp(c.moe_intermediate_size * c.n_shared_experts, d, p + "shared_experts.", f);
    return m;
}

model::LayerWeights make_layer(const model::ModelConfig& c, int64_t layer, WeightFiller& f) {
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    model::LayerWeights w;
    w.layer_index = layer;
    w.input_layernorm = f.f32_vector(c.hidden_size, 1.0f, 0.0f, p + "input_layernorm.weight");
    w.post_attention_layernorm = f.f32_vector(c.hidden_size, 1.0f, 0.0f, p + "post_attention_layernorm.weight");
    w.attn = make_attention(c, p + "self_attn.", f);
    if (c.is_moe_layer(layer)) {
        w.moe = make_moe(c, p + "mlp.", f);
    } else {
        w.dense_mlp = make_mlp(c.intermediate_size, c.hidden_size, p + "mlp.", f);
    }
    return w;
}

}  // namespace

model::ModelWeights make_weights(const model::ModelConfig& config, WeightFiller& filler) {
    device_sync(filler.device());  // recycled allocator blocks: earlier work on them is done
    model::ModelWeights w;
    const int64_t d = config.hidden_size;
    w.embed_tokens = host_bf16(config.vocab_size, d, 1.0f, filler.rng(), "model.embed_tokens.weight");
    w.final_norm = filler.f32_vector(d, 1.0f, 0.0f, "model.norm.weight");
    w.lm_head =
        host_bf16(config.vocab_size, d, 1.0f / std::sqrt(static_cast<float>(d)), filler.rng(), "lm_head.weight");
    for (int64_t l = 0; l < config.num_hidden_layers; ++l) w.layers.push_back(make_layer(config, l, filler));
    device_sync(filler.device());
    return w;
}

LayerWeightBytes layer_weight_bytes(const model::LayerWeights& l) {
    LayerWeightBytes b;
    const model::AttentionWeights& a = l.attn;
    b.attention = linear_bytes(a.q_a_proj) + linear_bytes(a.q_b_proj) + linear_bytes(a.q_proj) +
                  linear_bytes(a.kv_a_proj_with_mqa) + linear_bytes(a.kv_b_proj) + linear_bytes(a.o_proj) +
                  tensor_bytes(a.q_a_layernorm) + tensor_bytes(a.kv_a_layernorm) + tensor_bytes(l.input_layernorm) +
                  tensor_bytes(l.post_attention_layernorm);
    if (a.indexer) {
        b.attention += linear_bytes(a.indexer->wq_b) + linear_bytes(a.indexer->wk) +
                       tensor_bytes(a.indexer->weights_proj) + tensor_bytes(a.indexer->k_norm_weight) +
                       tensor_bytes(a.indexer->k_norm_bias);
    }
    if (l.moe) {
        b.attention += tensor_bytes(l.moe->router_weight) + tensor_bytes(l.moe->e_score_correction_bias);
        b.expert = l.moe->experts.empty() ? 0 : mlp_bytes(l.moe->experts[0]);
        b.shared = l.moe->shared_experts ? mlp_bytes(*l.moe->shared_experts) : 0;
    }
    if (l.dense_mlp) b.dense = mlp_bytes(*l.dense_mlp);
    return b;
}

KvPlan plan_kv(int64_t batch, int64_t context) {
    DSA_CHECK(batch > 0 && context >= 0) << "batch " << batch << ", context " << context;
    KvPlan p{batch, context, (context + 1 + kPageSize - 1) / kPageSize, 0};
    p.num_pages = 1 + batch * p.pages_per_seq;
    return p;
}

int64_t kv_store_bytes(const KvPlan& plan, int64_t layers, const backend::Numerics& numerics) {
    const int64_t mla = plan.num_pages * kPageSize * backend::mla_kv_bytes_per_token(numerics.mla_kv_format());
    const int64_t ix = plan.num_pages * backend::indexer_page_bytes(numerics.indexer_key_format());
    return layers * (mla + ix);
}

namespace {

// One period of latent rows in `format`: c_kv ~ N(0, 1) (FP8: e4m3 of N(0, 4) with scale 1/4), k_pe ~ N(0, 1).
std::vector<uint8_t> mla_period(backend::MlaKvFormat format, int64_t rows, std::mt19937& rng) {
    const int64_t row_bytes = backend::mla_kv_bytes_per_token(format);
    std::vector<uint8_t> v(static_cast<size_t>(rows * row_bytes));
    for (int64_t r = 0; r < rows; ++r) {
        uint8_t* row = v.data() + r * row_bytes;
        if (format == backend::MlaKvFormat::kFp8) {
            std::vector<uint8_t> c = random_fp8(backend::kMlaLatentDim, 4.0f, rng);
            std::memcpy(row, c.data(), c.size());
            put_f32(row + backend::kMlaFp8ScaleOffset, backend::kMlaFp8NumTiles, 0.25f);
            put_bf16(row + backend::kMlaFp8RopeOffset, backend::kMlaRopeDim, 1.0f, rng);
        } else if (format == backend::MlaKvFormat::kBF16) {
            put_bf16(row, backend::kMlaKvDim, 1.0f, rng);
        } else {
            put_f32_normal(row, backend::kMlaKvDim, 1.0f, rng);
        }
    }
    return v;
}

// One period of indexer key pages: keys ~ N(0, 1) (FP8: e4m3 of N(0, 8) with scale 1/8 per key).
std::vector<uint8_t> indexer_period(backend::IndexerKeyFormat format, int64_t pages, std::mt19937& rng) {
    const int64_t page_bytes = backend::indexer_page_bytes(format);
    std::vector<uint8_t> v(static_cast<size_t>(pages * page_bytes));
    for (int64_t p = 0; p < pages; ++p) {
        uint8_t* page = v.data() + p * page_bytes;
        if (format == backend::IndexerKeyFormat::kFp8) {
            std::vector<uint8_t> k = random_fp8(backend::kIndexerFp8ScaleOffset, 8.0f, rng);
            std::memcpy(page, k.data(), k.size());
            put_f32(page + backend::kIndexerFp8ScaleOffset, backend::kIndexerPageSize, 0.125f);
        } else {
            put_f32_normal(page, backend::kIndexerPageSize * backend::kIndexerHeadDim, 1.0f, rng);
        }
    }
    return v;
}

}  // namespace

model::KvStores make_filled_kv(const model::ModelConfig& config, const backend::Numerics& numerics, Device device,
                               const KvPlan& plan, std::mt19937& rng) {
    const backend::MlaKvFormat mf = numerics.mla_kv_format();
    const backend::IndexerKeyFormat xf = numerics.indexer_key_format();
    const int64_t slots = plan.num_pages * kPageSize;
    // Periods are made once per format and size (generating 17 M random keys per case would dominate setup).
    static std::map<std::pair<int, int64_t>, std::vector<uint8_t>> mla_cache, key_cache;
    const int64_t mla_n = std::min(slots, kMlaPeriodRows), key_n = std::min(plan.num_pages, kIndexerPeriodPages);
    std::vector<uint8_t>& mla_rows = mla_cache[{static_cast<int>(mf), mla_n}];
    if (mla_rows.empty()) mla_rows = mla_period(mf, mla_n, rng);
    std::vector<uint8_t>& key_pages = key_cache[{static_cast<int>(xf), key_n}];
    if (key_pages.empty()) key_pages = indexer_period(xf, key_n, rng);
    device_sync(device);
    model::KvStores kv;
    for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
        backend::MlaKvStore m{Tensor::empty({slots, backend::mla_kv_bytes_per_token(mf)}, DType::kU8, device, "mla_kv"),
                              mf};
        fill_periodic(m.data, mla_rows);
        kv.mla.push_back(m);
        backend::IndexerKeyStore ix{Tensor(), xf};
        if (config.layer_has_own_indexer(l)) {
            ix.data =
                Tensor::empty({plan.num_pages, backend::indexer_page_bytes(xf)}, DType::kU8, device, "indexer_keys");
            fill_periodic(ix.data, key_pages);
        }
        kv.indexer.push_back(ix);
    }
    device_sync(device);
    return kv;
}

std::unique_ptr<DecodeBatch> make_decode_batch(const KvPlan& plan, int64_t vocab, std::mt19937& rng) {
    auto b = std::make_unique<DecodeBatch>();
    std::uniform_int_distribution<int32_t> token(2, static_cast<int32_t>(vocab - 1));
    std::vector<model::SequenceStep> steps;
    for (int64_t s = 0; s < plan.batch; ++s) {
        b->tokens.push_back({token(rng)});
        std::vector<int32_t> pages(static_cast<size_t>(plan.pages_per_seq));
        for (int64_t i = 0; i < plan.pages_per_seq; ++i) {
            pages[i] = static_cast<int32_t>(1 + s * plan.pages_per_seq + i);
        }
        b->pages.push_back(std::move(pages));
    }
    for (int64_t s = 0; s < plan.batch; ++s) {
        steps.push_back({b->tokens[s], plan.context, b->pages[s], false});
    }
    b->batch = model::build_forward_batch(steps, kPageSize);
    return b;
}

}  // namespace dsa::layer_bench
