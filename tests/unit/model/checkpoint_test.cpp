// Checkpoint: index.json + shards (a weight and its scale in different shards), a single model.safetensors, a
// path to one file, and the errors for a missing shard, a wrong weight_map entry, a bad index and a corrupt shard.
#include "model/checkpoint.h"

#include <gtest/gtest.h>

#include "model/safetensors_writer.h"
#include "test_files.h"

namespace dsa::model {
namespace {

using testing::expect_error;
using testing::TempDir;
using testing::write_or_die;

void write_two_shards(const TempDir& dir) {
    SafetensorsWriter first;
    first.add_fp8("w.weight", {2, 2}, {1, 2, 3, 4});
    first.add_f32("other", {1}, {7});
    SafetensorsWriter second;
    second.add_f32("w.weight_scale_inv", {1, 1}, {0.5f});
    ASSERT_TRUE(first.write(dir.file("model-00001-of-000002.safetensors")).is_ok());
    ASSERT_TRUE(second.write(dir.file("model-00002-of-000002.safetensors")).is_ok());
    const Status s = write_safetensors_index(dir.path(),
                                             {{"w.weight", "model-00001-of-000002.safetensors"},
                                              {"other", "model-00001-of-000002.safetensors"},
                                              {"w.weight_scale_inv", "model-00002-of-000002.safetensors"}},
                                             first.total_data_bytes() + second.total_data_bytes());
    ASSERT_TRUE(s.is_ok()) << s.to_string();
}

TEST(Checkpoint, IndexWithScaleInAnotherShard) {
    TempDir dir;
    write_two_shards(dir);
    auto ckpt = Checkpoint::open(dir.path());
    ASSERT_TRUE(ckpt.is_ok()) << ckpt.status().to_string();
    EXPECT_EQ(ckpt->source(), kSafetensorsIndexFile);
    EXPECT_EQ(ckpt->num_shards(), 2u);
    EXPECT_EQ(ckpt->num_tensors(), 3u);
    EXPECT_EQ(ckpt->tensor_names(), (std::vector<std::string>{"other", "w.weight", "w.weight_scale_inv"}));
    EXPECT_EQ(ckpt->file_of("w.weight"), "model-00001-of-000002.safetensors");
    EXPECT_EQ(ckpt->file_of("w.weight_scale_inv"), "model-00002-of-000002.safetensors");
    EXPECT_EQ(ckpt->file_of("missing"), "");
    auto scale = ckpt->tensor("w.weight_scale_inv");
    ASSERT_TRUE(scale.is_ok());
    EXPECT_EQ(scale->data<float>()[0], 0.5f);
    EXPECT_EQ(ckpt->find("w.weight")->dtype, DType::kF8E4M3);
    expect_error(ckpt->tensor("missing"), StatusCode::kNotFound, {"missing", kSafetensorsIndexFile});
}

TEST(Checkpoint, SingleFileDirectoryAndFilePath) {
    TempDir dir;
    SafetensorsWriter writer;
    writer.add_f32("a", {2}, {1, 2});
    ASSERT_TRUE(writer.write(dir.file(kSingleSafetensorsFile)).is_ok());
    for (const std::string& path : {dir.path(), dir.file(kSingleSafetensorsFile)}) {
        auto ckpt = Checkpoint::open(path);
        ASSERT_TRUE(ckpt.is_ok()) << ckpt.status().to_string();
        EXPECT_EQ(ckpt->source(), kSingleSafetensorsFile);
        EXPECT_EQ(ckpt->num_tensors(), 1u);
        EXPECT_EQ(ckpt->tensor("a")->data<float>()[1], 2.0f);
        EXPECT_EQ(ckpt->file_of("a"), kSingleSafetensorsFile);
    }
}

TEST(Checkpoint, EmptyDirectoryIsNotFound) {
    TempDir dir;
    expect_error(Checkpoint::open(dir.path()), StatusCode::kNotFound, {kSafetensorsIndexFile, kSingleSafetensorsFile});
}

TEST(Checkpoint, MissingShardNamesShardAndTensor) {
    TempDir dir;
    write_two_shards(dir);
    std::filesystem::remove(dir.file("model-00002-of-000002.safetensors"));
    expect_error(Checkpoint::open(dir.path()), StatusCode::kNotFound,
                 {"model-00002-of-000002.safetensors", "w.weight_scale_inv", "does not exist"});
}

TEST(Checkpoint, WeightMapPointingAtWrongShard) {
    TempDir dir;
    write_two_shards(dir);
    ASSERT_TRUE(write_safetensors_index(dir.path(), {{"w.weight", "model-00002-of-000002.safetensors"}}, 0).is_ok());
    expect_error(Checkpoint::open(dir.path()), StatusCode::kDataLoss,
                 {"'w.weight'", "model-00002-of-000002.safetensors", "no such tensor"});
}

TEST(Checkpoint, BadIndexFiles) {
    TempDir dir;
    write_two_shards(dir);
    write_or_die(dir.file(kSafetensorsIndexFile), "{\"weight_map\": {");
    expect_error(Checkpoint::open(dir.path()), StatusCode::kDataLoss, {kSafetensorsIndexFile, "invalid JSON"});
    write_or_die(dir.file(kSafetensorsIndexFile), R"({"metadata": {}})");
    expect_error(Checkpoint::open(dir.path()), StatusCode::kDataLoss, {kSafetensorsIndexFile, "weight_map"});
    write_or_die(dir.file(kSafetensorsIndexFile), R"({"weight_map": {"w.weight": 3}})");
    expect_error(Checkpoint::open(dir.path()), StatusCode::kDataLoss, {"'w.weight'", "not a file name"});
    write_or_die(dir.file(kSafetensorsIndexFile), R"({"weight_map": {"w.weight": "../x.safetensors"}})");
    expect_error(Checkpoint::open(dir.path()), StatusCode::kDataLoss, {"'w.weight'", "unsafe shard path"});
}

TEST(Checkpoint, CorruptShardNamesTheShard) {
    TempDir dir;
    write_two_shards(dir);
    write_or_die(dir.file("model-00002-of-000002.safetensors"), testing::safetensors_bytes("{oops", 0));
    expect_error(Checkpoint::open(dir.path()), StatusCode::kDataLoss,
                 {"model-00002-of-000002.safetensors", "not valid JSON"});
}

}  // namespace
}  // namespace dsa::model
