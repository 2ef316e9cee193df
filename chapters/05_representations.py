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
# # What the last layer represents {#sec-representations}
#
# Lin (2024) looked at the hidden states of the last layer of GPT-2 while it answers the task and
# reports that, **after fine-tuning, they are organised by the task variables**: in a 2-D UMAP
# projection the trials separate by context and by choice. This chapter repeats that picture for
# three models and puts numbers next to it:
#
# * **pretrained**: the pretrained source, before any fine-tuning;
# * **fine-tuned**: the same model after fine-tuning (the run chapter 2 selects: the grid's best
#   learning rate at the largest training-set size, first seed);
# * **scratch**: the same architecture trained from scratch with the same procedure.
#
# **What we measure.** For each held-out test trial we read the residual stream of the last layer at
# the **answer position** (the prompt's last token, where the model's choice is read), and at three
# earlier landmarks (the context word and the ends of the two streams of numbers). Every prompt of
# this task has the same token length, so positions align across trials.
#
# **Design decisions.**
#
# * *Which stream is "the last layer".* The output of the last decoder block, *before* the final
#   norm. (Hugging Face's `hidden_states[-1]` already has the final norm applied, unlike the other
#   elements; `helpers.readouts.activations` documents and tests this.)
# * *UMAP is a picture, not a measurement.* Its layout depends on `n_neighbors`, on the seed and on
#   preprocessing, and it can invent or hide clusters. We therefore standardise every unit (a few
#   "massive" dimensions of the residual stream would otherwise dominate all distances), keep the
#   first 50 principal components, run a seeded UMAP on them, and report for the same points two
#   numbers that do not depend on the projection: the **silhouette** of the groups (context, choice,
#   and the signs of the relevant and irrelevant coherence) against its value under label shuffles,
#   and the cross-validated accuracy of a **linear probe** (the decoder of @sec-decoding).
# * All analysis randomness (UMAP, folds, shuffles) is seeded with `task_seed`.

# %% tags=["parameters"]
profile = "quick"
study_overrides = {}
show_solutions = True
n_analysis = 200
analysis_bf16 = False
umap_neighbors = 15
cv_folds = 5
n_shuffles = 5

# %%
#| echo: false
from helpers.book.kernel import take_parameters
take_parameters("05_representations", globals())   # checked as the command line does; what is not given comes from the profile
from helpers.book.card import run_card
from helpers.figures.style import setup_notebook
from helpers.study import Study

setup_notebook()   # the book's figure style, high-resolution (retina) PNGs

study = Study.from_profile(profile, **study_overrides)
run_card(study, n_analysis=n_analysis, n_train=max(study.train_sizes), seed=study.seeds[0],
         analysis_bf16=analysis_bf16, umap_neighbors=umap_neighbors, cv_folds=cv_folds, n_shuffles=n_shuffles)

# %%
import pandas as pd
from IPython.display import Markdown, display
from helpers.book.scorecard import show_verdicts
from helpers.claims.representations import representation_verdict
from helpers.claims.verdict import gate_note, task_gates
from helpers.figures.representations import UMAP_ROWS, umap_figure
from helpers.book.tables import with_intervals
from helpers.readouts import activations, geometry
from helpers.study import ANALYSED_MODELS
from helpers.tasks.decision import choice_from_context_accuracy, task_variables
from helpers.tasks.tokens import LANDMARKS

runs = study.selected_runs()
gates = task_gates(runs, study.trials("test", study.n_test))
display(Markdown(gate_note(gates)))
trials = study.trials("test", n_analysis)
variables = task_variables(trials)
seed = study.task_seed          # seeds UMAP, folds and shuffles
Markdown(f"Analysed: **{len(trials)}** held-out test trials; fine-tuned run `{runs['fine-tuned'].config.key()}` "
         f"(lr = {runs['fine-tuned'].config.lr:g}), scratch run `{runs['scratch'].config.key()}` "
         f"(lr = {runs['scratch'].config.lr:g}), both at N = {max(study.train_sizes)}.")

# %%
at_landmarks = {}
for name in ANALYSED_MODELS:   # one pass: the last layer at the four landmarks
    model, tok = study.load(name, runs)
    at_landmarks[name] = activations.landmark_states(model, tok, trials, bf16=analysis_bf16)
    labels = activations.token_labels(tok, trials[0].prompt)
    del model
states = {name: at_landmarks[name]["answer"] for name in at_landmarks}
Markdown(f"Answer position: token {len(labels) - 1} of {len(labels)} (`{labels[-1]!r}`); "
         f"{states['fine-tuned'].shape[1]} units per state.")

# %% [markdown]
# ## The UMAP picture
#
# Each point is one trial's last-layer state at the answer position. Rows colour the same points by
# context, by the correct choice, and by the signed coherence of the relevant and of the irrelevant
# stream. If the model has separated what matters for the answer, the choice rows should split and
# the irrelevant coherence row should not.

# %%
#| label: fig-umap
#| fig-cap: "Seeded 2-D UMAP of the last layer's residual stream at the answer position (standardised units, first 50 principal components), one column per model, coloured by context, correct choice, and the signed coherence of the relevant and irrelevant stream."
embeddings = {name: geometry.embed_umap(X, n_neighbors=umap_neighbors, seed=seed) for name, X in states.items()}
fig = umap_figure(embeddings, variables)

# %% [markdown]
# ## Numbers on the same points
#
# The silhouette (from -1 to 1; near 0 when the groups overlap) is computed on the 50 principal
# components UMAP sees; its chance level is its value after permuting the labels (`n_shuffles`
# times; we give the largest). The linear probe is an L2 logistic regression, standardised units,
# regularisation chosen by inner cross-validation on the training folds only, `cv_folds`-fold outer
# cross-validation; the interval is a 95% Wilson interval over the held-out predictions.

# %%
table = geometry.structure_table(states, variables, cv_folds=cv_folds, n_shuffles=n_shuffles, seed=seed)
with_intervals(table, {"probe_accuracy": ("probe_lo", "probe_hi")}, names={"probe_accuracy": "probe_accuracy [95% CI]"})

# %% [markdown]
# ## Along the prompt
#
# The model has to build these variables while it reads. The same picture and numbers at three
# earlier **landmarks** of the prompt (last layer): the context word, the last token of the motion
# numbers, and the last token of the color numbers; the answer position is repeated for reference.
# The context is written at the start, so it can be read out everywhere; the choice depends on the
# relevant stream, so before both streams have been read it can at best be guessed from the one
# already seen (about 75% when that stream is the relevant one half of the time).

# %%
#| label: fig-umap-landmarks
#| fig-cap: "Seeded 2-D UMAP of the last layer at the ends of the two streams and at the answer (columns), coloured by context and by the correct choice (rows), one panel per model. The context word is left out: up to it every prompt is one of two strings, so there are only two distinct states, and a UMAP of them would only spread out numerical noise."
#| fig-subcap: ["pretrained", "fine-tuned", "scratch"]
for m in at_landmarks:
    landmark_embeddings = {lm: geometry.embed_umap(X, n_neighbors=umap_neighbors, seed=seed)
                           for lm, X in at_landmarks[m].items() if lm != "context word"}
    fig = umap_figure(landmark_embeddings, variables, rows=UMAP_ROWS[:2])
    fig.suptitle(m, fontsize=11, y=1.02)

# %%
along = geometry.structure_along(at_landmarks, variables, LANDMARKS, columns=("context", "choice"),
                                cv_folds=cv_folds, n_shuffles=n_shuffles, seed=seed)
probe_table = along.pivot_table(index="position", columns=["variable", "model"], values="probe_accuracy", sort=False)
probe_table.reindex(columns=pd.MultiIndex.from_product([["context", "choice"], list(at_landmarks)])).round(3)

# %%
#| echo: false
from_context = choice_from_context_accuracy(variables)
Markdown(f"Linear-probe accuracy (cross-validated, as above) of context and choice at each landmark; "
         f"the silhouettes and intervals are in `along`. Before any number has been read (the context "
         f"word), a choice probe can only use the context: in these {len(variables)} trials the "
         f"context alone predicts the choice {from_context:.1%} of the time (the sampled trials are "
         f"not exactly balanced within each context), which is the level to read that row against.")

# %% [markdown]
# ## Verdict

# %%
#| echo: false
silhouettes = {m: {v: geometry.silhouette_samples_by(X, variables[v]) for v in ("context", "choice")}
               for m, X in states.items()}
show_verdicts(study, "05", [representation_verdict(silhouettes, table, gate=gates["fine-tuned"])])

# %% [markdown]
# ## Exercises
#
# **Exercise 5.1: a permutation p-value.** This chapter compares each structure score with the same
# score after shuffling the labels. Write `permutation_p(observed, null)` returning the one-sided
# p-value of `observed` against the shuffled scores `null` (an array), counting the observed
# arrangement as one of the shuffles. What is the smallest p that 5 shuffles can give, and why does
# the book ask for 19 before it calls a result significant at 0.05?

# %%
#| code-fold: false
from helpers.exercises import check, show_solution


def permutation_p(observed, null):
    raise NotImplementedError       # your code here


check("05-permutation-p", permutation_p)

# %%
#| echo: false
show_solution("05-permutation-p", show_solutions)

# %% [markdown]
# **Exercise 5.2: Holm's correction.** A chapter that tests many layers or positions at once
# controls the family-wise error with Holm's step-down procedure. Write `holm(p)` returning the
# adjusted p-values in the order of `p`: sort, multiply the k-th smallest (k from 1) by `m - k + 1`,
# take the running maximum along the sorted order, cap at 1.

# %%
#| code-fold: false
def holm(p):
    raise NotImplementedError       # your code here


check("05-holm", holm)

# %%
#| echo: false
show_solution("05-holm", show_solutions)

# %% [markdown]
# ## Downloads
#
# The tables this chapter's figures and verdicts rest on, as CSV, and the executed notebook.

# %%
#| echo: false
from helpers.book.downloads import save_tables
save_tables(study, "05", {"structure": table, "along-the-prompt": along})
