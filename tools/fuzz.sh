#!/usr/bin/env bash
# Builds one libFuzzer target with clang (ASan + UBSan, outside the CMake build, which uses g++) and runs it
# for a bounded time. Usage: tools/fuzz.sh <target> <seconds> [extra libFuzzer flags...]
# Rebuilds only when a file under src/ or fuzz/ changed. Corpus: build-fuzz/corpus/<target>/ (kept between
# runs); dictionary: fuzz/<target>.dict when present.
# Crashes are written to build-fuzz/crashes/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

# One line per target: "<sources (globs)> | <link flags>". Sources compile with -Isrc.
declare -A TARGETS=(
    [tokenizer]="fuzz/tokenizer_fuzz.cpp src/text/tokenizer*.cpp src/text/byte_level.cpp src/text/detokenizer.cpp src/base/*.cpp | -lpcre2-8 -lfmt"
    [parsers]="fuzz/parsers_fuzz.cpp src/parsers/*.cpp src/text/dsv32_encoding.cpp src/base/*.cpp | -lfmt"
    [jinja]="fuzz/jinja_fuzz.cpp src/text/jinja/*.cpp src/base/*.cpp | -lfmt"
)

if [ $# -lt 2 ] || [ -z "${TARGETS[$1]+x}" ]; then
    echo "usage: $0 <target> <seconds> [libFuzzer flags]; targets: ${!TARGETS[*]}" >&2
    exit 2
fi
TARGET=$1
SECONDS_TO_RUN=$2
shift 2
CXX=${CXX_FUZZ:-clang++-14}
FUZZ_DIR=build-fuzz
SPEC=${TARGETS[$TARGET]}
read -r -a SOURCES <<<"$(echo ${SPEC%%|*})"
read -r -a LIBS <<<"${SPEC#*|}"
FLAGS=(-std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -Isrc
       "-DDSA_SOURCE_DIR=\"$PWD\"")

mkdir -p "$FUZZ_DIR/corpus/$TARGET" "$FUZZ_DIR/crashes/$TARGET"
BIN="$FUZZ_DIR/${TARGET}_fuzz"
if [ ! -x "$BIN" ] || [ -n "$(find src fuzz tools/fuzz.sh -newer "$BIN" -print -quit)" ]; then
    rm -rf "$FUZZ_DIR/obj/$TARGET" && mkdir -p "$FUZZ_DIR/obj/$TARGET"
    echo "fuzz: compiling $TARGET (${#SOURCES[@]} files)"
    compile() { "$CXX" "${FLAGS[@]}" -c "$1" -o "$FUZZ_DIR/obj/$TARGET/$(echo "$1" | tr / _).o"; }
    for src in "${SOURCES[@]}"; do
        while (($(jobs -rp | wc -l) >= $(nproc))); do wait -n; done
        compile "$src" &
    done
    while (($(jobs -rp | wc -l) > 0)); do wait -n; done
    "$CXX" "${FLAGS[@]}" "$FUZZ_DIR/obj/$TARGET"/*.o -o "$BIN" "${LIBS[@]}"
fi

DICT=()
[ -f "fuzz/$TARGET.dict" ] && DICT=("-dict=fuzz/$TARGET.dict")
echo "fuzz: running $TARGET for ${SECONDS_TO_RUN}s"
"$BIN" -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -timeout=20 -rss_limit_mb=4096 \
    -artifact_prefix="$FUZZ_DIR/crashes/$TARGET/" -print_final_stats=1 "${DICT[@]}" "$@" "$FUZZ_DIR/corpus/$TARGET"
