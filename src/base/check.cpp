// Abort path of DSA_CHECK.
#include "base/check.h"

#include <cstdio>
#include <cstdlib>

namespace dsa::detail {

void check_failed(const char* file, int line, const std::string& what) {
    std::fprintf(stderr, "[dsaserve FATAL] %s:%d: %s\n", file, line, what.c_str());
    std::fflush(stderr);
    std::abort();
}

}  // namespace dsa::detail
