// Tensor: shape, strides, dtype and device over a reference-counted storage; owning or a view. Row-major
// contiguous is the common case; views from slice()/view() share the storage. CUDA memory comes through an
// allocator hook that the CUDA backend installs, so this module never includes CUDA headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "base/check.h"
#include "tensor/dtype.h"

namespace dsa {

enum class Device : uint8_t { kCPU, kCUDA };
const char* device_name(Device d);

using Shape = std::vector<int64_t>;
std::string shape_to_string(const Shape& s);

// A block of memory and how to free it.
class Storage {
public:
    Storage(void* data, size_t bytes, Device device, std::function<void(void*)> deleter)
        : data_(data), bytes_(bytes), device_(device), deleter_(std::move(deleter)) {}
    ~Storage() {
        if (deleter_) deleter_(data_);
    }
    Storage(const Storage&) = delete;
    Storage& operator=(const Storage&) = delete;

    void* data() const { return data_; }
    size_t bytes() const { return bytes_; }
    Device device() const { return device_; }

private:
    void* data_;
    size_t bytes_;
    Device device_;
    std::function<void(void*)> deleter_;
};

// Hook for device memory, installed by the CUDA backend.
struct DeviceAllocator {
    std::function<void*(size_t)> alloc;
    std::function<void(void*)> free;
};
void set_device_allocator(DeviceAllocator a);
bool has_device_allocator();

class Tensor {
public:
    Tensor() = default;

    static Tensor empty(const Shape& shape, DType dtype, Device device = Device::kCPU, std::string name = {});
    static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::kCPU, std::string name = {});
    // Wraps memory owned elsewhere; `owner` keeps it alive (e.g. a mapped checkpoint file).
    static Tensor wrap(void* data, const Shape& shape, DType dtype, Device device, std::shared_ptr<void> owner,
                       std::string name = {});

    bool defined() const { return storage_ != nullptr || wrapped_ != nullptr; }
    const Shape& shape() const { return shape_; }
    const Shape& strides() const { return strides_; }
    int64_t dim(int i) const;  // negative i counts from the end
    int ndim() const { return static_cast<int>(shape_.size()); }
    int64_t numel() const;
    size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
    DType dtype() const { return dtype_; }
    Device device() const { return device_; }
    const std::string& name() const { return name_; }
    Tensor& set_name(std::string n) {
        name_ = std::move(n);
        return *this;
    }
    bool is_contiguous() const;

    void* raw_data() const { return static_cast<uint8_t*>(base_ptr()) + offset_bytes_; }
    template <typename T>
    T* data() const {
        return static_cast<T*>(raw_data());
    }

    // Same storage, new shape (must be contiguous, same numel; one -1 allowed).
    Tensor view(const Shape& shape) const;
    // Rows [begin, end) along dim 0.
    Tensor slice(int64_t begin, int64_t end) const;
    // Drops dim 0 at index i.
    Tensor select(int64_t i) const;
    // Deep copy to a new contiguous tensor on `device` (CPU<->CPU here; device copies go through the backend).
    Tensor clone() const;

private:
    void* base_ptr() const { return storage_ ? storage_->data() : wrapped_data_; }
    static Shape contiguous_strides(const Shape& shape);

    std::shared_ptr<Storage> storage_;
    std::shared_ptr<void> wrapped_;  // owner of wrapped memory
    void* wrapped_data_ = nullptr;
    size_t offset_bytes_ = 0;
    Shape shape_;
    Shape strides_;  // in elements
    DType dtype_ = DType::kF32;
    Device device_ = Device::kCPU;
    std::string name_;
};

}  // namespace dsa
