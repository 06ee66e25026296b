#!/usr/bin/env bash
# The main job: installs dependencies, builds, and runs dsaserve (default: `serve` on the bundled model, on
# the CPU when there is no GPU). Arguments replace the default command line, e.g. `tools/run.sh generate ...`.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh
tools/build.sh --target dsaserve
if [ $# -eq 0 ]; then
    exec build/dsaserve serve --host 127.0.0.1 --port 30000
fi
exec build/dsaserve "$@"
