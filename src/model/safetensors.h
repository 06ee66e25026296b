// One safetensors file over a memory map: an 8-byte little-endian header length N, an N-byte JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the raw row-major data, with
// offsets relative to the start of the data. open() checks the whole header strictly (sizes, dtypes, offsets
// inside the data, no overlaps); every failure is kDataLoss naming the file and the tensor. Tensors are
// zero-copy views that keep the mapping alive.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/json.h"
#include "base/mapped_file.h"
#include "base/status.h"
#include "tensor/tensor.h"

namespace dsa::model {

struct SafetensorsEntry {
    std::string name;
    DType dtype = DType::kF32;
    Shape shape;
    uint64_t data_begin = 0;  // relative to the start of the data section
    uint64_t data_end = 0;

    uint64_t num_bytes() const { return data_end - data_begin; }
};

class SafetensorsFile {
  public:
    // Maps and validates `path`.
    static StatusOr<std::shared_ptr<SafetensorsFile>> open(const std::string& path);
    // Validates an already-mapped file (the tensors keep `file` alive).
    static StatusOr<std::shared_ptr<SafetensorsFile>> parse(std::shared_ptr<MappedFile> file);

    const std::string& path() const { return file_->path(); }
    // The file name without directories, used in messages and index.json weight maps.
    std::string file_name() const;
    size_t num_tensors() const { return entries_.size(); }
    const std::vector<SafetensorsEntry>& entries() const { return entries_; }  // in data order
    const std::map<std::string, std::string>& metadata() const { return metadata_; }

    bool contains(const std::string& name) const { return by_name_.count(name) != 0; }
    const SafetensorsEntry* find(const std::string& name) const;  // nullptr when absent
    // A CPU view over the mapped bytes; kNotFound naming the file when absent.
    StatusOr<Tensor> tensor(const std::string& name) const;

  private:
    SafetensorsFile() = default;
    Status parse_header();
    Status add_entry(const std::string& name, const Json& value);
    Status check_offsets();

    std::shared_ptr<MappedFile> file_;
    uint64_t data_start_ = 0;  // 8 + N
    uint64_t data_size_ = 0;
    std::vector<SafetensorsEntry> entries_;
    std::unordered_map<std::string, size_t> by_name_;
    std::map<std::string, std::string> metadata_;
};

}  // namespace dsa::model
