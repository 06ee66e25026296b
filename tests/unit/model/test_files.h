// Test helpers for model/ tests: a self-deleting temporary directory and hand-made safetensors bytes
// (a given header text + data size) for the corrupt-file cases.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "model/safetensors_writer.h"

namespace dsa::model::testing {

class TempDir {
  public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "dsa_model_test_XXXXXX").string();
        char* made = ::mkdtemp(pattern.data());
        EXPECT_NE(made, nullptr);
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::string& path() const { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

  private:
    std::string path_;
};

// 8-byte little-endian length + `header` + `data_bytes` zero bytes.
inline std::string safetensors_bytes(const std::string& header, size_t data_bytes) {
    std::string out(8, '\0');
    const uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    return out + header + std::string(data_bytes, '\0');
}

inline void write_or_die(const std::string& path, const std::string& contents) {
    const Status s = write_text_file(path, contents);
    ASSERT_TRUE(s.is_ok()) << s.to_string();
}

// Expects a failed status with `code` whose message contains every one of `parts`.
template <typename T>
void expect_error(const T& result, StatusCode code, std::initializer_list<std::string> parts) {
    const Status& s = [&]() -> const Status& {
        if constexpr (std::is_same_v<T, Status>) {
            return result;
        } else {
            return result.status();
        }
    }();
    ASSERT_FALSE(s.is_ok());
    EXPECT_EQ(s.code(), code) << s.to_string();
    for (const std::string& part : parts)
        EXPECT_NE(s.message().find(part), std::string::npos) << part << " not in: " << s.message();
}

}  // namespace dsa::model::testing
