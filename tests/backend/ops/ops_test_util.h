// Helpers of the CPU-vs-CUDA op tests: a fixture with both backends (skips when no GPU is present; the CUDA
// backend poisons new allocations with NaN so unwritten outputs fail), bf16-exact random inputs, host/device
// conversions, and the scale-free comparison (relative L2, cosine difference 1 - 2Σxy/Σ(x²+y²), max |Δ|,
// non-finite count) printed for every case so the log carries the measured errors.
#pragma once

#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <iostream>
#include <memory>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "tensor/numeric.h"

namespace dsa::backend::testing {

// Random f32 values already on the bf16 grid (both backends then start from identical inputs).
inline Tensor random_act(const Shape& shape, std::mt19937& rng, float stddev = 1.0f, float mean = 0.0f) {
    Tensor t = Tensor::empty(shape, DType::kF32);
    std::normal_distribution<float> d(mean, stddev);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = round_bf16(d(rng));
    return t;
}

inline Tensor uniform_f32(const Shape& shape, std::mt19937& rng, float lo, float hi) {
    Tensor t = Tensor::empty(shape, DType::kF32);
    std::uniform_real_distribution<float> d(lo, hi);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(rng);
    return t;
}

inline Tensor to_bf16(const Tensor& f) {
    Tensor b = Tensor::empty(f.shape(), DType::kBF16);
    for (int64_t i = 0; i < f.numel(); ++i) b.data<uint16_t>()[i] = f32_to_bf16(f.data<float>()[i]);
    return b;
}

inline Tensor to_f32(const Tensor& t) {
    if (t.dtype() == DType::kF32) return t;
    EXPECT_EQ(t.dtype(), DType::kBF16);
    Tensor f = Tensor::empty(t.shape(), DType::kF32);
    for (int64_t i = 0; i < t.numel(); ++i) f.data<float>()[i] = bf16_to_f32(t.data<uint16_t>()[i]);
    return f;
}

inline Tensor i32_tensor(const std::vector<int32_t>& v) {
    Tensor t = Tensor::empty({static_cast<int64_t>(v.size())}, DType::kI32);
    for (size_t i = 0; i < v.size(); ++i) t.data<int32_t>()[i] = v[i];
    return t;
}

// Random FP8 e4m3 weight [out, in] (every finite code) with f32 scale_inv blocks in [lo, hi).
inline LinearWeight random_fp8_weight(int64_t out, int64_t in, std::mt19937& rng, float lo = 1e-4f,
                                      float hi = 4e-4f) {
    LinearWeight w{Tensor::empty({out, in}, DType::kF8E4M3, Device::kCPU, "w_fp8"),
                   Tensor::empty({(out + 127) / 128, (in + 127) / 128}, DType::kF32, Device::kCPU, "w_scale_inv")};
    std::uniform_int_distribution<int> byte(0, 255);
    for (int64_t i = 0; i < w.weight.numel(); ++i) {
        int b = byte(rng);
        if ((b & 0x7f) == 0x7f) b &= 0xfe;  // skip the NaN codes
        w.weight.data<uint8_t>()[i] = static_cast<uint8_t>(b);
    }
    std::uniform_real_distribution<float> s(lo, hi);
    for (int64_t i = 0; i < w.scale_inv.numel(); ++i) w.scale_inv.data<float>()[i] = s(rng);
    return w;
}

inline LinearWeight random_bf16_weight(int64_t out, int64_t in, std::mt19937& rng, float stddev = 0.02f) {
    return LinearWeight{to_bf16(random_act({out, in}, rng, stddev)), {}};
}

struct Diff {
    double rel_l2 = 0, cos_diff = 0, max_abs = 0;
    int64_t nonfinite = 0;  // elements of `got` that are NaN/inf where the reference is finite
};

inline Diff compare(const Tensor& got_any, const Tensor& ref_any) {
    Tensor got = to_f32(got_any), ref = to_f32(ref_any);
    Diff d;
    EXPECT_EQ(got.shape(), ref.shape());
    if (got.shape() != ref.shape()) return d;
    double num = 0, den = 0, xy = 0, xx_yy = 0;
    for (int64_t i = 0; i < got.numel(); ++i) {
        const double g = got.data<float>()[i], r = ref.data<float>()[i];
        if (!std::isfinite(g) && std::isfinite(r)) {
            ++d.nonfinite;
            continue;
        }
        num += (g - r) * (g - r);
        den += r * r;
        xy += g * r;
        xx_yy += g * g + r * r;
        d.max_abs = std::max(d.max_abs, std::fabs(g - r));
    }
    d.rel_l2 = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
    d.cos_diff = xx_yy > 0 ? 1.0 - 2.0 * xy / xx_yy : 0.0;
    return d;
}

// Compares and reports; rel_l2 must be <= tol (and every element written and finite).
inline void expect_close(const std::string& what, const Tensor& got, const Tensor& ref, double tol) {
    const Diff d = compare(got, ref);
    std::cout << "[ metric ] " << what << " " << shape_to_string(ref.shape()) << " rel_l2=" << d.rel_l2
              << " cos_diff=" << d.cos_diff << " max_abs=" << d.max_abs << " nonfinite=" << d.nonfinite
              << " (tol rel_l2 " << tol << ")\n";
    EXPECT_EQ(d.nonfinite, 0) << what;
    EXPECT_LE(d.rel_l2, tol) << what;
}

// Both backends; skips the test when no CUDA device is present.
// Sets (or, with nullptr, unsets) an environment variable for a scope and restores its previous value after (the
// backend's switches are read at every call or through setters; tests flip them per case).
class EnvScope {
  public:
    EnvScope(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old, had_ = true;
        set(value);
    }
    ~EnvScope() { set(had_ ? old_.c_str() : nullptr); }
    EnvScope(const EnvScope&) = delete;
    EnvScope& operator=(const EnvScope&) = delete;

  private:
    void set(const char* v) {
        if (v != nullptr) {
            ::setenv(name_.c_str(), v, 1);
        } else {
            ::unsetenv(name_.c_str());
        }
    }
    std::string name_, old_;
    bool had_ = false;
};

class CudaVsCpuTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device present";
        make(Numerics::bf16());
    }
    void make(const Numerics& n) {
        gpu_.reset();
        gpu_ = make_cuda_backend(n, 0);
        cpu_ = make_cpu_backend(n);
        cuda().set_poison_allocations(true);
    }
    cuda::CudaBackend& cuda() { return static_cast<cuda::CudaBackend&>(*gpu_); }
    // Host f32 (bf16-valued) activation -> device bf16.
    Tensor up(const Tensor& f32) { return gpu_->to_device(to_bf16(f32)); }
    Tensor down(const Tensor& dev) { return to_f32(gpu_->to_host(dev)); }

    std::unique_ptr<Backend> cpu_, gpu_;
    std::mt19937 rng_{20261128};
};

}  // namespace dsa::backend::testing
