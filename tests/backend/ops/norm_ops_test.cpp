// CUDA vs CPU (Numerics::bf16()) for embedding, RMSNorm (+ residual add), LayerNorm, add, narrow/concat and
// RoPE at DeepSeek-V3.2 shapes. Tolerances: copies and the bf16 add are exact (same f32 add, same rounding);
// norms allow one bf16 ulp on rare elements from FP32-vs-double statistics (rel L2 <= 2e-3); RoPE uses the same
// two roundings as the reference (rel L2 <= 1e-3).
#include <numeric>

#include "ops_test_util.h"

namespace dsa::backend::testing {
namespace {

using OpsTest = CudaVsCpuTest;

TEST_F(OpsTest, Embedding) {
    for (DType table_dtype : {DType::kBF16, DType::kF32}) {
        Tensor table_f = random_act({2048, 7168}, rng_);
        Tensor table = table_dtype == DType::kBF16 ? to_bf16(table_f) : table_f;
        std::vector<int32_t> ids(37);
        std::uniform_int_distribution<int> id(0, 2047);
        for (auto& v : ids) v = id(rng_);
        Tensor ref = cpu_->embedding(table, i32_tensor(ids));
        Tensor got = down(gpu_->embedding(table, i32_tensor(ids)));
        const Diff d = compare(got, ref);
        std::cout << "[ metric ] embedding " << dtype_name(table_dtype) << " max_abs=" << d.max_abs << "\n";
        EXPECT_EQ(d.max_abs, 0.0);
        EXPECT_EQ(d.nonfinite, 0);
    }
}

TEST_F(OpsTest, RmsNorm) {
    for (int64_t dim : {7168, 1536, 512}) {
        Tensor x = random_act({37, dim}, rng_, 3.0f);
        Tensor w = uniform_f32({dim}, rng_, 0.5f, 1.5f);
        expect_close("rms_norm", down(gpu_->rms_norm(up(x), w, 1e-6f)), cpu_->rms_norm(x, w, 1e-6f), 2e-3);
    }
    // Odd width: the scalar (non-vector) kernel.
    Tensor x = random_act({5, 100}, rng_);
    Tensor w = uniform_f32({100}, rng_, 0.5f, 1.5f);
    expect_close("rms_norm odd", down(gpu_->rms_norm(up(x), w, 1e-6f)), cpu_->rms_norm(x, w, 1e-6f), 2e-3);
}

TEST_F(OpsTest, AddRmsNorm) {
    Tensor h = random_act({37, 7168}, rng_, 4.0f), delta = random_act({37, 7168}, rng_);
    Tensor w = uniform_f32({7168}, rng_, 0.5f, 1.5f);
    Tensor h_gpu = up(h);
    Tensor got = down(gpu_->add_rms_norm(h_gpu, up(delta), w, 1e-6f));
    Tensor h_cpu = h.clone();
    Tensor ref = cpu_->add_rms_norm(h_cpu, delta, w, 1e-6f);
    const Diff dr = compare(down(h_gpu), h_cpu);
    std::cout << "[ metric ] add_rms_norm residual max_abs=" << dr.max_abs << "\n";
    EXPECT_EQ(dr.max_abs, 0.0) << "the residual is one f32 add + one bf16 rounding on both backends";
    EXPECT_EQ(dr.nonfinite, 0);
    expect_close("add_rms_norm out", got, ref, 2e-3);
}

TEST_F(OpsTest, LayerNorm) {
    Tensor x = random_act({37, 128}, rng_, 2.0f, 0.5f);
    Tensor w = uniform_f32({128}, rng_, 0.5f, 1.5f), b = uniform_f32({128}, rng_, -0.5f, 0.5f);
    expect_close("layer_norm", down(gpu_->layer_norm(up(x), w, b, 1e-6f)), cpu_->layer_norm(x, w, b, 1e-6f), 2e-3);
}

// Both kernel forms: rows of at most 8 (vector) or 1 (scalar) elements per thread run in registers in one pass
// (7168 at one row, 100, 128); wider rows (16384 vector, 1100 scalar) run the two-pass loop.
TEST_F(OpsTest, NormsInRegistersAndLooped) {
    for (int64_t dim : {16384, 1100, 7168, 100}) {
        const int64_t rows = dim == 7168 ? 1 : 3;
        const std::string d = " dim=" + std::to_string(dim);
        Tensor x = random_act({rows, dim}, rng_, 3.0f), delta = random_act({rows, dim}, rng_);
        Tensor w = uniform_f32({dim}, rng_, 0.5f, 1.5f), b = uniform_f32({dim}, rng_, -0.5f, 0.5f);
        expect_close("rms_norm" + d, down(gpu_->rms_norm(up(x), w, 1e-6f)), cpu_->rms_norm(x, w, 1e-6f), 2e-3);
        Tensor h_gpu = up(x), h_cpu = x.clone();
        Tensor got = down(gpu_->add_rms_norm(h_gpu, up(delta), w, 1e-6f));
        expect_close("add_rms_norm" + d, got, cpu_->add_rms_norm(h_cpu, delta, w, 1e-6f), 2e-3);
        EXPECT_EQ(compare(down(h_gpu), h_cpu).max_abs, 0.0) << "add_rms_norm residual" << d;
        expect_close("layer_norm" + d, down(gpu_->layer_norm(up(x), w, b, 1e-6f)), cpu_->layer_norm(x, w, b, 1e-6f),
                     2e-3);
    }
}

TEST_F(OpsTest, AddIsExact) {
    for (Shape s : {Shape{37, 7168}, Shape{3, 5}}) {
        Tensor a = random_act(s, rng_), b = random_act(s, rng_);
        const Diff d = compare(down(gpu_->add(up(a), up(b))), cpu_->add(a, b));
        std::cout << "[ metric ] add " << shape_to_string(s) << " max_abs=" << d.max_abs << "\n";
        EXPECT_EQ(d.max_abs, 0.0);
        EXPECT_EQ(d.nonfinite, 0);
    }
}

TEST_F(OpsTest, NarrowAndConcatAreExact) {
    Tensor kv = random_act({37, 576}, rng_);
    Tensor kv_gpu = up(kv);
    for (auto [b, e] : {std::pair<int64_t, int64_t>{0, 512}, {512, 576}}) {
        const Diff d = compare(down(gpu_->narrow_last(kv_gpu, b, e)), cpu_->narrow_last(kv, b, e));
        EXPECT_EQ(d.max_abs, 0.0) << b << ":" << e;
        EXPECT_EQ(d.nonfinite, 0);
    }
    Tensor q = random_act({37, 128, 192}, rng_);
    EXPECT_EQ(compare(down(gpu_->narrow_last(up(q), 128, 192)), cpu_->narrow_last(q, 128, 192)).max_abs, 0.0);
    Tensor nope = random_act({37, 128, 128}, rng_), pe = random_act({37, 128, 64}, rng_);
    std::vector<Tensor> host_parts{nope, pe}, dev_parts{up(nope), up(pe)};
    const Diff d = compare(down(gpu_->concat_last(dev_parts)), cpu_->concat_last(host_parts));
    std::cout << "[ metric ] concat_last [37,128,192] max_abs=" << d.max_abs << " nonfinite=" << d.nonfinite << "\n";
    EXPECT_EQ(d.max_abs, 0.0);
    EXPECT_EQ(d.nonfinite, 0);
}

TEST_F(OpsTest, Rope) {
    std::vector<float> inv_freq(32);
    for (int i = 0; i < 32; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / 64.0f);
    const int64_t max_pos = 4096;
    RopeTable cpu_table = cpu_->make_rope_table(inv_freq, max_pos);
    RopeTable gpu_table = gpu_->make_rope_table(inv_freq, max_pos);
    std::vector<int32_t> pos(37);
    std::uniform_int_distribution<int> p(0, max_pos - 1);
    for (auto& v : pos) v = p(rng_);
    pos[0] = max_pos - 1;
    struct Case {
        const char* name;
        Shape shape;
        RopeLayout layout;
        int64_t offset;
    };
    for (const Case& c : {Case{"q_pe interleaved", {37, 128, 192}, RopeLayout::kInterleaved, 128},
                          Case{"k_pe interleaved", {37, 1, 64}, RopeLayout::kInterleaved, 0},
                          Case{"indexer neox", {37, 64, 128}, RopeLayout::kNeox, 0}}) {
        Tensor x = random_act(c.shape, rng_);
        Tensor x_gpu = up(x);
        Tensor x_cpu = x.clone();
        cpu_->apply_rope({x_cpu, i32_tensor(pos), &cpu_table, c.layout, c.offset});
        gpu_->apply_rope({x_gpu, i32_tensor(pos), &gpu_table, c.layout, c.offset});
        expect_close(std::string("rope ") + c.name, down(x_gpu), x_cpu, 1e-3);
    }
}

}  // namespace
}  // namespace dsa::backend::testing
