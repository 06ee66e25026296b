// Op-boundary tensor checks.
#include "backend/tensor_checks.h"

#include "base/check.h"

namespace dsa::backend {

void check_tensor_on(const Tensor& t, Device device, DType dt, std::initializer_list<int64_t> shape,
                     const char* what) {
    DSA_CHECK(t.defined()) << what << " is undefined";
    DSA_CHECK(t.device() == device) << what << " is not a " << device_name(device) << " tensor";
    DSA_CHECK(t.is_contiguous()) << what << " is not contiguous";
    DSA_CHECK(t.dtype() == dt) << what << " has dtype " << dtype_name(t.dtype()) << ", expected " << dtype_name(dt);
    DSA_CHECK_EQ(static_cast<size_t>(t.ndim()), shape.size()) << what << " " << shape_to_string(t.shape());
    int i = 0;
    for (int64_t d : shape) {
        DSA_CHECK(d < 0 || t.dim(i) == d) << what << " " << shape_to_string(t.shape()) << ": dim " << i
                                          << " should be " << d;
        ++i;
    }
}

}  // namespace dsa::backend
