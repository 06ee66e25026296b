// Side branches on the CUDA backend (side_branch.cpp): DSA_SIDE_BRANCH gates them by token count (default off); a
// block freed while a branch runs is not handed out again before the join (either stream could still use it); ops
// split over the two branches give the results of the same ops in order, eagerly and from a captured graph's
// replays (a norm and a chain of adds on the side, an add and a norm on the main stream, both reading one input).
#include <cstdlib>

#include "ops_test_util.h"

namespace dsa::backend::testing {
namespace {

class SideBranchTest : public CudaVsCpuTest {};

TEST_F(SideBranchTest, GatedByTokenCount) {
    ::unsetenv("DSA_SIDE_BRANCH");
    EXPECT_FALSE(cuda().begin_side_branch(1)) << "off by default";
    {
        EnvScope off("DSA_SIDE_BRANCH", "0");
        EXPECT_FALSE(cuda().begin_side_branch(1)) << "DSA_SIDE_BRANCH=0";
    }
    EnvScope env("DSA_SIDE_BRANCH", "4");
    EXPECT_FALSE(cuda().begin_side_branch(5));
    EXPECT_FALSE(cuda().begin_side_branch(0));
    ASSERT_TRUE(cuda().begin_side_branch(4));
    EXPECT_FALSE(cuda().begin_side_branch(1)) << "one branch at a time";
    cuda().end_side_branch();
    cuda().join_side_branch();
}

TEST_F(SideBranchTest, FreesWaitForTheJoin) {
    EnvScope env("DSA_SIDE_BRANCH", "1");
    const Shape shape{1, 61 * 1024 + 7};  // a size no other test block shares
    ASSERT_TRUE(cuda().begin_side_branch(1));
    const void* side_block = nullptr;
    {
        Tensor t = Tensor::empty(shape, DType::kU8, Device::kCUDA, "side");
        side_block = t.raw_data();
    }  // freed inside the branch
    cuda().end_side_branch();
    Tensor main_block = Tensor::empty(shape, DType::kU8, Device::kCUDA, "main");
    EXPECT_NE(main_block.raw_data(), side_block) << "a block freed by the branch went to the main stream";
    cuda().join_side_branch();
    Tensor after = Tensor::empty(shape, DType::kU8, Device::kCUDA, "after");
    EXPECT_EQ(after.raw_data(), side_block) << "the held block is back in the pool after the join";
}

// side: y = rms_norm(x) then a long chain of adds on it; main: z = add(x, x) and rms_norm(z); joined: add(y, z).
Tensor branched(Backend& be, const Tensor& x, const Tensor& w, bool branch) {
    Tensor y, z;
    SideBranch b(be, branch ? 1 : 0);
    EXPECT_EQ(b.active(), branch);
    y = be.rms_norm(x, w, 1e-6f);
    for (int i = 0; i < 16; ++i) y = be.add(y, x);
    b.end();
    z = be.rms_norm(be.add(x, x), w, 1e-6f);
    b.join();
    return be.add(y, z);
}

TEST_F(SideBranchTest, BranchedOpsEqualInOrderEagerAndInGraphs) {
    EnvScope env("DSA_SIDE_BRANCH", "1");
    Tensor x = up(random_act({1, 7168}, rng_)), w = up(random_act({7168}, rng_, 0.1f, 1.0f));
    const Tensor ref = down(branched(*gpu_, x, w, false));
    const Tensor eager = down(branched(*gpu_, x, w, true));
    ASSERT_EQ(ref.numel(), eager.numel());
    for (int64_t i = 0; i < ref.numel(); ++i) ASSERT_EQ(ref.data<float>()[i], eager.data<float>()[i]) << i;
    Tensor out;
    auto graph = gpu_->capture_graph([&] { out = branched(*gpu_, x, w, true); });
    ASSERT_TRUE(graph.is_ok()) << graph.status().message();
    for (int r = 0; r < 3; ++r) {
        gpu_->replay_graph(**graph);
        const Tensor g = down(out);
        for (int64_t i = 0; i < ref.numel(); ++i) ASSERT_EQ(ref.data<float>()[i], g.data<float>()[i]) << r << " " << i;
    }
}

}  // namespace
}  // namespace dsa::backend::testing
