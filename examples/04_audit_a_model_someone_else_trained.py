# %% [markdown]
# # Auditing a model someone else trained
#
# You are handed a saved CBM (a `model/` folder and its `encoder.json`) and held-out data. Do
# its concept units mean their names? Does it need its concepts at all? Run:
# `python examples/04_audit_a_model_someone_else_trained.py [--small]`.

# %%
import sys
from pathlib import Path

import numpy as np

import conceptlab
from conceptlab.workflows import cbm
from conceptlab.workflows.prepare import RunConfig, prepare

sys.path.insert(0, str(Path(__file__).resolve().parent) if "__file__" in dir() else "examples")
from _texts import write_texts

SMALL = globals().get("SMALL", "--small" in sys.argv)
OUT = Path(globals().get("OUT", "runs/examples/04"))

# %% [markdown]
# ## Someone else's model (here fitted on the spot; in real use: the folder you were given)

# %%
texts_csv, concepts_txt = write_texts(OUT / "data", small=SMALL)
config = RunConfig(data=f"csv:{texts_csv}", encoder="minilm")
cbm.run_fit(config, OUT / "their_run", concepts=str(concepts_txt), method="l1", nec=2.0)

# %% [markdown]
# ## Load it as they saved it (the encoder is rebuilt and checked by fingerprint)

# %%
model, encoder = cbm.load_saved(OUT / "their_run")
print(model.method, model.n_concepts, "concepts:", model.concept_names)

# %% [markdown]
# ## Your held-out data through the same encoder, and the audit

# %%
prep = prepare(RunConfig(data=f"csv:{texts_csv}", encoder="minilm"), splits_needed=("test",))
X, y = prep.X["test"], prep.y["test"]
report = conceptlab.audit(model, X, y)
for key in ("unit_fidelity_median", "name_match_rate", "intercept_share", "trusted"):
    print(f"{key:>22}: {report.get(key)}")

# %% [markdown]
# ## What would change if a concept were absent? Set it low and compare

# %%
k = int(np.abs(model.head_.weight).sum(0).argmax())  # the concept the head leans on most
concept = model.concept_names[k]
before = model.predict(X)
after = model.intervene(X, {concept: float(model.unit_low_[k])})  # "absent": its 5th percentile
print(f"setting {concept!r} absent changes {int((before != after).sum())} of {len(y)} decisions")
conceptlab.export_table(OUT / "their_run", "audit").to_csv(OUT / "audit.csv", index=False)
