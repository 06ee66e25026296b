#!/usr/bin/env bash
# The main job: installs dependencies, builds, and runs `dsaserve serve` on the CPU at 127.0.0.1:30000.
# It serves the bundled model (models/dsv32-tiny) when its weights are present; until the trained model is
# committed it serves the random-weight DeepSeek-V3.2 golden fixture with a byte-level tokenizer, so the API,
# engine and model run for real but the text is random. Arguments replace the default command line, e.g.
# `tools/run.sh generate --model-path tests/golden/deepseek_v32_tiny --prompt-ids 1,2,3`.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh
tools/build.sh --target dsaserve
if [ $# -gt 0 ]; then
    exec build/dsaserve "$@"
fi
if [ -f models/dsv32-tiny/config.json ]; then
    exec build/dsaserve serve --host 127.0.0.1 --port 30000 --tool-call-parser deepseekv32 \
        --reasoning-parser deepseek-v3
fi
echo "run.sh: the trained bundled model is not in models/dsv32-tiny yet; serving the random-weight" \
     "golden fixture tests/golden/deepseek_v32_tiny (random text, real protocol)." >&2
exec build/dsaserve serve --host 127.0.0.1 --port 30000 --model-path tests/golden/deepseek_v32_tiny \
    --tokenizer-path tests/golden/byte_tokenizer --served-model-name dsv32-random-tiny \
    --tool-call-parser deepseekv32 --reasoning-parser deepseek-v3
