// Status / StatusOr behaviour and the early-return macros.
#include "base/status.h"
#include "base/check.h"

#include <gtest/gtest.h>

namespace dsa {
namespace {

StatusOr<int> parse_positive(int x) {
    if (x <= 0) return invalid_argument("expected a positive number, got {}", x);
    return x;
}

Status use(int x, int* out) {
    DSA_ASSIGN_OR_RETURN(*out, parse_positive(x));
    return Status::ok();
}

TEST(Status, OkAndError) {
    EXPECT_TRUE(Status::ok().is_ok());
    Status s = data_loss("file {} truncated", "a.safetensors");
    EXPECT_FALSE(s.is_ok());
    EXPECT_EQ(s.code(), StatusCode::kDataLoss);
    EXPECT_EQ(s.to_string(), "data_loss: file a.safetensors truncated");
}

TEST(Status, AssignOrReturn) {
    int v = 0;
    EXPECT_TRUE(use(3, &v).is_ok());
    EXPECT_EQ(v, 3);
    Status s = use(-1, &v);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(s.message(), "expected a positive number, got -1");
}

TEST(Status, OkStatusIntoStatusOrBecomesInternal) {
    StatusOr<int> so(Status::ok());
    EXPECT_FALSE(so.is_ok());
    EXPECT_EQ(so.status().code(), StatusCode::kInternal);
}

TEST(Check, FailureAbortsWithValues) {
    EXPECT_DEATH({ DSA_CHECK_EQ(1 + 1, 3) << "math"; }, "1 \\+ 1 == 3 \\(2 vs 3\\) : math");
}

}  // namespace
}  // namespace dsa
