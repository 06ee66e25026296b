#!/usr/bin/env bash
# Builds dsaserve's GPU targets and runs every GPU test (ctest -L gpu) and the CUDA kernel benchmarks on a
# machine with an NVIDIA GPU, writing logs and results into OUTPUT_DIR:
#   build.log, ctest.log, bench.txt, nvidia-smi.txt, summary.txt (and sanitizer.log with DSA_GPU_SANITIZER=1).
# Usage: tools/gpu_check.sh OUTPUT_DIR   (env: DSA_GPU_BUILD_DIR, DSA_GPU_JOBS, DSA_GPU_BENCH_ARGS, DSA_GPU_SANITIZER)
set -uo pipefail

out=${1:?usage: tools/gpu_check.sh OUTPUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DSA_GPU_BUILD_DIR:-$root/build-gpu}
jobs=${DSA_GPU_JOBS:-16}
# The GPU test binaries and benchmarks; add new GPU targets here.
targets=(backend_ops model_gpu_parity cuda_kernels_bench mla_bench moe_bench indexer_bench)
summary="$out/summary.txt"
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }

{ nvidia-smi; nvcc --version; cmake --version; } > "$out/nvidia-smi.txt" 2>&1

# The GPU machine has the PCRE2 runtime but no development files; only dsa_text needs them and no GPU target
# links dsa_text, so a configure-only pkg-config entry lets the project configure there.
if ! pkg-config --exists libpcre2-8 2> /dev/null; then
    mkdir -p "$build/pkgconfig-shim"
    printf '%s\n' 'Name: libpcre2-8' 'Description: configure-only entry (GPU targets do not use PCRE2)' \
        'Version: 10.42' 'Libs: -lpcre2-8' 'Cflags:' > "$build/pkgconfig-shim/libpcre2-8.pc"
    export PKG_CONFIG_PATH="$build/pkgconfig-shim${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
fi

start=$(date +%s)
if ! { cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DDSA_BUILD_TESTS=ON -DDSA_BUILD_BENCH=ON &&
       cmake --build "$build" -j"$jobs" --target "${targets[@]}"; } > "$out/build.log" 2>&1; then
    note "build: FAILED after $(( $(date +%s) - start )) s (see build.log)"
    tail -40 "$out/build.log"
    exit 1
fi
note "build: ok in $(( $(date +%s) - start )) s"

start=$(date +%s)
ctest --test-dir "$build" -L gpu --output-on-failure --timeout 900 -V > "$out/ctest.log" 2>&1
ctest_rc=$?
note "ctest -L gpu: rc=$ctest_rc in $(( $(date +%s) - start )) s"
grep -E "tests passed|tests failed|\[ metric \]|FAILED|SKIPPED" "$out/ctest.log" | sed 's/^[0-9]*: //' >> "$summary"

if [[ "${DSA_GPU_SANITIZER:-0}" == 1 ]] && command -v compute-sanitizer > /dev/null; then
    start=$(date +%s)
    timeout 120 compute-sanitizer --tool memcheck --error-exitcode 3 "$build/tests/backend/ops/backend_ops" \
        --gtest_filter='OpsTest.*:-*Unimplemented*' > "$out/sanitizer.log" 2>&1
    note "compute-sanitizer memcheck (OpsTest.*): rc=$? in $(( $(date +%s) - start )) s"
fi

start=$(date +%s)
# shellcheck disable=SC2086
"$build/bench/cuda_kernels_bench" ${DSA_GPU_BENCH_ARGS:-} > "$out/bench.txt" 2>&1
bench_rc=$?
note "cuda_kernels_bench: rc=$bench_rc in $(( $(date +%s) - start )) s"
start=$(date +%s)
# shellcheck disable=SC2086
"$build/bench/indexer_bench" ${DSA_GPU_BENCH_ARGS:-} >> "$out/bench.txt" 2>&1
idx_rc=$?
note "indexer_bench: rc=$idx_rc in $(( $(date +%s) - start )) s"
[[ $idx_rc == 0 ]] || bench_rc=$idx_rc
start=$(date +%s)
# shellcheck disable=SC2086
"$build/bench/mla_bench" ${DSA_GPU_BENCH_ARGS:-} >> "$out/bench.txt" 2>&1
mla_rc=$?
note "mla_bench: rc=$mla_rc in $(( $(date +%s) - start )) s"
[[ $mla_rc == 0 ]] || bench_rc=$mla_rc
start=$(date +%s)
"$build/bench/moe_bench" >> "$out/bench.txt" 2>&1
moe_rc=$?
note "moe_bench: rc=$moe_rc in $(( $(date +%s) - start )) s"
[[ $moe_rc == 0 ]] || bench_rc=$moe_rc
cat "$out/bench.txt"
cat "$summary"
[[ $ctest_rc == 0 && $bench_rc == 0 ]]
