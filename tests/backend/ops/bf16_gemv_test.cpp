// The weight-streaming BF16 GEMV kernels (bf16_stream_gemv.h) against a double-precision host loop at the shapes
// they serve: the indexer's weights_proj (64 x 7168) and a router-sized weight (256 x 7168) in the rows layout,
// the MLA W_UV absorb (128 heads of 128 x 512, strided inside kv_b) in the rows layout and the W_UK absorb
// (128 x 512 per head, DeepSeek; 192 x 512, GLM-5) in the columns layout, for 1..8 activation rows; short rows
// (k <= 512) at sizes that take the multi-row-per-warp kernel.
// Tolerances: f32 outputs rel L2 <= 1e-5 (FP32 accumulation in a different order), bf16 outputs <= 4e-3 (one
// bf16 rounding). Outputs start as NaN, so an unwritten element fails.
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "backend/cuda/bf16_stream_gemv.h"
#include "ops_test_util.h"

namespace dsa::backend::testing {
namespace {

class Bf16GemvTest : public CudaVsCpuTest {
protected:
    // Host bf16 tensor of `n` random values (as f32 on the bf16 grid) and its device copy.
    struct Buf {
        Tensor host_f32, dev;
    };
    Buf random_buf(int64_t n, float stddev) {
        Buf b;
        b.host_f32 = random_act({n}, rng_, stddev);
        b.dev = gpu_->to_device(to_bf16(b.host_f32));
        return b;
    }
    Tensor nan_output(int64_t n, bool f32) {
        Tensor t = Tensor::empty({n}, DType::kF32);
        for (int64_t i = 0; i < n; ++i) t.data<float>()[i] = std::numeric_limits<float>::quiet_NaN();
        return gpu_->to_device(f32 ? t : to_bf16(t));
    }
    void sync() { ASSERT_EQ(cudaStreamSynchronize(cuda().stream()), cudaSuccess); }
};

// y[b][m][n] from the same strides as the kernel, in double; `cols` picks W[b][k][n] instead of W[b][n][k].
Tensor reference(const cuda::Bf16GemvParams& p, const Tensor& x, const Tensor& w, bool cols, int64_t y_elems) {
    Tensor y = Tensor::zeros({y_elems}, DType::kF32);
    for (int64_t b = 0; b < p.batch; ++b) {
        for (int64_t m = 0; m < p.m; ++m) {
            for (int64_t n = 0; n < p.n; ++n) {
                double s = 0;
                for (int64_t k = 0; k < p.k; ++k) {
                    const int64_t wi = b * p.w_batch_stride + (cols ? k * p.ldw + n : n * p.ldw + k);
                    s += static_cast<double>(x.data<float>()[b * p.x_batch_stride + m * p.ldx + k]) *
                         w.data<float>()[wi];
                }
                y.data<float>()[b * p.y_batch_stride + m * p.ldy + n] = static_cast<float>(s);
            }
        }
    }
    return y;
}

// Only the elements the kernel owns (the rest of y stays NaN on both sides and is not compared).
Tensor owned(const cuda::Bf16GemvParams& p, const Tensor& y) {
    Tensor out = Tensor::empty({p.batch * p.m * p.n}, DType::kF32);
    int64_t i = 0;
    for (int64_t b = 0; b < p.batch; ++b) {
        for (int64_t m = 0; m < p.m; ++m) {
            for (int64_t n = 0; n < p.n; ++n) out.data<float>()[i++] = y.data<float>()[b * p.y_batch_stride + m * p.ldy + n];
        }
    }
    return out;
}

struct Case {
    std::string name;
    cuda::Bf16GemvParams p;  // pointers filled by run()
    int64_t x_elems, w_elems, y_elems;
    bool cols;
};

TEST_F(Bf16GemvTest, MatchesHostLoop) {
    std::vector<Case> cases;
    for (int64_t m : {1, 2, 3, 8}) {
        for (int64_t n : {64, 256}) {  // weights_proj, router
            cuda::Bf16GemvParams p;
            p.m = m, p.n = n, p.k = 7168, p.ldx = 7168, p.ldw = 7168, p.ldy = n;
            cases.push_back({"rows " + std::to_string(n) + "x7168 m=" + std::to_string(m), p, m * 7168, n * 7168, m * n,
                             false});
        }
        // W_UV absorb: head h's 128 x 512 block starts at row h * 256 + 128 of kv_b [128 * 256, 512].
        cuda::Bf16GemvParams o;
        o.m = m, o.n = 128, o.k = 512, o.batch = 128;
        o.ldx = 128 * 512, o.x_batch_stride = 512, o.ldw = 512, o.w_batch_stride = 256 * 512;
        o.ldy = 128 * 128, o.y_batch_stride = 128;
        cases.push_back({"rows W_UV m=" + std::to_string(m), o, m * 128 * 512, 128 * 256 * 512, m * 128 * 128, false});
        // W_UK absorb: head h's d_n x 512 block (rows h * block ..), d_n = 128 (DeepSeek) or 192 (GLM-5).
        for (int64_t dn : {128, 192}) {
            const int64_t heads = dn == 128 ? 128 : 64, block = dn == 128 ? 256 : 448;
            cuda::Bf16GemvParams q;
            q.m = m, q.n = 512, q.k = dn, q.batch = heads;
            q.ldx = heads * dn, q.x_batch_stride = dn, q.ldw = 512, q.w_batch_stride = block * 512;
            q.ldy = heads * 512, q.y_batch_stride = 512;
            cases.push_back({"cols W_UK d_n=" + std::to_string(dn) + " m=" + std::to_string(m), q, m * heads * dn,
                             heads * block * 512, m * heads * 512, true});
        }
    }
    // Short rows (k <= 512) past the sizes where a warp takes 2 (5000 rows) or 4 (9000 rows) of them, with a partial
    // last CTA and one or two 8-element vectors per lane.
    for (int64_t m : {1, 5}) {
        for (const auto& [n, k, batch] : {std::tuple<int64_t, int64_t, int64_t>{1000, 264, 5}, {4500, 8, 2}}) {
            cuda::Bf16GemvParams s;
            s.m = m, s.n = n, s.k = k, s.batch = batch;
            s.ldx = batch * k, s.x_batch_stride = k, s.ldw = k, s.w_batch_stride = n * k;
            s.ldy = batch * n, s.y_batch_stride = n;
            cases.push_back({"rows short " + std::to_string(batch) + "x" + std::to_string(n) + "x" + std::to_string(k) +
                                 " m=" + std::to_string(m),
                             s, m * batch * k, batch * n * k, m * batch * n, false});
        }
    }
    for (Case& c : cases) {
        for (bool f32 : {false, true}) {
            const Buf x = random_buf(c.x_elems, 1.0f), w = random_buf(c.w_elems, 0.05f);
            Tensor y = nan_output(c.y_elems, f32);
            cuda::Bf16GemvParams p = c.p;
            p.x = x.dev.data<uint16_t>(), p.w = w.dev.data<uint16_t>(), p.y = y.raw_data(), p.y_f32 = f32;
            if (c.cols) {
                ASSERT_TRUE(cuda::bf16_gemv_cols_supported(p)) << c.name;
                cuda::launch_bf16_gemv_cols(p, cuda().stream());
            } else {
                ASSERT_TRUE(cuda::bf16_gemv_rows_supported(p)) << c.name;
                cuda::launch_bf16_gemv_rows(p, cuda().stream());
            }
            sync();
            const Tensor ref = reference(p, x.host_f32, w.host_f32, c.cols, c.y_elems);
            expect_close(c.name + (f32 ? " f32" : " bf16"), owned(p, down(y)), owned(p, ref), f32 ? 1e-5 : 4e-3);
        }
    }
}

// Through the ops that use the kernels: linear with a BF16 weight (the indexer's weights_proj, f32 output; a
// dense projection, bf16 output) and the MLA absorbs at decode sizes, against the CPU backend.
TEST_F(Bf16GemvTest, OpsAgreeWithCpu) {
    for (int64_t m : {1, 3, 8}) {
        const LinearWeight wp = random_bf16_weight(64, 7168, rng_), wd = random_bf16_weight(2048, 7168, rng_);
        const Tensor x = random_act({m, 7168}, rng_);
        const std::string tag = " M=" + std::to_string(m);
        expect_close("linear bf16 64x7168 f32 out" + tag, down(gpu_->linear(up(x), wp, LinearOutput::kF32)),
                     cpu_->linear(x, wp, LinearOutput::kF32), 1e-5);
        expect_close("linear bf16 2048x7168" + tag, down(gpu_->linear(up(x), wd)), cpu_->linear(x, wd), 4e-3);
        const MlaHeadDims d{128, 128, 128};
        const LinearWeight kv_b = random_bf16_weight(128 * 256, 512, rng_, 0.05f);
        const Tensor q_nope = random_act({m, 128, 128}, rng_), o_lat = random_act({m, 128, 512}, rng_);
        expect_close("mla_absorb_q" + tag, down(gpu_->mla_absorb_q(up(q_nope), kv_b, d)),
                     cpu_->mla_absorb_q(q_nope, kv_b, d), 4e-3);
        expect_close("mla_absorb_o" + tag, down(gpu_->mla_absorb_o(up(o_lat), kv_b, d)),
                     cpu_->mla_absorb_o(o_lat, kv_b, d), 4e-3);
    }
}

TEST_F(Bf16GemvTest, RefusesWhatItCannotTake) {
    cuda::Bf16GemvParams p;
    p.m = 9, p.n = 64, p.k = 7168, p.ldx = 7168, p.ldw = 7168, p.ldy = 64;
    Tensor buf = gpu_->to_device(Tensor::zeros({64 * 7168}, DType::kBF16));
    p.x = p.w = buf.data<uint16_t>();
    EXPECT_FALSE(cuda::bf16_gemv_rows_supported(p)) << "m above kBf16GemvMaxRows";
    p.m = 1, p.k = 7164;
    EXPECT_FALSE(cuda::bf16_gemv_rows_supported(p)) << "k not a multiple of 8";
    p.k = 7168, p.x = buf.data<uint16_t>() + 1;
    EXPECT_FALSE(cuda::bf16_gemv_rows_supported(p)) << "misaligned x";
    p.x = buf.data<uint16_t>(), p.k = 2048, p.n = 512, p.ldw = 512, p.ldy = 512;
    EXPECT_FALSE(cuda::bf16_gemv_cols_supported(p)) << "columns layout with k above its shared-memory limit";
}

}  // namespace
}  // namespace dsa::backend::testing
