#!/usr/bin/env bash
# Sourced by ./run and ./test: installs uv if missing and syncs the workspace. Idempotent.
set -euo pipefail

UV_VERSION="0.13.8"
# uv may only use the Python that is here; it must never download an interpreter.
export UV_PYTHON_DOWNLOADS=never
# No AWS account exists: anything that can reach an AWS SDK gets dummy credentials and no IMDS.
export AWS_EC2_METADATA_DISABLED=true
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export CDK_DISABLE_CLI_TELEMETRY=true

if ! command -v uv >/dev/null 2>&1; then
    export PATH="$HOME/.local/bin:$PATH"
fi
if ! command -v uv >/dev/null 2>&1 || [ "$(uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
    echo "bootstrap: installing uv $UV_VERSION with pip" >&2
    python3 -m pip install --quiet --user "uv==$UV_VERSION" 2>/dev/null \
        || python3 -m pip install --quiet "uv==$UV_VERSION"
    hash -r
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."
uv sync --all-packages --quiet

# imgcore's own dependencies as wheels, for the test that installs imgcore's wheel into a plain
# venv without a network (tests never leave loopback). Same pins as the workspace resolution.
if [ ! -f .cache/wheelhouse/imgcore.txt ] || ! cmp -s <(uv export --package imgcore --no-emit-workspace --no-hashes --frozen --no-dev) .cache/wheelhouse/imgcore.txt; then
    mkdir -p .cache/wheelhouse
    uv export --package imgcore --no-emit-workspace --no-hashes --frozen --no-dev > .cache/wheelhouse/imgcore.next
    python3 -m pip wheel --quiet --prefer-binary --wheel-dir .cache/wheelhouse -r .cache/wheelhouse/imgcore.next 2>/dev/null
    mv .cache/wheelhouse/imgcore.next .cache/wheelhouse/imgcore.txt
fi
