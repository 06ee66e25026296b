// Safetensors reading and writing: a round trip through the writer with zero-copy views, and every strict header
// check (short file, header length past EOF, bad JSON, unknown dtype, size mismatch, offsets past the data,
// overlaps) giving kDataLoss that names the file and the tensor.
#include "model/safetensors.h"

#include <gtest/gtest.h>

#include "model/safetensors_writer.h"
#include "tensor/numeric.h"
#include "test_files.h"

namespace dsa::model {
namespace {

using testing::expect_error;
using testing::safetensors_bytes;
using testing::TempDir;
using testing::write_or_die;

TEST(Safetensors, WriterRoundTripIsZeroCopyAndKeepsMappingAlive) {
    TempDir dir;
    SafetensorsWriter writer;
    writer.add_fp8("w.weight", {3, 2}, {1.0f, -2.0f, 0.5f, 448.0f, 1000.0f, 0.0f});
    writer.add_f32("w.weight_scale_inv", {1, 1}, {0.25f});
    writer.add_bf16("norm.weight", {3}, {1.0f, 1.0078125f, -3.0f});
    writer.set_metadata("format", "pt");
    ASSERT_TRUE(writer.write(dir.file("a.safetensors")).is_ok());

    Tensor fp8;
    {
        auto file = SafetensorsFile::open(dir.file("a.safetensors"));
        ASSERT_TRUE(file.is_ok()) << file.status().to_string();
        EXPECT_EQ((*file)->num_tensors(), 3u);
        EXPECT_EQ((*file)->metadata().at("format"), "pt");
        EXPECT_EQ((*file)->file_name(), "a.safetensors");
        const SafetensorsEntry* e = (*file)->find("norm.weight");
        ASSERT_NE(e, nullptr);
        EXPECT_EQ(e->dtype, DType::kBF16);
        EXPECT_EQ(e->shape, Shape{3});
        auto norm = (*file)->tensor("norm.weight");
        ASSERT_TRUE(norm.is_ok());
        EXPECT_EQ(bf16_to_f32(norm->data<uint16_t>()[1]), 1.0078125f);
        auto scale = (*file)->tensor("w.weight_scale_inv");
        EXPECT_EQ(scale->data<float>()[0], 0.25f);
        fp8 = *(*file)->tensor("w.weight");
        EXPECT_EQ(fp8.name(), "w.weight");
        expect_error((*file)->tensor("nope"), StatusCode::kNotFound, {"a.safetensors", "nope"});
    }
    // The SafetensorsFile is gone; the view still owns the mapping.
    EXPECT_EQ(fp8.dtype(), DType::kF8E4M3);
    EXPECT_EQ(fp8.shape(), (Shape{3, 2}));
    EXPECT_EQ(fp8e4m3_to_f32(fp8.data<uint8_t>()[1]), -2.0f);
    EXPECT_EQ(fp8e4m3_to_f32(fp8.data<uint8_t>()[4]), 448.0f);  // saturated
}

TEST(Safetensors, HeaderIsPaddedToEightBytes) {
    SafetensorsWriter writer;
    writer.add_f32("x", {1}, {1.0f});
    const std::string bytes = writer.serialize();
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
    EXPECT_EQ(n % 8, 0u);
    EXPECT_EQ(bytes.size(), 8 + n + 4);
}

TEST(Safetensors, FileShorterThanHeaderLength) {
    TempDir dir;
    write_or_die(dir.file("short.safetensors"), "abc");
    expect_error(SafetensorsFile::open(dir.file("short.safetensors")), StatusCode::kDataLoss,
                 {"short.safetensors", "too short"});
}

TEST(Safetensors, HeaderLengthBeyondEndOfFile) {
    TempDir dir;
    std::string bytes = safetensors_bytes("{}", 0);
    bytes[0] = static_cast<char>(0xe8);  // 1000
    bytes[1] = static_cast<char>(0x03);
    write_or_die(dir.file("big.safetensors"), bytes);
    expect_error(SafetensorsFile::open(dir.file("big.safetensors")), StatusCode::kDataLoss,
                 {"big.safetensors", "header length 1000 exceeds the file size"});
}

TEST(Safetensors, TruncatedHeaderIsInvalidJson) {
    TempDir dir;
    const std::string full = R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
    std::string bytes = safetensors_bytes(full, 4);
    bytes.resize(8 + full.size() / 2);  // cut inside the header
    bytes[0] = static_cast<char>(full.size() / 2);
    write_or_die(dir.file("cut.safetensors"), bytes);
    expect_error(SafetensorsFile::open(dir.file("cut.safetensors")), StatusCode::kDataLoss,
                 {"cut.safetensors", "not valid JSON"});
}

TEST(Safetensors, TruncatedDataNamesTensor) {
    TempDir dir;
    SafetensorsWriter writer;
    writer.add_f32("first", {4}, {1, 2, 3, 4});
    writer.add_f32("second", {4}, {5, 6, 7, 8});
    std::string bytes = writer.serialize();
    bytes.resize(bytes.size() - 3);
    write_or_die(dir.file("trunc.safetensors"), bytes);
    expect_error(SafetensorsFile::open(dir.file("trunc.safetensors")), StatusCode::kDataLoss,
                 {"trunc.safetensors", "'second'", "[16, 32]", "truncated"});
}

struct BadHeader {
    const char* header;
    size_t data_bytes;
    std::vector<std::string> expect;
};

TEST(Safetensors, StrictHeaderChecksNameFileAndTensor) {
    const std::vector<BadHeader> cases = {
        {R"([1, 2])", 0, {"must be a JSON object"}},
        {R"({"w":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})", 1, {"'w'", "unknown dtype 'F4'"}},
        {R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})",
         16,
         {"'w'", "hold 12 bytes", "[2, 2]", "needs 16"}},
        {R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 16, {"'w'", "begin <= end"}},
        {R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[64,72]}})", 16, {"'w'", "[64, 72]", "run past"}},
        {R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
         R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
         24,
         {"'b'", "overlaps tensor 'a'"}},
        {R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4, {"'w'", "non-negative"}},
        {R"({"w":{"dtype":"F32","shape":[1]}})", 4, {"'w'", "data_offsets"}},
        {R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4, {"'w'", "dtype"}},
        {R"({"w":7})", 0, {"'w'", "not an object"}},
    };
    TempDir dir;
    for (const BadHeader& bad : cases) {
        write_or_die(dir.file("bad.safetensors"), safetensors_bytes(bad.header, bad.data_bytes));
        auto file = SafetensorsFile::open(dir.file("bad.safetensors"));
        std::vector<std::string> parts = bad.expect;
        parts.push_back("bad.safetensors");
        ASSERT_FALSE(file.is_ok()) << bad.header;
        EXPECT_EQ(file.status().code(), StatusCode::kDataLoss) << bad.header;
        for (const std::string& p : parts) {
            EXPECT_NE(file.status().message().find(p), std::string::npos) << p << " not in " << file.status().message();
        }
    }
}

TEST(Safetensors, ZeroSizeTensorsAndGapsAreAccepted) {
    TempDir dir;
    const std::string header = R"({"empty":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]},)"
                               R"("x":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
    write_or_die(dir.file("ok.safetensors"), safetensors_bytes(header, 12));
    auto file = SafetensorsFile::open(dir.file("ok.safetensors"));
    ASSERT_TRUE(file.is_ok()) << file.status().to_string();
    EXPECT_EQ((*file)->tensor("empty")->numel(), 0);
    EXPECT_EQ((*file)->find("x")->data_begin, 8u);
}

}  // namespace
}  // namespace dsa::model
