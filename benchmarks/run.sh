#!/usr/bin/env bash
# Runs every benchmark and regenerates docs/benchmarks.md. `--quick` for a smoke run;
# `--rows 1,5` for some rows only (see `benchmarks/run.sh --help`).
# Bootstraps what it needs: the workspace, sharp (npm ci here), Debian's vipsthumbnail and wrk.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../scripts/bootstrap.sh"   # uv + the workspace venv; cds to the repo root

# sharp, pinned by package-lock.json (no registry address in it: see .npmrc).
if ! (cd "$here" && node -e "require('sharp')" >/dev/null 2>&1); then
    echo "benchmarks: installing sharp (npm ci)" >&2
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

# Debian's CLI peer and the load tool.
missing=()
command -v vipsthumbnail >/dev/null 2>&1 || missing+=(libvips-tools)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
    echo "benchmarks: installing ${missing[*]} (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi

export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
exec uv run --quiet python -m imgcdn_bench "$@"
