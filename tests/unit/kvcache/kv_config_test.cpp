// KvCacheConfig sizing against the model numbers (MODEL_SPEC §9) and the memory planner (RUNTIME_NOTES §2.5).
#include "kvcache/kv_config.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "kvcache/memory_planner.h"

namespace dsa::kvcache {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;
constexpr int64_t kMiB = int64_t{1} << 20;

KvCacheConfig deepseek_v32(MlaKvFormat mla, int num_mtp_layers = 0) {
    KvCacheConfig c;
    c.num_layers = 61;
    c.num_mtp_layers = num_mtp_layers;
    c.mla_format = mla;
    return c;
}

// GLM-5.2 IndexCache rule: layer i is Shared iff max(i - offset + 1, 0) mod freq != 0.
std::vector<IndexerMode> freq_offset_modes(int num_layers, int freq, int offset) {
    std::vector<IndexerMode> modes;
    for (int i = 0; i < num_layers; ++i) {
        bool shared = std::max(i - offset + 1, 0) % freq != 0;
        modes.push_back(shared ? IndexerMode::kShared : IndexerMode::kFull);
    }
    return modes;
}

TEST(KvCacheConfig, DeepSeekV32BytesPerToken) {
    EXPECT_EQ(deepseek_v32(MlaKvFormat::kFp8).bytes_per_token(), 48068);   // 61 x (656 + 132)
    EXPECT_EQ(deepseek_v32(MlaKvFormat::kBF16).bytes_per_token(), 78324);  // 61 x (1152 + 132)
    EXPECT_EQ(deepseek_v32(MlaKvFormat::kFp8, 1).bytes_per_token(), 48068 + 788);
    EXPECT_EQ(deepseek_v32(MlaKvFormat::kBF16, 1).bytes_per_token(), 78324 + 1284);
    // One 64-token page over all 61 layers: 61 x (41,984 latent + 8,448 indexer) B.
    EXPECT_EQ(deepseek_v32(MlaKvFormat::kFp8).bytes_per_page(), 61 * (41984 + 8448));
    EXPECT_EQ(deepseek_v32(MlaKvFormat::kFp8).indexer_bytes_per_page_per_layer(), 8448);
}

TEST(KvCacheConfig, Glm5BytesPerToken) {
    KvCacheConfig c;
    c.num_layers = 78;
    c.mla_format = MlaKvFormat::kFp8;
    EXPECT_EQ(c.bytes_per_token(), 61464);
    c.mla_format = MlaKvFormat::kBF16;
    EXPECT_EQ(c.bytes_per_token(), 100152);
}

TEST(KvCacheConfig, GlmIndexCacheKeepsIndexerOnlyForFullLayers) {
    KvCacheConfig c;
    c.num_layers = 78;
    c.num_mtp_layers = 1;
    c.mla_format = MlaKvFormat::kFp8;
    c.layer_indexer_modes = freq_offset_modes(78, /*freq=*/4, /*offset=*/3);
    ASSERT_TRUE(c.validate().is_ok());
    EXPECT_EQ(c.num_indexer_layers(), 21 + 1);  // 21 F layers + the MTP layer, which always has one
    EXPECT_TRUE(c.has_indexer_cache(2));
    EXPECT_FALSE(c.has_indexer_cache(3));
    EXPECT_TRUE(c.has_indexer_cache(6));
    EXPECT_TRUE(c.has_indexer_cache(78));  // MTP
    EXPECT_EQ(c.bytes_per_token(), 79 * 656 + 22 * 132);
}

TEST(KvCacheConfig, IndexCachePattern) {
    auto modes =
        indexer_modes_from_pattern("FFSFSSSFSSFFFSSSFFFSFSSSSSSFFSFFSFFSSFFFFFFSFFFFFSFFSSSSSSFSFFFSFSSSFSFFSFFSSS");
    ASSERT_TRUE(modes.is_ok());
    ASSERT_EQ(modes->size(), 78u);
    KvCacheConfig c;
    c.num_layers = 78;
    c.layer_indexer_modes = *modes;
    EXPECT_EQ(c.num_indexer_layers(), 40);
    EXPECT_FALSE(indexer_modes_from_pattern("SFF").is_ok());
    EXPECT_FALSE(indexer_modes_from_pattern("FFX").is_ok());
    EXPECT_FALSE(indexer_modes_from_pattern("").is_ok());
}

TEST(KvCacheConfig, Validate) {
    KvCacheConfig c = deepseek_v32(MlaKvFormat::kFp8);
    EXPECT_TRUE(c.validate().is_ok());
    c.page_size = 32;
    EXPECT_FALSE(c.validate().is_ok());  // the FP8 paged indexer layout is 64-token pages
    c.indexer_format = IndexerKeyFormat::kF32;
    EXPECT_TRUE(c.validate().is_ok());
    c = deepseek_v32(MlaKvFormat::kFp8);
    c.num_layers = 0;
    EXPECT_FALSE(c.validate().is_ok());
    c = deepseek_v32(MlaKvFormat::kFp8);
    c.layer_indexer_modes.assign(60, IndexerMode::kFull);
    EXPECT_FALSE(c.validate().is_ok());
    c.layer_indexer_modes.assign(61, IndexerMode::kFull);
    c.layer_indexer_modes[0] = IndexerMode::kShared;
    EXPECT_FALSE(c.validate().is_ok());
}

TEST(KvCacheConfig, PagesForBudgetChargesReservedPage) {
    KvCacheConfig c = deepseek_v32(MlaKvFormat::kFp8);
    int64_t page = c.bytes_per_page();
    EXPECT_EQ(c.num_pages_for_budget(0), 0);
    EXPECT_EQ(c.num_pages_for_budget(page), 0);  // only page 0 fits
    EXPECT_EQ(c.num_pages_for_budget(2 * page - 1), 0);
    EXPECT_EQ(c.num_pages_for_budget(2 * page), 1);
    EXPECT_EQ(c.num_pages_for_budget(101 * page + 5), 100);
    EXPECT_EQ(c.pool_bytes(100), 101 * page);
}

TEST(MemoryPlanner, BudgetFollowsSglangFraction) {
    KvCacheConfig c = deepseek_v32(MlaKvFormat::kFp8, 1);
    MemoryPlanInput in{.total_device_bytes = 140 * kGiB,
                       .mem_fraction_static = 0.9,
                       .weight_bytes = 100 * kGiB,
                       .reserve_bytes = 10 * kGiB};
    auto plan = plan_kv_memory(c, in);
    ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
    EXPECT_EQ(plan->kv_budget_bytes, 26 * kGiB);
    EXPECT_LE(plan->pool_bytes, plan->kv_budget_bytes);
    EXPECT_GT(c.pool_bytes(plan->num_pages + 1), plan->kv_budget_bytes);  // the largest that fits
    EXPECT_EQ(plan->num_tokens, plan->num_pages * 64);
    EXPECT_EQ(plan->pool_bytes, c.pool_bytes(plan->num_pages));
    EXPECT_EQ(plan->indexer_pool_bytes, (plan->num_pages + 1) * 64 * 62 * 132);  // 61 + MTP indexer layers
    EXPECT_EQ(plan->num_pages, 26 * kGiB / (64 * 48856) - 1);
    EXPECT_NE(describe_plan(c, *plan, in.weight_bytes).find("indexer pool"), std::string::npos);
}

TEST(MemoryPlanner, FreeBeforeLoadAndTokenCap) {
    KvCacheConfig c = deepseek_v32(MlaKvFormat::kBF16);
    MemoryPlanInput in{.total_device_bytes = 140 * kGiB,
                       .free_before_load_bytes = 120 * kGiB,
                       .mem_fraction_static = 0.5,
                       .weight_bytes = 10 * kGiB};
    auto plan = plan_kv_memory(c, in);
    ASSERT_TRUE(plan.is_ok());
    EXPECT_EQ(plan->kv_budget_bytes, 50 * kGiB);
    in.max_total_tokens = 1000;
    plan = plan_kv_memory(c, in);
    ASSERT_TRUE(plan.is_ok());
    EXPECT_EQ(plan->num_pages, 15);  // floor(1000 / 64)
}

TEST(MemoryPlanner, RefusesFractionsOutsideTheViableRange) {
    KvCacheConfig c = deepseek_v32(MlaKvFormat::kFp8);
    MemoryPlanInput in{.total_device_bytes = 140 * kGiB,
                       .mem_fraction_static = 0.95,
                       .weight_bytes = 100 * kGiB,
                       .reserve_bytes = 10 * kGiB};
    auto too_high = plan_kv_memory(c, in);
    ASSERT_FALSE(too_high.is_ok());
    EXPECT_EQ(too_high.status().code(), StatusCode::kResourceExhausted);
    EXPECT_NE(too_high.status().message().find("at most 0.929"), std::string::npos) << too_high.status().message();
    in.mem_fraction_static = 0.7;  // 98 GiB < weights
    auto too_low = plan_kv_memory(c, in);
    ASSERT_FALSE(too_low.is_ok());
    EXPECT_NE(too_low.status().message().find("at least 0.714"), std::string::npos) << too_low.status().message();
    in.mem_fraction_static = 1.5;
    EXPECT_EQ(plan_kv_memory(c, in).status().code(), StatusCode::kInvalidArgument);
}

TEST(MemoryPlanner, DefaultReserveAndFraction) {
    ReserveInput r;  // chunk 8192, tp 1, max bs 256
    // 512 + 1.5 x 8192 + 1024 / 8 + 2 x 256 + 1536 MiB
    EXPECT_EQ(default_reserve_bytes(r, 140 * kGiB), 14976 * kMiB);
    r.chunked_prefill_size = 1024;  // counts as 2048
    r.cuda_graph_max_bs = 8;
    EXPECT_EQ(default_reserve_bytes(r, 140 * kGiB), 10 * kGiB);  // floor on GPUs over 60 GB
    EXPECT_EQ(default_reserve_bytes(r, 40 * kGiB), (512 + 3072 + 128 + 16 + 1536) * kMiB);
    r.enable_dp_attention = true;
    r.dp_size = 8;
    r.tp_size = 8;
    r.cuda_graph_max_bs = 400;
    // 512 + 3072 + 1024 + 800 + 3 x 400 x 8 + 1.5 x 400 x 8 + 1536
    EXPECT_EQ(default_reserve_bytes(r, 140 * kGiB), (512 + 3072 + 1024 + 800 + 9600 + 4800 + 1536) * kMiB);
    EXPECT_DOUBLE_EQ(default_mem_fraction_static(100 * kGiB, 10 * kGiB), 0.9);
}

// The default fraction, taken against the memory free before loading, always plans (the H200 case: the CUDA
// context holds ~0.6 GiB, so a fraction taken against the total left less than the reserve and was refused).
TEST(MemoryPlanner, DefaultFractionFitsWhenTheContextHoldsMemory) {
    KvCacheConfig config = deepseek_v32(MlaKvFormat::kFp8, 1);
    MemoryPlanInput in;
    in.total_device_bytes = 140 * kGiB;
    in.free_before_load_bytes = in.total_device_bytes - 600 * kMiB;
    in.weight_bytes = 20 * kGiB;
    in.reserve_bytes = 14976 * kMiB;
    in.mem_fraction_static = default_mem_fraction_static(in.free_before_load_bytes, in.reserve_bytes);
    StatusOr<MemoryPlan> plan = plan_kv_memory(config, in);
    ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
    EXPECT_LE(in.weight_bytes + plan->kv_budget_bytes + in.reserve_bytes, in.free_before_load_bytes);
    in.mem_fraction_static = default_mem_fraction_static(in.total_device_bytes, in.reserve_bytes);
    EXPECT_FALSE(plan_kv_memory(config, in).is_ok()) << "a fraction of the total overshoots the free memory";
}

// DeepSeek-V3.2's shapes at SGLang's defaults (chunk 8192, 256 running, context 163840): every term by hand.
ActivationInput dsv32_activations() {
    ActivationInput a;
    a.hidden = 7168, a.vocab = 129280, a.num_heads = 128, a.qk_head_dim = 192, a.v_head_dim = 128;
    a.kv_dim = 576, a.latent_dim = 512, a.q_lora_rank = 1536, a.index_heads = 64, a.index_head_dim = 128;
    a.index_topk = 2048, a.moe_width = 2048, a.experts_per_token = 8, a.dense_width = 18432;
    a.chunk_tokens = 8192, a.max_running = 256, a.context_tokens = 163840, a.dense_prefill_max_kv = 2048;
    return a;
}

TEST(MemoryPlanner, ActivationEstimateCountsEachBuffer) {
    const ActivationEstimate e = estimate_activation_bytes(dsv32_activations());
    const int64_t t = 8192;
    EXPECT_EQ(e.residual, t * (4 * 7168 + 1536 + 576) * 2);
    EXPECT_EQ(e.attention, t * 128 * (192 + 576 + 512 + 128) * 2 + 2048 * 128 * 320 * 2 + 132 * 64 * 514 * 4);
    EXPECT_EQ(e.indexer, t * 64 * (128 * 4 + 8) + t * 163840 * 4 + 2 * t * 2048 * 4);
    EXPECT_EQ(e.ffn, t * 7168 * 4 + t * 8 * (3 * 2048 + 7168) * 2);  // the MoE rows outweigh the dense MLP
    EXPECT_EQ(e.logits, 256 * 129280 * 4);
    EXPECT_EQ(e.total(), e.residual + e.attention + e.indexer + e.logits);
    EXPECT_NEAR(static_cast<double>(e.total()) / kGiB, 8.9, 0.1);
    EXPECT_NE(describe_activations(e).find("indexer"), std::string::npos);
}

TEST(MemoryPlanner, IndexerScoresGrowWithChunkTimesContext) {
    ActivationInput a = dsv32_activations();
    const int64_t base = estimate_activation_bytes(a).indexer;
    a.context_tokens *= 2;
    EXPECT_EQ(estimate_activation_bytes(a).indexer - base, int64_t{8192} * 163840 * 4);
    a.chunk_tokens = 16384;  // SGLang users raise --chunked-prefill-size: the scores double again
    EXPECT_GT(estimate_activation_bytes(a).total(), 2 * estimate_activation_bytes(dsv32_activations()).total());
}

TEST(MemoryPlanner, GraphPoolIsOneDecodeStepAtTheLargestBatchPlusInputs) {
    const ActivationInput a = dsv32_activations();
    EXPECT_EQ(estimate_graph_bytes(a, 0, 64), 0);  // no graphs
    ActivationInput decode = a;
    decode.chunk_tokens = 0;
    decode.max_running = 128;
    decode.dense_prefill_max_kv = 0;
    const int64_t want = estimate_activation_bytes(decode).total() + 128 * 163840 * 4 + 128 * (3 + 2560) * 4;
    EXPECT_EQ(estimate_graph_bytes(a, 128, 64), want);
    // A decode step's pool is far below the prefill chunk's activations at DeepSeek-V3.2 shapes, but not free:
    // at batch 128 and 160K context the key slots and indexer scores alone are 160 MiB.
    EXPECT_LT(estimate_graph_bytes(a, 128, 64), estimate_activation_bytes(a).total());
    EXPECT_GT(estimate_graph_bytes(a, 128, 64), 160 * kMiB);
    EXPECT_GT(estimate_graph_bytes(a, 256, 64), estimate_graph_bytes(a, 128, 64));
}

}  // namespace
}  // namespace dsa::kvcache
