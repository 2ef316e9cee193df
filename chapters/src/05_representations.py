CELLS = [
("md", r'''
# What the last layer represents {#sec-representations}

Lin (2024) looked at the hidden states of the last layer of GPT-2 while it answers the task and
reports that, **after fine-tuning, they are organised by the task variables**: in a 2-D UMAP
projection the trials separate by context and by choice. This chapter repeats that picture for
three models and puts numbers next to it:

* **pretrained**: the pretrained source, before any fine-tuning;
* **fine-tuned**: the same model after fine-tuning (the run chapter 2 selects: the grid's best
  learning rate at the largest training-set size, first seed);
* **scratch**: the same architecture trained from scratch with the same procedure.

**What we measure.** For each held-out test trial we read the residual stream of the last layer at
the **answer position** (the prompt's last token, where the model's choice is read), and at three
earlier landmarks (the context word and the ends of the two streams of numbers). Every prompt of
this task has the same token length, so positions align across trials.

**Design decisions.**

* *Which stream is "the last layer".* The output of the last decoder block, *before* the final
  norm. (Hugging Face's `hidden_states[-1]` already has the final norm applied, unlike the other
  elements; `helpers.representations` documents and tests this.)
* *UMAP is a picture, not a measurement.* Its layout depends on `n_neighbors`, on the seed and on
  preprocessing, and it can invent or hide clusters. We therefore standardise every unit (a few
  "massive" dimensions of the residual stream would otherwise dominate all distances), keep the
  first 50 principal components, run a seeded UMAP on them, and report for the same points two
  numbers that do not depend on the projection: the **silhouette** of the groups (context, choice,
  and the signs of the relevant and irrelevant coherence) against its value under label shuffles,
  and the cross-validated accuracy of a **linear probe** (the decoder of @sec-decoding).
* All analysis randomness (UMAP, folds, shuffles) is seeded with `task_seed`.
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
n_analysis = 200
analysis_bf16 = True
umap_neighbors = 15
cv_folds = 5
n_shuffles = 5
'''),
("code", r'''
#| echo: false
from helpers.book import run_card
run_card(profile=profile, pretrained_source=pretrained_source, scratch_source=scratch_source,
         n_analysis=n_analysis, n_train=max(train_sizes), seed=seeds[0], analysis_bf16=analysis_bf16,
         umap_neighbors=umap_neighbors, cv_folds=cv_folds, n_shuffles=n_shuffles)
'''),
("code", r'''
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from helpers import experiments, representations as rp
from helpers.decoding import task_variables
from helpers.task import TaskConfig, make_splits

task = TaskConfig(n_samples=n_samples, noise=noise, seed=task_seed)
runs = experiments.selected_runs(task, pretrained_source, scratch_source, grid_lrs_finetune,
                                 grid_lrs_scratch, grid_n_train, train_sizes, seeds, epochs,
                                 batch_size, n_val, n_test, bf16, min_steps=min_steps)
trials = make_splits(task, 0, 0, max(n_test, n_analysis))["test"][:n_analysis]
variables = task_variables(trials)



Markdown(f"Analysed: **{len(trials)}** held-out test trials; fine-tuned run `{runs['fine-tuned'].config.key()}` "
         f"(lr = {runs['fine-tuned'].config.lr:g}), scratch run `{runs['scratch'].config.key()}` "
         f"(lr = {runs['scratch'].config.lr:g}), both at N = {max(train_sizes)}.")
'''),
("code", r'''
states, at_landmarks = {}, {}
for name in experiments.ANALYSED_MODELS:   # one pass: the last layer at the four landmarks
    model, tok = experiments.load_analysed(name, runs, pretrained_source)
    landmarks = rp.landmark_positions(tok, trials[0].prompt)
    H = rp.collect_hidden_states(model, tok, trials, layers=[-1], positions=list(landmarks.values()),
                                 bf16=analysis_bf16)[:, 0]
    at_landmarks[name] = {lm: H[:, i] for i, lm in enumerate(landmarks)}
    states[name] = at_landmarks[name]["answer"]
    labels = rp.token_labels(tok, trials[0].prompt)
    del model
Markdown(f"Answer position: token {len(labels) - 1} of {len(labels)} (`{labels[-1]!r}`); "
         f"{states['fine-tuned'].shape[1]} units per state.")
'''),
("md", r'''
## The UMAP picture

Each point is one trial's last-layer state at the answer position. Rows colour the same points by
context, by the correct choice, and by the signed coherence of the relevant and of the irrelevant
stream. If the model has separated what matters for the answer, the choice rows should split and
the irrelevant coherence row should not.
'''),
("code", r'''
#| label: fig-umap
#| fig-cap: "Seeded 2-D UMAP of the last layer's residual stream at the answer position (standardised units, first 50 principal components), one column per model, coloured by context, correct choice, and the signed coherence of the relevant and irrelevant stream."
embeddings = {name: rp.embed_umap(X, n_neighbors=umap_neighbors, seed=task_seed) for name, X in states.items()}
fig = rp.umap_figure(embeddings, variables)
'''),
("md", r'''
## Numbers on the same points

The silhouette (from -1 to 1; near 0 when the groups overlap) is computed on the 50 principal
components UMAP sees; its chance level is its value after permuting the labels (`n_shuffles`
times; we give the largest). The linear probe is an L2 logistic regression, standardised units,
regularisation chosen by inner cross-validation on the training folds only, `cv_folds`-fold outer
cross-validation; the interval is a 95% Wilson interval over the held-out predictions.
'''),
("code", r'''
table = rp.structure_table(states, variables, cv_folds=cv_folds, n_shuffles=n_shuffles, seed=task_seed)
table.round(3)
'''),
("md", r'''
## Along the prompt

The model has to build these variables while it reads. The same picture and numbers at three
earlier **landmarks** of the prompt (last layer): the context word, the last token of the motion
numbers, and the last token of the color numbers; the answer position is repeated for reference.
The context is written at the start, so it can be read out everywhere; the choice depends on the
relevant stream, so before both streams have been read it can at best be guessed from the one
already seen (about 75% when that stream is the relevant one half of the time).
'''),
("code", r'''
#| label: fig-umap-landmarks
#| fig-cap: "Seeded 2-D UMAP of the last layer at the ends of the two streams and at the answer (columns), coloured by context and by the correct choice (rows), one panel per model. The context word is left out: up to it every prompt is one of two strings, so there are only two distinct states, and a UMAP of them would only spread out numerical noise."
#| fig-subcap: ["pretrained", "fine-tuned", "scratch"]
for m in at_landmarks:
    landmark_embeddings = {lm: rp.embed_umap(X, n_neighbors=umap_neighbors, seed=task_seed)
                           for lm, X in at_landmarks[m].items() if lm != "context word"}
    fig = rp.umap_figure(landmark_embeddings, variables, rows=rp.UMAP_ROWS[:2], size=2.2)
    fig.suptitle(m, fontsize=11, y=1.02)
'''),
("code", r'''
along = pd.concat([rp.structure_table({m: at_landmarks[m][lm] for m in at_landmarks}, variables,
                                      columns=("context", "choice"), cv_folds=cv_folds,
                                      n_shuffles=n_shuffles, seed=task_seed).assign(position=lm)
                   for lm in rp.LANDMARKS], ignore_index=True)
probe_table = along.pivot_table(index="position", columns=["variable", "model"], values="probe_accuracy", sort=False)
probe_table.reindex(columns=pd.MultiIndex.from_product([["context", "choice"], list(at_landmarks)])).round(3)
'''),
("code", r'''
#| echo: false
from_context = rp.choice_from_context_accuracy(variables)
Markdown(f"Linear-probe accuracy (cross-validated, as above) of context and choice at each landmark; "
         f"the silhouettes and intervals are in `along`. Before any number has been read (the context "
         f"word), a choice probe can only use the context: in these {len(variables)} trials the "
         f"context alone predicts the choice {from_context:.1%} of the time (the sampled trials are "
         f"not exactly balanced within each context), which is the level to read that row against.")
'''),
("md", r'''
## Verdict
'''),
("code", r'''
#| echo: false
verdict, evidence = rp.representation_verdict(table)
Markdown(f"**Claim (Lin 2024):** after fine-tuning, the last layer's hidden states at the answer "
         f"position are organised by the task variables (context and choice).\n\n"
         f"**Verdict: {verdict}.** {evidence}\n\n"
         "Criterion: for the fine-tuned model, both context and choice have a silhouette above every "
         "label shuffle and a linear probe whose 95% interval lies above 50%; *not replicated* when "
         "neither is decodable; *inconclusive* otherwise.")
'''),
]
