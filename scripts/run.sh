#!/usr/bin/env bash
# Set everything up (idempotent) and run the main job on the embedded default:
# a Sparse-CBM on real Fashion-MNIST through the offline ConSE space, against its baselines.
# Extra arguments go to `conceptlab demo` (e.g. --out DIR, --n-train N).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/conceptlab demo "$@"
