# ---
# jupyter:
#   book:
#     needs:
#     - tokenizers
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The task: context-dependent decisions in text {#sec-task}
#
# Mante et al. (2013) trained monkeys to look at a patch of moving, coloured dots and to report
# either the net **motion** direction or the dominant **color**, depending on a cue. The same
# stimulus thus calls for different answers in different contexts: the animal has to *select* the
# relevant evidence stream and *integrate* it, ignoring the other. Lin (2024) turned this task into
# text prompts to compare a fine-tuned GPT-2 with GPT-2 trained from scratch.
#
# The paper's exact prompt format, value ranges and answer words are not public, so this book
# designs its own version and documents every choice here. All of it is a parameter of this
# chapter's study (the profile's `task_seed`, `n_samples` and `noise`) and of
# `helpers.tasks.decision.TaskConfig`.

# %% tags=["parameters"]
profile = "quick"
study_overrides = {}
show_solutions = True
tokenizer_sources = ["gpt2", "smollm2-135m"]
n_examples = 6
n_balance = 4000

# %%
#| echo: false
from helpers.book.kernel import take_parameters
take_parameters("01_task", globals())   # checked as the command line does; what is not given comes from the profile
from helpers.book.card import run_card
from helpers.figures.style import setup_notebook
from helpers.study import Study

setup_notebook()   # the book's figure style, high-resolution (retina) PNGs

study = Study.from_profile(profile, **study_overrides)
run_card(study, models=False, tokenizer_sources=tokenizer_sources, task_seed=study.task_seed,
         n_samples=study.n_samples, noise=study.noise, n_balance=n_balance)

# %% [markdown]
# ## One trial
#
# * A **context** word, `motion` or `color`, drawn with equal probability.
# * Two **evidence streams** with mean coherences drawn independently from the levels of
#   Mante et al.: motion $\pm 0.05, \pm 0.15, \pm 0.50$ and color $\pm 0.06, \pm 0.18, \pm 0.50$.
# * Each stream is shown as `n_samples` noisy samples: the mean plus Gaussian noise of standard
#   deviation `noise`, clipped to $[-0.99, 0.99]$ and written with a sign and two decimals.
# * The answer is ` right` when the **sum of the shown samples of the relevant stream** is positive
#   and ` left` when negative (exact zeros are re-drawn). The label is a function of the prompt, so
#   an ideal observer is always right; at low coherence the shown sum can disagree with the sign of
#   the stream's mean, which is why we label by what is shown.
# * Every trial carries its latent variables (context, signed coherences, motion and color sign,
#   choice, congruency: whether both streams' means point the same way).
#
# Training, validation and test trials come from independent random streams and never share a
# prompt; `python -m helpers task --n 100 --seed 0` writes trials with all latent variables as
# JSON lines, for anyone who wants to audit the labels.

# %%
import pandas as pd
from IPython.display import Markdown
from helpers.figures import task as task_figures
from helpers.models.sources import tokenizer_for
from helpers.tasks import decision, tokens

trials = study.trials("train", n_balance)
df = decision.trials_frame(trials)
pd.set_option("display.max_colwidth", 200)
df[["prompt", "answer", "context", "motion_coh", "color_coh", "congruent"]].head(n_examples)

# %% [markdown]
# ## How the tokenizers read a prompt
#
# A language model sees tokens, not numbers. How a tokenizer splits `+0.12` decides how hard it is
# to compare magnitudes: GPT-2's BPE merges the two decimals into one token, while SmolLM2 writes
# every digit as its own token. The two answer words must be single tokens in every tokenizer we
# use; `check_answer_tokens` raises an error otherwise.

# %%
#| label: fig-tokens
#| fig-cap: "One prompt as each tokenizer splits it (one box per token; ␣ marks a space)."
example = trials[0].prompt
tokenizers = {name: tokenizer_for(name) for name in tokenizer_sources}
fig = task_figures.tokenization(example, {name: decision.tokens_of(tok, example) for name, tok in tokenizers.items()})

# %%
tokens.tokenizer_table(tokenizers, trials[:200])

# %% [markdown]
# ## Balance
#
# Choices, contexts and congruency should each be close to 50/50, and the coherence levels
# uniform, so that no shortcut (such as always answering ` right`) does better than chance.

# %%
#| label: fig-balance
#| fig-cap: "Share of trials per value of each latent variable (dotted: perfect balance)."
df["relevant |coh|"] = df["relevant_coh"].abs()
fig = task_figures.balance(df, ["choice", "context", "congruent", "relevant |coh|"])

# %% [markdown]
# ## What simple strategies would score
#
# The ideal observer sums the relevant samples. The interesting baselines are the ones that
# *ignore the context*: they show how far a model can get without doing the task's defining
# computation. A model must beat them clearly before we can say it uses the context.

# %%
baselines = decision.baseline_table(trials)
baselines

# %%
#| echo: false
acc = dict(zip(baselines["strategy"], baselines["accuracy"]))
best_blind = decision.best_context_blind(baselines)
Markdown(f"""**Summary.** With these parameters an ideal observer is
{acc['ideal observer (sum of relevant samples)']:.0%} correct, counting the signs of the relevant
samples gets {acc['majority sign of relevant samples']:.1%}, and the best strategy that ignores the
context gets {best_blind:.1%}. Chapter 2 therefore treats accuracy clearly above
{best_blind:.0%} as evidence that a model uses the context.""")

# %% [markdown]
# ## Exercises
#
# Each exercise is a function you write in the cell below it; `check` runs it at once and says
# what differs from the book's own answer. The solution is folded under each exercise.
#
# **Exercise 1.1: the task's rule.** Write `answer_of(context, motion_samples, color_samples)`
# returning the trial's answer token: `" right"` when the shown samples of the stream the context
# names (`"motion"` or `"color"`) sum to more than zero, else `" left"`. The check compares it with
# the generator's answers on 200 trials.

# %%
#| code-fold: false
from helpers.exercises import check, show_solution


def answer_of(context, motion_samples, color_samples):
    raise NotImplementedError       # your code here


check("01-answer", answer_of)

# %%
#| echo: false
show_solution("01-answer", show_solutions)

# %% [markdown]
# **Exercise 1.2: a strategy that ignores the context.** Write `ignore_context_accuracy(trials,
# stream)` returning the share of `trials` answered right by always reading one stream (`"motion"`
# or `"color"`): the sign of the sum of its shown samples, whatever the context says. Why is this
# near 75%, and why must a model beat it before its internals can tell us how it uses the context?

# %%
#| code-fold: false
def ignore_context_accuracy(trials, stream):
    raise NotImplementedError       # your code here


check("01-ignore-context", ignore_context_accuracy)

# %%
#| echo: false
show_solution("01-ignore-context", show_solutions)

# %% [markdown]
# ## Downloads
#
# The tables this chapter's figures and verdicts rest on, as CSV, and the executed notebook.

# %%
#| echo: false
from helpers.book.downloads import save_tables
save_tables(study, "01", {"baselines": baselines, "trials": df})
