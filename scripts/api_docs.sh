#!/usr/bin/env bash
# The API reference from the docstrings (pdoc): bash scripts/api_docs.sh [OUT], default build/api.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" \
  "$PY" scripts/api_docs.py "${1:-build/api}"
