"""Fashion-MNIST from its idx files (Debian's ``dataset-fashion-mnist``), official 60k/10k split.

Spec: ``fashion-mnist`` (files under /usr/share/datasets/fashion-mnist) or
``fashion-mnist:DIR``; option ``invert=True`` swaps light and dark (a dark item on a white
ground, closer to the product photos an ImageNet backbone saw; OFFLINE.md measured +1 to +8
points with it). Items are 28x28 PIL RGB images (the grey channel repeated). The files are
read with numpy only; magic numbers, dimensions and sizes are checked, and a truncated or
corrupt file raises a DataError naming it.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from conceptlab.data.base import (
    DataError,
    Dataset,
    DataSplit,
    ItemSource,
    file_digest,
    register_dataset,
    take_options,
)
from conceptlab.utils.hashing import hash_json

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_UBYTE = 0x08
_ARRAYS: dict[tuple[str, int, int], np.ndarray] = {}


def find_file(root: Path, stem: str) -> Path:
    """``root/stem.gz`` or, for users who unpacked the archives, ``root/stem``."""
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    raise DataError(f"{root / (stem + '.gz')}: no such file (Fashion-MNIST idx file; on Debian "
                    "`apt-get install dataset-fashion-mnist`)")


def _open(path: Path) -> Any:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _parse_header(path: Path, head: bytes) -> tuple[int, ...]:
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise DataError(f"{path}: not an idx file (bad magic number {head[:4].hex()})")
    if head[2] != _UBYTE:
        raise DataError(f"{path}: idx data type 0x{head[2]:02x} is not unsigned byte (0x08)")
    ndim = head[3]
    if len(head) < 4 + 4 * ndim:
        raise DataError(f"{path}: truncated idx header")
    return tuple(int.from_bytes(head[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))


def read_idx_header(path: Path) -> tuple[int, ...]:
    """The dimensions stored in an idx file's header (reads only its first bytes)."""
    try:
        with _open(path) as fh:
            head = fh.read(4)
            if len(head) == 4:
                head += fh.read(4 * head[3])
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: unreadable ({err})") from err
    return _parse_header(path, head)


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """The whole uint8 array of an idx file, checked against its header; cached per process."""
    try:
        st = path.stat()
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err})") from err
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _ARRAYS:
        return _ARRAYS[key]
    try:
        with _open(path) as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: corrupt or truncated ({err})") from err
    dims = _parse_header(path, raw[:4 + 4 * raw[3]] if len(raw) >= 4 else raw)
    if len(dims) != ndim:
        raise DataError(f"{path}: expected {ndim} dimensions, header says {len(dims)}")
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(raw) - offset != expected:
        raise DataError(f"{path}: header promises {expected} bytes of data for shape {dims}, "
                        f"file holds {len(raw) - offset} (truncated or corrupt)")
    arr = np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)
    if len(_ARRAYS) >= 8:
        _ARRAYS.pop(next(iter(_ARRAYS)))
    _ARRAYS[key] = arr
    return arr


class IdxImageSource(ItemSource):
    """Grey images of one idx file, handed out as RGB PIL images (loaded on first use)."""

    def __init__(self, path: Path, *, invert: bool = False) -> None:
        self.path = path
        self.invert = invert
        dims = read_idx_header(path)
        if len(dims) != 3:
            raise DataError(f"{path}: expected an image file (3 dimensions), header says {dims}")
        self._n = dims[0]

    def __len__(self) -> int:
        return self._n

    def arrays(self, indices: np.ndarray | None = None) -> np.ndarray:
        """uint8 grey images ``(N, H, W)`` (inverted if asked), without PIL: for fast batches."""
        arr = read_idx(self.path, 3)
        out = arr if indices is None else arr[np.asarray(indices, dtype=np.int64)]
        return 255 - out if self.invert else out

    def load(self, index: int) -> Image.Image:
        if not 0 <= index < self._n:
            raise DataError(f"{self.path}: item {index} out of range (0..{self._n - 1})")
        grey = self.arrays(np.array([index]))[0]
        return Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2))

    def fingerprint(self) -> str:
        return hash_json({"format": "idx-grey-to-rgb", "file": file_digest(self.path),
                          "invert": self.invert})


class FashionMNIST(Dataset):
    """Fashion-MNIST with its official 60,000 / 10,000 train / test split."""

    modality = "image"

    def __init__(self, root: str | Path = DEFAULT_DIR, *, invert: bool = False) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(f"{self.root}: no such folder (Fashion-MNIST; on Debian "
                            "`apt-get install dataset-fashion-mnist`)")
        self.invert = bool(invert)
        self.spec = "fashion-mnist" if self.root == DEFAULT_DIR else f"fashion-mnist:{self.root}"
        self._splits: dict[str, DataSplit] = {}

    @property
    def class_names(self) -> list[str]:
        return list(CLASS_NAMES)

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "modality": self.modality, "invert": self.invert}

    def official_split(self, name: str) -> DataSplit:
        if name not in FILES:
            raise DataError(f"{self.spec}: no split {name!r}; official splits: train, test")
        if name not in self._splits:
            images_stem, labels_stem = FILES[name]
            source = IdxImageSource(find_file(self.root, images_stem), invert=self.invert)
            labels_path = find_file(self.root, labels_stem)
            labels = read_idx(labels_path, 1)
            if len(labels) != len(source):
                raise DataError(f"{labels_path}: {len(labels)} labels but {source.path} holds "
                                f"{len(source)} images")
            if labels.size and int(labels.max()) >= len(CLASS_NAMES):
                raise DataError(f"{labels_path}: label {int(labels.max())} outside 0..9")
            self._splits[name] = DataSplit(
                dataset=self.spec, name=name, modality="image", source=source,
                indices=np.arange(len(labels)), labels=labels.astype(np.int64),
                class_names=self.class_names,
                meta={"official": True, "invert": self.invert, "labels_file": str(labels_path)},
            )
        return self._splits[name]


_OPTIONS: dict[str, Any] = {"invert": False}


@register_dataset("fashion-mnist", options=_OPTIONS)
def _build(arg: str, options: dict[str, Any]) -> Dataset:
    opts = take_options("fashion-mnist", options, _OPTIONS)
    return FashionMNIST(arg or DEFAULT_DIR, invert=opts["invert"])
