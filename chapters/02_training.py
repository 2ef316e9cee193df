# ---
# jupyter:
#   book:
#     needs:
#     - models
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Fine-tuned versus trained from scratch {#sec-training}
#
# Lin (2024)'s first result: a pretrained GPT-2 fine-tuned on the task needs far fewer training
# trials than the same architecture trained from scratch. This chapter trains both **arms**:
#
# * **fine-tuned**: the pretrained source, all weights trained;
# * **scratch**: the same architecture and tokenizer (`scratch:<source>`), randomly initialised;
#
# on nested training sets of size $N$, with the same optimiser. The loss is the cross-entropy of
# the answer token at the last prompt position (full vocabulary). A model's choice is the sign of
# the logit difference `logit(' right') - logit(' left')` at that position.
#
# Each arm gets its own learning-rate grid search on the **validation** set at one $N$; the best
# setting is then used for the whole learning curve, scored on the **test** set (never seen by the
# grid). **Every run trains until its validation loss stops improving**, with one rule for both
# arms and every $N$: every `eval_every` optimiser steps the run computes its loss on the validation
# trials (the training loss: cross-entropy at the answer position); it stops when `patience`
# evaluations in a row have not lowered the best so far, or at the step cap `max_steps` if that
# comes first, and keeps the weights of its best evaluation. The learning rate warms up over the
# first few steps and then stays constant, so where a run stops does not depend on the cap. Sample
# efficiency is about how many distinct trials a model needs; a fixed number of passes would make a
# run on 32 trials also a run of few optimiser steps, and a fixed number of steps would leave some
# runs under-trained and others over-fitted. The tables show for every run the steps it took, its
# best step and why it stopped; a run that reached the cap had not converged, and a learning curve
# with such a run cannot say how many trials its arm needs. Each run is a cached artifact
# (`data/runs/<hash of its config>/`), so re-running this
# chapter trains only what is missing.
#
# **Seeds are the unit.** Whether fine-tuning needs fewer trials is a claim about a training
# *procedure*, and two runs of one configuration differ (their data order and initial weights come
# from the seed; on this machine class even the same seed is not bit-reproducible). So the verdict
# is decided only from at least three seeds per arm and size (`seeds`), with intervals whose
# variance adds the spread of the seeds' accuracies (Welch, seeds as the unit, a t quantile for
# their few degrees of freedom) to the test trials' own; with fewer seeds it is shown and called
# inconclusive. The analysis chapters read seed 0 of each arm.
#
# This is the chapter that **trains**: every run of the study is trained here (with progress bars
# when you run it in Jupyter). The analysis chapters that follow only read these runs, and stop with
# the command to run this chapter when one is missing. The runs are independent of each other, so
# they need not train one after another in this notebook: with `executor = "ray"` (the parameter,
# or `python -m helpers run 02 --executor ray`) each missing run is one Ray task on a local Ray
# cluster, or on the cluster `RAY_ADDRESS` names; every run is the same artifact either way.

# %% tags=["parameters"]
profile = "quick"
study_overrides = {}
show_solutions = True
executor = "local"

# %%
#| echo: false
from helpers.book.kernel import take_parameters
take_parameters("02_training", globals())   # checked as the command line does; what is not given comes from the profile
from helpers.book.card import run_card
from helpers.figures.style import setup_notebook
from helpers.study import ARMS, Study

setup_notebook()   # the book's figure style, high-resolution (retina) PNGs

study = Study.from_profile(profile, **study_overrides)
run_card(study, train_sizes=study.train_sizes, seeds=study.seeds, grid_n_train=study.grid_n_train,
         max_steps=study.max_steps, eval_every=study.eval_every, patience=study.patience,
         batch_size=study.batch_size, n_val=study.n_val,
         n_test=study.n_test, bf16=study.bf16)

# %%
import pandas as pd
from IPython.display import Markdown
from helpers.book.scorecard import show_verdicts
from helpers.claims.sample_efficiency import correct_table, sample_efficiency_verdict
from helpers.figures import training as training_figures
from helpers.book.tables import with_intervals
from helpers.models.sources import source_info
from helpers.tasks.decision import baseline_table
from helpers.training import evaluation

info = source_info(study.pretrained_source)
Markdown(f"Pretrained source: **{study.pretrained_source}** — {info.description}.")

# %% [markdown]
# ## Grid search (validation set)

# %%
study.train_decision_runs(executor)      # the missing runs: here, or one Ray task each (`executor`)
grids = {arm: study.grid_search(arm, train=True) for arm in ARMS}
best = {arm: study.best_config(arm, grid=g) for arm, g in grids.items()}
cols = ["arm", "lr", "steps", "best_step", "converged", "val_accuracy", "val_acc_lo", "val_acc_hi",
        "val_logit_diff", "best_val_loss", "final_train_loss", "train_seconds"]
with_intervals(pd.concat(grids.values(), ignore_index=True)[cols]
               .assign(lr=lambda d: d["lr"].map("{:g}".format), train_seconds=lambda d: d["train_seconds"].round(1)),
               {"val_accuracy": ("val_acc_lo", "val_acc_hi")}, digits=4,
               names={"val_accuracy": "val_accuracy [95% CI]", "train_seconds": "seconds"})

# %%
#| echo: false
Markdown("Selected: " + "; ".join(f"**{arm}** lr = {cfg.lr:g}" for arm, cfg in best.items())
         + f" (at N = {study.grid_n_train}, by validation accuracy, ties broken by logit difference). "
         "Later chapters analyse the runs trained with these settings at the largest N.")

# %% [markdown]
# ## Learning curves (test set)

# %%
#| label: fig-learning-curves
#| fig-cap: "Held-out test accuracy against the number of training trials, both arms on the same axes (error bars: 95% Wilson intervals over test trials; with several seeds, one bar per seed and the line through their mean). Grey lines: strategies that ignore the context."
curves = pd.concat([study.learning_curve(arm, train=True, best=best[arm]) for arm in ARMS])
test_trials = study.trials("test", study.n_test)
blind = baseline_table(test_trials).set_index("strategy")["accuracy"]
fig = training_figures.learning_curves(
    curves, {"ignores context (sum of both streams)": float(blind["ignore context: sum of both streams"])})

# %%
# one row per run: how long it trained, where it stopped and why, and its test accuracy
table = (curves.set_index(["arm", "n_train", "seed"])
         [["steps", "best_step", "epochs", "stop_reason", "final_train_loss", "test_accuracy", "test_acc_lo",
           "test_acc_hi", "test_logit_diff"]]
         .rename(columns={"test_acc_lo": "lo", "test_acc_hi": "hi", "test_logit_diff": "logit_diff"})
         .sort_index().round(3))
with_intervals(table, {"test_accuracy": ("lo", "hi")}, names={"test_accuracy": "test_accuracy [95% CI]"})

# %%
#| echo: false
capped = curves[~curves["converged"].astype(bool)]
if capped.empty:
    convergence = (f"Every run of both learning curves converged: each stopped because its validation loss "
                   f"had not improved for {study.patience} evaluations ({study.patience * study.eval_every} "
                   f"steps), before the cap of {study.max_steps} steps.")
else:
    which = "; ".join(f"{r.arm} N = {r.n_train} (seed {r.seed})" for r in capped.itertuples())
    convergence = (f"**Not every run converged:** {len(capped)} of {len(curves)} runs reached the cap of "
                   f"{study.max_steps} steps while their validation loss was still improving ({which}). "
                   "These runs are under-trained, so the learning curves cannot show how many trials their "
                   "arm needs, and the sample-efficiency verdict below is inconclusive for that reason.")
Markdown(convergence)

# %% [markdown]
# ## How the largest models decide
#
# Psychometric curves in the style of Mante et al.: the probability of answering ` right` against
# the signed coherence of the relevant stream (should be steep) and of the irrelevant stream
# (should be flat if the model ignores it), separately for the two contexts.

# %%
#| label: fig-psychometric
#| fig-cap: "P(' right') against the signed coherence of the relevant (top) and irrelevant (bottom) stream, per context, for each arm at the largest N (test set; bars: 95% normal intervals)."
n_max = max(study.train_sizes)
final = {arm: study.selected_run(arm, best=best[arm]) for arm in ARMS}
preds = {f"{arm} (N={n_max})": run.predictions("test") for arm, run in final.items()}
fig = training_figures.psychometric(preds)

# %%
#| label: fig-congruency
#| fig-cap: "Test accuracy on congruent trials (both streams point the same way) and incongruent ones (they disagree, so the context decides). A model that ignores the context fails mostly on incongruent trials."
fig = training_figures.accuracy_by(evaluation.accuracy_by_table(preds, "congruent"))

# %%
#| label: fig-loss
#| fig-cap: "Training loss (lines) and validation loss (dots, every `eval_every` steps) of the largest run of each arm; the ring marks the best evaluation, whose weights the run keeps."
fig = training_figures.training_loss({f"{arm} (N={n_max})": run.log() for arm, run in final.items()},
                                     {f"{arm} (N={n_max})": run.val_log() for arm, run in final.items()})

# %% [markdown]
# ## Does bf16 change the results?
#
# Training and evaluation use bf16 autocast on the CPU when `bf16` is set (the master weights
# stay fp32). We re-score the largest fine-tuned run's test set in fp32 and compare.

# %%
agreement = evaluation.bf16_agreement(final["fine-tuned"], test_trials)
Markdown(f"Re-scored in fp32, the run gives the same choice as in bf16 on "
         f"**{agreement['same choice (share of test trials)']:.1%}** of the test trials; test accuracy "
         f"{agreement['accuracy fp32']:.1%} in fp32 against {agreement['accuracy bf16']:.1%} in bf16, and the largest "
         f"gap between the two logit differences is {agreement['max |logit diff fp32 - bf16|']:.3g}."
         if agreement else "This profile runs in fp32 throughout.")

# %% [markdown]
# ## Verdict

# %%
#| echo: false
correct = correct_table(run for arm in ARMS for run in study.learning_curve_runs(arm, best=best[arm]))
show_verdicts(study, "02", [sample_efficiency_verdict(correct, curves)])

# %% [markdown]
# ## Exercises
#
# Each exercise is a function you write in the cell below it; `check` runs it at once on small
# inputs, compares it with the book's own function and says what differs. The solution is folded
# under each exercise.
#
# **Exercise 2.1: the Wilson interval.** Every accuracy in this book carries a Wilson score
# interval (`helpers.stats.intervals.wilson_ci`). Write `wilson_interval(k, n, z=1.96)` returning
# `(lo, hi)` for `k` correct out of `n`: centre `(p + z²/2n) / (1 + z²/n)`, half-width
# `z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n)`, with `p = k / n`. Why is it not `p ± z·sqrt(p(1-p)/n)`?
# (Try `k = 0`.)

# %%
#| code-fold: false
from helpers.exercises import check, show_solution


def wilson_interval(k, n, z=1.96):
    raise NotImplementedError       # your code here


check("02-wilson", wilson_interval)

# %%
#| echo: false
show_solution("02-wilson", show_solutions)

# %% [markdown]
# **Exercise 2.2: a paired bootstrap.** Two arms scored on the same test prompts are compared by
# resampling *prompts*, each resample taking both arms at the same indices. Write
# `paired_bootstrap_diff(a, b, n_boot=2000, seed=0)` returning `(mean(b) - mean(a), lo, hi)`, the
# 95% percentile interval, with the book's resamples `resample_indices(len(a), n_boot, seed)`
# (`helpers.stats.bootstrap`). How much wider is the interval when the arms are resampled
# independently?

# %%
#| code-fold: false
from helpers.stats.bootstrap import resample_indices  # noqa: F401  (for your code)


def paired_bootstrap_diff(a, b, n_boot=2000, seed=0):
    raise NotImplementedError       # your code here


check("02-paired-bootstrap", paired_bootstrap_diff)

# %%
#| echo: false
show_solution("02-paired-bootstrap", show_solutions)

# %% [markdown]
# ## Downloads
#
# The tables this chapter's figures and verdicts rest on, as CSV, and the executed notebook.

# %%
#| echo: false
from helpers.book.downloads import save_tables
save_tables(study, "02", {"grid-search": pd.concat(grids.values(), ignore_index=True), "learning-curves": curves})
