# %% [markdown]
# # A language model -> a concept's depth, its neurons, a steering sweep
#
# Where in SmolLM2-135M (packaged, offline) does "animal vs object" become linearly readable?
# Which MLP neurons write words about dogs? How much does steering along the sentiment
# direction move the next word, and at what cost in side effects? Run:
# `python examples/03_language_model_concepts.py [--small]` (needs the `lm` extra).
# A test passes a tiny random Llama as `LM` (and prompts in its vocabulary as `STEER_DATA`),
# so only the structure is checked there.

# %%
import sys
from pathlib import Path

import conceptlab
from conceptlab.workflows import lm as runs

SMALL = globals().get("SMALL", "--small" in sys.argv)
OUT = Path(globals().get("OUT", "runs/examples/03"))
LM = globals().get("LM")  # None: the packaged SmolLM2-135M
STEER_DATA = globals().get("STEER_DATA", "sentiment")  # a prompt set (built-in name or csv:PATH)

# %% [markdown]
# ## Depth: a probe per layer, with a shuffled-label control and 95% intervals

# %%
probe = runs.run_lm_probe(["animals"], OUT / "probe", lm=LM, n_boot=100 if SMALL else 1000)
concept = probe["concepts"][0]
print(f"{concept['name']}: depth {concept['depth']}, best layer {concept['best_layer']} "
      f"(accuracy {concept['best_accuracy']:.2f}; control {concept['control_accuracy_mean']:.2f})")
conceptlab.plot.depth(probe).savefig(OUT / "depth.png")

# %% [markdown]
# ## Neurons: decode every MLP neuron through the unembedding, find those that write "dog"

# %%
neurons = runs.run_lm_neurons(OUT / "neurons", lm=LM, words=["dog"], k=3 if SMALL else 10)
dog = neurons["words"][0]
for hit in dog["hits"][:3]:
    print(hit)
if "clamp" in dog:  # the best hit, clamped high on neutral prompts: does "dog" become likelier?
    print("clamping the best neuron:", dog["clamp"])

# %% [markdown]
# ## Steering: layers x strengths, intended effect against side effect

# %%
layers = [0, 1] if LM is not None else [3, 8, 13]
sweep = runs.run_lm_steer(STEER_DATA, OUT / "steer", lm=LM, layers=layers,
                          coefs=[1.0, 4.0] if SMALL else [1.0, 2.0, 4.0, 8.0],
                          max_new_tokens=3 if SMALL else 12)
for row in sweep["rows"]:
    print(f"layer {row['layer']:>2} coef {row['coef']:>4}: intended {row['intended']:+.3f}, "
          f"KL {row['kl']:.4f}")
