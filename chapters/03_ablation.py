# ---
# jupyter:
#   book:
#     needs:
#     - models
#     - runs
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Ablating every head {#sec-ablation}
#
# Lin (2024) ablated the attention heads of both models one at a time. The fine-tuned GPT-2's
# accuracy dropped most when heads in *later* layers were removed (the paper names L5H7, L8H3,
# L9H3 and L11H8); the model trained from scratch depended most on *first-layer* heads, which
# attend to the numbers. Fine-tuning, in this reading, recruits heads that pretraining built.
#
# **What we measure.** For every head of both models (the runs that chapter 2 selected: each arm's
# best learning rate at the largest N), we replace the head's output `z` (its contribution before the
# output projection) by zero (*zero-ablation*) or by its mean over reference prompts, position by
# position (*mean-ablation*, which keeps the typical output and removes only the information that
# varies between prompts). We record the logit difference toward the correct answer on held-out
# prompts, and report the drop in accuracy and in mean logit difference, with paired bootstrap 95%
# intervals over prompts. We also ablate whole layers.
#
# **Design decisions.** The paper does not say which ablation it used. The verdicts use
# mean-ablation: zeroing a head's output pushes the residual stream off its distribution, so a large
# zero-ablation drop (typically of an early head) says more about that shock than about what the
# model relies on. Whether a verdict depends on that choice is itself a finding (Miller et al. 2024
# and Zhang & Nanda 2024 show that the ablation and the metric can flip a circuit's verdict), so the
# verdicts are computed again with every other kind in `ablation_kinds` (zero-ablation in `quick`,
# `full` and `paper`) and with the accuracy drop in place of the logit difference, and each verdict
# says whether it is robust to them or which choice flips it (32 prompts in `quick`: with 16, the
# depth verdicts were undecided for lack of prompts). The sweep is
# exact but cheap: the clean residual stream is reused up to the ablated layer, the heads of a layer
# are ablated in one batched pass, and only the two answer logits at the last position are computed
# (`benchmarks/bench_ablation.py` checks it against a naive loop). Attribution patching, a linear
# estimate from one backward pass, is shown as a *screen* only: how well it would have ranked heads.

# %% tags=["parameters"]
profile = "quick"
study_overrides = {}
show_solutions = True
n_ablation = 32
n_reference = 32
ablation_kinds = ["mean", "zero"]
analysis_bf16 = False

# %%
#| echo: false
from helpers.book.kernel import take_parameters
take_parameters("03_ablation", globals())   # checked as the command line does; what is not given comes from the profile
from helpers.book.card import run_card
from helpers.figures.style import setup_notebook
from helpers.study import ARMS, Study

setup_notebook()   # the book's figure style, high-resolution (retina) PNGs

study = Study.from_profile(profile, **study_overrides)
run_card(study, n_ablation=n_ablation, n_reference=n_reference, ablation_kinds=ablation_kinds,
         analysis_bf16=analysis_bf16, train_sizes=study.train_sizes)

# %%
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from helpers.book.scorecard import show_verdicts
from helpers.claims.verdict import gate_note, task_gates, with_robustness
from helpers.figures import ablation as ablation_figures
from helpers.book.tables import with_intervals
from helpers.interventions import ablation, effects

runs = study.selected_runs()
gates = task_gates(runs, study.trials("test", study.n_test))
display(Markdown(gate_note(gates)))
trials, reference = study.trials("test", n_ablation), study.trials("val", n_reference)
results = {}
for arm in ARMS:     # computed once per run and prompts, then read from disk (chapter 7 reads it too)
    results[arm] = ablation.cached_ablation_results(runs[arm], lambda arm=arm: study.load(arm, runs), trials,
                                                    reference, ablation_kinds, bf16=analysis_bf16)
choice = np.array([t.choice for t in trials])
pd.DataFrame({arm: {"clean accuracy on these prompts": float(np.mean(np.sign(r["clean"]) == choice)),
                    "mean logit diff toward correct": float(np.mean(r["clean"] * choice)),
                    "layers x heads": f"{r['arch'][0]} x {r['arch'][1]}"} for arm, r in results.items()})

# %% [markdown]
# Ablation effects are only meaningful for a model that solves the task: read the scratch model's
# maps with its clean accuracy above in mind.
#
# ## Head by head

# %%
#| label: fig-head-ablation
#| fig-cap: "Drop of the mean logit difference toward the correct answer when one head is ablated (red: the head helps), per layer and head; one row of panels per ablation kind, both models of a row on one colour scale. Outlined: the heads Lin (2024) names, when the model is GPT-2-sized."
tables = {(arm, kind): effects.effects_table(r["clean"], r[kind], choice)
          for arm, r in results.items() for kind in ablation_kinds}
L_H = {arm: r["arch"] for arm, r in results.items()}
is_gpt2 = all(r["family"] == "gpt2" and r["arch"] == (12, 12) for r in results.values())
marks = effects.PAPER_HEADS_GPT2 if is_gpt2 else ()
maps = {f"{kind}-ablation": {f"{arm}, {kind}-ablation": tables[(arm, kind)]["ld_drop"].to_numpy().reshape(L_H[arm])
                             for arm in results}
        for kind in ablation_kinds}
fig = ablation_figures.head_heatmaps(maps, "drop of logit difference", marks)

# %%
#| label: fig-layer-profile
#| fig-cap: "Per layer: the summed drop of its heads when each is ablated alone (solid), and the drop when the whole layer's attention is ablated at once (table below)."
kind0 = ablation_kinds[-1]
fig = ablation_figures.layer_profile({f"{arm} ({kind0})": tables[(arm, kind0)].groupby("layer")["ld_drop"].sum().to_numpy()
                             for arm in results}, "summed drop of logit difference")

# %%
ablation.layer_ablation_table(results, choice, ablation_kinds).round(3)

# %% [markdown]
# ## Heads whose ablation matters
#
# Heads whose drop of logit difference is significant (paired t-test over prompts, Holm over the
# heads of the model: the book's one multiplicity policy), largest first (accuracy drops in the same
# rows).

# %%
sig = pd.concat([t.assign(model=arm, ablation=kind) for (arm, kind), t in tables.items()])
sig = sig[sig["significant"] & (sig["ld_drop"] > 0)].sort_values("ld_drop", ascending=False)
cols = ["model", "ablation", "layer", "head", "ld_drop", "ld_drop_lo", "ld_drop_hi", "acc_drop", "acc_drop_lo", "acc_drop_hi"]
with_intervals(sig[cols].groupby(["model", "ablation"]).head(8).reset_index(drop=True),
               {"ld_drop": ("ld_drop_lo", "ld_drop_hi"), "acc_drop": ("acc_drop_lo", "acc_drop_hi")},
               names={"ld_drop": "ld_drop [95% CI]", "acc_drop": "acc_drop [95% CI]"})

# %% [markdown]
# ### The heads Lin (2024) names
#
# For fine-tuned GPT-2 the paper names L5H7, L8H3, L9H3 and L11H8. Where they stand in this sweep
# (rank 1 = the largest drop of all heads):

# %%
if is_gpt2:
    named = pd.concat([effects.named_heads_table(tables[("fine-tuned", kind)]).assign(ablation=kind)
                       for kind in ablation_kinds], ignore_index=True)
    display(named.round(3))
else:
    display(Markdown(f"Not applicable to this profile: the named heads are heads of GPT-2 (12 layers x 12 heads), "
                     f"and the fine-tuned model here is {study.pretrained_source} "
                     f"({L_H['fine-tuned'][0]} layers x {L_H['fine-tuned'][1]} heads). The `paper` profile runs GPT-2."))

# %% [markdown]
# ## Attribution patching as a screen
#
# Attribution patching estimates every head's effect from one forward and one backward pass (the
# gradient of the metric times the change of the head's output). How well would it have ranked
# the heads?

# %%
screen = []
for arm, r in results.items():
    for kind in ablation_kinds:
        exact = tables[(arm, kind)]["ld_drop"].to_numpy().reshape(L_H[arm])
        q = effects.screen_quality(r["attribution"][kind], exact, k=10)
        screen.append({"model": arm, "ablation": kind, **q})
pd.DataFrame(screen).round(3)

# %%
#| label: fig-screen
#| fig-cap: "Attribution-patching estimate against the exact ablation effect, one point per head."
kind0 = ablation_kinds[0]
fig = ablation_figures.screen_scatter(results["fine-tuned"]["attribution"][kind0],
                             tables[("fine-tuned", kind0)]["ld_drop"].to_numpy().reshape(L_H["fine-tuned"]),
                             f"fine-tuned, {kind0}-ablation")

# %% [markdown]
# ## Verdict

# %%
#| echo: false
from helpers.claims.ablation import depth_verdicts_from_sweep
kind_v = "mean" if "mean" in ablation_kinds else ablation_kinds[0]
alternatives = {f"{kind_v}-ablation, accuracy": depth_verdicts_from_sweep(results, choice, gates, kind_v, "accuracy")}
alternatives.update({f"{k}-ablation, logit difference": depth_verdicts_from_sweep(results, choice, gates, k)
                     for k in ablation_kinds if k != kind_v})
display(Markdown(f"The verdicts use {kind_v}-ablation and the drop of the logit difference over the {len(trials)} "
                 f"prompts above: each layer weighted by the signed summed drop of its heads, judged only where the "
                 f"heads' summed drop is a material share of the clean logit difference (the ablation-matters gate). "
                 f"Their robustness: the same rule with {', '.join(alternatives)}."))
show_verdicts(study, "03", with_robustness(depth_verdicts_from_sweep(results, choice, gates, kind_v), alternatives))

# %% [markdown]
# ## Exercises
#
# Each exercise is a function you write in the cell below it; `check` runs it at once on tiny
# random GPT-2 and Llama models and says what differs from the book's own result. The solution is
# folded under each exercise.
#
# **Exercise 3.1: zero-ablate one head.** The book's hook point `z` hands a hook each head's
# output before the output projection, shaped `(batch, pos, n_heads, d_head)`; what the hook
# returns replaces it. Write `zero_head(z, head)` returning `z` with head `head` zeroed at every
# position (`arch.hooks({("z", layer): lambda z: zero_head(z, 2)})` then ablates head 2).

# %%
#| code-fold: false
from helpers.exercises import check, show_solution


def zero_head(z, head):
    raise NotImplementedError       # your code here


check("03-zero-head", zero_head)

# %%
#| echo: false
show_solution("03-zero-head", show_solutions)

# %% [markdown]
# **Exercise 3.2: a hook that is always removed.** Without the book's `Arch.hooks`: write
# `logits_without_head(arch, ids, layer, head)` that registers a forward pre-hook on
# `arch.out_proj(layer)` (its input is `(batch, pos, n_heads * d_head)`: reshape, zero the head,
# reshape back, return the new arguments), runs `arch.model(input_ids=ids)` and returns its logits,
# and removes the hook afterwards, also when the model raises. A hook left behind silently ablates
# every later run of the model.

# %%
#| code-fold: false
def logits_without_head(arch, ids, layer, head):
    raise NotImplementedError       # your code here


check("03-hook-removed", logits_without_head)

# %%
#| echo: false
show_solution("03-hook-removed", show_solutions)

# %% [markdown]
# ## Downloads
#
# The tables this chapter's figures and verdicts rest on, as CSV, and the executed notebook.

# %%
#| echo: false
from helpers.book.downloads import save_tables
save_tables(study, "03", {"head-effects": pd.concat([t.assign(model=arm, ablation=kind) for (arm, kind), t in tables.items()],
                                            ignore_index=True),
                       "layer-ablation": ablation.layer_ablation_table(results, choice, ablation_kinds)})
