#!/usr/bin/env bash
# The test command: installs dependencies, builds everything, runs every test that needs no GPU (GPU tests
# skip cleanly without one). Usage: tools/test.sh [ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh
tools/build.sh
cd "${DSA_BUILD_DIR:-build}"
ctest --output-on-failure -j"$(nproc)" --timeout 900 "$@"
