// CUDA vs CPU for the MLA absorbs on the FP8 kv_b read directly (DSA_MLA_ABSORB=fp8, mla_absorb_fp8.cu) at tokens
// 1..64 on DeepSeek-V3.2 (H 128), 16-head and GLM-5 shapes, random f32 and power-of-two (UE8M0-valued) scales: exact
// e4m3 operands and per-block scaled f32 sums meet the exact-operand tolerance (3e-3: summation order + one bf16
// rounding), at least as close to the CPU as the BF16-copy path (switch off; within 1e-2 of it). Also: graph replay
// == eager bit for bit, the tuning knobs keep the bits, the default's size rule, unsupported shapes fall back, and
// the decode fusions (DSA_FUSED_ABSORB=1): mla_absorbed_query in one kernel == narrow + absorb_q + mla_query bit for
// bit (CPU 3e-3), mla_absorb_o_q8's .x == mla_absorb_o and its q8 / scales == launch_act_quant of it bit for bit.
#include "backend/cuda/mla_absorb_fp8.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "backend/cuda/kernels.h"
#include "ops_test_util.h"

namespace dsa::backend::testing {
namespace {

using MlaAbsorbFp8Test = CudaVsCpuTest;

// Sets (or unsets, nullptr) DSA_MLA_ABSORB (or `name`) for the scope.
class AbsorbSwitch {
  public:
    explicit AbsorbSwitch(const char* v, const char* name = "DSA_MLA_ABSORB") : name_(name) {
        if (const char* old = std::getenv(name_)) old_ = old;
        set(v);
    }
    ~AbsorbSwitch() { set(old_ ? old_->c_str() : nullptr); }

  private:
    void set(const char* v) {
        if (v != nullptr) {
            setenv(name_, v, 1);
        } else {
            unsetenv(name_);
        }
    }
    const char* name_;
    std::optional<std::string> old_;
};

struct HeadShape {
    const char* name;
    MlaHeadDims d;
};
const HeadShape kShapes[] = {{"deepseek", {128, 128, 128}}, {"small", {16, 128, 128}}, {"glm", {64, 192, 256}}};
const int64_t kTokens[] = {1, 2, 8, 33, 64};

// kv_b [H * (d_n + d_v), 512] e4m3 with f32 block scales in [2e-3, 8e-3) or powers of two 2^-9 .. 2^-7.
LinearWeight kv_b_fp8(const MlaHeadDims& d, bool pow2, std::mt19937& rng) {
    LinearWeight w = random_fp8_weight(d.num_heads * (d.nope_dim + d.v_dim), kMlaLatentDim, rng, 2e-3f, 8e-3f);
    if (pow2) {
        std::uniform_int_distribution<int> e(-9, -7);
        for (int64_t i = 0; i < w.scale_inv.numel(); ++i) w.scale_inv.data<float>()[i] = std::ldexp(1.0f, e(rng));
    }
    return w;
}

bool same_bits(const Tensor& a, const Tensor& b) {
    return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

std::string label(const HeadShape& s, bool pow2, int64_t tokens) {
    return std::string(s.name) + (pow2 ? " pow2" : " f32") + " scales T=" + std::to_string(tokens);
}

TEST_F(MlaAbsorbFp8Test, MatchesCpuAndBeatsBf16Copy) {
    for (const HeadShape& s : kShapes) {
        for (bool pow2 : {false, true}) {
            const LinearWeight kv_b = kv_b_fp8(s.d, pow2, rng_);
            for (int64_t tokens : kTokens) {
                const std::string what = label(s, pow2, tokens);
                Tensor q_nope = random_act({tokens, s.d.num_heads, s.d.nope_dim}, rng_);
                Tensor o_lat = random_act({tokens, s.d.num_heads, kMlaLatentDim}, rng_);
                const Tensor ref_q = cpu_->mla_absorb_q(q_nope, kv_b, s.d);
                const Tensor ref_o = cpu_->mla_absorb_o(o_lat, kv_b, s.d);
                Tensor fp8_q, fp8_o, bf16_q, bf16_o;
                {
                    AbsorbSwitch on("fp8");
                    fp8_q = gpu_->to_host(gpu_->mla_absorb_q(up(q_nope), kv_b, s.d));
                    fp8_o = gpu_->to_host(gpu_->mla_absorb_o(up(o_lat), kv_b, s.d));
                }
                {
                    AbsorbSwitch off("bf16");
                    bf16_q = gpu_->to_host(gpu_->mla_absorb_q(up(q_nope), kv_b, s.d));
                    bf16_o = gpu_->to_host(gpu_->mla_absorb_o(up(o_lat), kv_b, s.d));
                }
                expect_close("absorb_q fp8 " + what, to_f32(fp8_q), ref_q, 3e-3);
                expect_close("absorb_o fp8 " + what, to_f32(fp8_o), ref_o, 3e-3);
                expect_close("absorb_q fp8 vs bf16 copy " + what, to_f32(fp8_q), to_f32(bf16_q), 1e-2);
                expect_close("absorb_o fp8 vs bf16 copy " + what, to_f32(fp8_o), to_f32(bf16_o), 1e-2);
                // With f32 scales the BF16 copy rounds every weight: the switch took the new kernels (other bits),
                // which are no further from the CPU. (Power-of-two scales make the copy exact too: both paths then
                // differ only in summation order, often not at all after the bf16 rounding.)
                if (!pow2) {
                    EXPECT_FALSE(same_bits(fp8_q, bf16_q)) << what;
                    EXPECT_FALSE(same_bits(fp8_o, bf16_o)) << what;
                    EXPECT_LE(compare(fp8_q, ref_q).rel_l2, compare(bf16_q, ref_q).rel_l2) << what;
                    EXPECT_LE(compare(fp8_o, ref_o).rel_l2, compare(bf16_o, ref_o).rel_l2) << what;
                }
            }
        }
    }
}

// Both absorbs captured in a graph at T tokens, replayed after new inputs were copied in: equal to the eager run on
// those inputs bit for bit (and close to the CPU).
TEST_F(MlaAbsorbFp8Test, GraphReplayEqualsEager) {
    AbsorbSwitch on("fp8");
    const MlaHeadDims d = kShapes[0].d;
    const LinearWeight kv_b = kv_b_fp8(d, /*pow2=*/false, rng_);
    for (int64_t tokens : {1, 8, 64}) {
        const std::string what = "T=" + std::to_string(tokens);
        Tensor q0 = random_act({tokens, d.num_heads, d.nope_dim}, rng_), q1 = random_act(q0.shape(), rng_);
        Tensor o0 = random_act({tokens, d.num_heads, kMlaLatentDim}, rng_), o1 = random_act(o0.shape(), rng_);
        Tensor qd = up(q0), od = up(o0), out_q, out_o;
        gpu_->mla_absorb_q(qd, kv_b, d);  // uploads the weight outside the capture
        auto graph = gpu_->capture_graph([&] {
            out_q = gpu_->mla_absorb_q(qd, kv_b, d);
            out_o = gpu_->mla_absorb_o(od, kv_b, d);
        });
        ASSERT_TRUE(graph.is_ok()) << graph.status().message();
        // copy_into takes 1-D / 2-D tensors: [T, H, d] as [T * H, d] views of the same storage.
        Tensor qd2 = qd.view({tokens * d.num_heads, d.nope_dim}), od2 = od.view({tokens * d.num_heads, kMlaLatentDim});
        gpu_->copy_into(to_bf16(q1).view(qd2.shape()), qd2);
        gpu_->copy_into(to_bf16(o1).view(od2.shape()), od2);
        gpu_->replay_graph(**graph);
        const Tensor replay_q = gpu_->to_host(out_q), replay_o = gpu_->to_host(out_o);
        EXPECT_TRUE(same_bits(replay_q, gpu_->to_host(gpu_->mla_absorb_q(up(q1), kv_b, d)))) << "absorb_q " << what;
        EXPECT_TRUE(same_bits(replay_o, gpu_->to_host(gpu_->mla_absorb_o(up(o1), kv_b, d)))) << "absorb_o " << what;
        expect_close("absorb_q graph replay " + what, to_f32(replay_q), cpu_->mla_absorb_q(q1, kv_b, d), 3e-3);
        expect_close("absorb_o graph replay " + what, to_f32(replay_o), cpu_->mla_absorb_o(o1, kv_b, d), 3e-3);
    }
}

// The tuning knobs (token tiles per CTA, column groups per CTA) move work between CTAs but not the order of any
// output's sums: every variant gives the default's bits.
TEST_F(MlaAbsorbFp8Test, TuningKeepsBits) {
    AbsorbSwitch on("fp8");
    struct Knobs {
        int max_mtiles, ngroups;
    };
    const Knobs knobs[] = {{1, 0}, {2, 0}, {3, 0}, {4, 0}, {0, 1}, {0, 2}, {0, 4}, {1, 4}, {4, 2}, {2, 1}};
    for (const HeadShape& s : {kShapes[1], kShapes[2]}) {
        const LinearWeight kv_b = kv_b_fp8(s.d, /*pow2=*/false, rng_);
        for (int64_t tokens : {8, 33, 64}) {
            Tensor q_nope = up(random_act({tokens, s.d.num_heads, s.d.nope_dim}, rng_));
            Tensor o_lat = up(random_act({tokens, s.d.num_heads, kMlaLatentDim}, rng_));
            const Tensor ref_q = gpu_->to_host(gpu_->mla_absorb_q(q_nope, kv_b, s.d));
            const Tensor ref_o = gpu_->to_host(gpu_->mla_absorb_o(o_lat, kv_b, s.d));
            for (const Knobs& k : knobs) {
                const std::string what = label(s, false, tokens) + " max_mtiles " + std::to_string(k.max_mtiles) +
                                         " ngroups " + std::to_string(k.ngroups);
                cuda::set_absorb_fp8_tuning(k.max_mtiles, k.ngroups);
                EXPECT_TRUE(same_bits(gpu_->to_host(gpu_->mla_absorb_q(q_nope, kv_b, s.d)), ref_q)) << what;
                EXPECT_TRUE(same_bits(gpu_->to_host(gpu_->mla_absorb_o(o_lat, kv_b, s.d)), ref_o)) << what;
            }
            cuda::set_absorb_fp8_tuning(0, 0);
        }
    }
}

// The default (switch unset or 'auto') takes the FP8 kernels where the H200 measured them faster: absorb_q up to
// kAbsorbQAutoTokens tokens, absorb_o up to kAbsorbFp8MaxTokens; beyond, the BF16 copy's bits.
TEST_F(MlaAbsorbFp8Test, AutoModeRule) {
    const MlaHeadDims d = kShapes[1].d;
    const LinearWeight kv_b = kv_b_fp8(d, /*pow2=*/false, rng_);
    const auto run = [&](const char* mode, bool q, const Tensor& x) {
        AbsorbSwitch sw(mode);
        return gpu_->to_host(q ? gpu_->mla_absorb_q(x, kv_b, d) : gpu_->mla_absorb_o(x, kv_b, d));
    };
    struct Case {
        bool q;
        int64_t tokens;
        bool fp8;
    };
    const Case cases[] = {
        {true, 1, true},  {true, cuda::kAbsorbQAutoTokens, true},   {true, cuda::kAbsorbQAutoTokens + 1, false},
        {false, 1, true}, {false, cuda::kAbsorbFp8MaxTokens, true}, {false, cuda::kAbsorbFp8MaxTokens + 1, false}};
    for (const Case& c : cases) {
        const Tensor x = up(random_act({c.tokens, d.num_heads, c.q ? d.nope_dim : kMlaLatentDim}, rng_));
        const Tensor expected = run(c.fp8 ? "fp8" : "bf16", c.q, x);
        const std::string what = std::string(c.q ? "absorb_q" : "absorb_o") + " T=" + std::to_string(c.tokens);
        EXPECT_TRUE(same_bits(run(nullptr, c.q, x), expected)) << what << " (unset)";
        EXPECT_TRUE(same_bits(run("auto", c.q, x), expected)) << what << " (auto)";
        if (c.tokens <= cuda::kAbsorbFp8MaxTokens) {  // beyond, 'fp8' falls back to the BF16 copy as well
            EXPECT_FALSE(same_bits(run(c.fp8 ? "bf16" : "fp8", c.q, x), expected)) << what << " (the other path)";
        }
    }
}

// Shapes the kernels do not take (more than 64 tokens; head dims not multiples of 32; absorb_q's reduction buffer
// over 48 KB at d_n 256 and 64 tokens) run the BF16-copy path with the switch on: the same bits as with it off.
TEST_F(MlaAbsorbFp8Test, UnsupportedShapesFallBack) {
    struct Case {
        MlaHeadDims d;
        int64_t tokens;
        bool q_falls_back, o_falls_back;
    };
    const Case cases[] = {{{16, 128, 128}, 65, true, true},
                          {{16, 128, 128}, 130, true, true},
                          {{8, 48, 80}, 4, true, true},
                          {{8, 256, 128}, 64, true, false},
                          {{8, 256, 128}, 16, false, false}};
    for (const Case& c : cases) {
        const std::string what = "H=" + std::to_string(c.d.num_heads) + " d_n=" + std::to_string(c.d.nope_dim) +
                                 " d_v=" + std::to_string(c.d.v_dim) + " T=" + std::to_string(c.tokens);
        const LinearWeight kv_b = kv_b_fp8(c.d, /*pow2=*/false, rng_);
        Tensor q_nope = random_act({c.tokens, c.d.num_heads, c.d.nope_dim}, rng_);
        Tensor o_lat = random_act({c.tokens, c.d.num_heads, kMlaLatentDim}, rng_);
        Tensor on_q, on_o, off_q, off_o;
        {
            AbsorbSwitch on("fp8");
            on_q = gpu_->to_host(gpu_->mla_absorb_q(up(q_nope), kv_b, c.d));
            on_o = gpu_->to_host(gpu_->mla_absorb_o(up(o_lat), kv_b, c.d));
        }
        {
            AbsorbSwitch off("bf16");
            off_q = gpu_->to_host(gpu_->mla_absorb_q(up(q_nope), kv_b, c.d));
            off_o = gpu_->to_host(gpu_->mla_absorb_o(up(o_lat), kv_b, c.d));
        }
        EXPECT_EQ(same_bits(on_q, off_q), c.q_falls_back) << "absorb_q " << what;
        EXPECT_EQ(same_bits(on_o, off_o), c.o_falls_back) << "absorb_o " << what;
        expect_close("absorb_q switch on " + what, to_f32(on_q), cpu_->mla_absorb_q(q_nope, kv_b, c.d), 1e-2);
        expect_close("absorb_o switch on " + what, to_f32(on_o), cpu_->mla_absorb_o(o_lat, kv_b, c.d), 1e-2);
    }
}

// ---- decode fusions (DSA_FUSED_ABSORB) ----

struct Knobs2 {
    int max_mtiles, ngroups;
};
const Knobs2 kFusedKnobs[] = {{0, 0}, {1, 0}, {4, 2}};
const int64_t kFusedTokens[] = {1, 3, 17, 33, 64};
const int64_t kQuantTokens[] = {1, 3, 17, 32};  // absorb_o with act_quant: <= kAbsorbOQuantMaxTokens
constexpr int64_t kMaxPositions = 4096;

std::vector<float> rope_inv_freq() {
    std::vector<float> f(32);
    for (int i = 0; i < 32; ++i) f[i] = std::pow(10000.0f, -static_cast<float>(i) / 32.0f);
    return f;
}

// Positions in [0, kMaxPositions) with both ends present.
Tensor random_positions(int64_t tokens, std::mt19937& rng) {
    std::uniform_int_distribution<int32_t> pick(0, kMaxPositions - 1);
    std::vector<int32_t> v(tokens);
    for (int64_t t = 0; t < tokens; ++t) v[t] = t == 0 ? kMaxPositions - 1 : (t == 1 ? 0 : pick(rng));
    return i32_tensor(v);
}

// The absorbed query in one absorb_q kernel (RoPE part included, written into the 576-wide rows) gives the bits of
// narrow + absorb_q + mla_query (the switch off), at every tuning, both RoPE layouts; CPU within 3e-3.
TEST_F(MlaAbsorbFp8Test, FusedQueryEqualsUnfusedOps) {
    AbsorbSwitch fp8("fp8");
    const RopeTable gpu_table = gpu_->make_rope_table(rope_inv_freq(), kMaxPositions);
    const RopeTable cpu_table = cpu_->make_rope_table(rope_inv_freq(), kMaxPositions);
    for (const HeadShape& s : kShapes) {
        const LinearWeight kv_b = kv_b_fp8(s.d, /*pow2=*/false, rng_);
        for (int64_t tokens : kFusedTokens) {
            const Tensor q = random_act({tokens, s.d.num_heads, s.d.nope_dim + 64}, rng_);
            const Tensor pos = random_positions(tokens, rng_);
            const Tensor qd = up(q);
            for (const RopeLayout layout : {RopeLayout::kInterleaved, RopeLayout::kNeox}) {
                const std::string what = label(s, false, tokens) + (layout == RopeLayout::kNeox ? " neox" : " inter");
                Tensor unfused;
                {
                    AbsorbSwitch off("0", "DSA_FUSED_ABSORB");
                    unfused = gpu_->to_host(gpu_->mla_absorbed_query(qd, kv_b, s.d, pos, &gpu_table, layout));
                    EXPECT_FALSE(cuda().last_absorbed_query_fused()) << what;
                }
                Tensor fused;
                for (const Knobs2& k : kFusedKnobs) {
                    AbsorbSwitch on("1", "DSA_FUSED_ABSORB");
                    cuda::set_absorb_fp8_tuning(k.max_mtiles, k.ngroups);
                    fused = gpu_->to_host(gpu_->mla_absorbed_query(qd, kv_b, s.d, pos, &gpu_table, layout));
                    cuda::set_absorb_fp8_tuning(0, 0);
                    EXPECT_TRUE(cuda().last_absorbed_query_fused()) << what;
                    EXPECT_TRUE(same_bits(fused, unfused)) << what << " max_mtiles " << k.max_mtiles;
                }
                expect_close("fused query vs CPU " + what, to_f32(fused),
                             cpu_->mla_absorbed_query(q, kv_b, s.d, pos, &cpu_table, layout), 3e-3);
            }
        }
    }
}

// o_latent with per-(token, head) magnitudes 2^-4 .. 2^4 (bf16-exact), one head of token 0 all zeros: the 1x128
// blocks' scales differ, so a block taking another block's amax shows.
Tensor ragged_o_latent(int64_t tokens, int64_t heads, std::mt19937& rng) {
    Tensor o = random_act({tokens, heads, kMlaLatentDim}, rng);
    float* p = o.data<float>();
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t h = 0; h < heads; ++h) {
            const float f = (t == 0 && h == 1) ? 0.0f : std::ldexp(1.0f, static_cast<int>((t * 7 + h * 3) % 9) - 4);
            for (int64_t c = 0; c < kMlaLatentDim; ++c) p[(t * heads + h) * kMlaLatentDim + c] *= f;
        }
    }
    return o;
}

// absorb_o with o_proj's act_quant in one kernel: .x has mla_absorb_o's bits, q8 / scales launch_act_quant's of it
// (ue8m0 on and off, every tuning, T up to 32; d_v 128 and 256: one and two blocks per head); CPU .x within 3e-3.
TEST_F(MlaAbsorbFp8Test, AbsorbOQuantIsActQuantOfAbsorbO) {
    AbsorbSwitch fp8("fp8");
    for (const bool ue8m0 : {true, false}) {
        Numerics n = Numerics::deepseek_fp8();
        n.ue8m0_scales = ue8m0;
        make(n);
        for (const HeadShape& s : kShapes) {
            const LinearWeight kv_b = kv_b_fp8(s.d, /*pow2=*/false, rng_);
            const int64_t width = s.d.num_heads * s.d.v_dim;
            for (int64_t tokens : kQuantTokens) {
                const std::string what = label(s, false, tokens) + (ue8m0 ? " ue8m0" : " f32 act scales");
                const Tensor o_lat = ragged_o_latent(tokens, s.d.num_heads, rng_);
                const Tensor od = up(o_lat);
                Tensor ref = gpu_->mla_absorb_o(od, kv_b, s.d).view({tokens, width});
                Tensor ref_q = Tensor::empty({tokens, width}, DType::kF8E4M3, Device::kCUDA, "ref.q8");
                Tensor ref_s = Tensor::empty({width / 128, tokens}, DType::kF32, Device::kCUDA, "ref.scales");
                cuda::launch_act_quant({ref.data<uint16_t>(), ref_q.data<uint8_t>(), ref_s.data<float>(), nullptr,
                                        tokens, width, tokens, ue8m0},
                                       cuda().stream());
                const Tensor ref_h = gpu_->to_host(ref), ref_qh = gpu_->to_host(ref_q), ref_sh = gpu_->to_host(ref_s);
                QuantizedAct r;
                for (const Knobs2& k : kFusedKnobs) {
                    AbsorbSwitch on("1", "DSA_FUSED_ABSORB");
                    cuda::set_absorb_fp8_tuning(k.max_mtiles, k.ngroups);
                    r = gpu_->mla_absorb_o_q8(od, kv_b, s.d);
                    cuda::set_absorb_fp8_tuning(0, 0);
                    const std::string w = what + " max_mtiles " + std::to_string(k.max_mtiles);
                    EXPECT_TRUE(cuda().last_absorb_o_quantized()) << w;
                    ASSERT_TRUE(r.has_q8()) << w;
                    EXPECT_TRUE(same_bits(gpu_->to_host(r.x), ref_h)) << w;
                    EXPECT_TRUE(same_bits(gpu_->to_host(r.q8), ref_qh)) << w;
                    EXPECT_TRUE(same_bits(gpu_->to_host(r.scales), ref_sh)) << w;
                }
                expect_close("absorb_o_q8 vs CPU " + what, to_f32(gpu_->to_host(r.x)),
                             cpu_->mla_absorb_o_q8(o_lat, kv_b, s.d).x, 3e-3);
            }
        }
    }
}

// Where the fusions do not apply they run the separate ops: no act_quant without fp8_activation_quant, at d_v not a
// multiple of 128 or beyond 32 tokens; the query beyond 64 tokens or with the switch at 0.
TEST_F(MlaAbsorbFp8Test, FusionsFallBack) {
    AbsorbSwitch fp8("fp8"), on("1", "DSA_FUSED_ABSORB");
    struct Case {
        bool fp8_numerics;
        MlaHeadDims d;
        int64_t tokens;
        bool o_quant, q_fused;
    };
    const Case cases[] = {{false, {16, 128, 128}, 4, false, true},
                          {true, {8, 64, 96}, 4, false, true},
                          {true, {16, 128, 128}, 65, false, false},
                          {true, {16, 128, 128}, 64, false, true},
                          {true, {16, 128, 128}, 33, false, true},
                          {true, {16, 128, 128}, 32, true, true}};
    for (const Case& c : cases) {
        make(c.fp8_numerics ? Numerics::deepseek_fp8() : Numerics::bf16());
        const RopeTable table = gpu_->make_rope_table(rope_inv_freq(), kMaxPositions);
        const std::string what = "H=" + std::to_string(c.d.num_heads) + " d_v=" + std::to_string(c.d.v_dim) +
                                 " T=" + std::to_string(c.tokens) + (c.fp8_numerics ? " fp8" : " bf16");
        const LinearWeight kv_b = kv_b_fp8(c.d, /*pow2=*/false, rng_);
        const Tensor od = up(random_act({c.tokens, c.d.num_heads, kMlaLatentDim}, rng_));
        const QuantizedAct r = gpu_->mla_absorb_o_q8(od, kv_b, c.d);
        EXPECT_EQ(r.has_q8(), c.o_quant) << what;
        EXPECT_EQ(cuda().last_absorb_o_quantized(), c.o_quant) << what;
        EXPECT_TRUE(same_bits(gpu_->to_host(r.x), gpu_->to_host(gpu_->mla_absorb_o(od, kv_b, c.d))
                                                      .view({c.tokens, c.d.num_heads * c.d.v_dim})))
            << what;
        const Tensor qd = up(random_act({c.tokens, c.d.num_heads, c.d.nope_dim + 64}, rng_));
        const Tensor pos = random_positions(c.tokens, rng_);
        const Tensor fused =
            gpu_->to_host(gpu_->mla_absorbed_query(qd, kv_b, c.d, pos, &table, RopeLayout::kInterleaved));
        EXPECT_EQ(cuda().last_absorbed_query_fused(), c.q_fused) << what;
        AbsorbSwitch off("0", "DSA_FUSED_ABSORB");
        EXPECT_TRUE(same_bits(
            fused, gpu_->to_host(gpu_->mla_absorbed_query(qd, kv_b, c.d, pos, &table, RopeLayout::kInterleaved))))
            << what;
        EXPECT_FALSE(cuda().last_absorbed_query_fused()) << what;
    }
}

// DSA_FUSED_ABSORB is parsed strictly: 0 / 1 (unset / empty: 1, with DSA_FUSED_DECODE); anything else stops with a
// message naming it.
TEST(MlaAbsorbFusedSwitch, ParsesStrictly) {
    {
        AbsorbSwitch unset(nullptr, "DSA_FUSED_ABSORB");
        EXPECT_EQ(cuda::fused_absorb_enabled(), cuda::fused_decode_enabled());
    }
    {
        AbsorbSwitch zero("0", "DSA_FUSED_ABSORB");
        EXPECT_FALSE(cuda::fused_absorb_enabled());
    }
    {
        AbsorbSwitch one("1", "DSA_FUSED_ABSORB");
        EXPECT_EQ(cuda::fused_absorb_enabled(), cuda::fused_decode_enabled());
    }
    AbsorbSwitch bad("2", "DSA_FUSED_ABSORB");
    EXPECT_DEATH(cuda::fused_absorb_enabled(), "DSA_FUSED_ABSORB");
    AbsorbSwitch word("yes", "DSA_FUSED_ABSORB");
    EXPECT_DEATH(cuda::fused_absorb_enabled(), "DSA_FUSED_ABSORB");
}

}  // namespace
}  // namespace dsa::backend::testing
