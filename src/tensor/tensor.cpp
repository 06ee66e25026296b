// Tensor construction, views and copies.
#include "tensor/tensor.h"

#include <cstdlib>
#include <cstring>
#include <numeric>

#include <fmt/format.h>

namespace dsa {
namespace {
DeviceAllocator& device_allocator() {
    static DeviceAllocator a;
    return a;
}
}  // namespace

const char* device_name(Device d) { return d == Device::kCPU ? "cpu" : "cuda"; }

std::string shape_to_string(const Shape& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
}

void set_device_allocator(DeviceAllocator a) { device_allocator() = std::move(a); }
bool has_device_allocator() { return static_cast<bool>(device_allocator().alloc); }

Shape Tensor::contiguous_strides(const Shape& shape) {
    Shape st(shape.size());
    int64_t s = 1;
    for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
        st[i] = s;
        s *= shape[i];
    }
    return st;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device, std::string name) {
    for (int64_t d : shape) DSA_CHECK_GE(d, 0) << "negative dimension in " << shape_to_string(shape);
    Tensor t;
    t.shape_ = shape;
    t.strides_ = contiguous_strides(shape);
    t.dtype_ = dtype;
    t.device_ = device;
    t.name_ = std::move(name);
    size_t bytes = std::max<size_t>(t.nbytes(), 1);
    if (device == Device::kCPU) {
        size_t aligned = (bytes + 63) / 64 * 64;
        void* p = std::aligned_alloc(64, aligned);
        DSA_CHECK(p != nullptr) << "out of host memory allocating " << bytes << " bytes for " << t.name_;
        t.storage_ = std::make_shared<Storage>(p, bytes, device, [](void* q) { std::free(q); });
    } else {
        auto& a = device_allocator();
        DSA_CHECK(a.alloc) << "no device allocator installed (CUDA backend not initialized)";
        void* p = a.alloc(bytes);
        t.storage_ = std::make_shared<Storage>(p, bytes, device, a.free);
    }
    return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device, std::string name) {
    DSA_CHECK(device == Device::kCPU) << "Tensor::zeros on device memory goes through the backend";
    Tensor t = empty(shape, dtype, device, std::move(name));
    std::memset(t.raw_data(), 0, t.nbytes());
    return t;
}

Tensor Tensor::wrap(void* data, const Shape& shape, DType dtype, Device device, std::shared_ptr<void> owner,
                    std::string name) {
    Tensor t;
    t.wrapped_ = owner ? std::move(owner) : std::shared_ptr<void>(data, [](void*) {});
    t.wrapped_data_ = data;
    t.shape_ = shape;
    t.strides_ = contiguous_strides(shape);
    t.dtype_ = dtype;
    t.device_ = device;
    t.name_ = std::move(name);
    return t;
}

int64_t Tensor::dim(int i) const {
    int n = ndim();
    if (i < 0) i += n;
    DSA_CHECK(i >= 0 && i < n) << "dim " << i << " of a " << n << "-d tensor " << name_;
    return shape_[i];
}

int64_t Tensor::numel() const {
    return std::accumulate(shape_.begin(), shape_.end(), int64_t{1}, std::multiplies<int64_t>());
}

bool Tensor::is_contiguous() const { return strides_ == contiguous_strides(shape_); }

Tensor Tensor::view(const Shape& shape) const {
    DSA_CHECK(is_contiguous()) << "view of a non-contiguous tensor " << name_;
    Shape s = shape;
    int64_t known = 1;
    int infer = -1;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == -1) {
            DSA_CHECK_EQ(infer, -1) << "two -1 dims in view";
            infer = static_cast<int>(i);
        } else {
            known *= s[i];
        }
    }
    if (infer >= 0) {
        DSA_CHECK(known > 0 && numel() % known == 0) << "cannot view " << shape_to_string(shape_) << " as "
                                                      << shape_to_string(shape);
        s[infer] = numel() / known;
        known *= s[infer];
    }
    DSA_CHECK_EQ(known, numel()) << "view " << shape_to_string(shape_) << " -> " << shape_to_string(shape);
    Tensor t = *this;
    t.shape_ = s;
    t.strides_ = contiguous_strides(s);
    return t;
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
    DSA_CHECK(ndim() >= 1);
    DSA_CHECK(0 <= begin && begin <= end && end <= shape_[0])
        << "slice [" << begin << ", " << end << ") of " << shape_to_string(shape_) << " " << name_;
    Tensor t = *this;
    t.offset_bytes_ += static_cast<size_t>(begin * strides_[0]) * dtype_size(dtype_);
    t.shape_[0] = end - begin;
    return t;
}

Tensor Tensor::select(int64_t i) const {
    Tensor t = slice(i, i + 1);
    t.shape_.erase(t.shape_.begin());
    t.strides_.erase(t.strides_.begin());
    return t;
}

Tensor Tensor::clone() const {
    DSA_CHECK(device_ == Device::kCPU) << "clone() of a device tensor goes through the backend";
    DSA_CHECK(is_contiguous()) << "clone() of a non-contiguous tensor " << name_;
    Tensor t = empty(shape_, dtype_, device_, name_);
    std::memcpy(t.raw_data(), raw_data(), nbytes());
    return t;
}

}  // namespace dsa
