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
# grid). Every run makes `epochs` passes over its training set **and at least `min_steps` optimiser
# steps** (a small training set gets more passes): sample efficiency is about how many distinct trials
# a model needs, and with a fixed number of passes a run on 32 trials would also be a run of only a
# few optimiser steps, which confounds the two (the quick profile sets `min_steps` to the number of
# steps of its grid-search runs). The table shows the passes and steps each run actually made. Each run is a cached artifact (`data/runs/<hash of its config>/`), so re-running this
# chapter trains only what is missing.
#
# This is the chapter that **trains**: every run of the study is trained here (with progress bars
# when you run it in Jupyter). The analysis chapters that follow only read these runs, and stop with
# the command to run this chapter when one is missing.

# %% tags=["parameters"]
profile = "quick"
study_overrides = {}

# %%
#| echo: false
from helpers.book.card import run_card
from helpers.study import ARMS, Study

study = Study.from_profile(profile, **study_overrides)
run_card(study, train_sizes=study.train_sizes, seeds=study.seeds, grid_n_train=study.grid_n_train,
         epochs=study.epochs, min_steps=study.min_steps, batch_size=study.batch_size, n_val=study.n_val,
         n_test=study.n_test, bf16=study.bf16)

# %%
import pandas as pd
from IPython.display import Markdown
from helpers.claims.sample_efficiency import sample_efficiency_verdict
from helpers.figures import training as training_figures
from helpers.models.sources import source_info
from helpers.tasks.decision import baseline_table
from helpers.training import evaluation

info = source_info(study.pretrained_source)
Markdown(f"Pretrained source: **{study.pretrained_source}** — {info.description}.")

# %% [markdown]
# ## Grid search (validation set)

# %%
grids = {arm: study.grid_search(arm, train=True) for arm in ARMS}
best = {arm: study.best_config(arm, grid=g) for arm, g in grids.items()}
cols = ["arm", "lr", "n_train", "epochs", "steps", "val_accuracy", "val_acc_lo", "val_acc_hi", "val_logit_diff",
        "final_train_loss", "train_seconds"]
pd.concat(grids.values())[cols].assign(lr=lambda d: d["lr"].map("{:g}".format)).round(4)

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
table = curves.groupby(["arm", "n_train"]).agg(steps=("steps", "first"), test_accuracy=("test_accuracy", "mean"),
                                               lo=("test_acc_lo", "min"), hi=("test_acc_hi", "max"),
                                               logit_diff=("test_logit_diff", "mean"),
                                               seeds=("seed", "count")).round(3)
table

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
#| fig-cap: "Training loss of the largest run of each arm."
fig = training_figures.training_loss({f"{arm} (N={n_max})": run.log() for arm, run in final.items()})

# %% [markdown]
# ## Does bf16 change the results?
#
# Training and evaluation use bf16 autocast on the CPU when `bf16` is set (the master weights
# stay fp32). We re-score the largest fine-tuned run's test set in fp32 and compare.

# %%
check = evaluation.bf16_agreement(final["fine-tuned"], test_trials)
pd.Series(check, dtype=object) if check else Markdown("This profile runs in fp32 throughout.")

# %% [markdown]
# ## Verdict

# %%
#| echo: false
verdict, evidence = sample_efficiency_verdict(curves)
Markdown(f"**Claim (Lin 2024):** the fine-tuned model needs far fewer training trials than the "
         f"same architecture trained from scratch.\n\n**Verdict: {verdict}.** {evidence}")
