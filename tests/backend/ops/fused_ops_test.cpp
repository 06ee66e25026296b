// The decode-path fusions against the ops they replace, on the GPU bit for bit (same arithmetic, same order) and
// against the CPU backend (its defaults run the separate ops) within tolerances:
//  - rms_norm_q8 / add_rms_norm_q8: .x (and the updated residual) equal rms_norm / add_rms_norm; q8 + scales equal
//    launch_act_quant of .x (ue8m0 on and off); no q8 where the streaming linears would not use it (bf16 numerics,
//    more than 64 rows, a width not a multiple of 128: the bundled model's 320). CPU: 4e-3 relative L2 (sum order).
//  - linear_multi_q8 on the norm's act_quant equals linear_multi / linear of .x (one and two weights); CPU 3e-3.
//  - mla_latent_write (RMSNorm + RoPE + KV write in one kernel) writes the bytes of the three separate CUDA ops
//    (FP8-656 and bf16-576 stores, both RoPE layouts, slots of -1 skipped); CPU read-back 1e-2 (an FP8 code may
//    differ by one step where the CPU norm rounds differently).
//  - indexer_key_write (LayerNorm + RoPE + Hadamard / act_quant + page write in one kernel) writes the bytes of the
//    three separate CUDA ops (FP8 pages with ue8m0 on and off, f32 pages, both RoPE layouts, slots of -1); CPU
//    keys read back: 4e-3 (f32 pages), 3e-2 dequantized FP8 (a one-ulp LayerNorm difference moves every Hadamard
//    output, and some e4m3 codes by one step, 2^-3 relative).
//  - mla_query (the absorbed query: copy + RoPE of q_pe in one kernel) equals narrow + apply_rope + concat on the
//    GPU bit for bit and the CPU's (the same float operations) within 1e-6.
//  - indexer_topk with q_rope (the RoPE inside the FP8 q preparation) gives the scores and positions of apply_rope
//    then indexer_topk bit for bit (FP8 ue8m0 on and off, both layouts, 64 and 4 heads; bf16 numerics: the op's
//    own apply_rope); the CPU's q_rope equals its apply_rope then indexer_topk.
//  - rms_norm_q8_and_writes in one launch (DSA_FUSED_WRITES=1) makes the bytes of rms_norm_q8 + mla_latent_write +
//    indexer_key_write (norm output, act_quant, latent rows, key pages).
// Shapes: DeepSeek-V3.2 (7168, q_lora 1536, latent 512 + 64) and the bundled model (hidden 320, q_lora 256);
// T in {1, 3, 64}.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <numeric>
#include <vector>

#include "backend/cuda/kernels.h"
#include "ops_test_util.h"

namespace dsa::backend::testing {
namespace {

using FusedOpsTest = CudaVsCpuTest;

bool same_bytes(const Tensor& a, const Tensor& b) {
    return a.nbytes() == b.nbytes() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

Numerics fp8_numerics(bool ue8m0) {
    Numerics n = Numerics::deepseek_fp8();
    n.ue8m0_scales = ue8m0;
    return n;
}

// launch_act_quant of a device bf16 [rows, dim] tensor: (e4m3 bytes, [dim / 128, rows] scales) on the host.
std::pair<Tensor, Tensor> act_quant_ref(Backend& gpu, cuda::CudaBackend& cuda, const Tensor& x, bool ue8m0) {
    const int64_t rows = x.dim(0), dim = x.dim(1);
    Tensor q = Tensor::empty({rows, dim}, DType::kF8E4M3, Device::kCUDA, "ref.q8");
    Tensor s = Tensor::empty({dim / 128, rows}, DType::kF32, Device::kCUDA, "ref.scales");
    cuda::launch_act_quant({x.data<uint16_t>(), q.data<uint8_t>(), s.data<float>(), nullptr, rows, dim, rows, ue8m0},
                           cuda.stream());
    return {gpu.to_host(q), gpu.to_host(s)};
}

TEST_F(FusedOpsTest, NormQuantIsActQuantOfTheNorm) {
    constexpr float kEps = 1e-6f;
    for (const bool ue8m0 : {true, false}) {
        make(fp8_numerics(ue8m0));
        for (const int64_t dim : {7168, 1536, 256, 320}) {
            const Tensor w = uniform_f32({dim}, rng_, 0.5f, 1.5f);
            for (const int64_t t : {1, 3, 64, 65}) {
                const std::string what =
                    "norm_q8 dim=" + std::to_string(dim) + " T=" + std::to_string(t) + (ue8m0 ? " ue8m0" : "");
                std::cout << "[ metric ] " << what << std::endl;
                const Tensor x = random_act({t, dim}, rng_, 2.0f), d = random_act({t, dim}, rng_);
                const bool expect_q8 = dim % 128 == 0 && t <= 64;
                QuantizedAct q = gpu_->rms_norm_q8(up(x), w, kEps);
                const Tensor plain = gpu_->rms_norm(up(x), w, kEps);
                EXPECT_TRUE(same_bytes(gpu_->to_host(q.x), gpu_->to_host(plain))) << what;
                expect_close(what + " vs cpu", down(q.x), cpu_->rms_norm(x, w, kEps), 4e-3);
                ASSERT_EQ(q.has_q8(), expect_q8) << what;
                if (expect_q8) {
                    const auto [rq, rs] = act_quant_ref(*gpu_, cuda(), plain, ue8m0);
                    EXPECT_TRUE(same_bytes(gpu_->to_host(q.q8), rq)) << what << " q8";
                    EXPECT_TRUE(same_bytes(gpu_->to_host(q.scales), rs)) << what << " scales";
                }
                Tensor r1 = up(x), r2 = up(x);
                const Tensor dd = up(d);
                QuantizedAct a = gpu_->add_rms_norm_q8(r1, dd, w, kEps);
                const Tensor b = gpu_->add_rms_norm(r2, dd, w, kEps);
                EXPECT_TRUE(same_bytes(gpu_->to_host(a.x), gpu_->to_host(b))) << what << " add";
                EXPECT_TRUE(same_bytes(gpu_->to_host(r1), gpu_->to_host(r2))) << what << " residual";
                ASSERT_EQ(a.has_q8(), expect_q8) << what;
                if (expect_q8) {
                    const auto [rq, rs] = act_quant_ref(*gpu_, cuda(), b, ue8m0);
                    EXPECT_TRUE(same_bytes(gpu_->to_host(a.q8), rq)) << what << " add q8";
                    EXPECT_TRUE(same_bytes(gpu_->to_host(a.scales), rs)) << what << " add scales";
                }
            }
        }
    }
    make(Numerics::bf16());  // no FP8 activations: nothing to quantize
    const Tensor w = uniform_f32({1536}, rng_, 0.5f, 1.5f);
    EXPECT_FALSE(gpu_->rms_norm_q8(up(random_act({1, 1536}, rng_)), w, kEps).has_q8());
}

struct MultiCase {
    int64_t k;
    std::vector<int64_t> n;  // output widths of the weights that read the same x
};

TEST_F(FusedOpsTest, LinearMultiQ8EqualsLinearMulti) {
    make(fp8_numerics(true));
    // q_b + indexer wq_b over q_resid, q_a + kv_a + wk over x (V3.2), and the bundled model's q_b + wq_b.
    const MultiCase cases[] = {{1536, {24576, 8192}}, {7168, {1536, 576, 128}}, {256, {768, 512}}};
    for (const MultiCase& c : cases) {
        std::vector<LinearWeight> ws;
        for (const int64_t n : c.n) ws.push_back(random_fp8_weight(n, c.k, rng_));
        std::vector<const LinearWeight*> ptrs;
        for (const LinearWeight& w : ws) ptrs.push_back(&w);
        const Tensor nw = uniform_f32({c.k}, rng_, 0.5f, 1.5f);
        for (const int64_t t : {1, 3, 64}) {
            const std::string what = "linear_multi_q8 K=" + std::to_string(c.k) + " T=" + std::to_string(t);
            std::cout << "[ metric ] " << what << std::endl;
            const QuantizedAct xa = gpu_->rms_norm_q8(up(random_act({t, c.k}, rng_, 2.0f)), nw, 1e-6f);
            ASSERT_TRUE(xa.has_q8()) << what;
            const std::vector<Tensor> got = gpu_->linear_multi_q8(xa, ptrs);
            EXPECT_TRUE(cuda().last_linear_used_q8()) << what;
            const std::vector<Tensor> ref = gpu_->linear_multi(xa.x, ptrs);
            const Tensor xh = down(xa.x);
            ASSERT_EQ(got.size(), ptrs.size());
            for (size_t i = 0; i < ptrs.size(); ++i) {
                const std::string wi = what + " weight " + std::to_string(i);
                EXPECT_TRUE(same_bytes(gpu_->to_host(got[i]), gpu_->to_host(ref[i]))) << wi;
                expect_close(wi + " vs cpu", down(got[i]), cpu_->linear(xh, ws[i], LinearOutput::kActivation), 3e-3);
            }
            const std::vector<const LinearWeight*> one = {ptrs[0]};
            const std::vector<Tensor> single = gpu_->linear_multi_q8(xa, one);
            EXPECT_TRUE(cuda().last_linear_used_q8()) << what << " one weight";
            EXPECT_TRUE(same_bytes(gpu_->to_host(single.at(0)), gpu_->to_host(gpu_->linear(xa.x, ws[0]))))
                << what << " one weight";
        }
    }
}

constexpr int64_t kStoreSlots = 300, kMaxPositions = 4096;

std::vector<float> mla_inv_freq() {
    std::vector<float> f(kMlaRopeDim / 2);
    for (size_t i = 0; i < f.size(); ++i) f[i] = std::pow(10000.0f, -2.0f * static_cast<float>(i) / kMlaRopeDim);
    return f;
}

// T distinct slots of the store (every third one -1) and positions < kMaxPositions.
std::pair<Tensor, Tensor> slots_and_positions(int64_t t, std::mt19937& rng) {
    std::vector<int32_t> all(kStoreSlots);
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    std::vector<int32_t> slots(t), pos(t);
    std::uniform_int_distribution<int32_t> p(0, kMaxPositions - 1);
    for (int64_t i = 0; i < t; ++i) {
        slots[i] = i % 3 == 2 ? -1 : all[i];
        pos[i] = p(rng);
    }
    return {i32_tensor(slots), i32_tensor(pos)};
}

MlaKvStore filled_store(MlaKvFormat format, uint8_t fill) {
    MlaKvStore s;
    s.format = format;
    s.data = Tensor::empty({kStoreSlots, mla_kv_bytes_per_token(format)}, DType::kU8);
    std::memset(s.data.raw_data(), fill, s.data.nbytes());
    return s;
}

TEST_F(FusedOpsTest, MlaLatentWriteEqualsSeparateOps) {
    for (const bool fp8 : {true, false}) {
        make(fp8 ? Numerics::deepseek_fp8() : Numerics::bf16());
        const MlaKvFormat format = fp8 ? MlaKvFormat::kFp8 : MlaKvFormat::kBF16;
        const std::vector<float> inv_freq = mla_inv_freq();
        const RopeTable gpu_table = gpu_->make_rope_table(inv_freq, kMaxPositions);
        const RopeTable cpu_table = cpu_->make_rope_table(inv_freq, kMaxPositions);
        const Tensor w = uniform_f32({kMlaLatentDim}, rng_, 0.5f, 1.5f);
        for (const RopeLayout layout : {RopeLayout::kInterleaved, RopeLayout::kNeox}) {
            for (const int64_t t : {1, 3, 64}) {
                const std::string what = std::string("mla_latent_write ") + mla_kv_format_name(format) +
                                         (layout == RopeLayout::kNeox ? " neox" : " interleaved") +
                                         " T=" + std::to_string(t);
                std::cout << "[ metric ] " << what << std::endl;
                const Tensor kv_a = random_act({t, kMlaKvDim}, rng_, 3.0f);
                const auto [slots, pos] = slots_and_positions(t, rng_);
                MlaKvStore host = filled_store(format, 0xA5);
                MlaKvStore fused{gpu_->to_device(host.data), format}, separate{gpu_->to_device(host.data), format};
                const Tensor kv_d = up(kv_a);
                MlaLatentWriteParams p{
                    kv_d, w, 1e-6f, gpu_->to_device(pos), &gpu_table, layout, gpu_->to_device(slots), &fused};
                gpu_->mla_latent_write(p);
                EXPECT_TRUE(cuda().last_latent_write_fused()) << what;
                p.store = &separate;
                gpu_->Backend::mla_latent_write(p);
                const Tensor got = gpu_->to_host(fused.data);
                EXPECT_TRUE(same_bytes(got, gpu_->to_host(separate.data))) << what;
                EXPECT_TRUE(same_bytes(gpu_->to_host(kv_d), to_bf16(kv_a))) << what << ": kv_a modified";
                std::vector<int32_t> written;
                for (int64_t i = 0; i < t; ++i) {
                    if (slots.data<int32_t>()[i] >= 0) written.push_back(slots.data<int32_t>()[i]);
                }
                int64_t touched = 0;  // rows not written keep the fill bytes
                const int64_t row = got.dim(1);
                for (int64_t s = 0; s < kStoreSlots; ++s) {
                    if (std::find(written.begin(), written.end(), s) != written.end()) continue;
                    touched +=
                        std::memcmp(got.data<uint8_t>() + s * row, host.data.data<uint8_t>() + s * row, row) != 0;
                }
                EXPECT_EQ(touched, 0) << what << ": rows outside the slots changed";
                cpu_->mla_latent_write({kv_a, w, 1e-6f, pos, &cpu_table, layout, slots, &host});
                const Tensor ws = i32_tensor(written);
                expect_close(what + " read vs cpu", to_f32(gpu_->to_host(gpu_->mla_kv_read(fused, ws))),
                             to_f32(cpu_->mla_kv_read(host, ws)), 1e-2);
            }
        }
    }
}

TEST_F(FusedOpsTest, MlaQueryEqualsSeparateOps) {
    const std::vector<float> inv_freq = mla_inv_freq();
    const RopeTable gpu_table = gpu_->make_rope_table(inv_freq, kMaxPositions);
    const RopeTable cpu_table = cpu_->make_rope_table(inv_freq, kMaxPositions);
    struct Dims {
        int64_t heads, q_dim;
    };
    for (const Dims d : {Dims{128, 192}, Dims{64, 256}, Dims{4, 192}}) {  // V3.2, GLM-5, the bundled model
        for (const RopeLayout layout : {RopeLayout::kInterleaved, RopeLayout::kNeox}) {
            for (const int64_t t : {1, 3, 64}) {
                const std::string what = "mla_query H=" + std::to_string(d.heads) + " d_qk=" + std::to_string(d.q_dim) +
                                         (layout == RopeLayout::kNeox ? " neox" : " interleaved") +
                                         " T=" + std::to_string(t);
                std::cout << "[ metric ] " << what << std::endl;
                const Tensor q = random_act({t, d.heads, d.q_dim}, rng_), qa = random_act({t, d.heads, 512}, rng_);
                const Tensor pos = slots_and_positions(t, rng_).second;
                const Tensor qd = up(q), qad = up(qa), posd = gpu_->to_device(pos);
                const Tensor got = gpu_->mla_query({qad, qd, posd, &gpu_table, layout});
                EXPECT_TRUE(cuda().last_query_fused()) << what;
                const Tensor ref = gpu_->Backend::mla_query({qad, qd, posd, &gpu_table, layout});
                EXPECT_TRUE(same_bytes(gpu_->to_host(got), gpu_->to_host(ref))) << what;
                EXPECT_TRUE(same_bytes(gpu_->to_host(qd), to_bf16(q))) << what << ": q modified";
                expect_close(what + " vs cpu", down(got), cpu_->mla_query({qa, q, pos, &cpu_table, layout}), 1e-6);
            }
        }
    }
}

IndexerKeyStore filled_key_store(IndexerKeyFormat format, int64_t pages, uint8_t fill) {
    IndexerKeyStore s;
    s.format = format;
    s.data = Tensor::empty({pages, indexer_page_bytes(format)}, DType::kU8);
    std::memset(s.data.raw_data(), fill, s.data.nbytes());
    return s;
}

// The keys of `slots` as f32 [n, 128]: f32 pages as stored, FP8 pages dequantized (e4m3 * the row's scale).
Tensor stored_keys(const Tensor& pages, IndexerKeyFormat format, const std::vector<int32_t>& slots) {
    Tensor out = Tensor::empty({static_cast<int64_t>(slots.size()), kIndexerHeadDim}, DType::kF32);
    for (size_t i = 0; i < slots.size(); ++i) {
        const int64_t page = slots[i] / kIndexerPageSize, row = slots[i] % kIndexerPageSize;
        const uint8_t* base = pages.data<uint8_t>() + page * indexer_page_bytes(format);
        float* dst = out.data<float>() + i * kIndexerHeadDim;
        if (format == IndexerKeyFormat::kF32) {
            std::memcpy(dst, base + row * kIndexerHeadDim * 4, kIndexerHeadDim * 4);
            continue;
        }
        float scale;
        std::memcpy(&scale, base + kIndexerFp8ScaleOffset + row * 4, 4);
        for (int64_t j = 0; j < kIndexerHeadDim; ++j) dst[j] = fp8e4m3_to_f32(base[row * kIndexerHeadDim + j]) * scale;
    }
    return out;
}

TEST_F(FusedOpsTest, IndexerKeyWriteEqualsSeparateOps) {
    constexpr int64_t kPages = kStoreSlots / kIndexerPageSize + 1;
    for (const bool fp8 : {true, false}) {
        for (const bool ue8m0 : {true, false}) {
            if (!fp8 && !ue8m0) continue;
            make(fp8 ? fp8_numerics(ue8m0) : Numerics::bf16());
            const IndexerKeyFormat format = fp8 ? IndexerKeyFormat::kFp8 : IndexerKeyFormat::kF32;
            const std::vector<float> inv_freq = mla_inv_freq();
            const RopeTable gpu_table = gpu_->make_rope_table(inv_freq, kMaxPositions);
            const RopeTable cpu_table = cpu_->make_rope_table(inv_freq, kMaxPositions);
            const Tensor w = uniform_f32({kIndexerHeadDim}, rng_, 0.5f, 1.5f);
            const Tensor b = uniform_f32({kIndexerHeadDim}, rng_, -0.5f, 0.5f);
            for (const RopeLayout layout : {RopeLayout::kNeox, RopeLayout::kInterleaved}) {
                for (const int64_t t : {1, 3, 64}) {
                    const std::string what =
                        std::string("indexer_key_write ") + indexer_key_format_name(format) + (ue8m0 ? " ue8m0" : "") +
                        (layout == RopeLayout::kNeox ? " neox" : " interleaved") + " T=" + std::to_string(t);
                    std::cout << "[ metric ] " << what << std::endl;
                    const Tensor wk_x = random_act({t, kIndexerHeadDim}, rng_, 2.0f, 0.3f);
                    const auto [slots, pos] = slots_and_positions(t, rng_);
                    IndexerKeyStore host = filled_key_store(format, kPages, 0x5A);
                    IndexerKeyStore fused{gpu_->to_device(host.data), format};
                    IndexerKeyStore separate{gpu_->to_device(host.data), format};
                    const Tensor x_d = up(wk_x);
                    IndexerKeyWriteParams p{
                        x_d, w, b, 1e-6f, gpu_->to_device(pos), &gpu_table, layout, gpu_->to_device(slots), &fused};
                    gpu_->indexer_key_write(p);
                    EXPECT_TRUE(cuda().last_key_write_fused()) << what;
                    p.store = &separate;
                    gpu_->Backend::indexer_key_write(p);
                    const Tensor got = gpu_->to_host(fused.data);
                    EXPECT_TRUE(same_bytes(got, gpu_->to_host(separate.data))) << what;
                    EXPECT_TRUE(same_bytes(gpu_->to_host(x_d), to_bf16(wk_x))) << what << ": wk_x modified";
                    // The CPU default (its own LayerNorm: another sum order) writes the same keys up to one rounding.
                    cpu_->indexer_key_write({wk_x, w, b, 1e-6f, pos, &cpu_table, layout, slots, &host});
                    std::vector<int32_t> written;
                    for (int64_t i = 0; i < t; ++i) {
                        if (slots.data<int32_t>()[i] >= 0) written.push_back(slots.data<int32_t>()[i]);
                    }
                    expect_close(what + " vs cpu", stored_keys(got, format, written),
                                 stored_keys(host.data, format, written), fp8 ? 3e-2 : 4e-3);
                }
            }
        }
    }
}

// Sets DSA_FUSED_WRITES for the scope (restores the old value).
class FusedWritesSwitch {
  public:
    explicit FusedWritesSwitch(const char* v) {
        if (const char* old = std::getenv(kName)) old_ = old, had_ = true;
        setenv(kName, v, 1);
    }
    ~FusedWritesSwitch() {
        if (had_) {
            setenv(kName, old_.c_str(), 1);
        } else {
            unsetenv(kName);
        }
    }

  private:
    static constexpr const char* kName = "DSA_FUSED_WRITES";
    std::string old_;
    bool had_ = false;
};

// rms_norm_q8_and_writes as one launch (DSA_FUSED_WRITES=1) against the three ops (the switch off): the norm's
// output, act_quant and scales, the latent rows and the key pages bit for bit (slots of -1 skipped), with and
// without the key write; q_a widths 1536 (DeepSeek: act_quant, 192 threads), 192 (the tiny fixtures) and 64 (a
// block of the latent write's 64 threads, wider than the norm's 32).
TEST_F(FusedOpsTest, NormAndWritesEqualSeparateOps) {
    constexpr int64_t kPages = kStoreSlots / kIndexerPageSize + 1;
    for (const bool fp8 : {true, false}) {
        make(fp8 ? Numerics::deepseek_fp8() : Numerics::bf16());
        const MlaKvFormat mla_format = fp8 ? MlaKvFormat::kFp8 : MlaKvFormat::kBF16;
        const IndexerKeyFormat key_format = fp8 ? IndexerKeyFormat::kFp8 : IndexerKeyFormat::kF32;
        const RopeTable table = gpu_->make_rope_table(mla_inv_freq(), kMaxPositions);
        const Tensor lw = uniform_f32({kMlaLatentDim}, rng_, 0.5f, 1.5f);
        const Tensor kw = uniform_f32({kIndexerHeadDim}, rng_, 0.5f, 1.5f);
        const Tensor kb = uniform_f32({kIndexerHeadDim}, rng_, -0.5f, 0.5f);
        for (const int64_t dim : {1536, 192, 64}) {
            const Tensor nw = uniform_f32({dim}, rng_, 0.5f, 1.5f);
            for (const bool with_key : {true, false}) {
                for (const int64_t t : {1, 3, 64}) {
                    const std::string what = std::string(fp8 ? "fp8" : "bf16") + " dim " + std::to_string(dim) +
                                             (with_key ? " with key" : " no key") + " T=" + std::to_string(t);
                    const Tensor x = up(random_act({t, dim}, rng_));
                    const Tensor kv_a = up(random_act({t, kMlaKvDim}, rng_, 3.0f));
                    const Tensor wk_x = up(random_act({t, kIndexerHeadDim}, rng_, 2.0f, 0.3f));
                    const auto [slots, pos] = slots_and_positions(t, rng_);
                    const Tensor slots_d = gpu_->to_device(slots), pos_d = gpu_->to_device(pos);
                    const MlaKvStore mla_host = filled_store(mla_format, 0xA5);
                    const IndexerKeyStore key_host = filled_key_store(key_format, kPages, 0x5A);
                    struct Out {
                        Tensor x, q8, scales, mla, keys;
                    };
                    auto run = [&](const char* sw) {
                        FusedWritesSwitch on(sw);
                        MlaKvStore mla{gpu_->to_device(mla_host.data), mla_format};
                        IndexerKeyStore keys{gpu_->to_device(key_host.data), key_format};
                        const MlaLatentWriteParams lp{
                            kv_a, lw, 1e-6f, pos_d, &table, RopeLayout::kInterleaved, slots_d, &mla};
                        const IndexerKeyWriteParams kp{
                            wk_x, kw, kb, 1e-6f, pos_d, &table, RopeLayout::kNeox, slots_d, &keys};
                        const QuantizedAct a =
                            gpu_->rms_norm_q8_and_writes(x, nw, 1e-6f, lp, with_key ? &kp : nullptr);
                        Out o{gpu_->to_host(a.x), Tensor(), Tensor(), gpu_->to_host(mla.data),
                              gpu_->to_host(keys.data)};
                        if (a.has_q8()) o.q8 = gpu_->to_host(a.q8), o.scales = gpu_->to_host(a.scales);
                        return o;
                    };
                    const Out sep = run("0");
                    EXPECT_FALSE(cuda().last_writes_fused()) << what;
                    const Out fused = run("1");
                    EXPECT_TRUE(cuda().last_writes_fused()) << what;
                    EXPECT_TRUE(same_bytes(fused.x, sep.x)) << what << ": norm output";
                    EXPECT_EQ(fused.q8.defined(), sep.q8.defined()) << what;
                    EXPECT_EQ(sep.q8.defined(), fp8 && dim % 128 == 0) << what;
                    if (fused.q8.defined() && sep.q8.defined()) {
                        EXPECT_TRUE(same_bytes(fused.q8, sep.q8)) << what << ": act_quant";
                        EXPECT_TRUE(same_bytes(fused.scales, sep.scales)) << what << ": act_quant scales";
                    }
                    EXPECT_TRUE(same_bytes(fused.mla, sep.mla)) << what << ": latent rows";
                    EXPECT_TRUE(same_bytes(fused.keys, sep.keys)) << what << ": key pages";
                    if (!with_key) {
                        EXPECT_TRUE(same_bytes(fused.keys, key_host.data)) << what << ": keys written";
                    }
                    EXPECT_FALSE(same_bytes(fused.mla, mla_host.data)) << what << ": no latent written";
                }
            }
        }
    }
}

// One request of kTopkKeys keys written by indexer_k_write (slot = position) and T queries seeing all of them.
struct TopkSetup {
    IndexerKeyStore store;
    Tensor key_slots, query_request, query_limit;
};
constexpr int64_t kTopkKeys = 200;

TopkSetup topk_setup(Backend& be, bool gpu, IndexerKeyFormat format, int64_t t, std::mt19937& rng) {
    TopkSetup s;
    const int64_t pages = (kTopkKeys + kIndexerPageSize - 1) / kIndexerPageSize;
    s.store = {be.to_device(Tensor::zeros({pages, indexer_page_bytes(format)}, DType::kU8)), format};
    s.key_slots = Tensor::empty({1, kTopkKeys}, DType::kI32);
    std::iota(s.key_slots.data<int32_t>(), s.key_slots.data<int32_t>() + kTopkKeys, 0);
    const Tensor k = to_bf16(random_act({kTopkKeys, kIndexerHeadDim}, rng));
    be.indexer_k_write({gpu ? be.to_device(k) : to_f32(k), be.to_device(s.key_slots.view({kTopkKeys})), &s.store});
    s.query_request = Tensor::zeros({t}, DType::kI32);
    s.query_limit = Tensor::empty({t}, DType::kI32);
    for (int64_t i = 0; i < t; ++i) s.query_limit.data<int32_t>()[i] = static_cast<int32_t>(kTopkKeys - 1 - i % 50);
    return s;
}

TEST_F(FusedOpsTest, IndexerTopkQRopeEqualsRopeThenTopk) {
    for (const int mode : {0, 1, 2}) {  // FP8 ue8m0, FP8 plain scales, bf16 numerics (f32 keys)
        make(mode == 2 ? Numerics::bf16() : fp8_numerics(mode == 0));
        const IndexerKeyFormat format = mode == 2 ? IndexerKeyFormat::kF32 : IndexerKeyFormat::kFp8;
        const std::vector<float> inv_freq = mla_inv_freq();
        const RopeTable gpu_table = gpu_->make_rope_table(inv_freq, kMaxPositions);
        const RopeTable cpu_table = cpu_->make_rope_table(inv_freq, kMaxPositions);
        for (const int64_t heads : {64, 4}) {
            for (const RopeLayout layout : {RopeLayout::kNeox, RopeLayout::kInterleaved}) {
                for (const int64_t t : {1, 3, 64}) {
                    const std::string what =
                        "indexer q rope mode=" + std::to_string(mode) + " heads=" + std::to_string(heads) +
                        (layout == RopeLayout::kNeox ? " neox" : " il") + " T=" + std::to_string(t);
                    std::cout << "[ metric ] " << what << std::endl;
                    const TopkSetup s = topk_setup(*gpu_, true, format, t, rng_);
                    const Tensor q = random_act({t, heads, kIndexerHeadDim}, rng_, 2.0f);
                    const Tensor w = random_act({t, heads}, rng_);
                    const Tensor pos = slots_and_positions(t, rng_).second;
                    IndexerTopkParams p{up(q), w, &s.store, s.key_slots, s.query_request, s.query_limit, 64, true};
                    p.q_rope = &gpu_table, p.q_rope_layout = layout, p.q_positions = gpu_->to_device(pos);
                    const IndexerTopkResult fused = gpu_->indexer_topk(p);
                    EXPECT_EQ(cuda().last_q_rope_fused(), mode != 2) << what;
                    if (mode != 2) {  // the fused path only reads q
                        EXPECT_TRUE(same_bytes(gpu_->to_host(p.q), to_bf16(q))) << what << ": q modified";
                    }
                    p.q = up(q), p.q_rope = nullptr;
                    gpu_->apply_rope({p.q, gpu_->to_device(pos), &gpu_table, layout, 0});
                    const IndexerTopkResult separate = gpu_->indexer_topk(p);
                    EXPECT_FALSE(cuda().last_q_rope_fused()) << what;
                    EXPECT_TRUE(same_bytes(gpu_->to_host(fused.scores), gpu_->to_host(separate.scores))) << what;
                    EXPECT_TRUE(same_bytes(gpu_->to_host(fused.positions), gpu_->to_host(separate.positions))) << what;
                    EXPECT_TRUE(same_bytes(gpu_->to_host(fused.slots), gpu_->to_host(separate.slots))) << what;
                }
            }
        }
        // CPU: q_rope is apply_rope then the op (bf16-valued f32 q, one shape).
        const TopkSetup s = topk_setup(*cpu_, false, format, 3, rng_);
        const Tensor q = to_f32(to_bf16(random_act({3, 4, kIndexerHeadDim}, rng_, 2.0f)));
        const Tensor w = random_act({3, 4}, rng_);
        const Tensor pos = slots_and_positions(3, rng_).second;
        IndexerTopkParams p{q.clone(), w, &s.store, s.key_slots, s.query_request, s.query_limit, 64, true};
        p.q_rope = &cpu_table, p.q_rope_layout = RopeLayout::kNeox, p.q_positions = pos;
        const IndexerTopkResult fused = cpu_->indexer_topk(p);
        p.q = q.clone(), p.q_rope = nullptr;
        cpu_->apply_rope({p.q, pos, &cpu_table, RopeLayout::kNeox, 0});
        const IndexerTopkResult separate = cpu_->indexer_topk(p);
        EXPECT_TRUE(same_bytes(fused.scores, separate.scores)) << "cpu mode=" << mode;
        EXPECT_TRUE(same_bytes(fused.positions, separate.positions)) << "cpu mode=" << mode;
    }
}

}  // namespace
}  // namespace dsa::backend::testing
