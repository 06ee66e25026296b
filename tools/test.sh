#!/usr/bin/env bash
# The test command: installs dependencies, builds everything, runs every test that needs no GPU (GPU tests
# skip cleanly without one), then runs each libFuzzer target for a bounded time (DSA_FUZZ_SECONDS per target,
# default 20; 0 skips fuzzing). Usage: tools/test.sh [ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh
tools/build.sh
(cd "${DSA_BUILD_DIR:-build}" && ctest --output-on-failure -j"$(nproc)" --timeout 900 "$@")
FUZZ_SECONDS="${DSA_FUZZ_SECONDS:-20}"
if [ "$FUZZ_SECONDS" != "0" ]; then
    for target in tokenizer parsers jinja; do
        tools/fuzz.sh "$target" "$FUZZ_SECONDS" > "${DSA_BUILD_DIR:-build}/fuzz_$target.log" 2>&1 ||
            { tail -40 "${DSA_BUILD_DIR:-build}/fuzz_$target.log"; echo "fuzz target $target failed"; exit 1; }
        echo "fuzz: $target ran ${FUZZ_SECONDS}s without a finding"
    done
fi
