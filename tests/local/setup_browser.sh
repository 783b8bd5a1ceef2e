#!/usr/bin/env bash
# Installs Debian's chromium for the gallery's browser test. Idempotent; needs root for apt-get.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    apt-cache show chromium >/dev/null 2>&1 || $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
chromium --version
