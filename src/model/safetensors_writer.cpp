// Writing safetensors files and index.json weight maps.
#include "model/safetensors_writer.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "base/json.h"
#include "base/mapped_file.h"
#include "tensor/numeric.h"

namespace dsa::model {
namespace {

int64_t shape_numel(const Shape& shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

template <typename T>
std::vector<uint8_t> to_bytes(const std::vector<T>& values) {
    std::vector<uint8_t> bytes(values.size() * sizeof(T));
    if (!bytes.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
    return bytes;
}

}  // namespace

void SafetensorsWriter::add(const std::string& name, DType dtype, const Shape& shape, std::vector<uint8_t> bytes) {
    DSA_CHECK_EQ(bytes.size(), static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype))
        << "tensor " << name << " " << shape_to_string(shape);
    DSA_CHECK(!contains(name)) << "duplicate tensor " << name;
    tensors_.push_back(Pending{name, dtype, shape, std::move(bytes)});
}

void SafetensorsWriter::add(const std::string& name, const Tensor& tensor) {
    DSA_CHECK(tensor.is_contiguous() && tensor.device() == Device::kCPU) << name;
    const auto* p = static_cast<const uint8_t*>(tensor.raw_data());
    add(name, tensor.dtype(), tensor.shape(), std::vector<uint8_t>(p, p + tensor.nbytes()));
}

void SafetensorsWriter::add_f32(const std::string& name, const Shape& shape, const std::vector<float>& values) {
    add(name, DType::kF32, shape, to_bytes(values));
}

void SafetensorsWriter::add_bf16(const std::string& name, const Shape& shape, const std::vector<float>& values) {
    std::vector<uint16_t> bits(values.size());
    for (size_t i = 0; i < values.size(); ++i) bits[i] = f32_to_bf16(values[i]);
    add(name, DType::kBF16, shape, to_bytes(bits));
}

void SafetensorsWriter::add_fp8(const std::string& name, const Shape& shape, const std::vector<float>& values) {
    std::vector<uint8_t> bytes(values.size());
    for (size_t i = 0; i < values.size(); ++i) bytes[i] = f32_to_fp8e4m3(values[i]);
    add(name, DType::kF8E4M3, shape, std::move(bytes));
}

bool SafetensorsWriter::contains(const std::string& name) const {
    for (const Pending& t : tensors_) {
        if (t.name == name) return true;
    }
    return false;
}

std::vector<std::string> SafetensorsWriter::tensor_names() const {
    std::vector<std::string> names;
    for (const Pending& t : tensors_) names.push_back(t.name);
    return names;
}

uint64_t SafetensorsWriter::total_data_bytes() const {
    uint64_t total = 0;
    for (const Pending& t : tensors_) total += t.bytes.size();
    return total;
}

std::string SafetensorsWriter::serialize() const {
    OrderedJson header = OrderedJson::object();
    if (!metadata_.empty()) header["__metadata__"] = metadata_;
    uint64_t offset = 0;
    for (const Pending& t : tensors_) {
        header[t.name] = {
            {"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes.size()}}};
        offset += t.bytes.size();
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    std::string out(8, '\0');
    const uint64_t n = text.size();
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    out += text;
    for (const Pending& t : tensors_) out.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
    return out;
}

Status SafetensorsWriter::write(const std::string& path) const { return write_text_file(path, serialize()); }

Status write_safetensors_index(const std::string& dir, const std::map<std::string, std::string>& weight_map,
                               uint64_t total_size) {
    Json index = {{"metadata", {{"total_size", total_size}}}, {"weight_map", weight_map}};
    return write_text_file(join_path(dir, "model.safetensors.index.json"), index.dump(2));
}

Status write_text_file(const std::string& path, const std::string& contents) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) return not_found("cannot create {}: {}", path, std::strerror(errno));
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.close();
    if (!out) return data_loss("error writing {}", path);
    return Status::ok();
}

}  // namespace dsa::model
