// A small safetensors writer for tests and tools that create checkpoints: collects named tensors (bytes +
// dtype + shape) and writes the standard layout (header padded with spaces to a multiple of 8, data in insertion
// order). Also writes model.safetensors.index.json for a set of shards.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/status.h"
#include "tensor/tensor.h"

namespace dsa::model {

class SafetensorsWriter {
  public:
    // Adds a tensor from raw bytes; the byte count must equal prod(shape) * dtype size (checked).
    void add(const std::string& name, DType dtype, const Shape& shape, std::vector<uint8_t> bytes);
    // Adds a copy of a contiguous CPU tensor.
    void add(const std::string& name, const Tensor& tensor);
    // Helpers for common element types: values are converted (bf16 round-to-nearest-even, fp8 saturating).
    void add_f32(const std::string& name, const Shape& shape, const std::vector<float>& values);
    void add_bf16(const std::string& name, const Shape& shape, const std::vector<float>& values);
    void add_fp8(const std::string& name, const Shape& shape, const std::vector<float>& values);
    void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

    bool contains(const std::string& name) const;
    std::vector<std::string> tensor_names() const;
    uint64_t total_data_bytes() const;

    // The complete file contents.
    std::string serialize() const;
    Status write(const std::string& path) const;

  private:
    struct Pending {
        std::string name;
        DType dtype;
        Shape shape;
        std::vector<uint8_t> bytes;
    };
    std::vector<Pending> tensors_;
    std::map<std::string, std::string> metadata_;
};

// Writes `dir`/model.safetensors.index.json: {"metadata": {"total_size": N}, "weight_map": {tensor: shard}}.
Status write_safetensors_index(const std::string& dir, const std::map<std::string, std::string>& weight_map,
                               uint64_t total_size);

// Writes `contents` to `path` (used for configs and deliberately corrupt files in tests).
Status write_text_file(const std::string& path, const std::string& contents);

}  // namespace dsa::model
