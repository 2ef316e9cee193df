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
# # The circuit before fine-tuning: cross-model patching {#sec-cmap}
#
# Prakash et al. (2024) found that fine-tuning *enhances an existing mechanism*: Llama-7B's
# entity-tracking circuit is also the circuit of its fine-tuned variants, and patching a fine-tuned
# model's circuit activations into the original model (**cross-model activation patching**, CMAP)
# lifts the original to the fine-tuned model's accuracy, while random heads do not. Lin (2024)
# argues from other evidence that the fine-tuned network relies on representations built by
# pretraining. This chapter asks both of the decision task, with the circuit that @sec-circuit
# found in the fine-tuned model:
#
# * **The circuit inside the other models**: the fine-tuned model's circuit (every other head
#   mean-ablated) evaluated in the pretrained model and in the model trained from scratch. The
#   pretrained model does not solve the task (@sec-training), so its "faithfulness" measures nothing
#   it can do: it is shown, not judged.
# * **CMAP from the fine-tuned model into the pretrained one**: on the same held-out prompts, the
#   pretrained model runs with the outputs of the circuit's heads at the last position taken from
#   the fine-tuned model; the whole circuit, each group alone (a group that is the whole circuit is
#   shown once), and random head sets of the circuit's size. How much of the fine-tuned model's
#   advantage moves?
# * **The control: CMAP into the scratch model**, the same architecture trained on the task from a
#   random initialisation, whose components never learned to read the fine-tuned (pretrained)
#   model's head outputs.
#
# Accuracy is the two-alternative accuracy of the book (the correct answer's logit above the
# other's), on the same held-out prompts for every model and patch.

# %% tags=["parameters"]
profile = "quick"
study_overrides = {}
show_solutions = True
n_circuit_pairs = 16
circuit_keep = 6
circuit_min_share = 0.02
n_circuit_eval = 200
n_random_circuits = 5
n_reference = 32
analysis_bf16 = False

# %%
#| echo: false
from helpers.book.kernel import take_parameters
take_parameters("08_cmap", globals())   # checked as the command line does; what is not given comes from the profile
from helpers.book.card import run_card
from helpers.figures.style import setup_notebook
from helpers.study import Study

setup_notebook()   # the book's figure style, high-resolution (retina) PNGs

study = Study.from_profile(profile, **study_overrides)
run_card(study, n_circuit_pairs=n_circuit_pairs, circuit_keep=circuit_keep, circuit_min_share=circuit_min_share,
         n_circuit_eval=n_circuit_eval, n_random_circuits=n_random_circuits, analysis_bf16=analysis_bf16)

# %%
import pandas as pd
from IPython.display import Markdown, display
from helpers.book.tables import with_intervals
from helpers.claims.verdict import gate_note, task_gate, task_gates
from helpers.interventions import decision_circuit as dc
from helpers.models.arch import Arch

runs = study.selected_runs()
gates = task_gates(runs, study.trials("test", study.n_test))
display(Markdown(gate_note(gates)))
ft_model, tok = study.load("fine-tuned", runs)
ft = Arch(ft_model)
pool = study.trials("val", max(study.n_val, 6 * n_circuit_pairs))
_, search = dc.circuit_search(ft, tok, pool, n_circuit_pairs, circuit_keep, circuit_min_share,
                             runs["fine-tuned"].config.key(), analysis_bf16, study.device)   # chapter 7's, from disk
circuit = dc.circuit_of(search)
display(Markdown(f"The fine-tuned model's circuit (chapter 7): {len(circuit.heads)} heads; groups "
                 + (", ".join(f"{g.name} {sorted(g.heads)}" for g in circuit.groups) or "none") + "."))
test = dc.eval_prompts(tok, study.trials("test", n_circuit_eval), study.device)
reference = dc.eval_prompts(tok, study.trials("val", max(n_reference, 2)), study.device)
others = {name: Arch(study.load(name, runs)[0]) for name in ("pretrained", "scratch")}

# %% [markdown]
# ## The circuit inside the other models

# %%
rows = []
for name, arch in {"fine-tuned": ft, **others}.items():
    ev = dc.evaluate_circuits(arch, circuit, test, reference, n_random=0, minimality=False, bf16=analysis_bf16,
                              references=False)["circuit"]
    rows.append({"model": name, **{k: v for k, v in ev.summary().items() if k in
                                   ("model_accuracy", "accuracy", "accuracy_lo", "accuracy_hi",
                                    "faithfulness", "faithfulness_lo", "faithfulness_hi")},
                 "solves the task (these prompts)": task_gate(name, ev.model_correct, test.trials) is None})
inside = pd.DataFrame(rows)
with_intervals(inside, {"accuracy": ("accuracy_lo", "accuracy_hi"), "faithfulness": ("faithfulness_lo", "faithfulness_hi")},
               names={"accuracy": "circuit accuracy [95% CI]", "faithfulness": "faithfulness [95% CI]"})

# %% [markdown]
# The pretrained model is not judged here (it does not solve the task: its circuit has nothing to
# be faithful to). A faithfulness of the scratch model's own accuracy would mean that the
# fine-tuned model's heads are where the scratch model computes too, which @sec-ablation makes
# unlikely: the scratch model relies on its first layer.
#
# ## Cross-model patching

# %%
sets = {"circuit": sorted(circuit.heads),                    # and each group alone, when it is not the whole circuit
        **{g.name: sorted(g.heads) for g in circuit.groups if set(g.heads) != circuit.heads}}
cmap_tables, outcomes, probabilities, every_position = {}, {}, {}, {}
for name, arch in others.items():      # probabilities of the same patches: the verdicts' robustness (below)
    cmap_tables[name], outcomes[name], probabilities[name] = dc.cmap_table(arch, ft, test, sets, n_random_circuits,
                                                                          bf16=analysis_bf16, with_probability=True)
    _, every_position[name], _ = dc.cmap_table(arch, ft, test, sets, n_random_circuits, bf16=analysis_bf16,
                                               with_probability=True, every_position=True)   # robustness: the patch
cmap_all = pd.concat([t.assign(receiver=name) for name, t in cmap_tables.items()], ignore_index=True)
with_intervals(cmap_all[["receiver", "patched", "heads", "accuracy", "lo", "hi", "moved"]],
               {"accuracy": ("lo", "hi")}, names={"accuracy": "accuracy [95% CI]"})

# %%
#| label: fig-cmap
#| fig-cap: "Cross-model patching from the fine-tuned model: each receiving model alone, the fine-tuned model (donor), and the receiver with the circuit, each of its groups, or random head sets of the circuit's size (grey points) patched in at the last position; two-alternative accuracy with 95% intervals."
from helpers.figures import circuits as circuit_figures
fig = circuit_figures.cmap_plot(cmap_tables)

# %% [markdown]
# "moved" is the share of the donor's advantage over the receiver that the patch moves:
# (patched - receiver) / (donor - receiver); undefined when the receiver is not worse.
#
# What the control can and cannot say: a patch that moves nothing into the scratch model fits
# head outputs the scratch model cannot read, and equally heads it does not use at all
# (@sec-ablation: it relies on its first layer). Either way the fine-tuned model's heads are not
# parts the scratch model shares; which of the two it is, this measurement does not tell.
#
# The verdicts below are computed twice more for their robustness column: with the probability of
# the correct answer in place of the forced choice, and with the heads' outputs patched at every
# position instead of the last (the earlier positions then carry the donor's outputs too, and the
# receiver's later heads read them: the token-position choice of Zhang & Nanda 2024).
#
# ## Verdicts

# %%
#| echo: false
from helpers.book.scorecard import show_verdicts
from helpers.claims.circuits import cmap_circuit_verdict, cmap_reliance_verdict
from helpers.claims.verdict import with_robustness
ft_gate = gates.get("fine-tuned", "the fine-tuned model's gate was not evaluated")


def cmap_verdicts(o):
    return [cmap_circuit_verdict(o["pretrained"], gate=ft_gate),
            cmap_reliance_verdict(o["pretrained"], o["scratch"], gate=ft_gate)]


show_verdicts(study, "08", with_robustness(cmap_verdicts(outcomes),
                                           {"probability of the answer": cmap_verdicts(probabilities),
                                            "patch at every position": cmap_verdicts(every_position)}))

# %% [markdown]
# ## Exercises
#
# **Exercise 8.1: cross-model patching of one head.** Write `cmap_head(a, b, ids, layer, head)`
# returning model A's logits at the last position, `(batch, vocab)`, when head `head` of `layer`
# outputs, at every position, what it outputs in model B on the same prompts (`a` and `b` are
# `Arch` adapters of two models of one architecture; record B's `z` with `b.hooks`, put it into A's
# run with `a.hooks`). The check compares it with `generic_patch` fed B's recorded activations.

# %%
#| code-fold: false
from helpers.exercises import check, show_solution


def cmap_head(a, b, ids, layer, head):
    raise NotImplementedError       # your code here


check("08-cmap-head", cmap_head)

# %%
#| echo: false
show_solution("08-cmap-head", show_solutions)

# %% [markdown]
# **Exercise 8.2: a random circuit.** A circuit is judged against random head sets with the same
# number of heads per group. Write `random_circuit(group_sizes, n_layers, n_heads, rng)` returning
# one list of `(layer, head)` per group, each drawn without replacement from all heads. (Prakash et
# al.'s code mapped a flat head index with `head // num_layers`, which is right only when a model
# has as many layers as heads; the check uses 3 layers of 5 heads.)

# %%
#| code-fold: false
def random_circuit(group_sizes, n_layers, n_heads, rng):
    raise NotImplementedError       # your code here


check("08-random-circuit", random_circuit)

# %%
#| echo: false
show_solution("08-random-circuit", show_solutions)

# %% [markdown]
# ## Downloads
#
# The tables this chapter's figures and verdicts rest on, as CSV, and the executed notebook.

# %%
#| echo: false
from helpers.book.downloads import save_tables
save_tables(study, "08", {"circuit-inside-models": inside, "cmap": cmap_all})
