#!/usr/bin/env bash
# Builds dsaserve's GPU targets and runs every GPU test (ctest -L gpu) and the CUDA kernel benchmarks on a
# machine with an NVIDIA GPU, writing logs and results into OUTPUT_DIR:
#   build.log, ctest.log, bench.txt, nvidia-smi.txt, summary.txt, sanitizer.log, and when dsaserve builds,
#   model_{cpu,gpu}.json (+ server logs): the bundled model scored through a CPU and a GPU server, with the
#   count of identical greedy replies between the two.
# Usage: tools/gpu_check.sh OUTPUT_DIR   (several GPUs: tests sharded over them, benchmarks + model alongside)
# Env: DSA_GPU_BUILD_DIR, DSA_GPU_JOBS, DSA_GPU_BENCH_ARGS, DSA_GPU_SANITIZER (1 = memcheck the op tests, default 1),
#      DSA_GPU_STAGES (default "build test sanitizer bench model"; "profile" = Nsight Compute kernel times of one
#      decode step of layer_bench per case in DSA_GPU_PROFILE_CASES, default "1:4096" (B:L, space-separated),
#      with DSA_GPU_PROFILE_ARGS (default "--numerics deepseek-fp8 --layers 2 --no-dense"): profile_B_L.{csv,txt}), DSA_PCRE2_INCLUDE (folder holding pcre2.h
#      where the machine has the PCRE2 runtime but not its development files: dsaserve then builds too),
#      DSA_GPU_EVAL_FULL=1 (also score the GPU server at the harness's default counts, every passkey length),
#      DSA_GPU_LAYER_BENCH_ARGS (default --quick), DSA_GPU_SANITIZER_TIMEOUT (s, default 600),
#      DSA_GPU_TEST_SHARDS (ctest processes at once, round-robin over the test GPUs; default one per GPU: more
#      shards share a GPU, which shortens the run where tests wait on their CPU reference),
#      DSA_GPU_SANITIZER_FILTER (gtest filter of the memcheck run; default: every op test but the death tests),
#      DSA_GPU_CPU_THREADS (OpenMP threads of the CPU-side work, default 8), DSA_GPU_TEST_TIMEOUT and
#      DSA_GPU_BENCH_TIMEOUT (s per test / per benchmark binary, default 900).
set -uo pipefail

out=${1:?usage: tools/gpu_check.sh OUTPUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DSA_GPU_BUILD_DIR:-$root/build-gpu}
jobs=${DSA_GPU_JOBS:-16}
# The GPU test binaries and benchmarks; add new GPU targets here.
targets=(backend_ops model_gpu_parity cuda_kernels_bench mla_bench moe_bench indexer_bench layer_bench sampling_bench absorb_bench l2_prefetch_bench hbm_pattern_bench)
summary="$out/summary.txt"
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }

{ nvidia-smi; nvcc --version; cmake --version; } > "$out/nvidia-smi.txt" 2>&1

stages=" ${DSA_GPU_STAGES:-build test sanitizer bench model} "
want() { [[ "$stages" == *" $1 "* ]]; }

# A machine with the PCRE2 runtime but no development files: only dsa_text (the server) needs them. With
# DSA_PCRE2_INCLUDE the entry points at that header and the runtime library, and dsaserve is built too;
# without it the entry only lets the project configure, and the GPU tests (which do not link dsa_text) build.
if ! pkg-config --exists libpcre2-8 2> /dev/null; then
    shim="$build/pkgconfig-shim"; mkdir -p "$shim"
    runtime=$(ldconfig -p 2> /dev/null | awk '/libpcre2-8\.so\.0 .*x86-64/ {print $NF; exit}')
    if [[ -n "${DSA_PCRE2_INCLUDE:-}" && -f "$DSA_PCRE2_INCLUDE/pcre2.h" && -n "$runtime" ]]; then
        ln -sf "$runtime" "$shim/libpcre2-8.so"
        printf '%s\n' 'Name: libpcre2-8' 'Description: runtime library + carried header' 'Version: 10.42' \
            "Libs: -L$shim -lpcre2-8" "Cflags: -I$(cd "$DSA_PCRE2_INCLUDE" && pwd)" > "$shim/libpcre2-8.pc"
        targets+=(dsaserve)
    else
        printf '%s\n' 'Name: libpcre2-8' 'Description: configure-only entry (GPU targets do not use PCRE2)' \
            'Version: 10.42' 'Libs: -lpcre2-8' 'Cflags:' > "$shim/libpcre2-8.pc"
    fi
    export PKG_CONFIG_PATH="$shim${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
else
    targets+=(dsaserve)
fi

build_stage() {
    local start=$(date +%s)
    if ! { cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DDSA_BUILD_TESTS=ON -DDSA_BUILD_BENCH=ON &&
           cmake --build "$build" -j"$jobs" --target "${targets[@]}"; } > "$out/build.log" 2>&1; then
        note "build: FAILED after $(( $(date +%s) - start )) s (see build.log)"
        tail -40 "$out/build.log"
        exit 1
    fi
    note "build: ok in $(( $(date +%s) - start )) s (targets: ${targets[*]})"
}

# GPUs to use: CUDA_VISIBLE_DEVICES if set, else every GPU nvidia-smi lists. With two or more, the GPU tests are
# sharded over all but the last (ctest -I stride) and the last one runs the benchmarks and the model stage at the
# same time; with one, everything runs in turn.
if [[ -n "${CUDA_VISIBLE_DEVICES:-}" ]]; then IFS=, read -r -a gpus <<< "$CUDA_VISIBLE_DEVICES"
else mapfile -t gpus < <(nvidia-smi --query-gpu=index --format=csv,noheader 2> /dev/null); fi
(( ${#gpus[@]} > 0 )) || gpus=(0)
set_rc() { echo "$2" > "$out/rc.$1"; }

# The CPU sides (reference models in the tests, the CPU server) run small matrices; with one OpenMP thread per
# core of a 64-core host they were slower than on 2 cores (the CPU server: 235 s for the CI counts there, 112 s
# on a 2-core machine), so they get a few threads.
cpu_threads=${DSA_GPU_CPU_THREADS:-8}

test_shard() {  # test_shard INDEX COUNT GPU
    OMP_NUM_THREADS=$cpu_threads CUDA_VISIBLE_DEVICES=$3 ctest --test-dir "$build" -L gpu -I "$(( $1 + 1 )),,$2" --output-on-failure \
        --timeout "${DSA_GPU_TEST_TIMEOUT:-900}" -V > "$out/ctest.$1.log" 2>&1
}

test_stage() {  # $shards shards round-robin over the first $test_gpus GPUs
    local start=$(date +%s) n=$shards i rc=0 pids=()
    for ((i = 0; i < n; ++i)); do test_shard "$i" "$n" "${gpus[$(( i % test_gpus ))]}" & pids+=($!); done
    for i in "${pids[@]}"; do wait "$i" || rc=1; done
    cat "$out"/ctest.*.log > "$out/ctest.log"
    note "ctest -L gpu ($n shards): rc=$rc in $(( $(date +%s) - start )) s"
    grep -hE "tests passed|tests failed|\[ metric \]|FAILED|SKIPPED" "$out"/ctest.*.log | sed 's/^[0-9]*: //' >> "$summary"
    set_rc test "$rc"
}

# memcheck of the op tests (death tests excluded: they fork, which is slow under the sanitizer).
sanitizer_stage() {
    [[ "${DSA_GPU_SANITIZER:-1}" == 1 ]] || return 0
    command -v compute-sanitizer > /dev/null || { note "compute-sanitizer: not found, skipped"; return 0; }
    local start=$(date +%s) rc
    CUDA_VISIBLE_DEVICES=$sanitizer_gpu timeout "${DSA_GPU_SANITIZER_TIMEOUT:-600}" compute-sanitizer --tool memcheck \
        --error-exitcode 3 "$build/tests/backend/ops/backend_ops" \
        --gtest_filter="${DSA_GPU_SANITIZER_FILTER:--*BadInputs*:*Abort*}" \
        > "$out/sanitizer.log" 2>&1
    rc=$?
    note "compute-sanitizer memcheck (backend_ops without death tests): rc=$rc in $(( $(date +%s) - start )) s"
    grep -E "ERROR SUMMARY|tests passed|FAILED" "$out/sanitizer.log" | head -20 >> "$summary"
    set_rc sanitizer "$rc"
}

bench_one() {
    local name=$1 start=$(date +%s) rc; shift
    timeout "${DSA_GPU_BENCH_TIMEOUT:-900}" "$build/bench/$name" "$@" >> "$out/bench.txt" 2>&1
    rc=$?
    note "$name: rc=$rc in $(( $(date +%s) - start )) s"
    [[ $rc == 0 ]] || set_rc "bench.$name" "$rc"
}

bench_stage() {
    : > "$out/bench.txt"
    # shellcheck disable=SC2086
    { bench_one cuda_kernels_bench ${DSA_GPU_BENCH_ARGS:-}; bench_one indexer_bench ${DSA_GPU_BENCH_ARGS:-}
      bench_one mla_bench ${DSA_GPU_BENCH_ARGS:-}; bench_one moe_bench
      bench_one sampling_bench; bench_one absorb_bench; bench_one l2_prefetch_bench; bench_one hbm_pattern_bench; bench_one layer_bench ${DSA_GPU_LAYER_BENCH_ARGS:---quick}; }
}

# Kernel times of one decode step (layer_bench --profile under Nsight Compute), summarised per kernel.
profile_stage() {
    command -v ncu > /dev/null || { note "profile: ncu not found, skipped"; return 0; }
    local c b l start rc
    for c in ${DSA_GPU_PROFILE_CASES:-1:4096}; do
        b=${c%%:*}; l=${c##*:}; start=$(date +%s)
        # shellcheck disable=SC2086
        timeout "${DSA_GPU_BENCH_TIMEOUT:-900}" ncu --profile-from-start off --clock-control none \
            --metrics gpu__time_duration.sum --csv --print-units base --print-kernel-base function \
            "$build/bench/layer_bench" --batches "$b" --contexts "$l" --profile \
            ${DSA_GPU_PROFILE_ARGS:---numerics deepseek-fp8 --layers 2 --no-dense} > "$out/profile_${b}_${l}.csv" 2>&1
        rc=$?
        python3 "$root/tools/kernel_profile_summary.py" "$out/profile_${b}_${l}.csv" > "$out/profile_${b}_${l}.txt" 2>&1 || rc=1
        note "profile B=$b L=$l: rc=$rc in $(( $(date +%s) - start )) s; $(head -1 "$out/profile_${b}_${l}.txt")"
        [[ $rc == 0 ]] || set_rc "profile.$b.$l" "$rc"
    done
}

# The bundled model served on the CPU and on the GPU (the same serving numerics), scored by the accuracy harness; the CPU
# run also counts the replies identical to the GPU's (greedy).
model_stage() {
    local bin="$build/dsaserve" model="$root/models/dsv32-tiny" dev port pids=() rc
    [[ -x "$bin" ]] || { note "model: dsaserve not built (set DSA_PCRE2_INCLUDE), skipped"; return 0; }
    local counts=(--n-arith "${DSA_GPU_EVAL_ARITH:-40}" --n-tool "${DSA_GPU_EVAL_TOOL:-20}"
                  --n-passkey "${DSA_GPU_EVAL_PASSKEY:-10}" --lengths "${DSA_GPU_EVAL_LENGTHS:-256,1024}")
    for dev in cpu cuda; do
        port=$([[ $dev == cpu ]] && echo 30101 || echo 30102)
        OMP_NUM_THREADS=$cpu_threads "$bin" serve --model-path "$model" --device "$dev" --port "$port" \
            --tool-call-parser deepseekv32 \
            --reasoning-parser deepseek-v3 > "$out/serve_$dev.log" 2>&1 &
        pids+=($!)
    done
    local start=$(date +%s)
    python3 "$root/tools/eval_tiny.py" --base-url http://127.0.0.1:30102 --wait 120 "${counts[@]}" \
        --dump-outputs "$out/model_gpu.jsonl" --output "$out/model_gpu.json" > "$out/model_gpu.txt" 2>&1
    rc=$?
    note "model on cuda: rc=$rc in $(( $(date +%s) - start )) s"; start=$(date +%s)
    python3 "$root/tools/eval_tiny.py" --base-url http://127.0.0.1:30101 --wait 120 "${counts[@]}" \
        --compare-with "$out/model_gpu.jsonl" --output "$out/model_cpu.json" > "$out/model_cpu.txt" 2>&1
    local cpu_rc=$?
    note "model on cpu: rc=$cpu_rc in $(( $(date +%s) - start )) s"
    (( rc )) || rc=$cpu_rc
    if [[ "${DSA_GPU_EVAL_FULL:-0}" == 1 ]]; then  # the harness's default counts and every length, GPU only
        start=$(date +%s)
        python3 "$root/tools/eval_tiny.py" --base-url http://127.0.0.1:30102 --concurrency 32 \
            --thresholds arith_chat=0.90,tool_call=0.95,passkey=0.95 --output "$out/model_gpu_full.json" \
            > "$out/model_gpu_full.txt" 2>&1
        local full_rc=$?
        note "model on cuda, default counts: rc=$full_rc in $(( $(date +%s) - start )) s"
        (( rc )) || rc=$full_rc
    fi
    kill "${pids[@]}" 2> /dev/null; wait "${pids[@]}" 2> /dev/null
    { echo "-- cuda"; cat "$out/model_gpu.txt"; echo "-- cpu (compared with cuda)"; cat "$out/model_cpu.txt"
      [[ -f "$out/model_gpu_full.txt" ]] && { echo "-- cuda, default counts"; cat "$out/model_gpu_full.txt"; }; } |
        grep -v "requests done" >> "$summary"
    set_rc model "$rc"
}

rm -f "$out"/rc.*
want build && build_stage
ngpus=${#gpus[@]}
last=${gpus[$(( ngpus - 1 ))]}
sanitizer_gpu=${gpus[0]}
if (( ngpus >= 4 )); then  # test shards | sanitizer | benchmarks + model, side by side
    test_gpus=$(( ngpus - 2 )); shards=${DSA_GPU_TEST_SHARDS:-$test_gpus}; sanitizer_gpu=${gpus[$(( ngpus - 2 ))]}
    { want test && test_stage; } & tests_pid=$!
    { want sanitizer && sanitizer_stage; } & sanitizer_pid=$!
    { want bench && CUDA_VISIBLE_DEVICES=$last bench_stage; want model && CUDA_VISIBLE_DEVICES=$last model_stage; }
    wait "$tests_pid" "$sanitizer_pid"
elif (( ngpus > 1 )); then  # test shards then sanitizer | benchmarks + model
    test_gpus=$(( ngpus - 1 )); shards=${DSA_GPU_TEST_SHARDS:-$test_gpus}
    { want test && test_stage; want sanitizer && sanitizer_stage; } & tests_pid=$!
    { want bench && CUDA_VISIBLE_DEVICES=$last bench_stage; want model && CUDA_VISIBLE_DEVICES=$last model_stage; }
    wait "$tests_pid"
else
    test_gpus=1; shards=${DSA_GPU_TEST_SHARDS:-1}
    want test && test_stage
    want sanitizer && sanitizer_stage
    want bench && bench_stage
    want model && model_stage
fi
want profile && CUDA_VISIBLE_DEVICES=$last profile_stage
[[ -f "$out/bench.txt" ]] && cat "$out/bench.txt"
cat "$summary"
failed=$(grep -lv '^0$' "$out"/rc.* 2> /dev/null)
[[ -z "$failed" ]] || { echo "failed stages: $failed"; exit 1; }
