// Checkpoint: every tensor of a model directory, by name. Either model.safetensors.index.json + its shards
// (the weight_map decides which shard holds a name; a weight and its weight_scale_inv may sit in different
// shards), or a single model.safetensors, or a path to one .safetensors file. All shards are mapped and their
// headers validated at open(); tensors are zero-copy views over the maps.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "model/safetensors.h"
#include "tensor/tensor.h"

namespace dsa::model {

inline constexpr const char* kSafetensorsIndexFile = "model.safetensors.index.json";
inline constexpr const char* kSingleSafetensorsFile = "model.safetensors";

class Checkpoint {
  public:
    static StatusOr<Checkpoint> open(const std::string& path);

    const std::string& path() const { return path_; }
    // What maps names to files: "model.safetensors.index.json", or the single file's name.
    const std::string& source() const { return source_; }
    size_t num_tensors() const { return shard_of_.size(); }
    size_t num_shards() const { return shards_.size(); }
    const std::vector<std::shared_ptr<SafetensorsFile>>& shards() const { return shards_; }
    std::vector<std::string> tensor_names() const;  // sorted

    bool contains(const std::string& name) const { return shard_of_.count(name) != 0; }
    // Header entry (dtype, shape, offsets) without creating a view; nullptr when absent.
    const SafetensorsEntry* find(const std::string& name) const;
    // The shard file name holding `name`; empty when absent.
    std::string file_of(const std::string& name) const;
    // A zero-copy CPU view; kNotFound naming the checkpoint when absent.
    StatusOr<Tensor> tensor(const std::string& name) const;

  private:
    Status open_index(const std::string& dir);
    Status open_single(const std::string& file_path);
    StatusOr<size_t> shard_index(const std::string& shard_name, const std::string& first_tensor);

    std::string path_;
    std::string source_;
    std::vector<std::shared_ptr<SafetensorsFile>> shards_;
    std::unordered_map<std::string, size_t> shard_by_file_;
    std::unordered_map<std::string, size_t> shard_of_;  // tensor name -> index in shards_
};

}  // namespace dsa::model
