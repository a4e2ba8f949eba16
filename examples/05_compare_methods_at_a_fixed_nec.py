# %% [markdown]
# # Comparing methods at a fixed NEC
#
# Several CBL objectives on one set of cached embeddings, each with a sparse final layer of
# the same number of effective concepts per class (NEC), over several seeds, reported as
# mean +- 95% t-interval beside the audit's unit fidelity. The choice between them is made on
# validation accuracy (carved from train), never on test. Run:
# `python examples/05_compare_methods_at_a_fixed_nec.py [--small]`.

# %%
import sys
from pathlib import Path

import pandas as pd

from conceptlab.align.evaluate import mean_interval
from conceptlab.workflows.cbm import fit_cbm
from conceptlab.workflows.concepts import concept_source
from conceptlab.workflows.prepare import RunConfig, prepare

sys.path.insert(0, str(Path(__file__).resolve().parent) if "__file__" in dir() else "examples")
from _texts import write_texts

SMALL = globals().get("SMALL", "--small" in sys.argv)
OUT = Path(globals().get("OUT", "runs/examples/05"))
NEC = 2.0
METHODS = ["l1", "contrastive"] if SMALL else ["l1", "contrastive", "gumbel", "cos3"]
SEEDS = [0, 1, 2]

# %% [markdown]
# ## One encoding for every method: prepare once, then fit on the same arrays

# %%
texts_csv, concepts_txt = write_texts(OUT / "data", small=SMALL)
prep = prepare(RunConfig(data=f"csv:{texts_csv}", encoder="minilm"))
src = concept_source(prep, str(concepts_txt))

# %%
rows = []
for method in METHODS:
    for seed in SEEDS:
        # controls=False skips the random-bank refits of the audit (faster; fidelity stays)
        _, row = fit_cbm(prep, src, method, NEC, seed=seed, controls=not SMALL)
        rows.append({"method": method, "seed": seed, "val_accuracy": row["val_accuracy"],
                     "accuracy": row["accuracy"],
                     "unit_fidelity": row["faithfulness"].get("unit_fidelity_median")})
runs = pd.DataFrame(rows)

# %% [markdown]
# ## Mean +- 95% t-interval over seeds; pick on validation, then read test

# %%
summary = []
for method, group in runs.groupby("method", sort=False):
    val, val_half = mean_interval(group["val_accuracy"].to_numpy())
    acc, acc_half = mean_interval(group["accuracy"].to_numpy())
    summary.append({"method": method, "NEC": NEC, "val": f"{val:.3f} ± {val_half:.3f}",
                    "test": f"{acc:.3f} ± {acc_half:.3f}", "val_mean": val,
                    "unit fidelity": round(float(group["unit_fidelity"].median()), 2)})
table = pd.DataFrame(summary)
chosen = table.loc[table["val_mean"].idxmax(), "method"]
print(table.drop(columns="val_mean").to_string(index=False))
print(f"chosen on validation: {chosen}")
runs.to_csv(OUT / "runs.csv", index=False)
