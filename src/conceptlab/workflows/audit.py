"""``conceptlab audit RUN_DIR``: the faithfulness profile of any saved concept model's run,
recomputed on its recorded test split (rebuilt from the recorded data spec and checked by
fingerprint; embeddings from the cache), optionally against a user's concept example sets.

The profile is the one ``fit`` records: the model's own ``audit_profile`` (``ConceptModel``:
``bottleneck.audit`` for a CBM, ``discover.dncbm_audit`` for DN-CBM, ``bottleneck.cem_audit``
for a CEM); the control refits use the run's cached train/val embeddings only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from conceptlab.bottleneck.concept_model import check_encoder, load_concept_model
from conceptlab.bottleneck.model import ConceptBottleneckModel
from conceptlab.concepts.builtin import builtin_vocabulary_names
from conceptlab.concepts.examples import embed_examples, load_concept_examples
from conceptlab.errors import InputError
from conceptlab.utils.io import read_json
from conceptlab.workflows.baselines import backbone_features
from conceptlab.workflows.cbm import audit_fitted
from conceptlab.workflows.concepts import concept_source
from conceptlab.workflows.prepare import RunConfig, prepare


def concepts_spec(origin: str) -> str:
    """The ``--concepts`` value that rebuilds a run's vocabulary from its recorded origin."""
    kind, _, rest = str(origin).partition(":")
    if kind == "file":
        return rest
    if kind == "builtin" and rest in builtin_vocabulary_names():
        return rest
    return "auto"


def _run_record(run_dir: Path) -> tuple[dict[str, Any], RunConfig, Path]:
    metrics_file = run_dir / "metrics.json"
    if not metrics_file.is_file():
        raise InputError(f"{run_dir}: not a run folder (no metrics.json)")
    metrics = read_json(metrics_file)
    config = metrics.get("config")
    model_dir = run_dir / "model"
    if not isinstance(config, dict) or not (model_dir / "model.json").is_file():
        raise InputError(f"{run_dir}: not a saved CBM or DN-CBM run (needs metrics.json with "
                         f"its data config and model/model.json)")
    fields = set(RunConfig.__dataclass_fields__)
    return metrics, RunConfig(**{k: v for k, v in config.items() if k in fields}), model_dir


def _model_seed(model: Any, metrics: dict[str, Any]) -> int:
    """The seed the model was fitted (and first audited) with."""
    seed = getattr(model, "seed", None)
    if seed is None:
        seed = (getattr(model, "info", None) or {}).get("seed", metrics.get("seed", 0))
    return int(seed)


def run_audit(run_dir: str | Path, *, concept_examples: str | Path | None = None
              ) -> dict[str, Any]:
    """The faithfulness profile of a saved run (see the module docstring)."""
    run = Path(run_dir)
    metrics, config, model_dir = _run_record(run)
    examples = load_concept_examples(concept_examples) if concept_examples else None
    model = load_concept_model(model_dir)  # a malformed model fails before any encoding
    t0 = time.perf_counter()
    prep = prepare(config)
    src = concept_source(prep, concepts_spec((metrics.get("concepts") or {}).get("origin", "")))
    check_encoder(model, prep.encoder.fingerprint(), model_dir)
    F = (backbone_features(prep) if isinstance(model, ConceptBottleneckModel)
         and model.cbl_input == "features" else None)
    emb = (embed_examples(examples, prep.encoder, model.concept_names)
           if examples is not None and isinstance(model, ConceptBottleneckModel) else examples)
    row = audit_fitted(model, prep, src, seed=_model_seed(model, metrics), F=F, examples=emb)
    faith = row["faithfulness"]
    return {"run": str(run), "method": metrics.get("method"), "data": config.data,
            "encoder": metrics.get("encoder") or config.encoder,
            "recorded_trusted": (metrics.get("faithfulness") or {}).get("trusted"),
            "seconds": round(time.perf_counter() - t0, 3), **faith}

