"""The explorer: a local web app to inspect, correct and compare a fitted model's decisions.

In the spirit of interactive concept-based tools such as "Interactive Medical Image Analysis
with Concept-based Similarity Reasoning" (Huy et al., CVPR 2025): pick a test input or submit
a new one, read the concepts behind its prediction, set concept activations by hand and see
the decision change (test-time intervention, Koh et al. 2020, Sec. 6), compare two inputs'
concept profiles, and list the training examples nearest in concept space.

Only the ``ConceptModel`` protocol is used (``bottleneck.concept_model``), so every concept
model (CBM, DN-CBM, CEM) is served the same way: a decision is ``concept_model.explain_units``
on an input's unit values (a set concept replaces its unit value, then the model's activation
map and its head at that input run again: the model's own ``intervene``), concept states are
``unit_range`` ("absent" / "present"), a hand-set value is checked by
``concept_model.check_unit_value``. Nothing here writes to disk: the saved model is never
changed; uploads live in a small in-memory store.

Speed: test and training embeddings are held in memory (and the training items' unit values,
for neighbours), so explaining a test item is one small CBL product, one activation map and
one C x K product; an upload costs one encoder forward pass.
"""

from __future__ import annotations

import io
import json
import math
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from conceptlab.bottleneck.concept_model import (
    check_unit_value,
    concept_index,
    explain_units,
    used_concepts,
)
from conceptlab.errors import ConceptlabError
from conceptlab.faithfulness.claims import claim_summary
from conceptlab.report.plots import thumbnail_png

#: limits on what a user may send (checked before any decoding or encoding)
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000
MAX_TEXT_CHARS = 5_000
MAX_UPLOADS_KEPT = 64
MAX_NEIGHBOURS = 20
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")


class InputError(ValueError):
    """A request the explorer refuses, with the HTTP status to answer and a clear message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ExplorerData:
    """What the explorer browses: test and training embeddings, labels and raw items.

    ``test_items`` / ``train_items`` give the raw input of a row (a PIL image or a string) by
    position, or are None when the inputs are not available. ``modality`` says what a user
    may submit (``"image"`` or ``"text"``).
    """

    X_test: np.ndarray
    y_test: np.ndarray
    X_train: np.ndarray
    y_train: np.ndarray
    modality: str = "image"
    test_items: Sequence[Any] | None = None
    train_items: Sequence[Any] | None = None
    title: str = "conceptlab explorer"
    warnings: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


def decode_image(data: bytes, limit_pixels: int = MAX_IMAGE_PIXELS) -> Any:
    """Bytes -> RGB PIL image, or an InputError that says what is wrong with the file."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InputError("the uploaded file is empty")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format or "?"
            w, h = probe.size
            if fmt not in IMAGE_FORMATS:
                raise InputError(f"unsupported image format {fmt}; use one of "
                                 f"{', '.join(IMAGE_FORMATS)}", 415)
            if w * h > limit_pixels:
                raise InputError(f"image too large: {w} x {h} pixels (limit "
                                 f"{limit_pixels // 1_000_000} megapixels)", 413)
            probe.verify()
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return img.convert("RGB")
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError("cannot read the uploaded file as an image (not a PNG, JPEG, GIF, "
                         "BMP, WebP or TIFF file)", 415) from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise InputError(f"the uploaded image is damaged or truncated ({err})") from None


def check_text(text: str | None) -> str:
    if text is None or not text.strip():
        raise InputError("the text is empty; type a sentence to explain")
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"the text is too long: {len(text)} characters (limit "
                         f"{MAX_TEXT_CHARS})", 413)
    return text.strip()


class Explorer:
    """The explorer's state and logic, independent of the web framework (tested directly)."""

    def __init__(self, model: Any, data: ExplorerData,
                 encode: Callable[[list[Any]], np.ndarray] | None = None) -> None:
        self.model = model
        self.data = data
        self.encode = encode
        self.names: list[str] = list(model.concept_names)
        self.index = {n: k for k, n in enumerate(self.names)}
        self.used = used_concepts(model)
        self.used_set = set(self.used.tolist())
        self.U_test = np.asarray(model.unit_values(data.X_test), dtype=np.float32)
        self.U_train = np.asarray(model.unit_values(data.X_train), dtype=np.float32)
        U_train64 = self.U_train.astype(np.float64)
        self.mu, sd = U_train64.mean(0), U_train64.std(0)
        self.sd = np.where(sd < 1e-12, 1.0, sd)
        self.Z_train = self._unit_rows(self._standardise(U_train64))
        self.pred_test = np.asarray(model.predict(data.X_test)).astype(int)
        self.absent, self.present = (np.asarray(a, dtype=float) for a in model.unit_range())
        self.unit_min = np.minimum(self.U_train.min(0), self.U_test.min(0)).astype(float)
        self.unit_max = np.maximum(self.U_train.max(0), self.U_test.max(0)).astype(float)
        self.uploads: OrderedDict[str, tuple[np.ndarray, np.ndarray, Any]] = OrderedDict()
        self._lock = threading.Lock()

    # -------------------------------------------------------------------------------- helpers

    def _standardise(self, U: np.ndarray) -> np.ndarray:
        """Concept space: unit values standardised by the training mean and spread, over the
        concepts the head uses (units, not activations: a Gumbel model's activations are
        nearly one-hot and would make every example with the same top concept a twin)."""
        return ((np.asarray(U, dtype=np.float64) - self.mu) / self.sd)[:, self.used]

    @staticmethod
    def _unit_rows(Z: np.ndarray) -> np.ndarray:
        return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)

    def _claims(self) -> list[dict[str, str]]:
        """The audit profile's badges: one ``{label, status, reason}`` per claim recorded."""
        faith = (self.data.metrics or {}).get("faithfulness")
        if not isinstance(faith, dict):
            return []
        return [{k: c[k] for k in ("label", "status", "reason")} for c in claim_summary(faith)]

    def info(self) -> dict[str, Any]:
        m = self.model

        def finite(v: float) -> float | None:
            return float(v) if math.isfinite(v) else None

        return {
            "title": self.data.title, "modality": self.data.modality,
            "class_names": list(m.class_names), "n_test": len(self.U_test),
            "n_train": len(self.U_train), "warnings": list(self.data.warnings),
            "claims": self._claims(),
            "accuracy": float((self.pred_test == self.data.y_test).mean())
            if len(self.U_test) else None,
            "has_inputs": self.data.test_items is not None,
            "can_upload": self.encode is not None,
            "limits": {"upload_bytes": MAX_UPLOAD_BYTES, "text_chars": MAX_TEXT_CHARS,
                       "image_pixels": MAX_IMAGE_PIXELS},
            "concepts": [{"name": self.names[k], "index": int(k),
                          "absent": finite(self.absent[k]), "present": finite(self.present[k]),
                          "min": float(self.unit_min[k]), "max": float(self.unit_max[k])}
                         for k in self.used],
            "metrics": {k: v for k, v in self.data.metrics.items()
                        if isinstance(v, int | float | str | bool) or v is None},
        }

    def items(self, which: str = "all", offset: int = 0, limit: int = 50) -> dict[str, Any]:
        if which not in ("all", "right", "wrong"):
            raise InputError(f"filter must be all, right or wrong, got {which!r}")
        if limit < 1 or limit > 500 or offset < 0:
            raise InputError("offset must be >= 0 and limit in 1..500")
        y, p = self.data.y_test, self.pred_test
        idx = np.arange(len(y))
        if which == "right":
            idx = idx[p == y]
        elif which == "wrong":
            idx = idx[p != y]
        cls = self.model.class_names
        rows = []
        for i in idx[offset:offset + limit]:
            row = {"index": int(i), "true": cls[int(y[i])], "prediction": cls[int(p[i])],
                   "correct": bool(p[i] == y[i])}
            if self.data.modality == "text" and self.data.test_items is not None:
                row["text"] = str(self.data.test_items[int(i)])[:160]
            rows.append(row)
        return {"total": len(idx), "offset": offset, "items": rows}

    def raw_item(self, split: str, i: int) -> Any:
        items = {"test": self.data.test_items, "train": self.data.train_items}.get(split)
        n = {"test": len(self.U_test), "train": len(self.U_train)}.get(split)
        if n is None:
            raise InputError(f"split must be test or train, got {split!r}", 404)
        if not 0 <= i < n:
            raise InputError(f"no {split} item {i} (there are {n})", 404)
        if items is None:
            raise InputError(f"the {split} inputs are not available", 404)
        return items[i]

    def upload_item(self, upload_id: str) -> Any:
        if upload_id not in self.uploads:
            raise InputError(f"unknown upload {upload_id!r} (uploads are kept in memory for "
                             f"the last {MAX_UPLOADS_KEPT} only)", 404)
        return self.uploads[upload_id][2]

    # ------------------------------------------------------------------------ decisions

    def _ref_units(self, ref: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """The embedding (1 x D) and unit values (1 x K, a copy) of ``{"item": i}``,
        ``{"train": i}`` or ``{"upload": id}``."""
        if not isinstance(ref, Mapping):
            raise InputError("expected an object naming an input: {\"item\": N}, "
                             "{\"train\": N} or {\"upload\": ID}")
        if "upload" in ref:
            key = str(ref["upload"])
            if key not in self.uploads:
                self.upload_item(key)
            X, U, _ = self.uploads[key]
            return X, U.copy()
        for name, X in (("item", self.data.X_test), ("train", self.data.X_train)):
            if name in ref:
                i = ref[name]
                if isinstance(i, bool) or not isinstance(i, int):
                    raise InputError(f"{name} must be an integer index, got {i!r}")
                if not 0 <= i < len(X):
                    raise InputError(f"no {'test' if name == 'item' else 'train'} item {i} "
                                     f"(there are {len(X)})", 404)
                # one row through the model, as the Python API does for one input (a batched
                # product can differ in the last float32 bit)
                row = X[i:i + 1]
                return row, np.asarray(self.model.unit_values(row), dtype=np.float32)
        raise InputError("name an input: {\"item\": N}, {\"train\": N} or {\"upload\": ID}")

    def _apply_units(self, U: np.ndarray, units: Any) -> dict[str, float]:
        if units is None:
            return {}
        if not isinstance(units, Mapping):
            raise InputError("units must be an object {concept name: value}")
        if len(units) > len(self.names):
            raise InputError(f"too many units set ({len(units)} > {len(self.names)} concepts)")
        out = {}
        for name, value in units.items():
            try:
                k = concept_index(self.model, str(name))  # close names when unknown
            except ConceptlabError as err:
                raise InputError(str(err)) from None
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InputError(f"value for {name!r} must be a finite number, got {value!r}")
            try:
                v = check_unit_value(self.model, str(name), float(value))
            except (ConceptlabError, OverflowError) as err:
                raise InputError(str(err)) from None
            U[0, k] = v
            out[str(name)] = v
        return out

    def decide(self, X: np.ndarray, U: np.ndarray) -> dict[str, Any]:
        """Prediction, class probabilities and contributions of input ``X`` (1 x D) with unit
        values ``U`` (1 x K): the model's own arithmetic (``concept_model.explain_units``)."""
        out = explain_units(self.model, X, U, keep=self.used.tolist())[0]
        out["probabilities"] = out["probabilities"][:5]
        return out

    def explain(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """``{"item"|"train"|"upload": ..., "units": {concept: unit value}}`` -> decision."""
        X, U = self._ref_units(request)
        base_units = U.copy()
        set_units = self._apply_units(U, request.get("units"))
        out = self.decide(X, U)
        out["set"] = set_units
        out["original_units"] = {self.names[k]: float(base_units[0, k]) for k in self.used}
        if "item" in request:
            i = int(request["item"])
            out["true"] = self.model.class_names[int(self.data.y_test[i])]
        elif "train" in request:
            out["true"] = self.model.class_names[int(self.data.y_train[int(request["train"])])]
        return out

    def neighbours(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The training examples nearest in concept space (cosine of standardised unit values,
        see ``_standardise``; interventions in the request apply first)."""
        k = request.get("k", 6)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_NEIGHBOURS:
            raise InputError(f"k must be an integer in 1..{MAX_NEIGHBOURS}")
        _, U = self._ref_units(request)
        self._apply_units(U, request.get("units"))
        z = self._unit_rows(self._standardise(U))[0]
        sims = self.Z_train @ z
        top = np.argsort(-sims, kind="stable")[:k]
        cls = self.model.class_names
        rows = []
        for j in top:
            row = {"train": int(j), "label": cls[int(self.data.y_train[j])],
                   "similarity": float(sims[j])}
            if self.data.modality == "text" and self.data.train_items is not None:
                row["text"] = str(self.data.train_items[int(j)])[:200]
            rows.append(row)
        return {"neighbours": rows}

    def compare(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Two inputs' concept profiles (activations, and standardised unit values over the
        concepts the head uses), their cosine similarity and the concepts that differ most."""
        a, b = request.get("a"), request.get("b")
        if not isinstance(a, Mapping) or not isinstance(b, Mapping):
            raise InputError("compare needs {\"a\": input, \"b\": input}")
        out: dict[str, Any] = {}
        zs = []
        for key, ref in (("a", a), ("b", b)):
            X, U = self._ref_units(ref)
            self._apply_units(U, ref.get("units"))
            H = np.asarray(self.model.activations_from_units(U), dtype=np.float64)
            zs.append(self._standardise(U)[0])
            dec = self.decide(X, U)
            out[key] = {"prediction": dec["prediction"], "probability": dec["probability"],
                        "activations": [float(H[0, k]) for k in self.used]}
        za, zb = zs
        denom = float(np.linalg.norm(za) * np.linalg.norm(zb)) or 1.0
        diff = np.argsort(-np.abs(za - zb), kind="stable")
        out["concepts"] = [self.names[k] for k in self.used]
        out["similarity"] = float(za @ zb / denom)
        out["most_different"] = [{"concept": self.names[int(self.used[j])],
                                  "a": float(za[j]), "b": float(zb[j])} for j in diff[:12]]
        return out

    def add_upload(self, item: Any) -> dict[str, Any]:
        """Encode a new input (already validated), keep it in memory, explain it."""
        if self.encode is None:
            raise InputError("this explorer has no encoder: new inputs cannot be explained")
        with self._lock:
            X = np.asarray(self.encode([item]), dtype=np.float32)
        U = np.asarray(self.model.unit_values(X), dtype=np.float32)
        key = uuid.uuid4().hex[:12]
        self.uploads[key] = (X, U, item)
        while len(self.uploads) > MAX_UPLOADS_KEPT:
            self.uploads.popitem(last=False)
        out = self.decide(X, U.copy())
        out["upload"] = key
        out["set"] = {}
        out["original_units"] = {self.names[k]: float(U[0, k]) for k in self.used}
        return out


# ------------------------------------------------------------------------------------------------
# the web layer
# ------------------------------------------------------------------------------------------------


def _too_large(limit: int) -> InputError:
    return InputError(f"request too large (limit {limit // (1024 * 1024)} MB)", 413)


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is refused with 413, by its
    Content-Length before anything is read, and for a body without one (chunked) as soon as
    the bytes read exceed the limit, so no body is ever read whole past it."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, int(limit)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        size = dict(scope.get("headers") or []).get(b"content-length", b"")
        if size.isdigit() and int(size) > self.limit:
            msg = f"request too large: {int(size):,} bytes (limit " \
                  f"{self.limit // (1024 * 1024)} MB)"
            await JSONResponse({"error": msg}, status_code=413)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            if message.get("type") == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _too_large(self.limit)
            return message

        await self.app(scope, limited, send)



def create_app(model: Any, data: ExplorerData,
               encode: Callable[[list[Any]], np.ndarray] | None = None) -> Any:
    """The FastAPI application of the explorer (serve it with uvicorn on 127.0.0.1)."""
    explorer = Explorer(model, data, encode)
    app = FastAPI(title=data.title, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.explorer = explorer
    app.add_middleware(BodyLimit, limit=MAX_UPLOAD_BYTES + 65536)
    env = Environment(loader=PackageLoader("conceptlab.report", "templates"),
                      autoescape=select_autoescape(["html"]))
    page = env.get_template("explorer.html").render(title=data.title)
    thumbs: OrderedDict[tuple[str, str], bytes] = OrderedDict()

    @app.exception_handler(InputError)
    async def _input_error(_: Request, err: InputError) -> JSONResponse:
        return JSONResponse({"error": str(err)}, status_code=err.status)

    @app.exception_handler(Exception)
    async def _any_error(_: Request, err: Exception) -> JSONResponse:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        return JSONResponse({"error": f"internal error: {msg}"}, status_code=500)

    async def _json(request: Request) -> dict[str, Any]:
        raw = await request.body()  # counted against the limit while it arrives (BodyLimit)
        try:
            body = json.loads(raw or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InputError("the request body is not valid JSON") from None
        except RecursionError:
            raise InputError("the request body is JSON nested too deeply") from None
        if not isinstance(body, dict):
            raise InputError("the request body must be a JSON object")
        return body

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return explorer.info()

    @app.get("/api/items")
    def items(filter: str = "all", offset: int = 0, limit: int = 50) -> dict[str, Any]:
        return explorer.items(filter, offset, limit)

    @app.get("/api/input/{split}/{key}")
    def raw_input(split: str, key: str) -> Response:
        if split == "upload":
            item = explorer.upload_item(key)
        else:
            if not key.isdigit():
                raise InputError(f"item index must be a number, got {key!r}", 404)
            item = explorer.raw_item(split, int(key))
        if isinstance(item, str):
            return JSONResponse({"text": item})
        cache_key = (split, key)
        if cache_key not in thumbs:
            thumbs[cache_key] = thumbnail_png(item, 112)
            while len(thumbs) > 2048:
                thumbs.popitem(last=False)
        return Response(thumbs[cache_key], media_type="image/png")

    @app.post("/api/explain")
    async def explain(request: Request) -> dict[str, Any]:
        return explorer.explain(await _json(request))

    @app.post("/api/neighbours")
    async def neighbours(request: Request) -> dict[str, Any]:
        return explorer.neighbours(await _json(request))

    @app.post("/api/compare")
    async def compare(request: Request) -> dict[str, Any]:
        return explorer.compare(await _json(request))

    @app.post("/api/upload")
    async def upload(request: Request) -> dict[str, Any]:
        try:
            form = await request.form(max_files=1, max_fields=4,
                                      max_part_size=MAX_UPLOAD_BYTES + 1)
        except InputError:  # a body over the limit
            raise
        except Exception as err:  # malformed multipart bodies
            raise InputError(f"could not read the upload ({err})") from None
        file = form.get("file")
        text = form.get("text")
        if data.modality == "text":
            if file is not None and not isinstance(file, str):
                raw = await file.read(MAX_UPLOAD_BYTES + 1)
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise InputError("the uploaded file is not UTF-8 text; this model reads "
                                     "texts", 415) from None
            item: Any = check_text(text if isinstance(text, str) else None)
        else:
            if file is None or isinstance(file, str):
                if isinstance(text, str) and text.strip():
                    raise InputError("this model reads images: upload an image file, not a "
                                     "text")
                raise InputError("no file uploaded (form field 'file')")
            raw = await file.read(MAX_UPLOAD_BYTES + 1)
            if len(raw) > MAX_UPLOAD_BYTES:
                raise InputError(f"file too large (limit {MAX_UPLOAD_BYTES // (1024 * 1024)} "
                                 "MB)", 413)
            item = decode_image(raw)
        try:
            return await run_in_threadpool(explorer.add_upload, item)
        except InputError:
            raise
        except ValueError as err:  # the encoder refused the input
            raise InputError(f"the encoder could not read this input: {err}") from None

    return app
