CELLS = [
("md", r'''
# Fine-tuned versus trained from scratch {#sec-training}

Lin (2024)'s first result: a pretrained GPT-2 fine-tuned on the task needs far fewer training
trials than the same architecture trained from scratch. This chapter trains both **arms**:

* **fine-tuned**: the pretrained source, all weights trained;
* **scratch**: the same architecture and tokenizer (`scratch:<source>`), randomly initialised;

on nested training sets of size $N$, with the same optimiser. The loss is the cross-entropy of
the answer token at the last prompt position (full vocabulary). A model's choice is the sign of
the logit difference `logit(' right') - logit(' left')` at that position.

Each arm gets its own learning-rate grid search on the **validation** set at one $N$; the best
setting is then used for the whole learning curve, scored on the **test** set (never seen by the
grid). Every run makes `epochs` passes over its training set **and at least `min_steps` optimiser
steps** (a small training set gets more passes): sample efficiency is about how many distinct trials
a model needs, and with a fixed number of passes a run on 32 trials would also be a run of only a
few optimiser steps, which confounds the two (the quick profile sets `min_steps` to the number of
steps of its grid-search runs). The table shows the passes and steps each run actually made. Each run is a cached artifact (`data/runs/<hash of its config>/`), so re-running this
chapter trains only what is missing.
'''),
("parameters", r'''
profile = "quick"
task_seed = 0
n_samples = 4
noise = 0.2
pretrained_source = "smollm2-135m"
scratch_source = "scratch:smollm2-135m"
grid_lrs_finetune = [0.00003, 0.0001]
grid_lrs_scratch = [0.0003, 0.001]
grid_n_train = 128
train_sizes = [32, 128, 512]
seeds = [0]
epochs = 2
min_steps = 32
batch_size = 8
n_val = 100
n_test = 300
bf16 = True
'''),
("code", r'''
#| echo: false
from helpers.book import run_card
run_card(profile=profile, pretrained_source=pretrained_source, scratch_source=scratch_source,
         train_sizes=train_sizes, seeds=seeds, grid_n_train=grid_n_train, epochs=epochs, min_steps=min_steps,
         batch_size=batch_size, n_val=n_val, n_test=n_test, bf16=bf16)
'''),
("code", r'''
import numpy as np
import pandas as pd
from IPython.display import Markdown
from helpers import experiments, figures
from helpers.sources import source_info
from helpers.task import TaskConfig, make_splits, baseline_predictions

task = TaskConfig(n_samples=n_samples, noise=noise, seed=task_seed)
base = experiments.arm_bases(task, pretrained_source, scratch_source, grid_n_train, seeds, epochs,
                             batch_size, n_val, n_test, bf16, min_steps=min_steps)
info = source_info(pretrained_source)
Markdown(f"Pretrained source: **{pretrained_source}** — {info.description}.")
'''),
("md", r'''
## Grid search (validation set)
'''),
("code", r'''
grids = {
    "fine-tuned": experiments.grid_search(base["fine-tuned"], grid_lrs_finetune),
    "scratch": experiments.grid_search(base["scratch"], grid_lrs_scratch),
}
best = {arm: experiments.best_config(base[arm], g) for arm, g in grids.items()}
cols = ["arm", "lr", "n_train", "epochs", "steps", "val_accuracy", "val_acc_lo", "val_acc_hi", "val_logit_diff",
        "final_train_loss", "train_seconds"]
pd.concat(grids.values())[cols].assign(lr=lambda d: d["lr"].map("{:g}".format)).round(4)
'''),
("code", r'''
#| echo: false
Markdown("Selected: " + "; ".join(f"**{arm}** lr = {cfg.lr:g}" for arm, cfg in best.items())
         + f" (at N = {grid_n_train}, by validation accuracy, ties broken by logit difference). "
         "Later chapters analyse the runs trained with these settings at the largest N.")
'''),
("md", r'''
## Learning curves (test set)
'''),
("code", r'''
#| label: fig-learning-curves
#| fig-cap: "Held-out test accuracy against the number of training trials, both arms on the same axes (error bars: 95% Wilson intervals over test trials; with several seeds, one bar per seed and the line through their mean). Grey lines: strategies that ignore the context."
curves = pd.concat([experiments.learning_curve(best[arm], train_sizes, seeds) for arm in best])
test_trials = make_splits(task, 0, 0, n_test)["test"]
y = np.array([t.choice for t in test_trials])
blind = {k: float((v == y).mean()) for k, v in baseline_predictions(test_trials).items()
         if k.startswith("ignore context: sum")}
fig = figures.learning_curves(curves, {"ignores context (sum of both streams)": blind["ignore context: sum of both streams"]})
'''),
("code", r'''
table = curves.groupby(["arm", "n_train"]).agg(steps=("steps", "first"), test_accuracy=("test_accuracy", "mean"),
                                               lo=("test_acc_lo", "min"), hi=("test_acc_hi", "max"),
                                               logit_diff=("test_logit_diff", "mean"),
                                               seeds=("seed", "count")).round(3)
table
'''),
("md", r'''
## How the largest models decide

Psychometric curves in the style of Mante et al.: the probability of answering ` right` against
the signed coherence of the relevant stream (should be steep) and of the irrelevant stream
(should be flat if the model ignores it), separately for the two contexts.
'''),
("code", r'''
#| label: fig-psychometric
#| fig-cap: "P(' right') against the signed coherence of the relevant (top) and irrelevant (bottom) stream, per context, for each arm at the largest N (test set; bars: 95% normal intervals)."
n_max = max(train_sizes)
final = {arm: experiments.get_run(best[arm].replace(n_train=n_max, seed=seeds[0])) for arm in best}
preds = {f"{arm} (N={n_max})": run.predictions("test") for arm, run in final.items()}
fig = figures.psychometric(preds)
'''),
("code", r'''
#| label: fig-congruency
#| fig-cap: "Test accuracy on congruent trials (both streams point the same way) and incongruent ones (they disagree, so the context decides). A model that ignores the context fails mostly on incongruent trials."
fig = figures.accuracy_by(preds, "congruent")
'''),
("code", r'''
#| label: fig-loss
#| fig-cap: "Training loss of the largest run of each arm."
fig = figures.training_loss({f"{arm} (N={n_max})": run.log() for arm, run in final.items()})
'''),
("md", r'''
## Does bf16 change the results?

Training and evaluation use bf16 autocast on the CPU when `bf16` is set (the master weights
stay fp32). We re-score the largest fine-tuned run's test set in fp32 and compare.
'''),
("code", r'''
from helpers.evaluation import score_trials
check = None
if bf16:
    model, tok = final["fine-tuned"].load_model()
    fp32 = score_trials(model, tok, test_trials, bf16=False)["logit_diff"]
    bf = final["fine-tuned"].predictions("test")["logit_diff"].to_numpy()
    check = {"same choice (share of test trials)": float(np.mean(np.sign(fp32) == np.sign(bf))),
             "accuracy fp32": float(np.mean(np.sign(fp32) == y)),
             "accuracy bf16": float(np.mean(np.sign(bf) == y)),
             "max |logit diff fp32 - bf16|": float(np.max(np.abs(fp32 - bf)))}
pd.Series(check, dtype=object) if check else Markdown("This profile runs in fp32 throughout.")
'''),
("md", r'''
## Verdict
'''),
("code", r'''
#| echo: false
verdict, evidence = experiments.sample_efficiency_verdict(curves)
Markdown(f"**Claim (Lin 2024):** the fine-tuned model needs far fewer training trials than the "
         f"same architecture trained from scratch.\n\n**Verdict: {verdict}.** {evidence}")
'''),
]
