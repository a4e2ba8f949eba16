"""Long work in a log prints a start line (what, how many) and an end line (how many done,
seconds) and no bar; ``CONCEPTLAB_NO_PROGRESS=1`` prints nothing (docs/environment.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conceptlab.cache import ActivationCache
from conceptlab.pipeline import encode_split_views
from conceptlab.utils.progress import LogLines, counter, progress
from tests.test_cache import CountingEncoder, make_split

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def in_a_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONCEPTLAB_NO_PROGRESS", raising=False)  # pytest's stderr is no tty


def test_a_loop_prints_a_start_and_an_end_line_with_count_and_seconds(
        in_a_log: None, capsys: pytest.CaptureFixture[str]) -> None:
    wrapped = progress(range(7), desc="encode shapes/train", unit="img")
    assert isinstance(wrapped, LogLines)
    start = capsys.readouterr().err
    assert start == "[conceptlab] encode shapes/train: started (7 img)\n"  # before any item
    assert list(wrapped) == list(range(7))
    end = capsys.readouterr().err
    assert re.fullmatch(r"\[conceptlab\] encode shapes/train: done, 7 img in \d+\.\d s\n", end)


def test_an_early_stop_says_how_far_it_got_and_the_last_values(
        in_a_log: None, capsys: pytest.CaptureFixture[str]) -> None:
    epochs = progress(range(200), desc="fit CBL")
    for epoch in epochs:
        epochs.set_postfix(val=f"{epoch / 10:.4f}")  # type: ignore[attr-defined]
        if epoch == 36:
            break
    del epochs  # the loop's generator ends here (as when a fit returns)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "[conceptlab] fit CBL: started (200 it)"
    assert "done, 36 of 200 it in" in lines[1] and lines[1].endswith("val=3.6000")
    assert len(lines) == 2


def test_a_hand_counted_bar_ends_once_on_close(in_a_log: None,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    bar = counter(total=1000, desc="train dictionary", unit="tok")
    bar.update(600)
    bar.update(400)
    bar.close()
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and "done, 1000 tok in" in lines[1]


def test_nothing_when_switched_off_or_unnamed(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CONCEPTLAB_NO_PROGRESS", "1")
    assert sum(progress(range(5), desc="work")) == 10
    monkeypatch.delenv("CONCEPTLAB_NO_PROGRESS")
    assert sum(progress(range(5))) == 10  # no description: nothing to say
    assert sum(progress(range(5), desc="work", disable=True)) == 10
    assert capsys.readouterr().err == ""


def test_encoding_into_an_empty_cache_logs_its_rows(
        in_a_log: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The explorer's silent 138 s: encoding a split into an empty cache now logs both ends,
    and a second encode (a cache hit) says nothing."""
    split = make_split([float(i) for i in range(6)], name="test")
    cache = ActivationCache(tmp_path / "cache", shard_rows=4)
    encode_split_views(CountingEncoder(), split, cache)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "[conceptlab] encode fake/test: started (6 item)"
    assert "encode fake/test: done, 6 item in" in lines[1] and len(lines) == 2
    encode_split_views(CountingEncoder(), split, cache)
    assert capsys.readouterr().err == ""


def test_a_child_process_with_a_piped_stderr_gets_lines_not_bars() -> None:
    code = ("from conceptlab.utils.progress import progress\n"
            "print(sum(progress(range(300), desc='work', unit='row')))\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout == "44850\n", proc.stderr
    assert "\r" not in proc.stderr and proc.stderr.count("[conceptlab] work:") == 2
    assert "done, 300 row in" in proc.stderr
