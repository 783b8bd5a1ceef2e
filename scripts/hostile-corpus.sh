#!/usr/bin/env bash
# The whole hostile-input corpus (tests/hostile/run.py): every crafted file, the large ones and
# the images installed wheels ship, through probe, transform, render_variants, the precompute
# service and the fallback, one process each, with outcome, peak RSS and time per file.
# Takes tens of minutes on one core (the large files' AVIF encodes). The CI subset is
# tests/hostile/test_hostile.py. Arguments go to the runner: --json, --tier ci, --stage NAME,
# --keep DIR.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh
exec uv run python -m tests.hostile.run "$@"
