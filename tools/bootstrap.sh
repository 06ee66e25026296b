#!/usr/bin/env bash
# Installs what building and testing dsaserve needs on a fresh Debian 12 machine (apt packages, pinned npm
# test oracles). Safe to re-run: it skips what is already present.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(build-essential cmake pkg-config nlohmann-json3-dev libfmt-dev libcli11-dev libpcre2-dev
              libboost1.81-dev libgtest-dev libgmock-dev libbenchmark-dev python3 python3-jinja2
              python3-prometheus-client clang libclang-rt-14-dev)
# Node.js may come from outside Debian (with its own npm): only install Debian's when there is none.
command -v node >/dev/null 2>&1 || APT_PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(npm)

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "bootstrap: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "bootstrap: npm ci"
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
