#!/usr/bin/env bash
# Trains one variant of the bundled model per GPU in parallel (detached, so a session can poll it), waits for
# every evaluation, and packs the results into OUTPUT_DIR: runs.tgz (each run's eval.json + train_log.txt) and
# the best run's export as best.tar.part-* (15 MB pieces; `cat best.tar.part-* | tar x` restores model/).
# Usage: tools/train_tiny/train_gpus.sh OUTPUT_DIR MINUTES "ARGS OF RUN 1" ["ARGS OF RUN 2" ...]
#   e.g. tools/train_tiny/train_gpus.sh out 14 "--seed 0" "--seed 1 --task-weights 0.4,0.3,0.3"
# Env: DSA_TRAIN_WORK (scratch folder, default /tmp/dsa_train), DSA_TRAIN_WAIT=0 to start the runs and return,
#      DSA_TRAIN_GPU_FIRST=N to put run 1 on GPU N (leaving GPUs below N free for other work).
set -uo pipefail
out=${1:?usage: train_gpus.sh OUTPUT_DIR MINUTES ARGS...}; minutes=${2:?minutes}; shift 2
mkdir -p "$out"; out=$(cd "$out" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
work=${DSA_TRAIN_WORK:-/tmp/dsa_train}
mkdir -p "$work"
runs=()
if [[ ! -f "$work/started" ]]; then
    g=${DSA_TRAIN_GPU_FIRST:-0}; i=0
    for args in "$@"; do
        r="$work/run$i"; mkdir -p "$r"
        # shellcheck disable=SC2086
        CUDA_VISIBLE_DEVICES=$g setsid nohup python3 "$here/train.py" "$r" --max-minutes "$minutes" $args \
            > "$r.out" 2>&1 < /dev/null &
        g=$((g + 1)); i=$((i + 1))
    done
    echo "$#" > "$work/started"
fi
n=$(cat "$work/started")
for ((g = 0; g < n; g++)); do runs+=("$work/run$g"); done
[[ "${DSA_TRAIN_WAIT:-1}" == 0 ]] && { echo "started $n runs in $work"; exit 0; }
while pgrep -f "$here/train.py" > /dev/null; do sleep 5; done
for r in "${runs[@]}"; do echo "== $r"; grep -E "training done|eval |peak" "$r.out"; done
python3 "$here/pick_run.py" "$work/best" "${runs[@]}"
(cd "$work" && tar czf "$out/runs.tgz" run*/eval.json run*/train_log.txt)
best=$(cat "$work/best")
if [[ -n "$best" ]]; then
    (cd "$best" && tar cf "$work/best.tar" model eval.json train_log.txt) && split -b 15M "$work/best.tar" "$out/best.tar.part-"
fi
ls -la "$out"
