// KV writes and reads at the byte level: the 656-byte FP8 MLA layout (e4m3 c_kv, power-of-two tile scales,
// bf16 k_pe), the bf16 and f32 layouts, and the paged indexer key store (Hadamard + act_quant in FP8 pages of
// 8448 bytes, or plain f32 pages).
#include <cmath>
#include <cstring>
#include <random>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cpu/quant.h"
#include "test_util.h"

namespace dsa::backend {
namespace {

using testing::random_f32;

MlaKvStore make_mla_store(int64_t slots, MlaKvFormat f) {
    return MlaKvStore{Tensor::zeros({slots, mla_kv_bytes_per_token(f)}, DType::kU8), f};
}

IndexerKeyStore make_indexer_store(int64_t pages, IndexerKeyFormat f) {
    return IndexerKeyStore{Tensor::zeros({pages, indexer_page_bytes(f)}, DType::kU8), f};
}

TEST(MlaKv, Fp8LayoutRoundTrip) {
    std::mt19937 rng(40);
    auto be = make_cpu_backend(Numerics::deepseek_fp8());
    MlaKvStore store = make_mla_store(4, MlaKvFormat::kFp8);
    Tensor c_kv = random_f32({3, 512}, rng, 2.0f);
    for (int i = 128; i < 256; ++i) c_kv.data<float>()[i] *= 1e-3f;  // tile 1 of token 0: the 1e-4 scale floor
    Tensor k_pe = random_f32({3, 64}, rng);
    be->mla_kv_write({c_kv, k_pe, testing::i32_tensor({3, -1, 1}), &store});
    const uint8_t* base = store.data.data<uint8_t>();
    for (int64_t i = 0; i < 656; ++i) {  // slots 0 and 2 untouched, the -1 token skipped
        EXPECT_EQ(base[i], 0);
        EXPECT_EQ(base[2 * 656 + i], 0);
    }
    const int tok[] = {0, 2}, slot[] = {3, 1};
    for (int n = 0; n < 2; ++n) {
        const uint8_t* row = base + slot[n] * 656;
        const float* x = c_kv.data<float>() + tok[n] * 512;
        for (int j = 0; j < 4; ++j) {
            float amax = 0.0f;
            for (int i = 0; i < 128; ++i) amax = std::max(amax, std::fabs(x[j * 128 + i]));
            float scale;
            std::memcpy(&scale, row + 512 + 4 * j, 4);
            EXPECT_EQ(scale, std::exp2(std::ceil(std::log2(std::max(amax / 448.0f, 1e-4f))))) << "tile " << j;
            for (int i = 0; i < 128; ++i) {
                EXPECT_EQ(row[j * 128 + i], f32_to_fp8e4m3(x[j * 128 + i] / scale)) << j << "," << i;
            }
        }
        for (int i = 0; i < 64; ++i) {
            uint16_t b;
            std::memcpy(&b, row + 528 + 2 * i, 2);
            EXPECT_EQ(b, f32_to_bf16(k_pe.data<float>()[tok[n] * 64 + i]));
        }
    }
    // Read back: dequantized c_kv within e4m3 precision, k_pe exact to bf16.
    Tensor back = be->mla_kv_read(store, testing::i32_tensor({3}));
    for (int i = 0; i < 512; ++i) {
        const float x = c_kv.data<float>()[i], y = back.data<float>()[i];
        EXPECT_NEAR(y, x, std::fabs(x) * 0.0625 + 1e-6) << i;
    }
    for (int i = 0; i < 64; ++i) EXPECT_EQ(back.data<float>()[512 + i], round_bf16(k_pe.data<float>()[i]));
}

TEST(MlaKv, Bf16AndF32Layouts) {
    std::mt19937 rng(41);
    auto be = make_cpu_backend(Numerics::fp32());
    Tensor c_kv = random_f32({2, 512}, rng), k_pe = random_f32({2, 64}, rng);
    for (MlaKvFormat f : {MlaKvFormat::kBF16, MlaKvFormat::kF32}) {
        MlaKvStore store = make_mla_store(3, f);
        be->mla_kv_write({c_kv, k_pe, testing::i32_tensor({2, 0}), &store});
        Tensor back = be->mla_kv_read(store, testing::i32_tensor({2, 0}));
        for (int t = 0; t < 2; ++t) {
            for (int i = 0; i < 576; ++i) {
                const float x = i < 512 ? c_kv.data<float>()[t * 512 + i] : k_pe.data<float>()[t * 64 + i - 512];
                EXPECT_EQ(back.data<float>()[t * 576 + i], f == MlaKvFormat::kF32 ? x : round_bf16(x));
            }
        }
        if (f == MlaKvFormat::kBF16) {  // c_kv first, then k_pe, as bf16
            uint16_t b;
            std::memcpy(&b, store.data.data<uint8_t>() + 2 * 1152 + 511 * 2, 2);
            EXPECT_EQ(b, f32_to_bf16(c_kv.data<float>()[511]));
            std::memcpy(&b, store.data.data<uint8_t>() + 2 * 1152 + 512 * 2, 2);
            EXPECT_EQ(b, f32_to_bf16(k_pe.data<float>()[0]));
        }
    }
}

TEST(IndexerKeys, Fp8PagedLayout) {
    std::mt19937 rng(42);
    auto be = make_cpu_backend(Numerics::deepseek_fp8());
    IndexerKeyStore store = make_indexer_store(2, IndexerKeyFormat::kFp8);
    ASSERT_EQ(store.data.dim(1), 8448);
    Tensor k = random_f32({2, 128}, rng);
    be->indexer_k_write({k, testing::i32_tensor({70, 5}), &store});  // page 1 row 6; page 0 row 5
    const int slot[] = {70, 5};
    for (int t = 0; t < 2; ++t) {
        std::vector<float> rotated(k.data<float>() + t * 128, k.data<float>() + t * 128 + 128);
        cpu::hadamard128(rotated.data());
        for (float& v : rotated) v = round_bf16(v);
        uint8_t q8[128];
        const float scale = cpu::act_quant_block(rotated.data(), 128, /*ue8m0=*/true, q8);
        const uint8_t* page = store.data.data<uint8_t>() + (slot[t] / 64) * 8448;
        const int row = slot[t] % 64;
        EXPECT_EQ(std::memcmp(page + row * 128, q8, 128), 0) << t;
        float stored;
        std::memcpy(&stored, page + 8192 + row * 4, 4);
        EXPECT_EQ(stored, scale);
    }
    // Row 7 of page 1 and its scale stay empty.
    const uint8_t* page1 = store.data.data<uint8_t>() + 8448;
    for (int i = 0; i < 128; ++i) EXPECT_EQ(page1[7 * 128 + i], 0);
}

TEST(IndexerKeys, F32PagedLayout) {
    std::mt19937 rng(43);
    auto be = make_cpu_backend(Numerics::fp32());
    IndexerKeyStore store = make_indexer_store(2, IndexerKeyFormat::kF32);
    Tensor k = random_f32({1, 128}, rng);
    be->indexer_k_write({k, testing::i32_tensor({127}), &store});  // page 1 row 63
    EXPECT_EQ(std::memcmp(store.data.data<uint8_t>() + 32768 + 63 * 512, k.data<float>(), 512), 0);
}

TEST(IndexerKeysDeathTest, StoreFormatMustMatchNumerics) {
    auto be = make_cpu_backend(Numerics::fp32());
    IndexerKeyStore store = make_indexer_store(1, IndexerKeyFormat::kFp8);
    Tensor k = Tensor::zeros({1, 128}, DType::kF32);
    EXPECT_DEATH(be->indexer_k_write({k, testing::i32_tensor({0}), &store}), "numerics");
}

}  // namespace
}  // namespace dsa::backend
