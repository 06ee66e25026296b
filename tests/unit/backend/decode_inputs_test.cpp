// Backend::decode_slots and copy_into on the CPU backend: page tables expand to key-slot rows (-1 past each
// position), out_slots pick the position's slot, bad positions and pages fail loudly, and copy_into writes the
// leading corner of a larger buffer without touching the rest.
#include <gtest/gtest.h>

#include <vector>

#include "backend/backend.h"

namespace dsa::backend {
namespace {

Tensor i32(const std::vector<int32_t>& v, const Shape& shape) {
    Tensor t = Tensor::empty(shape, DType::kI32);
    std::copy(v.begin(), v.end(), t.data<int32_t>());
    return t;
}

TEST(DecodeSlots, ExpandsPageTables) {
    auto be = make_cpu_backend(Numerics::fp32());
    // Page size 4: row 0 at position 5 over pages {7, 2}, row 1 at position 0 over page {3}.
    Tensor pages = i32({7, 2, 3, 0}, {2, 2});
    Tensor pos = i32({5, 0}, {2});
    DecodeSlots s = be->decode_slots(pages, pos, 4, 8);
    ASSERT_EQ(s.key_slots.shape(), Shape({2, 8}));
    const std::vector<int32_t> want = {28, 29, 30, 31, 8, 9, -1, -1, 12, -1, -1, -1, -1, -1, -1, -1};
    EXPECT_EQ(std::vector<int32_t>(s.key_slots.data<int32_t>(), s.key_slots.data<int32_t>() + 16), want);
    EXPECT_EQ(s.out_slots.data<int32_t>()[0], 9);
    EXPECT_EQ(s.out_slots.data<int32_t>()[1], 12);
}

TEST(DecodeSlotsDeathTest, RejectsPositionsOutsideTheTable) {
    auto be = make_cpu_backend(Numerics::fp32());
    Tensor pages = i32({7, 2}, {1, 2});
    EXPECT_DEATH(be->decode_slots(pages, i32({8}, {1}), 4, 16), "outside");  // past the 2 pages
    EXPECT_DEATH(be->decode_slots(pages, i32({6}, {1}), 4, 6), "outside");   // past the width
    EXPECT_DEATH(be->decode_slots(pages, i32({-1}, {1}), 4, 8), "outside");
    EXPECT_DEATH(be->decode_slots(i32({-3, 2}, {1, 2}), i32({1}, {1}), 4, 8), "page 0 is -3");
}

TEST(CopyInto, WritesTheLeadingCorner) {
    auto be = make_cpu_backend(Numerics::fp32());
    Tensor dst = i32(std::vector<int32_t>(12, -9), {3, 4});
    be->copy_into(i32({1, 2, 3, 4}, {2, 2}), dst);
    const std::vector<int32_t> want = {1, 2, -9, -9, 3, 4, -9, -9, -9, -9, -9, -9};
    EXPECT_EQ(std::vector<int32_t>(dst.data<int32_t>(), dst.data<int32_t>() + 12), want);
    Tensor flat = i32(std::vector<int32_t>(5, 0), {5});
    be->copy_into(i32({8, 9}, {2}), flat);
    EXPECT_EQ(flat.data<int32_t>()[1], 9);
    EXPECT_EQ(flat.data<int32_t>()[2], 0);
}

TEST(CopyIntoDeathTest, RejectsMismatches) {
    auto be = make_cpu_backend(Numerics::fp32());
    Tensor dst = i32(std::vector<int32_t>(4, 0), {2, 2});
    EXPECT_DEATH(be->copy_into(i32({1, 2, 3}, {1, 3}), dst), "does not fit");
    Tensor f = Tensor::zeros({2, 2}, DType::kF32);
    EXPECT_DEATH(be->copy_into(f, dst), "copy_into F32 into I32");
}

}  // namespace
}  // namespace dsa::backend
