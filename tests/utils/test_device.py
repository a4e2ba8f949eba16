"""The one device rule: auto/cpu/cuda[:N] resolution, dtype defaults, the context setting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conceptlab import device as D
from conceptlab.errors import ComputeError, OptionError
from conceptlab.utils.hashing import hash_array


def _gpus(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n)


def test_auto_is_cpu_without_gpu_and_cuda0_with_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(D.DEVICE_ENV, raising=False)
    _gpus(monkeypatch, 0)
    assert D.resolve_device("auto") == torch.device("cpu")
    assert D.resolve_device(None) == torch.device("cpu")
    _gpus(monkeypatch, 2)
    assert D.resolve_device("auto") == torch.device("cuda", 0)
    assert D.resolve_device("cuda:1") == torch.device("cuda", 1)
    assert D.resolve_device("CPU") == torch.device("cpu")


def test_missing_gpu_is_one_compute_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _gpus(monkeypatch, 0)
    with pytest.raises(ComputeError, match="'cuda' is not available: torch sees no GPU"):
        D.resolve_device("cuda")
    _gpus(monkeypatch, 1)
    with pytest.raises(ComputeError, match=r"cuda:3.*1 GPU\(s\)"):
        D.resolve_device("cuda:3")
    with pytest.raises(OptionError, match="unknown device 'gpu'"):
        D.resolve_device("gpu")


def test_dtype_defaults_follow_device_and_purpose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(D.DTYPE_ENV, raising=False)
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert D.resolve_dtype(None, cpu, "lm") == torch.float32
    assert D.resolve_dtype(None, gpu, "lm") == torch.bfloat16
    assert D.resolve_dtype(None, gpu, "encoder") == torch.float32
    assert D.resolve_dtype("bf16", cpu) == torch.bfloat16
    assert D.resolve_dtype("float16", gpu) == torch.float16
    with pytest.raises(OptionError, match="unknown dtype 'int8'"):
        D.resolve_dtype("int8", cpu)


def test_using_sets_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(D.DEVICE_ENV, raising=False)
    _gpus(monkeypatch, 1)
    assert D.resolve_device(None).type == "cuda"
    with D.using("cpu", "float16") as dev:
        assert dev == torch.device("cpu")
        assert D.resolve_device(None) == torch.device("cpu")
        assert D.resolve_dtype(None, dev) == torch.float16
    assert D.resolve_device(None).type == "cuda"
    monkeypatch.setenv(D.DEVICE_ENV, "cpu")
    assert D.resolve_device(None) == torch.device("cpu")
    _gpus(monkeypatch, 0)
    with pytest.raises(ComputeError), D.using("cuda:0"):
        pass  # refused on entry, before the body runs


def test_run_record_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    _gpus(monkeypatch, 0)
    assert D.run_record(purpose="lm") == {"device": "cpu", "device_name": "cpu",
                                          "dtype": "float32"}


def test_bfloat16_tensors_hash_and_differ_from_float32() -> None:
    x = torch.linspace(-1, 1, 7)
    h32, h16 = hash_array(x), hash_array(x.to(torch.bfloat16))
    assert h32 != h16 and h16 == hash_array(x.to(torch.bfloat16).clone())
    assert h32 == hash_array(x.numpy().astype(np.float32))  # float32 hashes unchanged


def test_components_refuse_a_missing_gpu_before_work(monkeypatch: pytest.MonkeyPatch) -> None:
    from conceptlab.bottleneck.heads import HeadConfig, fit_head
    from conceptlab.discover.sae import SAEDictionary

    _gpus(monkeypatch, 0)
    rng = np.random.default_rng(0)
    Z, y = rng.normal(size=(40, 5)).astype(np.float32), np.arange(40) % 2
    head = fit_head(Z, y, Z, y, n_classes=2, config=HeadConfig(max_iter=5))
    assert head.info["device"] == "cpu"
    with pytest.raises(ComputeError, match="not available"):
        fit_head(Z, y, Z, y, n_classes=2, config=HeadConfig(device="cuda"))
    with pytest.raises(ComputeError), D.using("cuda"):
        pass
    monkeypatch.setenv(D.DEVICE_ENV, "cuda:0")
    with pytest.raises(ComputeError, match="not available"):
        SAEDictionary(n_concepts=4, epochs=1).fit(Z)
