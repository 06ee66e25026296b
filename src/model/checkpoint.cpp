// Opening a checkpoint directory: index.json weight map + shards, or a single safetensors file.
#include "model/checkpoint.h"

#include <sys/stat.h>

#include <algorithm>

#include "base/json.h"
#include "base/mapped_file.h"

namespace dsa::model {
namespace {

bool is_directory(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Shard names come from a file we do not control: no absolute paths, no parent directories.
bool is_safe_shard_name(const std::string& name) {
    return !name.empty() && name.front() != '/' && name.find("..") == std::string::npos;
}

}  // namespace

StatusOr<Checkpoint> Checkpoint::open(const std::string& path) {
    Checkpoint ckpt;
    ckpt.path_ = path;
    if (!is_directory(path)) {
        DSA_RETURN_IF_ERROR(ckpt.open_single(path));
        return ckpt;
    }
    if (file_exists(join_path(path, kSafetensorsIndexFile))) {
        DSA_RETURN_IF_ERROR(ckpt.open_index(path));
        return ckpt;
    }
    if (file_exists(join_path(path, kSingleSafetensorsFile))) {
        DSA_RETURN_IF_ERROR(ckpt.open_single(join_path(path, kSingleSafetensorsFile)));
        return ckpt;
    }
    return not_found("{}: no {} and no {}", path, kSafetensorsIndexFile, kSingleSafetensorsFile);
}

Status Checkpoint::open_single(const std::string& file_path) {
    DSA_ASSIGN_OR_RETURN(std::shared_ptr<SafetensorsFile> file, SafetensorsFile::open(file_path));
    source_ = file->file_name();
    for (const SafetensorsEntry& e : file->entries()) shard_of_[e.name] = 0;
    shard_by_file_[source_] = 0;
    shards_.push_back(std::move(file));
    return Status::ok();
}

StatusOr<size_t> Checkpoint::shard_index(const std::string& shard_name, const std::string& first_tensor) {
    auto it = shard_by_file_.find(shard_name);
    if (it != shard_by_file_.end()) return it->second;
    if (!is_safe_shard_name(shard_name)) {
        return data_loss("{}: {} maps '{}' to an unsafe shard path '{}'", path_, source_, first_tensor, shard_name);
    }
    const std::string shard_path = join_path(path_, shard_name);
    if (!file_exists(shard_path)) {
        return not_found("{}: shard {} (listed in {} for '{}') does not exist", path_, shard_name, source_,
                         first_tensor);
    }
    DSA_ASSIGN_OR_RETURN(std::shared_ptr<SafetensorsFile> file, SafetensorsFile::open(shard_path));
    shards_.push_back(std::move(file));
    shard_by_file_[shard_name] = shards_.size() - 1;
    return shards_.size() - 1;
}

Status Checkpoint::open_index(const std::string& dir) {
    source_ = kSafetensorsIndexFile;
    const std::string index_path = join_path(dir, kSafetensorsIndexFile);
    DSA_ASSIGN_OR_RETURN(std::string text, read_file(index_path));
    Json index = Json::parse(text, /*cb=*/nullptr, /*allow_exceptions=*/false);
    if (index.is_discarded()) return data_loss("{}: invalid JSON", index_path);
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
        return data_loss("{}: missing the 'weight_map' object", index_path);
    }
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
        if (!it.value().is_string()) {
            return data_loss("{}: weight_map entry for '{}' is not a file name: {}", index_path, it.key(),
                             it.value().dump());
        }
        const std::string shard_name = it.value().get<std::string>();
        DSA_ASSIGN_OR_RETURN(size_t shard, shard_index(shard_name, it.key()));
        if (!shards_[shard]->contains(it.key())) {
            return data_loss("{}: {} maps '{}' to {}, which has no such tensor", dir, kSafetensorsIndexFile, it.key(),
                             shard_name);
        }
        shard_of_[it.key()] = shard;
    }
    return Status::ok();
}

std::vector<std::string> Checkpoint::tensor_names() const {
    std::vector<std::string> names;
    names.reserve(shard_of_.size());
    for (const auto& [name, shard] : shard_of_) names.push_back(name);
    std::sort(names.begin(), names.end());
    return names;
}

const SafetensorsEntry* Checkpoint::find(const std::string& name) const {
    auto it = shard_of_.find(name);
    return it == shard_of_.end() ? nullptr : shards_[it->second]->find(name);
}

std::string Checkpoint::file_of(const std::string& name) const {
    auto it = shard_of_.find(name);
    return it == shard_of_.end() ? std::string() : shards_[it->second]->file_name();
}

StatusOr<Tensor> Checkpoint::tensor(const std::string& name) const {
    auto it = shard_of_.find(name);
    if (it == shard_of_.end()) return not_found("{}: tensor '{}' is not in the checkpoint ({})", path_, name, source_);
    return shards_[it->second]->tensor(name);
}

}  // namespace dsa::model
