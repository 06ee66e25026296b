// --device resolution and the device/numerics check of serve and generate, on whatever machine runs them:
// auto picks cuda exactly when an explicit cuda would be accepted; cuda without a GPU or a CUDA build is a
// clear error; FP32 numerics are refused on CUDA only.
#include "app/device_backend.h"

#include <gtest/gtest.h>

namespace dsa::app {
namespace {

TEST(DeviceBackend, AutoPicksCudaExactlyWhenCudaIsUsable) {
    StatusOr<Device> cuda = resolve_device("cuda");
    StatusOr<Device> autod = resolve_device("auto");
    ASSERT_TRUE(autod.is_ok());
    EXPECT_EQ(*autod, cuda.is_ok() ? Device::kCUDA : Device::kCPU);
    if (!cuda.is_ok()) {
        EXPECT_NE(cuda.status().message().find("--device cuda"), std::string::npos) << cuda.status().to_string();
        if (!cuda_backend_built()) {
            EXPECT_NE(cuda.status().message().find("no CUDA backend"), std::string::npos);
        }
    }
    StatusOr<Device> cpu = resolve_device("cpu");
    ASSERT_TRUE(cpu.is_ok());
    EXPECT_EQ(*cpu, Device::kCPU);
}

TEST(DeviceBackend, UnknownDeviceNamesTheChoices) {
    StatusOr<Device> d = resolve_device("tpu");
    ASSERT_FALSE(d.is_ok());
    EXPECT_NE(d.status().message().find("auto, cuda, cpu"), std::string::npos) << d.status().to_string();
}

TEST(DeviceBackend, Fp32NumericsAreCpuOnly) {
    EXPECT_TRUE(check_device_numerics(Device::kCPU, backend::Numerics::fp32(), "--numerics").is_ok());
    EXPECT_TRUE(check_device_numerics(Device::kCUDA, backend::Numerics::bf16(), "--numerics").is_ok());
    EXPECT_TRUE(check_device_numerics(Device::kCUDA, backend::Numerics::deepseek_fp8(), "--numerics").is_ok());
    Status st = check_device_numerics(Device::kCUDA, backend::Numerics::fp32(), "--numerics");
    ASSERT_FALSE(st.is_ok());
    EXPECT_NE(st.message().find("--numerics"), std::string::npos) << st.to_string();
    // make_backend applies the same check before touching a GPU.
    EXPECT_FALSE(make_backend(Device::kCUDA, backend::Numerics::fp32()).is_ok());
}

TEST(DeviceBackend, CpuProviderIsTheDefault) {
    engine::BackendProvider p = backend_provider(Device::kCPU);
    EXPECT_FALSE(p.make);
    EXPECT_FALSE(p.memory);
    auto be = make_backend(Device::kCPU, backend::Numerics::bf16());
    ASSERT_TRUE(be.is_ok());
    EXPECT_EQ((*be)->device(), Device::kCPU);
}

}  // namespace
}  // namespace dsa::app
