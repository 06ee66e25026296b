// fp8 e4m3fn tables and conversion.
#include "tensor/numeric.h"

#include <array>

namespace dsa {
namespace {

float decode_e4m3(uint8_t b) {
    uint32_t sign = b >> 7, exp = (b >> 3) & 0xf, man = b & 0x7;
    float v;
    if (exp == 0xf && man == 0x7) return NAN;
    if (exp == 0) v = std::ldexp(static_cast<float>(man), -9);  // subnormal: man/8 * 2^-6
    else v = std::ldexp(static_cast<float>(8 + man), static_cast<int>(exp) - 10);
    return sign ? -v : v;
}

const std::array<float, 256>& e4m3_table() {
    static const std::array<float, 256> t = [] {
        std::array<float, 256> a{};
        for (int i = 0; i < 256; ++i) a[i] = decode_e4m3(static_cast<uint8_t>(i));
        return a;
    }();
    return t;
}

}  // namespace

float fp8e4m3_to_f32(uint8_t b) { return e4m3_table()[b]; }

uint8_t f32_to_fp8e4m3(float f) {
    uint8_t sign = std::signbit(f) ? 0x80 : 0x00;
    if (std::isnan(f)) return sign | 0x7f;
    float a = std::fabs(f);
    if (a >= kFp8E4M3Max) return sign | 0x7e;  // saturate to 448
    // Quantum: subnormal range (a < 2^-6) has spacing 2^-9; normal binade [2^e, 2^(e+1)) has spacing 2^(e-3).
    int e;
    std::frexp(a, &e);  // a = m * 2^e with m in [0.5, 1)
    int exp_unbiased = e - 1;
    float quantum = exp_unbiased < -6 ? std::ldexp(1.0f, -9) : std::ldexp(1.0f, exp_unbiased - 3);
    float q = std::nearbyint(a / quantum) * quantum;  // default rounding mode is round-half-even
    if (q >= kFp8E4M3Max) return sign | 0x7e;
    if (q == 0.0f) return sign;
    int qe;
    float qm = std::frexp(q, &qe);
    int eu = qe - 1;
    if (eu < -6) {  // subnormal
        int man = static_cast<int>(std::lround(q / std::ldexp(1.0f, -9)));
        return sign | static_cast<uint8_t>(man);
    }
    int man = static_cast<int>(std::lround((qm * 2.0f - 1.0f) * 8.0f));
    return sign | static_cast<uint8_t>(((eu + 7) << 3) | man);
}

float pow2_ceil(float x) {
    if (!(x > 0.0f)) return x;
    int e;
    float m = std::frexp(x, &e);  // x = m * 2^e, m in [0.5, 1)
    return m == 0.5f ? std::ldexp(1.0f, e - 1) : std::ldexp(1.0f, e);
}

}  // namespace dsa
