"""Input checks and standardisation shared by every fit (written once, used everywhere)."""

from __future__ import annotations

from typing import Any

import numpy as np

from conceptlab.errors import ConceptlabValueError

#: columns whose training standard deviation falls below this are treated as constant
MIN_STD = 1e-6


def standardization(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column training mean and std (float64 sums; constant columns get std 1)."""
    mean = x.mean(axis=0, dtype=np.float64)
    std = x.std(axis=0, dtype=np.float64)
    std = np.where(std < MIN_STD, 1.0, std)
    return mean.astype(np.float32), std.astype(np.float32)


def as_matrix(X: Any, name: str, dim: int | None = None, *, allow_1d: bool = False,
              allow_empty: bool = False) -> np.ndarray:
    """A finite float32 N x D matrix, or a one-line error naming ``name`` and the problem."""
    arr = np.asarray(X)
    if allow_1d and arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        shape = f"N x {dim}" if dim is not None else "N x D"
        raise ConceptlabValueError(f"{name} must be a 2-D array ({shape}), got shape {arr.shape}")
    if arr.shape[0] == 0 and not allow_empty:
        raise ConceptlabValueError(f"{name} is empty (0 rows)")
    if dim is not None and arr.shape[1] != dim:
        raise ConceptlabValueError(f"{name}: {arr.shape[1]} columns, expected {dim} "
                                   f"(wrong encoder or features?)")
    if arr.dtype == bool:
        arr = arr.astype(np.float32)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ConceptlabValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise ConceptlabValueError(f"{name}: NaN or infinity in {bad} row(s)")
    return arr


def as_labels(y: Any, name: str, n: int, n_classes: int) -> np.ndarray:
    """int64 class indices in ``[0, n_classes)``, one per row, or a one-line error."""
    arr = np.asarray(y)
    if arr.ndim != 1 or len(arr) != n:
        raise ConceptlabValueError(f"{name} must be 1-D with {n} entries (one per row), got "
                                   f"shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise ConceptlabValueError(f"{name} must hold integer class indices")
    elif not np.issubdtype(arr.dtype, np.integer):
        raise ConceptlabValueError(f"{name} must hold integer class indices, got dtype "
                                   f"{arr.dtype}")
    arr = arr.astype(np.int64)
    if n and (arr.min() < 0 or arr.max() >= n_classes):
        raise ConceptlabValueError(f"{name}: labels in [{int(arr.min())}, {int(arr.max())}] "
                                   f"but there are {n_classes} classes (valid: 0.."
                                   f"{n_classes - 1})")
    return arr


def check_n_classes(n_classes: Any) -> int:
    if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer):
        raise ConceptlabValueError(f"n_classes must be an int, got {n_classes!r}")
    if n_classes < 2:
        raise ConceptlabValueError(f"a classifier needs at least 2 classes, got "
                                   f"n_classes={n_classes}")
    return int(n_classes)


def check_problem(Z_train: Any, y_train: Any, Z_val: Any, y_val: Any, n_classes: Any
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate a (train, validation) classification problem on arrays."""
    c = check_n_classes(n_classes)
    Zt = as_matrix(Z_train, "train inputs")
    yt = as_labels(y_train, "train labels", len(Zt), c)
    Zv = as_matrix(Z_val, "validation inputs", Zt.shape[1])
    yv = as_labels(y_val, "validation labels", len(Zv), c)
    if len(np.unique(yt)) < 2:
        raise ConceptlabValueError("train labels hold fewer than 2 distinct classes")
    return Zt, yt, Zv, yv
