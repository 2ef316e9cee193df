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
# # The decision task's circuit {#sec-circuit}
#
# Prakash et al. (2024) explain how Llama-7B tracks entities with a *circuit*: a few groups of
# attention heads, found by **path patching**, that reproduce the model's accuracy when every other
# head is replaced by its mean output (*faithfulness*), and whose heads carry identifiable variables
# (found by **DCM**, desiderata-based component masking). This chapter asks the same of the
# fine-tuned model of the decision task: is there a small circuit, what do its heads carry, and
# how does it relate to the heads whose ablation mattered in @sec-ablation?
#
# **What we measure.**
#
# * **Counterfactual pairs** that keep every token in place and flip the answer: the relevant
#   evidence negated (every shown sample of the relevant stream changes sign), and separately the
#   context word swapped (only trials whose two streams disagree, so that the answer flips).
# * **Where the information is**: the residual stream entering a layer, patched from the
#   counterfactual at one position at a time; the share of the flip of the logit difference
#   (correct minus wrong answer) that each patch makes.
# * **Path patching, group by group** (Prakash et al.'s first two steps): *writers* are heads at the
#   last position whose path to the logits carries the flip (every other head frozen to its clean
#   output, MLPs recomputed); *movers* are heads at the last position whose path into the writers'
#   queries does. A path's score is the share of the counterfactual's flip of the logit difference
#   that it alone makes. Prakash et al. score by the relative change of the correct token's
#   probability; with two answers and a model at p = 0.9 that score saturates (a head that moves
#   the logit difference by half a unit moves p by about 1%), so we use the logit difference. A group
#   keeps at most `circuit_keep` heads (their fixed count), each carrying at least
#   `circuit_min_share` of the flip (a floor above bf16's resolution of the logit difference).
# * **The circuit** (every group of both counterfactuals, heads kept at the last position) on
#   held-out test prompts: every other head mean-ablated at every position (means over validation
#   prompts), its two-alternative accuracy over the full model's (faithfulness, paired bootstrap
#   interval), random circuits of the same group sizes, and minimality (each head removed in turn).
#   Three references: the same heads kept at every position; every head kept at the last
#   position (the ceiling of any circuit that acts at the last position only); no head at all
#   (every head mean-ablated: the floor, which random circuits of useless heads fall to).
# * **DCM** on the circuit's heads with three desiderata (the choice, the context, the relevant
#   evidence), each on pairs chosen so that only that variable predicts the target.
#
# The search runs on validation trials and is cached by its configuration: @sec-cmap reads the same
# circuit.

# %% tags=["parameters"]
profile = "quick"
study_overrides = {}
show_solutions = True
n_circuit_pairs = 16
n_resid_pairs = 4
resid_layer_step = 6
circuit_keep = 6
circuit_min_share = 0.02
n_circuit_eval = 200
n_random_circuits = 5
n_dcm_pairs = 64
dcm_epochs = 4
n_ablation = 32
n_reference = 32
ablation_kinds = ["mean", "zero"]
analysis_bf16 = False

# %%
#| echo: false
from helpers.book.kernel import take_parameters
take_parameters("07_circuit", globals())   # checked as the command line does; what is not given comes from the profile
from helpers.book.card import run_card
from helpers.figures.style import setup_notebook
from helpers.study import Study

setup_notebook()   # the book's figure style, high-resolution (retina) PNGs

study = Study.from_profile(profile, **study_overrides)
run_card(study, n_circuit_pairs=n_circuit_pairs, circuit_keep=circuit_keep, circuit_min_share=circuit_min_share,
         n_circuit_eval=n_circuit_eval, n_random_circuits=n_random_circuits, n_dcm_pairs=n_dcm_pairs,
         analysis_bf16=analysis_bf16)

# %%
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from helpers.book.tables import minimality_table, with_intervals
from helpers.claims.verdict import gate_note, task_gates
from helpers.interventions import decision_circuit as dc
from helpers.models.arch import Arch

runs = study.selected_runs()
gates = task_gates(runs, study.trials("test", study.n_test))
display(Markdown(gate_note(gates)))
model, tok = study.load("fine-tuned", runs)
arch = Arch(model)
pool = study.trials("val", max(study.n_val, 6 * n_circuit_pairs))
batches, search = dc.circuit_search(arch, tok, pool, n_circuit_pairs, circuit_keep, circuit_min_share,
                                   runs["fine-tuned"].config.key(), analysis_bf16, study.device)   # cached
clean_cf = {kind: dc.logit_diffs(arch, b) for kind, b in batches.items()}
pd.DataFrame([{"counterfactual": kind, "what changes": dc.COUNTERFACTUALS[kind],
               "pairs used": b.ids.shape[0], "candidates": b.n_candidates,
               "clean: correct preferred": float((clean_cf[kind][0] > 0).mean()),
               "counterfactual: clean answer still preferred": float((clean_cf[kind][1] > 0).mean()),
               "mean logit diff clean / counterfactual": f"{clean_cf[kind][0].mean():+.2f} / {clean_cf[kind][1].mean():+.2f}"}
              for kind, b in batches.items()])

# %% [markdown]
# A pair is useful when the model prefers the clean answer on the clean prompt and the other
# answer on the counterfactual: the flip that patching then moves back and forth.
#
# ## Where the information is

# %%
#| label: fig-resid-patching
#| fig-cap: "Residual-stream patching of the fine-tuned model: the share of the counterfactual's flip of the logit difference when the stream entering a layer (rows) is patched from the counterfactual at one token position (columns, labelled with the first pair's prompt; every prompt has the same layout); 1 is the whole flip. Mean over the first pairs of each kind, whose relevant stream is motion in some and color in others."
from helpers.figures import circuits as circuit_figures
from helpers.tasks.tokens import token_labels

layers = sorted(set(range(0, arch.n_layers, resid_layer_step)) | {arch.n_layers - 1})
from helpers.core.device import autocast
with autocast(study.device, analysis_bf16):
    maps = {kind: dc.resid_map(arch, b.first(n_resid_pairs), layers) for kind, b in batches.items()}
fig = circuit_figures.resid_maps(maps, layers, token_labels(tok, batches["evidence"].pairs[0].clean.prompt))

# %% [markdown]
# ## Path patching: writers and movers

# %%
circuit = dc.circuit_of(search)      # path patching ran with the pairs above (and is cached)
kept = dc.search_table(search)
kept if len(kept) else Markdown("**No head's path carries the minimum share of the flip: the search found no circuit.**")

# %%
#| label: fig-path-patching
#| fig-cap: "Path-patching scores of every head of the fine-tuned model (sign reversed: the share of the counterfactual's flip its path carries), per group (rows) and counterfactual (columns); outlined: the heads kept."
from helpers.figures import ablation as ablation_figures
maps_pp = {role: {f"{kind}: {role}": -np.nan_to_num(search[kind][role]["scores"]) for kind in search}
           for role in dc.GROUPS}
fig = ablation_figures.head_heatmaps(maps_pp, "share of the flip", sorted(circuit.heads))

# %% [markdown]
# ## The circuit: faithfulness, random circuits, minimality

# %%
test = dc.eval_prompts(tok, study.trials("test", n_circuit_eval), study.device)
reference = dc.eval_prompts(tok, study.trials("val", max(n_reference, 2)), study.device)
evaluations = dc.evaluate_circuits(arch, circuit, test, reference, n_random_circuits, bf16=analysis_bf16)
ev = evaluations["circuit"]
table = dc.evaluation_table(evaluations)
with_intervals(table[["circuit", "heads", "accuracy", "accuracy_lo", "accuracy_hi", "model_accuracy",
                      "faithfulness", "faithfulness_lo", "faithfulness_hi", "prompts"]],
               {"accuracy": ("accuracy_lo", "accuracy_hi"), "faithfulness": ("faithfulness_lo", "faithfulness_hi")},
               names={"accuracy": "accuracy [95% CI]", "faithfulness": "faithfulness [95% CI]"})

# %%
#| label: fig-faithfulness
#| fig-cap: "Faithfulness (circuit accuracy over the full model's, two alternatives) on held-out prompts with 95% intervals, and random circuits of the circuit's group sizes (grey points)."
fig = circuit_figures.faithfulness_plot(table, None if ev.random is None else ev.random.faithfulness)

# %% [markdown]
# How to read the references: when even *every* head kept at the last position (the third row of the table)
# falls well short of the full model, no circuit of heads that act at the answer position can be
# faithful under this ablation, however it is chosen: what the rest of the model computes at the
# earlier positions (@fig-resid-patching shows where) is what the mean-ablation removes. The
# circuit is then best judged against that ceiling and against the random circuits, and the claim
# by its own criterion.
#
# Minimality: each of the circuit's (group, head) entries removed in turn; the drop of accuracy
# with a paired interval simultaneous over the entries. `needed`: the circuit is worse without it.

# %%
minimality_table(ev)

# %% [markdown]
# ## The circuit and the ablation of @sec-ablation
#
# Chapter 3 mean-ablated every head of the fine-tuned model alone. Where do the circuit's heads
# stand in that sweep (rank 1 = the largest drop of the logit difference)?

# %%
from helpers.interventions import ablation, effects
abl_trials, abl_reference = study.trials("test", n_ablation), study.trials("val", n_reference)
abl = ablation.cached_ablation_results(runs["fine-tuned"], lambda: (model, tok), abl_trials, abl_reference,
                                       ablation_kinds, bf16=analysis_bf16)
kind_a = "mean" if "mean" in ablation_kinds else ablation_kinds[0]
heads_table = effects.effects_table(abl["clean"], abl[kind_a], np.array([t.choice for t in abl_trials]))
heads_table["rank"] = heads_table["ld_drop"].rank(ascending=False, method="min").astype(int)
in_circuit = heads_table.set_index(["layer", "head"]).loc[sorted(circuit.heads)].reset_index() if circuit.heads else heads_table.iloc[:0]
n_sig = int(heads_table["significant"].sum())
display(Markdown(f"{kind_a}-ablation of {len(abl_trials)} prompts: {n_sig} heads have a significant drop (Holm). "
                 f"Of the circuit's {len(circuit.heads)} heads, {int(in_circuit['significant'].sum())} are among them."))
in_circuit[["layer", "head", "ld_drop", "ld_drop_lo", "ld_drop_hi", "significant", "rank"]].round(3)

# %% [markdown]
# ## What the circuit's heads carry: DCM

# %%
heads = sorted(circuit.heads)
if heads:
    dcm = dc.dcm_desiderata(arch, tok, heads, pool, n_dcm_pairs, dcm_epochs, bf16=analysis_bf16)
    summary = (dcm.groupby("desideratum", sort=False)
               .agg(heads_selected=("selected", "sum"), eval_before=("eval accuracy before", "first"),
                    eval_after=("eval accuracy", "first"), test=("test accuracy", "first"),
                    test_lo=("test lo", "first"), test_hi=("test hi", "first"), pairs=("pairs", "first"))
               .reset_index())
    display(with_intervals(summary, {"test": ("test_lo", "test_hi")}, names={"test": "test accuracy [95% CI]"}))
else:
    dcm = pd.DataFrame()
    display(Markdown("No DCM: the circuit is empty."))

# %% [markdown]
# The accuracy is the share of pairs on which the base run, with the selected heads' outputs taken
# from the source, gives the desideratum's target; "before" is the untouched model on the
# evaluation pairs (about 0: every target differs from the base's answer).

# %%
#| label: fig-dcm
#| fig-cap: "Heads of the circuit that DCM selects for each desideratum (filled): patching them from the source moves the answer to that desideratum's target."
from helpers.tasks.decision import DESIDERATA
fig = circuit_figures.dcm_map(dcm, list(DESIDERATA))

# %% [markdown]
# ## Verdict

# %%
#| echo: false
from helpers.book.scorecard import show_verdicts
from helpers.claims.circuits import context_blind_floor, faithfulness_with_robustness
ev_zero = dc.evaluate_circuits(arch, circuit, test, reference, 0, minimality=False, bf16=analysis_bf16,
                               references=False, ablation="zero")["circuit"]       # robustness: zero-ablation
show_verdicts(study, "07", [faithfulness_with_robustness(
    ev, arch.n_layers * arch.n_heads, context_blind_floor(test.trials), ev_zero=ev_zero,
    ev_empty=evaluations["no head (all mean-ablated)"], gate=gates.get("fine-tuned", "not evaluated"))])

# %% [markdown]
# ## Exercises
#
# **Exercise 7.1: patch one head from a counterfactual.** Activation patching replaces one
# component's activation in the clean run by its value in a counterfactual run. Write
# `patch_head(arch, clean_ids, cf_ids, layer, head, position)` returning the clean run's logits at
# the last position, `(batch, vocab)`, with head `head` of `layer` at `position` taken from the
# counterfactual run: record it with one `arch.hooks({("z", layer): ...})` run on `cf_ids`, put it
# in with another on `clean_ids`. `check` compares it with
# `helpers.interventions.patching.generic_patch` on tiny random GPT-2 and Llama models.

# %%
#| code-fold: false
from helpers.exercises import check, show_solution


def patch_head(arch, clean_ids, cf_ids, layer, head, position):
    raise NotImplementedError       # your code here


check("07-patch-head", patch_head)

# %%
#| echo: false
show_solution("07-patch-head", show_solutions)

# %% [markdown]
# **Exercise 7.2: path patching of one sender.** Path patching asks what a head changes *directly*:
# write `path_patch_sender(arch, clean_ids, cf_ids, layer, head, position)` returning the clean
# run's logits at the last position with every head of every layer frozen to its clean output
# (`record` the clean `z` of every layer first, `helpers.interventions.patching.record`), except the
# sender `head` of `layer` at `position`, which takes its counterfactual output; the MLPs recompute.
# The check compares it with `path_patch_naive`. Why does a sender at any position but the last
# have no path to the logits in this run?

# %%
#| code-fold: false
def path_patch_sender(arch, clean_ids, cf_ids, layer, head, position):
    raise NotImplementedError       # your code here


check("07-path-patch", path_patch_sender)

# %%
#| echo: false
show_solution("07-path-patch", show_solutions)

# %% [markdown]
# ## Downloads
#
# The tables this chapter's figures and verdicts rest on, as CSV, and the executed notebook.

# %%
#| echo: false
from helpers.book.downloads import save_tables
save_tables(study, "07", {"circuit-heads": kept, "evaluation": table,
                          "minimality": ev.minimality if ev.minimality is not None else pd.DataFrame(),
                          "dcm": dcm,
                          "path-patching-scores": dc.scores_table(search)})
