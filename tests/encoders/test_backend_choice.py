"""``backend=auto`` decided by a measurement (encoders/backend_choice.py), checked with a fake
clock: the warm-up is not timed, the faster backend wins only by more than the margin, the
choice is stored once per model and setup and read back without timing again, and an encoder
whose choice equals an explicit backend computes the same cache fingerprint (same numbers)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conceptlab.encoders import backend_choice as bc
from conceptlab.encoders import onnx_backend as ob
from conceptlab.errors import ConceptlabValueError
from tests.script_loading import load_script


class FakeClock:
    """A clock that advances only when a candidate 'runs' for its scripted cost."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[str] = []

    def __call__(self) -> float:
        return self.now

    def runner(self, name: str, costs: list[float]) -> Callable[[], None]:
        """A candidate whose i-th call takes costs[i] seconds (the last cost repeats)."""
        def run() -> None:
            i = sum(1 for c in self.calls if c == name)
            self.calls.append(name)
            self.now += costs[min(i, len(costs) - 1)]
        return run


@pytest.fixture(autouse=True)
def _fresh() -> None:
    bc.forget()


def test_measure_skips_the_warm_up_interleaves_and_keeps_the_best() -> None:
    clock = FakeClock()
    times = bc.measure({"torch": clock.runner("torch", [50.0, 1.0, 0.8, 1.2]),
                        "onnx": clock.runner("onnx", [90.0, 2.0, 0.5, 3.0])},
                       repeats=3, timer=clock)
    assert times == {"torch": pytest.approx(0.8), "onnx": pytest.approx(0.5)}
    # one warm-up each, then rounds that alternate: load falls on both alike
    assert clock.calls == ["torch", "onnx"] + ["torch", "onnx"] * 3
    with pytest.raises(ConceptlabValueError):
        bc.measure({}, timer=clock)


def test_pick_needs_more_than_the_margin_to_leave_the_first() -> None:
    # MiniLM on this CPU: ONNX at 0.95x of torch's speed -> torch
    assert bc.pick({"torch": 1.0, "onnx": 1.0 / 0.95}) == "torch"
    # EfficientNet: ONNX 2.4x faster -> onnx
    assert bc.pick({"torch": 2.4, "onnx": 1.0}) == "onnx"
    assert bc.pick({"torch": 1.0, "onnx": 0.97}, margin=0.05) == "torch"  # within noise
    assert bc.pick({"torch": 1.0, "onnx": 0.97}, margin=0.0) == "onnx"


def test_the_choice_is_measured_once_stored_and_read_back(tmp_path: Path) -> None:
    clock = FakeClock()
    ident = {"weights": "abc", "threads": 2}

    def cands() -> dict[str, Callable[[], None]]:
        return {"torch": clock.runner("torch", [1.0]), "onnx": clock.runner("onnx", [0.4])}

    assert bc.choose_backend(ident, cands(), store=tmp_path, timer=clock) == "onnx"
    n = len(clock.calls)
    assert n == 2 * (1 + bc.REPEATS)
    entry = next(iter(json.loads((tmp_path / bc.CHOICES_FILE).read_text()).values()))
    assert entry["choice"] == "onnx" and entry["seconds"]["torch"] == pytest.approx(1.0)
    bc.forget()  # a new process: the stored choice is read, nothing is timed again
    assert bc.choose_backend(ident, cands(), store=tmp_path, timer=clock) == "onnx"
    assert len(clock.calls) == n
    # another model (or thread count) is measured on its own
    slow_onnx = {"torch": clock.runner("torch", [1.0]), "onnx": clock.runner("onnx", [1.5])}
    assert bc.choose_backend({**ident, "weights": "def"}, slow_onnx, store=tmp_path,
                             timer=clock) == "torch"
    assert len(json.loads((tmp_path / bc.CHOICES_FILE).read_text())) == 2
    # a single candidate is not timed; an unreadable file is measured again
    assert bc.choose_backend(ident, {"torch": clock.runner("x", [1.0])}, timer=clock) == "torch"
    assert "x" not in clock.calls
    (tmp_path / bc.CHOICES_FILE).write_text("{not json")
    bc.forget()
    assert bc.choose_backend(ident, cands(), store=tmp_path, timer=clock) == "onnx"
    assert len(json.loads((tmp_path / bc.CHOICES_FILE).read_text())) == 1


@pytest.mark.parametrize(("costs", "expected"), [({"torch": 1.0, "onnx": 1.0 / 0.95}, "torch"),
                                                 ({"torch": 1.0, "onnx": 0.5}, "onnx")])
def test_minilm_auto_runs_the_measured_backend_with_its_fingerprint(
        costs: dict[str, float], expected: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The encoder hands both backends to the chooser and then runs the winner: its cache
    fingerprint equals the explicit backend's, so no cached number changes."""
    pytest.importorskip("onnxruntime")
    from conceptlab.encoders import build_encoder, sentence

    monkeypatch.delenv("CONCEPTLAB_BACKEND", raising=False)
    monkeypatch.setenv("CONCEPTLAB_ONNX_DIR", str(tmp_path))
    clock = FakeClock()
    seen: list[list[str]] = []
    real = bc.choose_backend

    def timed(identity, candidates, **kw):  # type: ignore[no-untyped-def]
        seen.append(list(candidates))
        assert identity["weights"] and identity["threads"] >= 1
        fake = {n: clock.runner(n, [costs[n]]) for n in candidates}  # no real encoding
        return real(identity, fake, **{**kw, "timer": clock})

    monkeypatch.setattr(sentence, "choose_backend", timed)
    enc = build_encoder("minilm")
    assert enc.backend == expected and seen == [["torch", "onnx"]]
    assert json.loads((tmp_path / bc.CHOICES_FILE).read_text())
    explicit = build_encoder("minilm", backend=expected)
    assert enc.cache_fingerprint("text") == explicit.cache_fingerprint("text")
    assert enc.fingerprint() == explicit.fingerprint()
    assert ob.resolve_backend("auto", "minilm", "cuda") == "torch"  # GPUs: torch, untimed


def test_the_docs_table_follows_the_stored_choices() -> None:
    """benchmarks/backend_choice.py: the section is generated from the JSON (numbers in,
    words out) and docs/benchmarks.md holds the one generated from the committed results."""
    root = Path(__file__).resolve().parents[2]
    mod = load_script(root / "benchmarks" / "backend_choice.py", "_backend_choice")
    entry = {"choice": "torch", "repeats": 3, "seconds": {"torch": 1.0, "onnx": 1.0 / 0.95},
             "model": {"kind": "sentence-transformers", "batch_size": 64, "threads": 2,
                       "onnxruntime": "x", "torch": "y"}}
    text = mod.markdown({"rows": mod.rows({"k": entry})})
    assert "| all-MiniLM-L6-v2 | 64 | 2 | 1.000 | 1.053 | 0.95x | torch |" in text
    record = json.loads((root / "benchmarks" / "results" / "backend_choice.json").read_text())
    assert mod.markdown(record) in (root / "docs" / "benchmarks.md").read_text()
