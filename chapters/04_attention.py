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
# # Attention patterns {#sec-attention}
#
# Lin (2024) traces the two networks' solutions to their attention heads. The network trained from
# scratch depends most on heads of its **first layer**, and those heads attend to the **numbers** of
# the prompt; the fine-tuned network instead relies on heads of **later layers**, which the paper
# reads as the fine-tuned model reusing a generic representation built by pretraining. This chapter
# measures the attention half of that account: *where does the position that gives the answer
# look, layer by layer and head by head?* Whether the model's accuracy *depends* on those heads is a
# causal question, answered by the head-ablation analyses; here we only describe attention, with its
# uncertainty.
#
# **What we measure.** For every layer and head we take the attention probabilities of the
# **answer position**, the last prompt token (the `:` after `Answer`), where the model's choice is
# read. Each token of the prompt has a **type**: the context word, the motion numbers, the color
# numbers, punctuation, or other (the keywords `Context`, `Motion`, `Color`, `Answer`). The mass
# the answer position puts on a type is the sum of its attention probabilities over the tokens of
# that type; masses sum to 1 over the types. Two claims are tested:
#
# (a) **First-layer heads attend to the numbers** (scratch model): the layer-0 head-mean mass on
# number tokens against what uniform attention would give, compared with the fine-tuned model on
# the same prompts.
#
# (b) **Selective attention**: does the answer position attend more to the numbers of the
# *relevant* stream (the one the context word names) than to those of the irrelevant one? A head
# that does so could implement the context-dependent gating the task needs in its attention alone.
#
# **Design decisions.**
#
# * *Token types from character offsets.* A number is its sign, digits and decimal point
#   (`+0.12`); the period that ends a stream and the colons are punctuation. Types are assigned
#   from the tokenizer's character offsets against the prompt's parts, so the same code handles
#   GPT-2 (`+0.12` is ` +`, `0`, `.`, `12`) and SmolLM2 (every digit its own token). A token that
#   spans several parts takes the type of most of its characters.
# * *The uniform baseline.* Numbers are most of the prompt (about three quarters of its tokens),
#   so even a head that attends uniformly puts most of its mass on them. "Attends to the numbers"
#   therefore means *more than the share of number tokens among the keys*, and we report that
#   excess.
# * *One pre-specified statistic for claim (a).* The mean over the heads of layer 0, not the best
#   head (picking the maximum of many heads would be biased upward); the best head is reported as
#   a description.
# * *Uncertainty.* Percentile bootstrap intervals over prompts (2000 resamples; paired when two
#   models are compared on the same prompts). For claim (b) every head is tested (one-sided t-test,
#   relevance > 0) with a Holm correction over all heads of a model, so "significant heads" control
#   the family-wise error rate at 5%. An effect must also be *material*: at least 2% of a head's
#   attention mass (`attention.MARGIN`), so that bf16 rounding or a negligible shift cannot make a
#   verdict.
# * *Models.* The fine-tuned and scratch runs that chapter 2 selects (best learning rate of each
#   arm, largest training set, first seed), and the pretrained model before fine-tuning as a
#   reference: which of the fine-tuned model's patterns were already there?
# * *Computation.* The models use PyTorch's fused attention (SDPA), which does not return its
#   probabilities; eager attention is switched on for these calls and the original restored
#   afterwards. Patterns are reduced to per-type masses batch by batch, so memory stays at one
#   batch of patterns whatever the number of prompts.

# %% tags=["parameters"]
profile = "quick"
study_overrides = {}
show_solutions = True
n_analysis = 200
analysis_bf16 = False
n_explorer_prompts = 2

# %%
#| echo: false
from helpers.book.kernel import take_parameters
take_parameters("04_attention", globals())   # checked as the command line does; what is not given comes from the profile
from helpers.book.card import run_card
from helpers.figures.style import setup_notebook
from helpers.study import Study

setup_notebook()   # the book's figure style, high-resolution (retina) PNGs

study = Study.from_profile(profile, **study_overrides)
run_card(study, train_sizes=study.train_sizes, seeds=study.seeds, grid_n_train=study.grid_n_train,
         max_steps=study.max_steps, eval_every=study.eval_every, patience=study.patience,
         batch_size=study.batch_size, n_val=study.n_val,
         n_test=study.n_test, bf16=study.bf16, n_analysis=n_analysis, analysis_bf16=analysis_bf16)

# %%
import pandas as pd
from IPython.display import Markdown, display
from helpers.book.scorecard import show_verdicts
from helpers.claims import attention as claims
from helpers.claims.verdict import gate_note, task_gates
from helpers.figures import attention as attention_figures
from helpers.figures.explorer import explorer as attention_explorer
from helpers.figures.explorer import web_explorer
from helpers.models.sources import source_info
from helpers.readouts import attention
from helpers.tasks.tokens import token_type_table

runs = study.selected_runs()
gates = task_gates(runs, study.trials("test", study.n_test))
display(Markdown(gate_note(gates)))
models = {name: study.load(name, runs) for name in ("fine-tuned", "scratch", "pretrained")}
trials = study.trials("test", n_analysis)
info = source_info(study.pretrained_source)
Markdown("Analysed: " + "; ".join(f"**{arm}** (lr = {run.config.lr:g}, N = {run.config.n_train}, "
                                  f"test accuracy {run.metrics['test']['accuracy']:.1%})"
                                  for arm, run in runs.items())
         + f"; **pretrained** = `{study.pretrained_source}` before fine-tuning. {len(trials)} held-out test prompts."
         + ("\n\n**Warning: this profile's 'pretrained' model is a tiny random network. The numbers "
            "below test the machinery only and say nothing about the papers' claims.**"
            if "NOT pretrained" in info.description else ""))

# %% [markdown]
# ## Token types
#
# Every token of every prompt gets a type from its character span. The table shows the first test
# prompt as the fine-tuned model's tokenizer splits it (`␣` is a space), the tokens of each type,
# and how many there are: the *share* of a type is the attention mass that uniform attention from
# the answer position would give it.

# %%
tok = models["fine-tuned"][1]
example = trials[0]
display(Markdown(f"`{example.prompt}` ({example.context} context, answer `{example.answer.strip()}`)"))
token_type_table(tok, example.prompt)

# %% [markdown]
# ## Where the answer position looks

# %%
stats = {name: attention.attention_stats(m, t, trials, bf16=analysis_bf16, desc=name)
         for name, (m, t) in models.items()}
Markdown("Prompt lengths (tokens): " + ", ".join(
    f"{name} {s.meta['tokens_per_prompt']}" for name, s in stats.items())
    + f". Attention {'in bf16 autocast' if analysis_bf16 else 'in fp32'}.")

# %%
#| label: fig-number-heatmaps
#| fig-cap: "Attention mass that the answer position puts on number tokens (motion and color), per layer and head, mean over the test prompts. White is the share of number tokens among the keys, i.e. what uniform attention would put on them (panel titles); red heads prefer the numbers, blue heads avoid them."
fig = attention_figures.number_heatmaps(stats)

# %%
#| label: fig-type-bars
#| fig-cap: "Attention mass of the answer position per token type, per layer (mean over heads and prompts), stacked. Dotted line: the share of number tokens among the keys (uniform attention)."
fig = attention_figures.type_bars(stats)

# %%
#| label: fig-number-profile
#| fig-cap: "Per layer, the answer position's mass on number tokens minus the uniform share (mean over the layer's heads). Bands: 95% bootstrap intervals over prompts. Above zero: the layer's heads prefer the numbers to other tokens."
profiles = {name: attention.number_profile(s) for name, s in stats.items()}
fig = attention_figures.profile_figure(profiles)

# %%
peaks = pd.DataFrame([{"model": name, "layer with the largest excess": int(p.loc[p["excess"].idxmax(), "layer"]),
                       "its excess": p["excess"].max(), "layer-0 excess": p.loc[0, "excess"],
                       "mean excess over layers": p["excess"].mean()} for name, p in profiles.items()])
peaks.round(3)

# %% [markdown]
# Attention from every query position, not only the answer's: the mean mass from each query type
# (rows) to each key type (columns) in the first and the last layer, mean over heads.

# %%
attention.query_type_table(stats).round(3)

# %% [markdown]
# ## Claim (a): first-layer heads attend to the numbers

# %%
from helpers.book.tables import with_intervals

claim_a = attention.first_layer_number_attention(stats, layer=0)
difference = attention.paired_difference(stats["scratch"], stats["fine-tuned"], layer=0)
display(with_intervals(claim_a, {"mass": ("mass_lo", "mass_hi"), "excess": ("excess_lo", "excess_hi"),
                                  "best_head_mass": ("best_head_lo", "best_head_hi")}, digits=4,
                       names={"mass": "mass [95% CI]", "excess": "excess [95% CI]",
                              "best_head_mass": "best head's mass [95% CI]"}))
Markdown(f"Scratch minus fine-tuned, layer-0 head-mean mass on numbers (paired over the same prompts): "
         f"{difference[0]:+.1%} (95% CI {difference[1]:+.1%} to {difference[2]:+.1%}).")

# %% [markdown]
# ## Claim (b): does attention select the relevant stream?
#
# For each head: the mean over prompts of the mass on the relevant stream's numbers minus the mass
# on the irrelevant stream's numbers, at the answer position; the relevant stream is the one the
# context word names, so the sign of this statistic flips with the context. The mean is taken
# within each context and the two averaged with equal weights, so a head that ignores the context
# scores zero even if it attends strongly to one stream, however unbalanced the test set is. The
# test permutes the context labels across prompts (the same permutation for every head) and takes
# the maximum studentized statistic over all heads: exact when attention does not depend on the
# context, whatever the distribution of the masses, and simultaneous over the heads. A permutation
# symmetrises skewed values, so a head counts as above zero only when the studentized bootstrap of
# the same maximum (prompts resampled within each context) says so too.

# %%
relevance = {name: attention.relevance_table(s) for name, s in stats.items()}

# %%
#| label: fig-relevance
#| fig-cap: "Mass on the relevant stream's numbers minus mass on the irrelevant stream's, at the answer position, per layer and head (mean over prompts). Dots: heads significantly above zero (max-T permutation test of the context labels over all heads of the model, family-wise 5%)."
fig = attention_figures.relevance_heatmaps(relevance)

# %%
top = pd.concat([r.assign(model=name).sort_values("relevance", ascending=False).head(5)
                 for name, r in relevance.items()])
with_intervals(top[["model", "layer", "head", "relevance", "lo", "hi", "p_adj", "significant"]],
               {"relevance": ("lo", "hi")}, digits=4, names={"relevance": "relevance [95% CI]"})

# %% [markdown]
# ## Example patterns
#
# Whole patterns (every query against every key) of two heads on the first test prompt: the scratch
# model's layer-0 head with the most mass on numbers, and the fine-tuned model's head with the
# largest relevance statistic. The last row is the answer position.

# %%
#| label: fig-pattern-scratch
#| fig-cap: "Attention pattern of the scratch model's layer-0 head with the most mass on numbers, first test prompt (rows: queries, columns: keys; token labels coloured by type)."
scratch_head = int(claim_a.set_index("model").loc["scratch", "best_head"])
fig = attention_figures.pattern_figure(
    *attention.single_pattern(*models["scratch"], example, layer=0, head=scratch_head, bf16=analysis_bf16),
    title=f"scratch, layer 0, head {scratch_head}")

# %%
#| label: fig-pattern-finetuned
#| fig-cap: "Attention pattern of the fine-tuned model's head with the largest relevance statistic, first test prompt."
best_rel = relevance["fine-tuned"].sort_values("relevance", ascending=False).iloc[0]
ft_layer, ft_head = int(best_rel["layer"]), int(best_rel["head"])
fig = attention_figures.pattern_figure(
    *attention.single_pattern(*models["fine-tuned"], example, layer=ft_layer, head=ft_head, bf16=analysis_bf16),
    title=f"fine-tuned, layer {ft_layer}, head {ft_head}")

# %% [markdown]
# ## Explorer
#
# The explorer below shows every attention pattern of the three models, layer by layer and head by
# head, on the first test prompts of each context (a motion prompt and a color prompt). Choose the
# model, the layer, the head and the prompt; hover over a cell (or focus the heatmap and use the
# arrow keys) to read the query token, the key token and the attention probability. It is part
# of the page itself, drawn by the browser: it works in the rendered book without a Python kernel
# and without a network connection. Its patterns are stored to about 0.002 and the number of
# prompts is bounded (parameter `n_explorer_prompts`), so that the page stays small (at most
# 1.5 MB for the explorer).

# %%
#| echo: false
explorer_data = attention.explorer_patterns(models, trials, n_explorer_prompts, bf16=analysis_bf16)
web_explorer(explorer_data, model="scratch", layer=0, head=scratch_head)

# %% [markdown]
# In a running Jupyter session, the widget below browses the patterns of all the analysed test
# prompts, computing each on demand (its controls call Python, so the rendered book hides it).

# %%
#| output: false
explorer = attention_explorer(attention.PatternSource(models, trials, bf16=analysis_bf16), model="scratch",
                              layer=0, head=scratch_head)
explorer

# %% [markdown]
# ## Verdict

# %%
#| echo: false
display(Markdown("Whether the models' *accuracy* depends on these heads (the other half of Lin's account, "
                 "and the fine-tuned model's reliance on later layers) is tested causally by the head "
                 "ablations (@sec-ablation), not by attention patterns. The pretrained model's relevance "
                 "table is shown above for reference; the claim is about the trained models."))
show_verdicts(study, "04", [claims.number_attention_verdict(claim_a, difference=difference, gate=gates["scratch"])]
              + [claims.relevance_verdict(relevance[name], name, gate=gates[name]) for name in ("fine-tuned", "scratch")])

# %% [markdown]
# ## Exercises
#
# **Exercise 4.1: one head's attention pattern.** Write `attention_pattern(q, k)` returning the
# `(pos, pos)` attention probabilities of one head from its queries and keys, each `(pos, d_head)`
# (`Arch.qkv` gives them after the rotary embedding in Llama): the scaled dot products, each query
# masked to itself and earlier keys, a softmax over the keys. The check compares your pattern with
# the probabilities tiny random GPT-2 and Llama models return themselves.

# %%
#| code-fold: false
from helpers.exercises import check, show_solution


def attention_pattern(q, k):
    raise NotImplementedError       # your code here


check("04-attention", attention_pattern)

# %%
#| echo: false
show_solution("04-attention", show_solutions)

# %% [markdown]
# **Exercise 4.2: attention on a token type.** Write `answer_mass(pattern, types, kind)` returning
# the attention the answer position (the last row of one head's `(pos, pos)` pattern) puts on the
# tokens whose type (`types`, one per position) is `kind`, e.g. `"motion numbers"`.

# %%
#| code-fold: false
def answer_mass(pattern, types, kind):
    raise NotImplementedError       # your code here


check("04-answer-mass", answer_mass)

# %%
#| echo: false
show_solution("04-answer-mass", show_solutions)

# %% [markdown]
# ## Downloads
#
# The tables this chapter's figures and verdicts rest on, as CSV, and the executed notebook.

# %%
#| echo: false
from helpers.book.downloads import save_tables
save_tables(study, "04", {"first-layer-numbers": claim_a,
                       "relevance": pd.concat([r.assign(model=n) for n, r in relevance.items()], ignore_index=True),
                       "number-profile": pd.concat([p.assign(model=n) for n, p in profiles.items()], ignore_index=True)})
