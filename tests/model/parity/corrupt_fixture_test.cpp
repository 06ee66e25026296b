// A damaged copy of a golden fixture fails to load with a message naming the file and the tensor; it never
// crashes or loads silently. Covers the real on-disk layout (index + shards) end to end.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "golden_fixture.h"

namespace dsa::model::testing {
namespace {

namespace fs = std::filesystem;

class CorruptFixture : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("dsa_corrupt_" + std::to_string(::getpid()) + "_" +
                                            ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
        fs::copy(golden_dir("deepseek_v32_tiny"), dir_, fs::copy_options::recursive);
    }
    void TearDown() override { fs::remove_all(dir_); }

    Status load() {
        StatusOr<ModelConfig> cfg = load_model_config(dir_.string());
        if (!cfg.is_ok()) return cfg.status();
        StatusOr<Checkpoint> ck = Checkpoint::open(dir_.string());
        if (!ck.is_ok()) return ck.status();
        StatusOr<ModelWeights> w = load_model_weights(*ck, *cfg, {.mtp = MtpLoad::kLoad});
        return w.is_ok() ? Status::ok() : w.status();
    }
    void rewrite(const std::string& file, const std::string& bytes) {
        std::ofstream(dir_ / file, std::ios::binary | std::ios::trunc) << bytes;
    }
    std::string read(const std::string& file) {
        std::ifstream in(dir_ / file, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), {});
    }

    fs::path dir_;
};

TEST_F(CorruptFixture, IntactCopyLoads) { EXPECT_TRUE(load().is_ok()) << load().to_string(); }

TEST_F(CorruptFixture, TruncatedShardNamesTheFile) {
    const std::string shard = "model-00002-of-000003.safetensors";
    std::string bytes = read(shard);
    rewrite(shard, bytes.substr(0, bytes.size() / 2));
    Status st = load();
    ASSERT_FALSE(st.is_ok());
    EXPECT_NE(st.message().find(shard), std::string::npos) << st.message();
}

TEST_F(CorruptFixture, GarbageHeaderNamesTheFile) {
    const std::string shard = "model-00001-of-000003.safetensors";
    std::string bytes = read(shard);
    for (size_t i = 8; i < 40; ++i) bytes[i] = '#';
    rewrite(shard, bytes);
    Status st = load();
    ASSERT_FALSE(st.is_ok());
    EXPECT_NE(st.message().find(shard), std::string::npos) << st.message();
}

TEST_F(CorruptFixture, MissingTensorInIndexIsNamed) {
    std::string index = read("model.safetensors.index.json");
    const std::string name = "model.layers.1.self_attn.o_proj.weight_scale_inv";
    size_t pos = index.find("\"" + name + "\"");
    ASSERT_NE(pos, std::string::npos);
    index.replace(pos + 1, name.size(), "model.layers.1.self_attn.o_proj.renamed_scale");
    rewrite("model.safetensors.index.json", index);
    Status st = load();
    ASSERT_FALSE(st.is_ok());
    EXPECT_NE(st.message().find("o_proj"), std::string::npos) << st.message();
}

TEST_F(CorruptFixture, ConfigDisagreeingWithTensorsIsNamed) {
    std::string cfg = read("config.json");
    size_t pos = cfg.find("\"hidden_size\": 256");
    ASSERT_NE(pos, std::string::npos) << cfg.substr(0, 200);
    cfg.replace(pos, 18, "\"hidden_size\": 384");
    rewrite("config.json", cfg);
    Status st = load();
    ASSERT_FALSE(st.is_ok());
    EXPECT_NE(st.message().find("shape"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace dsa::model::testing
