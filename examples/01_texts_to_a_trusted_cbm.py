# %% [markdown]
# # My texts and my concepts -> a concept bottleneck model I can trust
#
# A CSV of labelled texts and a file of concepts (see `docs/formats.md`) become a CBM whose
# decisions are sums of named concepts; the audit says whether each unit means its name, and
# the results leave as a table and figures. Run: `python examples/01_texts_to_a_trusted_cbm.py`
# (`--small` for a quick run; a test passes `SMALL` and `OUT`).

# %%
import sys
from pathlib import Path

import conceptlab
from conceptlab.workflows import cbm
from conceptlab.workflows.prepare import RunConfig

sys.path.insert(0, str(Path(__file__).resolve().parent) if "__file__" in dir() else "examples")
from _texts import write_texts

SMALL = globals().get("SMALL", "--small" in sys.argv)
OUT = Path(globals().get("OUT", "runs/examples/01"))

# %% [markdown]
# ## Your data: a CSV (`text,label,split`) and a concept file with `[class]` sections

# %%
texts_csv, concepts_txt = write_texts(OUT / "data", small=SMALL)
print(concepts_txt.read_text())

# %% [markdown]
# ## Fit: the packaged MiniLM reads the texts; an l1 CBM with 2 effective concepts per class

# %%
metrics = cbm.run_fit(RunConfig(data=f"csv:{texts_csv}", encoder="minilm"), OUT / "run",
                      concepts=str(concepts_txt), method="l1", nec=2.0)
print("test accuracy", round(metrics["accuracy"], 3))

# %% [markdown]
# ## Can I trust it? The audit: does unit k track concept k, do the names matter?

# %%
audit = conceptlab.export_table(OUT / "run", "audit")
print(audit.to_string(index=False))
print("trusted:", metrics["trusted"])

# %% [markdown]
# ## One decision, explained, and the class x concept weights

# %%
model, encoder = cbm.load_saved(OUT / "run")
explained = model.explain(encoder.encode_texts(["a header into the net"]), top=4)
print(explained[0]["prediction"], [c["concept"] for c in explained[0]["concepts"]])
conceptlab.plot.explanation(explained).savefig(OUT / "explanation.png")
conceptlab.plot.weights(model).savefig(OUT / "weights.png")

# %% [markdown]
# ## Take it away: per-item concept activations of the test split, one row per text

# %%
acts = conceptlab.export_table(OUT / "run", "activations")
print(acts.groupby("true_class")[model.concept_names].mean().round(2))
acts.to_csv(OUT / "activations.csv", index=False)
