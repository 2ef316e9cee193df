CELLS = [
("md", r'''
# Ablating every head {#sec-ablation}

Lin (2024) ablated the attention heads of both models one at a time. The fine-tuned GPT-2's
accuracy dropped most when heads in *later* layers were removed (the paper names L5H7, L8H3,
L9H3 and L11H8); the model trained from scratch depended most on *first-layer* heads, which
attend to the numbers. Fine-tuning, in this reading, recruits heads that pretraining built.

**What we measure.** For every head of both models (the runs that chapter 2 selected: each arm's
best learning rate at the largest N), we replace the head's output `z` (its contribution before the
output projection) by zero (*zero-ablation*) or by its mean over reference prompts, position by
position (*mean-ablation*, which keeps the typical output and removes only the information that
varies between prompts). We record the logit difference toward the correct answer on held-out
prompts, and report the drop in accuracy and in mean logit difference, with paired bootstrap 95%
intervals over prompts. We also ablate whole layers.

**Design decisions.** The paper does not say which ablation it used; we report both. The sweep is
exact but cheap: the clean residual stream is reused up to the ablated layer, the heads of a layer
are ablated in one batched pass, and only the two answer logits at the last position are computed
(`benchmarks/bench_ablation.py` checks it against a naive loop). Attribution patching, a linear
estimate from one backward pass, is shown as a *screen* only: how well it would have ranked heads.
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
n_ablation = 16
n_reference = 32
ablation_kinds = ["zero", "mean"]
analysis_bf16 = True
'''),
("code", r'''
#| echo: false
from helpers.book import run_card
run_card(profile=profile, pretrained_source=pretrained_source, scratch_source=scratch_source,
         n_ablation=n_ablation, n_reference=n_reference, ablation_kinds=ablation_kinds,
         analysis_bf16=analysis_bf16, train_sizes=train_sizes)
'''),
("code", r'''
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display
from helpers import ablation, experiments, figures
from helpers.arch import Arch
from helpers.hardware import autocast, default_device
from helpers.task import TaskConfig, make_splits

task = TaskConfig(n_samples=n_samples, noise=noise, seed=task_seed)
runs = experiments.selected_runs(task, pretrained_source, scratch_source, grid_lrs_finetune,
                                 grid_lrs_scratch, grid_n_train, train_sizes, seeds, epochs,
                                 batch_size, n_val, n_test, bf16, min_steps=min_steps)
splits = make_splits(task, 0, max(n_val, n_reference), max(n_test, n_ablation))
trials, reference = splits["test"][:n_ablation], splits["val"][:n_reference]
device = default_device()

results = {}
for arm, run in runs.items():
    model, tok = run.load_model()
    model.to(device)
    arch = Arch(model)
    p, ref = ablation.prepare(model, tok, trials), ablation.prepare(model, tok, reference)
    with autocast(device, analysis_bf16):
        clean = ablation.clean_logit_diff(arch, p)
        means = ablation.head_means(arch, ref)
        res = {"clean": clean, "arch": (arch.n_layers, arch.n_heads), "family": arch.family}
        for kind in ablation_kinds:
            res[kind] = ablation.sweep_heads(arch, p, kind, means)
            res[kind + "_layers"] = ablation.sweep_layers(arch, p, kind, means)
        res["attribution"] = {kind: -ablation.attribution_scores(arch, p, kind, means) for kind in ablation_kinds}
    results[arm] = res
    del model
choice = np.array([t.choice for t in trials])
pd.DataFrame({arm: {"clean accuracy on these prompts": float(np.mean(np.sign(r["clean"]) == choice)),
                    "mean logit diff toward correct": float(np.mean(r["clean"] * choice)),
                    "layers x heads": f"{r['arch'][0]} x {r['arch'][1]}"} for arm, r in results.items()})
'''),
("md", r'''
Ablation effects are only meaningful for a model that solves the task: read the scratch model's
maps with its clean accuracy above in mind.

## Head by head
'''),
("code", r'''
#| label: fig-head-ablation
#| fig-cap: "Drop of the mean logit difference toward the correct answer when one head is ablated (red: the head helps), per layer and head, both models on one colour scale. Outlined: the heads Lin (2024) names, when the model is GPT-2-sized."
tables = {(arm, kind): ablation.effects_table(r["clean"], r[kind], choice)
          for arm, r in results.items() for kind in ablation_kinds}
L_H = {arm: r["arch"] for arm, r in results.items()}
is_gpt2 = all(r["family"] == "gpt2" and r["arch"] == (12, 12) for r in results.values())
marks = ablation.PAPER_HEADS_GPT2 if is_gpt2 else ()
for kind in ablation_kinds:
    maps = {f"{arm}, {kind}-ablation": tables[(arm, kind)]["ld_drop"].to_numpy().reshape(L_H[arm])
            for arm in results}
    fig = figures.head_heatmaps(maps, "drop of logit difference", marks)
'''),
("code", r'''
#| label: fig-layer-profile
#| fig-cap: "Per layer: the summed drop of its heads when each is ablated alone (solid), and the drop when the whole layer's attention is ablated at once (table below)."
kind0 = ablation_kinds[-1]
fig = figures.layer_profile({f"{arm} ({kind0})": tables[(arm, kind0)].groupby("layer")["ld_drop"].sum().to_numpy()
                             for arm in results}, "summed drop of logit difference")
'''),
("code", r'''
whole = pd.DataFrame({f"{arm}, {kind}": (results[arm]["clean"] * choice)[None, :].mean() -
                      (results[arm][kind + "_layers"] * choice[None, :]).mean(axis=1)
                      for arm in results for kind in ablation_kinds})
whole.index.name = "layer (whole attention ablated)"
whole.round(3).T
'''),
("md", r'''
## Heads whose ablation matters

Heads whose drop of logit difference has a 95% bootstrap interval that excludes zero, largest
first (accuracy drops in the same rows).
'''),
("code", r'''
sig = pd.concat([t.assign(model=arm, ablation=kind) for (arm, kind), t in tables.items()])
sig = sig[sig["significant"] & (sig["ld_drop"] > 0)].sort_values("ld_drop", ascending=False)
cols = ["model", "ablation", "layer", "head", "ld_drop", "ld_drop_lo", "ld_drop_hi", "acc_drop", "acc_drop_lo", "acc_drop_hi"]
sig[cols].groupby(["model", "ablation"]).head(8).round(3).reset_index(drop=True)
'''),
("md", r'''
### The heads Lin (2024) names

For fine-tuned GPT-2 the paper names L5H7, L8H3, L9H3 and L11H8. Where they stand in this sweep
(rank 1 = the largest drop of all heads):
'''),
("code", r'''
if is_gpt2:
    named = pd.concat([ablation.named_heads_table(tables[("fine-tuned", kind)]).assign(ablation=kind)
                       for kind in ablation_kinds], ignore_index=True)
    display(named.round(3))
else:
    display(Markdown(f"Not applicable to this profile: the named heads are heads of GPT-2 (12 layers x 12 heads), "
                     f"and the fine-tuned model here is {pretrained_source} "
                     f"({L_H['fine-tuned'][0]} layers x {L_H['fine-tuned'][1]} heads). The `paper` profile runs GPT-2."))
'''),
("md", r'''
## Attribution patching as a screen

Attribution patching estimates every head's effect from one forward and one backward pass (the
gradient of the metric times the change of the head's output). How well would it have ranked
the heads?
'''),
("code", r'''
#| label: fig-screen
#| fig-cap: "Attribution-patching estimate against the exact ablation effect, one point per head."
screen = []
for arm, r in results.items():
    for kind in ablation_kinds:
        exact = tables[(arm, kind)]["ld_drop"].to_numpy().reshape(L_H[arm])
        q = ablation.screen_quality(r["attribution"][kind], exact, k=10)
        screen.append({"model": arm, "ablation": kind, **q})
kind0 = ablation_kinds[0]
fig = figures.screen_scatter(results["fine-tuned"]["attribution"][kind0],
                             tables[("fine-tuned", kind0)]["ld_drop"].to_numpy().reshape(L_H["fine-tuned"]),
                             f"fine-tuned, {kind0}-ablation")
pd.DataFrame(screen).round(3)
'''),
("md", r'''
## Verdict
'''),
("code", r'''
#| echo: false
kind_v = "mean" if "mean" in ablation_kinds else ablation_kinds[0]
prof = {arm: ablation.depth_profile(ablation.per_prompt_drops(r["clean"], r[kind_v], choice))
        for arm, r in results.items()}
correct = {arm: np.sign(r["clean"]) == choice for arm, r in results.items()}
verdicts = ablation.depth_verdicts(prof["fine-tuned"], prof["scratch"], correct["fine-tuned"], correct["scratch"])
Markdown("\n\n".join(f"**Claim (Lin 2024): {claim}.** Verdict: **{v}** ({kind_v}-ablation). {ev}"
                     for claim, (v, ev) in verdicts.items()))
'''),
]
