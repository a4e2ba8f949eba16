#!/usr/bin/env bash
# The real-model runs behind docs/lm.md (SmolLM2-135M, offline), in one go:
#   flock /tmp/conceptlab-heavy.lock bash benchmarks/lm_docs.sh [OUT]     (~10 min on 2 cores)
# Each command writes OUT/<job>/metrics.json and its PNG; a failing job does not stop the rest.
out="${1:-runs/lm}"
py="${PYTHON:-.venv/bin/python}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 CONCEPTLAB_NO_PROGRESS=1
run() { echo "== $*"; /usr/bin/time -f "   %e s" "$py" -m conceptlab lm "$@" || echo "   FAILED: $*"; }
run probe --data animals --data sentiment --data gender --data gapminder \
    --data robots-text:head_is_square --out "$out/probe"
run neurons --word dog --word happy --word France --word money --word water --word music \
    --word red --out "$out/neurons"
run steer --data sentiment --out "$out/steer-sentiment"
run steer --data animals --out "$out/steer-animals"
run ablate --data animals --data sentiment --data gender --data gapminder --out "$out/ablate"
run ablate --data animals --data sentiment --data gender --data gapminder --scope all \
    --out "$out/ablate-all"
run ablate --data animals --data sentiment --data gender --data gapminder --scope onward \
    --out "$out/ablate-onward"
run observable --out "$out/observable"
run parametric --data animals --out "$out/parametric-animals"
run parametric --data sentiment --out "$out/parametric-sentiment"
run concept-vectors --max-new-tokens 48 --out "$out/concept-vectors"
echo "== benchmark"
"$py" benchmarks/bench_lm_neurons.py --repeats 3
