"""One device rule for every command: where tensors live and in which floating-point type.

Why one module: encoders, activation taps, CBL and head training, the dictionaries, the
language-model adapter, neuron decoding, steering and the explorer all need a device, and a
user should choose it once (``--device``) rather than per component. The rule:

* :func:`resolve_device` turns ``"auto" | "cpu" | "cuda" | "cuda:N"`` (or ``None``: the current
  setting, see :func:`using`, else ``$CONCEPTLAB_DEVICE``, else ``auto``) into a
  ``torch.device``. ``auto`` is the first GPU when ``torch.cuda.is_available()``, else the CPU.
  A named device that is not there is one :class:`~conceptlab.errors.ComputeError` line, raised
  before any work starts.
* :func:`resolve_dtype` turns ``"float32" | "bfloat16" | "float16"`` (or ``None``/``"auto"``)
  into a ``torch.dtype``. The default is float32 everywhere except language models on a GPU,
  which default to bfloat16 (the precision their checkpoints ship in; halves memory). Half
  types on the CPU are allowed when asked for by name (slow: this CPU emulates bf16).
* :func:`using` sets the device and dtype for the code it wraps (a context variable, so
  threads started inside inherit nothing by accident and nested calls restore the outer one);
  the command line wraps each command in it, so library code deep down calls
  ``resolve_device(None)`` instead of threading a parameter through every signature.
* :func:`run_record` is what a run records: the device it ran on (with the card's name on a
  GPU) and the dtype. Cache fingerprints record the dtype and backend (they change numbers)
  but never the device: a row computed on the GPU equals the CPU's within the tolerances that
  ``benchmarks/gpu_check.py`` measures, so the two share cache entries.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal

import torch

from conceptlab.errors import ComputeError, OptionError

DEVICE_ENV = "CONCEPTLAB_DEVICE"
DTYPE_ENV = "CONCEPTLAB_DTYPE"
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16,
                                  "float16": torch.float16}
_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16",
            "float": "float32"}
Purpose = Literal["lm", "encoder", "train"]

_DEVICE: ContextVar[str | None] = ContextVar("conceptlab_device", default=None)
_DTYPE: ContextVar[str | None] = ContextVar("conceptlab_dtype", default=None)


def current_device_spec() -> str:
    """The device spec in force: the innermost :func:`using`, else ``$CONCEPTLAB_DEVICE``,
    else ``"auto"``."""
    return _DEVICE.get() or os.environ.get(DEVICE_ENV, "").strip() or "auto"


def check_device_spec(spec: str) -> str:
    """``spec`` normalised (``auto``, ``cpu``, ``cuda``, ``cuda:N``); OptionError otherwise.

    Checks the spelling only, not whether the device exists (see :func:`resolve_device`)."""
    name = str(spec).strip().lower()
    if name in ("auto", "cpu", "cuda"):
        return name
    if name.startswith("cuda:") and name[5:].isdigit():
        return name
    raise OptionError(f"unknown device {spec!r}; choose auto, cpu, cuda or cuda:N")


def resolve_device(spec: str | torch.device | None = None) -> torch.device:
    """The ``torch.device`` for ``spec`` (``None``: the current setting).

    ``auto``: ``cuda:0`` when torch sees a GPU, else ``cpu``. ``cuda``/``cuda:N`` when no such
    GPU exists: ComputeError naming what is there.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    name = check_device_spec(current_device_spec() if spec is None else spec)
    if name == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if name == "auto":
        return torch.device("cuda", 0) if available else torch.device("cpu")
    index = int(name[5:]) if ":" in name else 0
    count = torch.cuda.device_count() if available else 0
    if index >= count:
        seen = f"{count} GPU(s) (cuda:0..cuda:{count - 1})" if count else "no GPU"
        raise ComputeError(f"device {name!r} is not available: torch sees {seen}; "
                           f"use --device auto or cpu")
    return torch.device("cuda", index)


def resolve_dtype(spec: str | torch.dtype | None = None, device: torch.device | None = None,
                  purpose: Purpose = "lm") -> torch.dtype:
    """The floating-point type for ``spec`` (``None``/``"auto"``: the current setting, else
    float32, except ``purpose="lm"`` on a GPU: bfloat16).

    Encoders and training default to float32 on every device (their heads and solvers are
    tuned in float32); language models on a GPU default to bfloat16.
    """
    if isinstance(spec, torch.dtype):
        if spec not in DTYPES.values():
            raise OptionError(f"unsupported dtype {spec}; choose {', '.join(DTYPES)}")
        return spec
    raw = _DTYPE.get() if spec is None else spec
    if raw is None:
        raw = os.environ.get(DTYPE_ENV, "").strip() or "auto"
    name = _ALIASES.get(str(raw).strip().lower(), str(raw).strip().lower())
    if name == "auto":
        dev = device if device is not None else resolve_device(None)
        return torch.bfloat16 if purpose == "lm" and dev.type == "cuda" else torch.float32
    if name not in DTYPES:
        raise OptionError(f"unknown dtype {raw!r}; choose auto, {', '.join(DTYPES)}")
    return DTYPES[name]


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"`` (the spelling options and records use)."""
    return str(dtype).removeprefix("torch.")


@contextmanager
def using(device: str | None = None, dtype: str | None = None) -> Iterator[torch.device]:
    """Run the enclosed code with this device (and dtype) as the default of every component.

    The device is resolved (and a missing GPU refused) on entry, before any work; ``None``
    keeps the outer setting. Yields the resolved device."""
    if device is not None:
        check_device_spec(device)
    if dtype is not None:
        resolve_dtype(dtype, torch.device("cpu"))  # spelling check only
    dev_token = _DEVICE.set(device) if device is not None else None
    dtype_token = _DTYPE.set(dtype) if dtype is not None else None
    try:
        yield resolve_device(None)
    finally:
        if dtype_token is not None:
            _DTYPE.reset(dtype_token)
        if dev_token is not None:
            _DEVICE.reset(dev_token)


def device_label(device: torch.device) -> str:
    """``cpu`` or ``cuda:0 (NVIDIA H100 80GB HBM3)``: the device with its card's name."""
    if device.type == "cuda" and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def run_record(device: torch.device | None = None, dtype: torch.dtype | None = None,
               purpose: Purpose = "train") -> dict[str, Any]:
    """What a run's metrics record about where it ran: ``{"device", "device_name", "dtype"}``.

    ``device``/``dtype`` default to the current rule for ``purpose``."""
    dev = device if device is not None else resolve_device(None)
    dt = dtype if dtype is not None else resolve_dtype(None, dev, purpose)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    return {"device": str(dev), "device_name": name, "dtype": dtype_name(dt)}


def to_device(x: Any, device: torch.device) -> Any:
    """``x`` moved to ``device`` when it is a tensor or a module; anything else unchanged."""
    if isinstance(x, torch.Tensor | torch.nn.Module):
        return x.to(device)
    return x
