// Decode-input helpers (decode_inputs.h).
#include "backend/decode_inputs.h"

#include "backend/tensor_checks.h"
#include "base/check.h"

namespace dsa::backend {

void check_decode_slots_args(const Tensor& page_table, const Tensor& positions, int64_t page_size, int64_t width,
                             Device device) {
    DSA_CHECK(page_table.defined() && positions.defined()) << "decode_slots inputs are undefined";
    check_tensor_on(page_table, device, DType::kI32, {-1, -1}, "decode_slots page_table");
    check_tensor_on(positions, device, DType::kI32, {page_table.dim(0)}, "decode_slots positions");
    DSA_CHECK(page_size > 0 && width > 0) << "decode_slots page_size " << page_size << " width " << width;
}

void decode_slots_host(const Tensor& page_table, const Tensor& positions, int64_t page_size, Tensor& key_slots,
                       Tensor& out_slots) {
    const int64_t rows = page_table.dim(0), pages = page_table.dim(1), width = key_slots.dim(1);
    const int32_t* pt = page_table.data<int32_t>();
    for (int64_t b = 0; b < rows; ++b) {
        const int64_t pos = positions.data<int32_t>()[b];
        DSA_CHECK(pos >= 0 && pos < width && pos < pages * page_size)
            << "decode_slots row " << b << " position " << pos << " outside width " << width << " / "
            << pages * page_size << " paged positions";
        int32_t* row = key_slots.data<int32_t>() + b * width;
        for (int64_t p = 0; p < width; ++p) {
            if (p > pos) {
                row[p] = -1;
                continue;
            }
            const int64_t page = pt[b * pages + p / page_size];
            DSA_CHECK(page >= 0) << "decode_slots row " << b << " page " << p / page_size << " is " << page;
            row[p] = static_cast<int32_t>(page * page_size + p % page_size);
        }
        out_slots.data<int32_t>()[b] = row[pos];
    }
}

void check_copy_into_args(const Tensor& host, const Tensor& dst) {
    DSA_CHECK(host.defined() && dst.defined()) << "copy_into of an undefined tensor";
    DSA_CHECK(host.device() == Device::kCPU && host.is_contiguous() && dst.is_contiguous())
        << "copy_into takes a contiguous host tensor and a contiguous destination";
    DSA_CHECK(host.dtype() == dst.dtype()) << "copy_into " << dtype_name(host.dtype()) << " into "
                                           << dtype_name(dst.dtype());
    DSA_CHECK(host.ndim() == dst.ndim() && (host.ndim() == 1 || host.ndim() == 2))
        << "copy_into " << shape_to_string(host.shape()) << " into " << shape_to_string(dst.shape());
    for (int64_t d = 0; d < host.ndim(); ++d) {
        DSA_CHECK(host.dim(d) <= dst.dim(d))
            << "copy_into " << shape_to_string(host.shape()) << " does not fit " << shape_to_string(dst.shape());
    }
}

}  // namespace dsa::backend
