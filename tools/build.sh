#!/usr/bin/env bash
# Configures and builds dsaserve into ./build (or $DSA_BUILD_DIR). Extra arguments go to cmake --build.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${DSA_BUILD_DIR:-build}"
JOBS="${DSA_JOBS:-$(nproc)}"
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${DSA_BUILD_TYPE:-RelWithDebInfo}" ${DSA_CMAKE_ARGS:-} >/dev/null
fi
cmake --build "$BUILD_DIR" -j"$JOBS" "$@"
