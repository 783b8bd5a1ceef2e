#!/usr/bin/env bash
# Installs the JavaScript engines the edge parity tests run the CloudFront Function in.
# node (v18+) must already be on PATH; Debian's `njs` (0.7.9 in bookworm) is installed with
# apt-get when missing. Idempotent: does nothing when both are present. Needs root for apt-get.
set -euo pipefail

if ! command -v node >/dev/null 2>&1; then
    echo "setup_engines: node is not on PATH; install Node.js 18 or later" >&2
    exit 1
fi

if ! command -v njs >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    sudo=""
    if [ "$(id -u)" != 0 ]; then
        sudo="sudo"
    fi
    # Update the package lists only when they do not know njs yet (a fresh image has none).
    if ! apt-cache show njs >/dev/null 2>&1; then
        $sudo apt-get update -qq
    fi
    $sudo apt-get install -y -qq --no-install-recommends njs >/dev/null
fi

echo "node $(node --version), njs $(njs -v)"
