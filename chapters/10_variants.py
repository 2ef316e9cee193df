# ---
# jupyter:
#   book:
#     needs:
#     - models
#     - entity-models
#     - entity-runs
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Does further fine-tuning enhance the same mechanism? {#sec-variants}
#
# Prakash et al. (2024) compared Llama-7B with three models fine-tuned from it: Vicuna-7B (chat),
# Goat-7B (arithmetic, with LoRA) and FLoat-7B (the same data, every weight). All track entities
# at least as well as Llama (0.66 / 0.67 / 0.82 / 0.82 on 7-box prompts), Llama's circuit is
# faithful inside every one of them (1.00 / 0.97 / 0.89 / 0.88), and patching a fine-tuned model's
# circuit activations into Llama (CMAP) lifts Llama to the fine-tuned model's level: fine-tuning
# *enhances the existing mechanism*. This chapter asks the same of the entity-tracking **base** of
# @sec-entity and the variants made from it here:
#
# * **more entity tracking**: the base fine-tuned further on `et_variant_n_train` prompts of
#   `et_analysis_boxes` boxes (the task improved directly, as a Vicuna-like control that should
#   help);
# * **arithmetic**: fine-tuned further on synthetic arithmetic (`arith_terms` operands of
#   0..`arith_max_operand` whose value is one digit: `3+8-5=` → `6`), every weight (FLoat's
#   recipe);
# * **arithmetic (LoRA)**: the same data with rank-`lora_rank` LoRA adapters on the attention
#   projections only (Goat's recipe; the adapter is its own small artifact, loaded onto the base
#   as the model source `run:<key>`, merged);
# * **shuffled arithmetic (control)**: the arithmetic variant's expressions, learning rate and
#   steps, each answered by a random digit. It learns the format and nothing of arithmetic, so
#   whatever it does to entity tracking is what *any* further fine-tuning on this format does: a
#   control Prakash et al. did not run. An arithmetic variant's improvement means "arithmetic
#   helps" only where it exceeds the control's.
#
# The profile's `et_variants` says which of them this build trains, each for every seed of
# `et_seeds`. Prakash et al.'s claim that the arithmetic variants improve is judged only on a
# variant that learned arithmetic materially (the learned-own-task gate: its held-out arithmetic
# accuracy's interval at least 30 points above the 10% chance) and, being a claim about training,
# only with at least 3 seeds per variant (seeds as the unit).
#
# **Which arithmetic, and why `quick` does not train it.** Goat's data is integer arithmetic; for a
# 135M model we measured which form the entity-tracking base can learn
# (`benchmarks/bench_arithmetic_variants.py`, 2026-12-08, 2 CPU cores): three operands of 0..99
# (`37+45-73=` → `9`) stayed near chance (15.3% held out after 64 prompts and 64 steps); three
# operands of 0..9 are learned, slowly: every weight at learning rate 1e-4 reaches **50% (42-58%)
# held out after 384 steps on 512 prompts**, still improving at the cap, which clears the gate's
# 40%; 3e-4 learned less (29%); LoRA (rank 8, 1e-3) 39% (32-47%) by step 288, not enough. Each such
# run is about 6-7 minutes on a quiet 2-core machine and 11-18 minutes on a busy one; three seeds of
# the two arithmetic variants and the control are nine runs, an hour or more, which the `quick`
# budget (already three times over, see `docs/measured.md`) cannot hold. So `quick` trains the
# first variant only, and its arithmetic rows say "not run"; `full` trains all four with three
# seeds (1,024 prompts, a step cap of 2,000), where the question can be decided; that build has
# not been executed on this project's machines (hours on 2 cores; minutes on a GPU).
#
# Every comparison is on held-out prompts of `et_analysis_boxes` boxes, where the base is not
# perfect (@sec-entity), with the circuit @sec-entity found there. This chapter **trains** the
# variants (cached). With the `paper` profile (a GPU and the weights from the Hugging Face hub) the
# same cells run on Prakash et al.'s own models instead: Llama-7B as the base (`et_base_source`),
# and Vicuna-7B, Goat-7B (Llama-7B with its LoRA adapter, `lora:<base>+<adapter>`) and FLoat-7B as
# the variants (`et_variant_sources`), each beside its own row of their table.

# %% tags=["parameters"]
profile = "quick"
study_overrides = {}
show_solutions = True
executor = "local"
n_et_pairs = 16
et_keep = 4
n_et_eval = 150
n_random_circuits = 5
n_reference = 32
n_et_dcm_pairs = 32
et_dcm_epochs = 2
analysis_bf16 = False

# %%
#| echo: false
from helpers.book.kernel import take_parameters
take_parameters("10_variants", globals())   # checked as the command line does; what is not given comes from the profile
from helpers.book.card import run_card
from helpers.figures.style import setup_notebook
from helpers.study import Study

setup_notebook()

study = Study.from_profile(profile, **study_overrides)
run_card(study, et_analysis_boxes=study.et_analysis_boxes, et_variant_n_train=study.et_variant_n_train,
         arith_n_train=study.arith_n_train, arith_terms=study.arith_terms, arith_max_operand=study.arith_max_operand,
         arith_lr=study.arith_lr, lora_rank=study.lora_rank, lora_lr=study.lora_lr,
         n_et_eval=n_et_eval, n_random_circuits=n_random_circuits, n_et_dcm_pairs=n_et_dcm_pairs,
         et_dcm_epochs=et_dcm_epochs, analysis_bf16=analysis_bf16, et_base_source=study.et_base_source,
         et_variant_sources=study.et_variant_sources)

# %% [markdown]
# ## The variants
#
# Each variant starts from the base's weights and follows the book's one stopping rule on its own
# task's validation set (@sec-training), with the entity-tracking runs' cap and `et_min_delta`.

# %%
import pandas as pd
from IPython.display import Markdown
from helpers.book.tables import variants_table, with_intervals

base = study.entity_base()
study.train_variant_runs(executor)       # the missing runs: here, or one Ray task each (`executor`)
variants = study.entity_variants(train=True)
variants_table(variants)

# %% [markdown]
# ## Prakash et al.'s table for our models
#
# For the base and each variant, on the same held-out prompts: the full model's top-1 accuracy,
# the base's circuit inside the model (every other head mean-ablated, means over the model's own
# activations on validation prompts), random circuits of the same group sizes, and the
# faithfulness (circuit over full model, paired bootstrap interval).

# %%
from helpers.claims.circuits import circuit_comparison
from helpers.interventions import entity_circuit as ec
from helpers.interventions.circuits import Circuit
from helpers.models.arch import Arch
from helpers.tasks.entity import EntityConfig

analysed = EntityConfig(n_boxes=study.et_analysis_boxes, seed=study.task_seed)
base_model, tok = base.load(study.device)
base_arch = Arch(base_model)
pool = study.entity_trials("val", max(study.et_n_val, n_et_pairs), boxes=study.et_analysis_boxes)
_, search = ec.find_circuit(base_arch, tok, analysed, pool, n_et_pairs, et_keep, base.key, analysis_bf16,
                            seed=study.task_seed, device=study.device)      # chapter 9's search, cached
circuit = ec.circuit_of(search)
test = ec.eval_prompts(tok, study.entity_trials("test", n_et_eval, boxes=study.et_analysis_boxes), study.device)
reference = ec.eval_prompts(tok, study.entity_trials("val", max(n_reference, 2), boxes=study.et_analysis_boxes),
                            study.device)
evals = {"base": ec.evaluate(base_arch, circuit, test, reference, n_random_circuits, minimality=False,
                             bf16=analysis_bf16)}
cmap, cmap_p, robust = {}, {}, {}
for name, variant in variants.items():      # one variant in memory at a time, beside the base
    arch = Arch(variant.load(study.device)[0])
    evals[name] = ec.evaluate(arch, circuit, test, reference, n_random_circuits, minimality=False, bf16=analysis_bf16)
    robust[name] = {"ev_zero": ec.evaluate(arch, circuit, test, reference, 0, minimality=False, bf16=analysis_bf16,
                                           ablation="zero"),          # the verdicts' robustness (below)
                    "ev_empty": ec.evaluate(arch, Circuit.empty(), test, reference, 0, minimality=False,
                                            bf16=analysis_bf16)}
    # CMAP (below): the variant's activations in the base; the probabilities for the verdicts' robustness
    cmap[name], cmap_p[name] = ec.cmap_sets(base_arch, arch, test, circuit, n_random_circuits, seed=study.task_seed,
                                            bf16=analysis_bf16, with_probability=True)
    robust[name]["cmap_every"] = ec.cmap_sets(base_arch, arch, test, circuit, n_random_circuits, seed=study.task_seed,
                                              bf16=analysis_bf16, every_position=True)    # robustness: the patch
    del arch
table = circuit_comparison(evals, {"base": base.analogue, **{n: v.analogue for n, v in variants.items()}})
# whether fine-tuning further improves entity tracking is a claim about training: every seed of
# each variant trained here (et_seeds) scored on the same held-out prompts, seeds as the unit
seed_runs = study.variant_seed_runs()
seed_correct = {name: ec.seeds_correct(evals[name].model_correct, seed_runs.get(name, [])[1:], test, reference,
                                       study.device, analysis_bf16) for name in variants}

# %%
#| label: fig-variants-table
#| fig-cap: "Entity tracking on held-out prompts: each model alone, the base's circuit inside it (every other head mean-ablated) and random circuits of the same group sizes (95% intervals; Wilson for accuracies). Dotted: chance."
from helpers.figures import entity as entity_figures
fig = entity_figures.circuit_table(table, chance=1 / study.et_analysis_boxes)

# %%
with_intervals(table.set_index("model name").round(3),
               {"model": ("model_lo", "model_hi"), "circuit": ("circuit_lo", "circuit_hi"),
                "faithfulness": ("faith_lo", "faith_hi")},
               names={"model": "full model [95% CI]", "circuit": "base's circuit [95% CI]",
                      "faithfulness": "faithfulness [95% CI]"})

# %% [markdown]
# ### Dose-response: entity tracking along the arithmetic training
#
# Each arithmetic variant (and the control) scored entity tracking on `et_n_val` validation
# prompts of `et_analysis_boxes` boxes at every evaluation of its training, beside its own
# arithmetic accuracy: if learning arithmetic is what improves entity tracking, the points climb
# as they move right, and the control (which learns no arithmetic and stays at the left) stays
# where the base is.

# %%
#| label: fig-et-dose-response
#| fig-cap: "Entity tracking against arithmetic skill along each variant's training: one point per evaluation (validation prompts; ringed: the checkpoint the run kept). Dashed: the base on the same entity-tracking prompts; dotted: chance on each axis."
from helpers.training.entity_evaluation import score_entity
from helpers.training.experiments import tracked_curves
from helpers.training.runs import tracked_trials

curves = tracked_curves({name: v.run for name, v in variants.items()})
if len(curves):
    tracking = next(v.run.config for v in variants.values() if v.run is not None and v.run.config.track_task is not None)
    base_on_tracked = float(score_entity(base_model, tok, tracked_trials(tracking))["choice_correct"].mean())
    fig = entity_figures.dose_response(curves, base_accuracy=base_on_tracked, chance=1 / study.et_analysis_boxes,
                                       own_chance=0.1)
else:
    print("No variant of this build tracked entity tracking along its training (no arithmetic variant in "
          "`et_variants`, or the variants are given as model sources): no dose-response to show.")

# %% [markdown]
# Prakash et al.'s columns are Llama-7B and the variant built the same way (Vicuna is fine-tuned
# on chat, not on the task; our "more entity tracking" variant plays its role as the variant
# that is not fine-tuned on arithmetic). Random circuits: about 0.00 in their table. Under the
# `paper` profile, each row is their own model beside their own number.
#
# ## What the circuit's groups encode: DCM on the base
#
# Desiderata-based component masking (Davies et al. 2023), as Prakash et al. use it: for each
# group, at its position, a mask over its heads learns which heads' outputs, taken from a source
# prompt, move the base's answer to the desideratum's target: the source's **object** (value), the
# object at the source's queried **position**, or the object in the box with the source's
# **label**. A head is selected when its rounded mask is 0; accuracy: how often the patched base
# then gives the target, on held-out pairs.

# %%
dcm = ec.dcm_groups(base_arch, tok, circuit, analysed, pool, n_et_dcm_pairs, et_dcm_epochs,
                    seed=study.task_seed, bf16=analysis_bf16)
dcm_summary = ec.dcm_summary(dcm)
(with_intervals(dcm_summary.round(3), {"test_accuracy": ("lo", "hi")},
                names={"test_accuracy": "target reached, test pairs [95% CI]"})
 if len(dcm_summary) else Markdown("**The base has no circuit: no group to mask.**"))

# %% [markdown]
# Prakash et al. found value fetchers selected for the object, and position transmitters and
# detectors for the position, none for the box label. With few pairs per desideratum (here
# `n_et_dcm_pairs`, split 50/25/25; theirs 2,000) the accuracies' intervals are wide.
#
# ## CMAP: the variants' circuit activations in the base
#
# The base on the test prompts with the outputs of the circuit's heads, each at its group's
# position, taken from a variant on the same prompts: the whole circuit, each group alone, and
# random circuits of the same group sizes. "moved": the share of the variant's advantage over the
# base that the patch moves (undefined when the variant is not better).

# %%
cmap_tables = pd.concat({name: ec.cmap_table(out, circuit) for name, out in cmap.items()}, names=["variant", "row"])
with_intervals(cmap_tables.droplevel("row").set_index("patched", append=True).round(3),
               {"accuracy": ("lo", "hi")}, names={"accuracy": "base's accuracy when patched [95% CI]"})

# %% [markdown]
# ## Verdicts

# %%
#| echo: false
from helpers.book.scorecard import show_verdicts
from helpers.claims.circuits import (PRAKASH_IMPROVED, cmap_circuit_verdict, faithfulness_with_robustness,
                                    improvement_verdict, learned_gate, query_blind_floor)
from helpers.claims.verdict import entity_gate, with_robustness
from helpers.study import CONTROL

n_heads = base_arch.n_layers * base_arch.n_heads
gates = {name: entity_gate(name if name != "base" else "entity-tracking base", ev.model_correct, test.query_index,
                           study.et_analysis_boxes) for name, ev in evals.items()}
control = seed_correct.get(CONTROL)      # beside the improvement, not folded into it
verdicts = [improvement_verdict(evals["base"].model_correct, seed_correct[v], v,
                                gate=gates["base"] or learned_gate(v, variant.run),
                                control_correct=control, control=CONTROL, given=variant.run is None)
            for v, variant in variants.items() if variant.analogue in PRAKASH_IMPROVED]
verdicts += [faithfulness_with_robustness(evals[v], n_heads, query_blind_floor(study.et_analysis_boxes),
                                          ev_zero=robust[v]["ev_zero"], ev_empty=robust[v]["ev_empty"],
                                          gate=gates[v], claim_id="prakash-et-same-circuit", model=v, knob="et_keep")
             for v in variants]
verdicts += with_robustness(
    [cmap_circuit_verdict(cmap[v], gate=gates[v], claim_id="prakash-et-cmap", model=v, receiver="The base",
                          donor=f"{v} variant") for v in variants],
    {"probability of the answer": [cmap_circuit_verdict(cmap_p[v], gate=gates[v], claim_id="prakash-et-cmap", model=v,
                                                        receiver="The base", donor=f"{v} variant") for v in variants],
     "patch at every position": [cmap_circuit_verdict(robust[v]["cmap_every"], gate=gates[v], claim_id="prakash-et-cmap",
                                                      model=v, receiver="The base", donor=f"{v} variant")
                                 for v in variants]})
show_verdicts(study, "10", verdicts)

# %% [markdown]
# ## Exercises
#
# **Exercise 10.1: the share of an advantage a patch moves.** The CMAP tables' "moved" column is
# the share of model B's accuracy advantage over model A that a patch from B moves into A. Write
# `share_moved(patched, a, b)` for three accuracies; when B is not better than A there is no
# advantage to move, and the share is undefined (NaN).

# %%
#| code-fold: false
from helpers.exercises import check, show_solution


def share_moved(patched, a, b):
    raise NotImplementedError       # your code here


check("10-share-moved", share_moved)

# %%
#| echo: false
show_solution("10-share-moved", show_solutions)

# %% [markdown]
# **Exercise 10.2: DCM's mask.** DCM gives each head `k` of a group a mask value `m_k` and runs
# the base prompt with the head's output `m_k · z(base) + (1 - m_k) · z(source)`. Write
# `dcm_mix(z_base, z_source, mask)` for `z_*` of shape `(batch, k, d_head)` and `mask` of shape
# `(k,)`. Which value of `m_k` marks a head DCM selects?

# %%
#| code-fold: false
def dcm_mix(z_base, z_source, mask):
    raise NotImplementedError       # your code here


check("10-dcm-mix", dcm_mix)

# %%
#| echo: false
show_solution("10-dcm-mix", show_solutions)

# %% [markdown]
# ## Downloads

# %%
#| echo: false
from helpers.book.downloads import save_tables
save_tables(study, "10", {"variants": variants_table(variants, readable=False).reset_index(), "circuit-table": table, "dcm": dcm,
                          "cmap": cmap_tables.reset_index()})
