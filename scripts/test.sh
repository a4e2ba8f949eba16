#!/usr/bin/env bash
# Set everything up (idempotent) and run the whole test suite (ruff, mypy, pytest).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh --test
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 CONCEPTLAB_NO_PROGRESS=1
export CONCEPTLAB_CACHE="${CONCEPTLAB_CACHE:-$root/.cache/test-activations}"
.venv/bin/ruff check -q src tests benchmarks
.venv/bin/mypy src/conceptlab
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
# pytest exits 5 when it collected no test: that is not a failure of the code under test.
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests"
  exit 0
fi
exit "$rc"
