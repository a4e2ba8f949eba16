"""``conceptlab export``: a fitted run as a table a dataframe reads (CSV or Parquet).

Three tables, one per ``what``:

* ``activations``: one row per item of the run's test split: ``test_index``, ``true_class``,
  ``prediction``, ``probability``, ``correct``, then one column per concept (the activation
  the head sees, in ``concept_names`` order). The test split is rebuilt from the spec recorded
  in ``metrics.json`` and used only if its fingerprint equals the recorded one (as the report
  does); its embeddings come from the activation cache, so a cached run costs no encoding.
* ``explanations``: one row per (explained decision, concept) of ``explanations.json``, the
  decisions the run saved: ``test_index``, ``true_class``, ``prediction``, ``probability``,
  ``rank`` (1 = largest |contribution|), ``concept``, ``activation``, ``weight``,
  ``contribution``.
* ``audit``: one row per recorded faithfulness field: ``method`` (the run's, or each row of a
  comparison run such as ``demo``), ``check``, ``value``. Read from ``metrics.json`` only.

* ``metrics``: one row for the run: every scalar of ``metrics.json``, nested keys joined with
  ``.`` (``faithfulness.unit_fidelity_median``), plus ``run`` (the folder). With
  ``--format jsonl`` (JSON Lines: one object per line) ``pd.read_json(path, lines=True)``
  reads it in one call, and the files of several runs concatenate into one table.
* ``model`` (not a table): the fitted CBM as a folder other tools load without conceptlab,
  ``cbm_module.py`` + ``model.safetensors`` + ``config.json``
  (:mod:`conceptlab.bottleneck.portable`; docs/formats.md).

The Python twin :func:`export_table` returns the pandas DataFrame; :func:`export_run` writes it
(atomically) as CSV, as JSON Lines, or as Parquet when ``pyarrow`` is installed. Why a
rebuilt test split rather than activations stored at fit time: no disk cost and no change to
``fit``; the fingerprint makes it exact or refused.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from conceptlab.errors import InputError, OptionError
from conceptlab.utils.io import atomic_path, read_json

if TYPE_CHECKING:
    import pandas as pd

WHAT = ("activations", "explanations", "audit", "metrics", "model")
FORMATS = ("csv", "parquet", "jsonl")
What = Literal["activations", "explanations", "audit", "metrics", "model"]
#: leading columns of the activations table; a concept with one of these names gets "concept:"
ACTIVATION_COLUMNS = ("test_index", "true_class", "prediction", "probability", "correct")


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as err:
        raise OptionError("export needs pandas (pip install 'conceptlab[tables]')") from err
    return pandas


def _metrics(run: Path) -> dict[str, Any]:
    if not run.is_dir():
        raise InputError(f"{run}: no such folder (give a run folder written by `fit`)")
    path = run / "metrics.json"
    if not path.is_file():
        raise InputError(f"{run}: not a run folder (no metrics.json)")
    metrics = read_json(path)
    if not isinstance(metrics, dict):
        raise InputError(f"{path}: expected a JSON object")
    return metrics


def check_request(what: str, fmt: str = "csv") -> None:
    """A bad ``what`` or ``fmt``, or Parquet without pyarrow: one OptionError line, before work."""
    if what not in WHAT:
        raise OptionError(f"--what must be one of {', '.join(WHAT)}, got {what!r}")
    if fmt not in FORMATS:
        raise OptionError(f"--format must be csv, jsonl or parquet, got {fmt!r}")
    if fmt == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise OptionError("--format parquet needs pyarrow, which is not installed "
                          "(pip install pyarrow), or use --format csv")


def activations_table(run: Path, metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Per-item concept activations of the run's test split, with labels and predictions."""
    from conceptlab.bottleneck.model import ConceptBottleneckModel
    from conceptlab.workflows.baselines import backbone_features
    from conceptlab.workflows.cbm import load_saved
    from conceptlab.workflows.prepare import RunConfig, prepare

    pd = _pandas()
    if not (run / "model" / "model.json").is_file():
        raise InputError(f"{run}: no saved concept bottleneck model (model/model.json); "
                         "activations come from a run of `fit`")
    config = metrics.get("config")
    recorded = ((metrics.get("splits") or {}).get("fingerprints") or {}).get("test")
    if not isinstance(config, dict) or not recorded:
        raise InputError(f"{run}: metrics.json records no data config or test fingerprint")
    model, _ = load_saved(run)
    prep = prepare(RunConfig(**config), splits_needed=("test",))
    if prep.splits.test.fingerprint() != recorded:
        raise InputError(f"{run}: the data at {config.get('data')!r} changed since the run "
                         "(test split fingerprint differs); cannot export its activations")
    X = prep.X["test"]
    if isinstance(model, ConceptBottleneckModel) and model.cbl_input == "features":
        features = backbone_features(prep)
        F = None if features is None else features["test"]
        H = model.concept_activations(X, F)
        proba = model.predict_proba(X, F)
    else:  # any concept model, through the protocol
        H = model.activations_from_units(model.unit_values(X))
        proba = model.predict_proba(X)
    pred = proba.argmax(axis=1)
    y = prep.y["test"]
    names = model.class_names
    table: dict[str, Any] = {
        "test_index": np.arange(len(y)), "true_class": [names[int(c)] for c in y],
        "prediction": [names[int(c)] for c in pred], "probability": proba.max(axis=1),
        "correct": pred == y}
    for k, concept in enumerate(model.concept_names):
        column = f"concept:{concept}" if concept in ACTIVATION_COLUMNS else concept
        table[column] = H[:, k]
    return pd.DataFrame(table)


def explanations_table(run: Path) -> pd.DataFrame:
    """The saved explained decisions, one row per (decision, concept)."""
    pd = _pandas()
    path = run / "explanations.json"
    if not path.is_file():
        raise InputError(f"{run}: no explanations.json (written by `fit`)")
    rows = []
    for exp in read_json(path):
        for rank, c in enumerate(exp.get("concepts") or [], start=1):
            rows.append({"test_index": exp.get("test_index"), "true_class": exp.get("true_class"),
                         "prediction": exp.get("prediction"),
                         "probability": exp.get("probability"), "rank": rank,
                         "concept": c.get("concept"), "activation": c.get("activation"),
                         "weight": c.get("weight"), "contribution": c.get("contribution")})
    return pd.DataFrame(rows, columns=["test_index", "true_class", "prediction", "probability",
                                       "rank", "concept", "activation", "weight",
                                       "contribution"])


def _scalar_fields(record: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in record.items()
            if isinstance(v, bool | int | float | str) or v is None]


def audit_table(run: Path, metrics: Mapping[str, Any]) -> pd.DataFrame:
    """The recorded faithfulness fields: one row per (method, check)."""
    pd = _pandas()
    rows = []
    faith = metrics.get("faithfulness")
    if isinstance(faith, Mapping):
        rows += [{"method": metrics.get("method"), "check": k, "value": v}
                 for k, v in _scalar_fields(faith)]
    for r in metrics.get("rows") or []:  # a comparison run (demo): every method's audit
        f = r.get("faithfulness") if isinstance(r, Mapping) else None
        if isinstance(f, Mapping):
            rows += [{"method": r.get("method"), "check": k, "value": v}
                     for k, v in _scalar_fields(f)]
    if not rows:
        raise InputError(f"{run}: metrics.json records no faithfulness audit")
    df = pd.DataFrame(rows, columns=["method", "check", "value"])
    df["value"] = df["value"].astype(object)  # mixed numbers, flags and texts stay as written
    return df


def export_table(run_dir: str | Path, what: What = "activations") -> pd.DataFrame:
    """One table of a fitted run as a pandas DataFrame (see the module docstring).

    >>> df = export_table("runs/cbm", "activations")   # doctest: +SKIP
    >>> df.groupby("true_class")["laces"].mean()        # doctest: +SKIP
    """
    check_request(what)
    run = Path(run_dir)
    metrics = _metrics(run)
    if what == "activations":
        return activations_table(run, metrics)
    if what == "explanations":
        return explanations_table(run)
    if what == "metrics":
        return metrics_table(run, metrics)
    if what == "model":
        raise OptionError("--what model writes a folder, not a table (use export_run)")
    return audit_table(run, metrics)


def flat_scalars(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every scalar (number, string, bool, None) of a nested JSON object, keys joined by
    ``.``; lists and empty objects are left out (a row holds one value per column)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_scalars(value, name + "."))
        elif value is None or isinstance(value, str | int | float | bool):
            out[name] = value
    return out


def metrics_table(run: Path, metrics: Mapping[str, Any]) -> pd.DataFrame:
    """One row: the run folder and every scalar of its ``metrics.json``."""
    return _pandas().DataFrame([{"run": str(run), **flat_scalars(metrics)}])


def export_run(run_dir: str | Path, what: What, fmt: str, out: str | Path) -> Path:
    """Write :func:`export_table` to ``out`` as CSV, JSON Lines or Parquet (``what="model"``:
    the portable model folder), whole or not at all."""
    check_request(what, fmt)
    target = Path(out)
    if what == "model":
        from conceptlab.bottleneck.portable import export_portable
        from conceptlab.workflows.cbm import load_saved

        _metrics(Path(run_dir))
        model, _ = load_saved(run_dir)
        return export_portable(model, target)  # type: ignore[arg-type]
    if target.is_dir():
        raise OptionError(f"--out {target}: a folder; give a file name")
    df = export_table(run_dir, what)
    with atomic_path(target) as tmp:
        if fmt == "csv":
            df.to_csv(tmp, index=False)
        elif fmt == "jsonl":
            df.to_json(tmp, orient="records", lines=True)
        else:
            frame = df.copy()
            if what == "audit":  # Parquet needs one type per column
                frame["value"] = frame["value"].map(lambda v: None if v is None else str(v))
            frame.to_parquet(tmp, index=False)
    return target
