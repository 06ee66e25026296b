// Tensor views share storage and check their bounds.
#include "tensor/tensor.h"

#include <gtest/gtest.h>

namespace dsa {
namespace {

TEST(Tensor, ViewSliceSelect) {
    Tensor t = Tensor::zeros({4, 6}, DType::kF32, Device::kCPU, "t");
    for (int i = 0; i < 24; ++i) t.data<float>()[i] = static_cast<float>(i);
    Tensor v = t.view({2, -1});
    EXPECT_EQ(v.shape(), (Shape{2, 12}));
    Tensor s = t.slice(1, 3);
    EXPECT_EQ(s.shape(), (Shape{2, 6}));
    EXPECT_EQ(s.data<float>()[0], 6.0f);
    Tensor r = t.select(3);
    EXPECT_EQ(r.shape(), (Shape{6}));
    EXPECT_EQ(r.data<float>()[5], 23.0f);
    s.data<float>()[0] = -1.0f;
    EXPECT_EQ(t.data<float>()[6], -1.0f);  // shared storage
    Tensor c = t.clone();
    c.data<float>()[0] = 100.0f;
    EXPECT_EQ(t.data<float>()[0], 0.0f);
    EXPECT_EQ(t.nbytes(), 96u);
}

TEST(Tensor, BadViewAborts) {
    Tensor t = Tensor::zeros({4, 6}, DType::kF32);
    EXPECT_DEATH(t.view({5, 5}), "view");
    EXPECT_DEATH(t.slice(2, 5), "slice");
}

}  // namespace
}  // namespace dsa
