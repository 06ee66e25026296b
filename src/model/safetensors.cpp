// Strict safetensors header parsing over a memory map, and zero-copy tensor views.
#include "model/safetensors.h"

#include <algorithm>
#include <cstring>

#include "model/config_json.h"

namespace dsa::model {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the reference implementation's limit

uint64_t read_le_u64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

// prod(shape) * elem_size, or false on overflow.
bool shape_bytes(const Shape& shape, size_t elem_size, uint64_t* out) {
    unsigned __int128 total = elem_size;
    for (int64_t d : shape) {
        total *= static_cast<uint64_t>(d);
        if (total > static_cast<unsigned __int128>(UINT64_MAX)) return false;
    }
    *out = static_cast<uint64_t>(total);
    return true;
}

std::string base_name(const std::string& path) {
    const size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

StatusOr<std::shared_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path) {
    DSA_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::open(path));
    return parse(std::move(file));
}

StatusOr<std::shared_ptr<SafetensorsFile>> SafetensorsFile::parse(std::shared_ptr<MappedFile> file) {
    std::shared_ptr<SafetensorsFile> st(new SafetensorsFile());
    st->file_ = std::move(file);
    DSA_RETURN_IF_ERROR(st->parse_header());
    DSA_RETURN_IF_ERROR(st->check_offsets());
    return st;
}

std::string SafetensorsFile::file_name() const { return base_name(path()); }

Status SafetensorsFile::parse_header() {
    const uint64_t file_size = file_->size();
    if (file_size < 8) {
        return data_loss("{}: safetensors file is {} bytes, too short for the 8-byte header length", path(), file_size);
    }
    const uint64_t header_size = read_le_u64(file_->data());
    if (header_size > file_size - 8) {
        return data_loss(
            "{}: safetensors header length {} exceeds the file size {} (truncated or not a "
            "safetensors file)",
            path(), header_size, file_size);
    }
    if (header_size > kMaxHeaderBytes) {
        return data_loss("{}: safetensors header length {} exceeds the {}-byte limit", path(), header_size,
                         kMaxHeaderBytes);
    }
    data_start_ = 8 + header_size;
    data_size_ = file_size - data_start_;
    const char* text = reinterpret_cast<const char*>(file_->data() + 8);
    Json header = Json::parse(text, text + header_size, /*cb=*/nullptr, /*allow_exceptions=*/false);
    if (header.is_discarded()) return data_loss("{}: safetensors header is not valid JSON", path());
    if (!header.is_object()) {
        return data_loss("{}: safetensors header must be a JSON object, got {}", path(), header.type_name());
    }
    for (auto it = header.begin(); it != header.end(); ++it) {
        if (it.key() == "__metadata__") {
            if (!it.value().is_object()) return data_loss("{}: __metadata__ must be an object", path());
            for (auto m = it.value().begin(); m != it.value().end(); ++m) {
                metadata_[m.key()] = m.value().is_string() ? m.value().get<std::string>() : m.value().dump();
            }
            continue;
        }
        DSA_RETURN_IF_ERROR(add_entry(it.key(), it.value()));
    }
    return Status::ok();
}

Status SafetensorsFile::add_entry(const std::string& name, const Json& value) {
    auto bad = [&](std::string_view what) {
        return data_loss("{}: tensor '{}': {} (header entry {})", path(), name, what,
                         config_json::describe_value(value));
    };
    if (!value.is_object()) return bad("entry is not an object");
    const Json* dtype_json = config_json::find_field(value, "dtype");
    const Json* shape_json = config_json::find_field(value, "shape");
    const Json* offsets_json = config_json::find_field(value, "data_offsets");
    if (dtype_json == nullptr || !dtype_json->is_string()) return bad("missing or non-string 'dtype'");
    if (shape_json == nullptr || !shape_json->is_array()) return bad("missing or non-list 'shape'");
    if (offsets_json == nullptr || !offsets_json->is_array() || offsets_json->size() != 2) {
        return bad("'data_offsets' must be [begin, end]");
    }
    SafetensorsEntry e;
    e.name = name;
    const auto dtype = dtype_from_safetensors(dtype_json->get<std::string>());
    if (!dtype) return data_loss("{}: tensor '{}': unknown dtype '{}'", path(), name, dtype_json->get<std::string>());
    e.dtype = *dtype;
    for (const Json& d : *shape_json) {
        int64_t dim = 0;
        if (!config_json::json_to_int(d, &dim) || dim < 0) return bad("shape entries must be non-negative integers");
        e.shape.push_back(dim);
    }
    int64_t begin = 0;
    int64_t end = 0;
    if (!config_json::json_to_int((*offsets_json)[0], &begin) || !config_json::json_to_int((*offsets_json)[1], &end) ||
        begin < 0 || end < begin) {
        return bad("'data_offsets' must be non-negative integers with begin <= end");
    }
    e.data_begin = static_cast<uint64_t>(begin);
    e.data_end = static_cast<uint64_t>(end);
    uint64_t expected_bytes = 0;
    if (!shape_bytes(e.shape, dtype_size(e.dtype), &expected_bytes) || expected_bytes != e.num_bytes()) {
        return data_loss("{}: tensor '{}': data_offsets [{}, {}] hold {} bytes, but shape {} of {} needs {}", path(),
                         name, begin, end, e.num_bytes(), shape_to_string(e.shape), dtype_name(e.dtype),
                         expected_bytes);
    }
    if (e.data_end > data_size_) {
        return data_loss(
            "{}: tensor '{}': data_offsets [{}, {}] run past the end of the data section ({} bytes; "
            "file truncated?)",
            path(), name, begin, end, data_size_);
    }
    by_name_[name] = entries_.size();
    entries_.push_back(std::move(e));
    return Status::ok();
}

Status SafetensorsFile::check_offsets() {
    std::sort(entries_.begin(), entries_.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
        return a.data_begin != b.data_begin ? a.data_begin < b.data_begin : a.data_end < b.data_end;
    });
    by_name_.clear();
    const SafetensorsEntry* previous = nullptr;
    for (size_t i = 0; i < entries_.size(); ++i) {
        const SafetensorsEntry& e = entries_[i];
        if (previous != nullptr && e.num_bytes() > 0 && e.data_begin < previous->data_end) {
            return data_loss("{}: tensor '{}' (data_offsets [{}, {}]) overlaps tensor '{}' ([{}, {}])", path(), e.name,
                             e.data_begin, e.data_end, previous->name, previous->data_begin, previous->data_end);
        }
        if (e.num_bytes() > 0) previous = &e;
        by_name_[e.name] = i;
    }
    return Status::ok();
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : &entries_[it->second];
}

StatusOr<Tensor> SafetensorsFile::tensor(const std::string& name) const {
    const SafetensorsEntry* e = find(name);
    if (e == nullptr) return not_found("{}: no tensor '{}'", path(), name);
    auto* data = const_cast<uint8_t*>(file_->data() + data_start_ + e->data_begin);
    return Tensor::wrap(data, e->shape, e->dtype, Device::kCPU, std::shared_ptr<void>(file_), name);
}

}  // namespace dsa::model
