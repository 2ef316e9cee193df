CELLS = [
("md", r'''
# The task: context-dependent decisions in text {#sec-task}

Mante et al. (2013) trained monkeys to look at a patch of moving, coloured dots and to report
either the net **motion** direction or the dominant **color**, depending on a cue. The same
stimulus thus calls for different answers in different contexts: the animal has to *select* the
relevant evidence stream and *integrate* it, ignoring the other. Lin (2024) turned this task into
text prompts to compare a fine-tuned GPT-2 with GPT-2 trained from scratch.

The paper's exact prompt format, value ranges and answer words are not public, so this book
designs its own version and documents every choice here. All of it is a parameter of this
chapter (see the cell tagged `parameters`) and of `helpers.task.TaskConfig`.
'''),
("parameters", r'''
profile = "quick"
task_seed = 0
n_samples = 4
noise = 0.2
tokenizer_sources = ["gpt2", "smollm2-135m"]
n_examples = 6
n_balance = 4000
'''),
("code", r'''
#| echo: false
from helpers.book import run_card
run_card(profile=profile, tokenizer_sources=tokenizer_sources, task_seed=task_seed,
         n_samples=n_samples, noise=noise, n_balance=n_balance)
'''),
("md", r'''
## One trial

* A **context** word, `motion` or `color`, drawn with equal probability.
* Two **evidence streams** with mean coherences drawn independently from the levels of
  Mante et al.: motion $\pm 0.05, \pm 0.15, \pm 0.50$ and color $\pm 0.06, \pm 0.18, \pm 0.50$.
* Each stream is shown as `n_samples` noisy samples: the mean plus Gaussian noise of standard
  deviation `noise`, clipped to $[-0.99, 0.99]$ and written with a sign and two decimals.
* The answer is ` right` when the **sum of the shown samples of the relevant stream** is positive
  and ` left` when negative (exact zeros are re-drawn). The label is a function of the prompt, so
  an ideal observer is always right; at low coherence the shown sum can disagree with the sign of
  the stream's mean, which is why we label by what is shown.
* Every trial carries its latent variables (context, signed coherences, motion and color sign,
  choice, congruency: whether both streams' means point the same way).

Training, validation and test trials come from independent random streams and never share a
prompt; `python -m helpers task --n 100 --seed 0` writes trials with all latent variables as
JSON lines, for anyone who wants to audit the labels.
'''),
("code", r'''
import numpy as np
import pandas as pd
from helpers import figures
from helpers.task import TaskConfig, make_splits, trials_frame, baseline_predictions, tokens_of, check_answer_tokens
from helpers.sources import tokenizer_for
from helpers.evaluation import wilson_ci

cfg = TaskConfig(n_samples=n_samples, noise=noise, seed=task_seed)
trials = make_splits(cfg, n_train=n_balance, n_val=0, n_test=0)["train"]
df = trials_frame(trials)
pd.set_option("display.max_colwidth", 200)
df[["prompt", "answer", "context", "motion_coh", "color_coh", "congruent"]].head(n_examples)
'''),
("md", r'''
## How the tokenizers read a prompt

A language model sees tokens, not numbers. How a tokenizer splits `+0.12` decides how hard it is
to compare magnitudes: GPT-2's BPE merges the two decimals into one token, while SmolLM2 writes
every digit as its own token. The two answer words must be single tokens in every tokenizer we
use; `check_answer_tokens` raises an error otherwise.
'''),
("code", r'''
#| label: fig-tokens
#| fig-cap: "One prompt as each tokenizer splits it (one box per token; ␣ marks a space)."
example = trials[0].prompt
toks = {}
rows = []
for name in tokenizer_sources:
    tok = tokenizer_for(name)
    toks[name] = tokens_of(tok, example)
    ids = check_answer_tokens(tok, name)
    lengths = [len(tok.encode(t.prompt, add_special_tokens=False)) for t in trials[:200]]
    rows.append({"tokenizer": name, "answer ids (right, left)": (ids[1], ids[-1]),
                 "prompt tokens (mean)": np.mean(lengths), "min": min(lengths), "max": max(lengths)})
fig = figures.tokenization(example, toks)
'''),
("code", r'''
pd.DataFrame(rows)
'''),
("md", r'''
## Balance

Choices, contexts and congruency should each be close to 50/50, and the coherence levels
uniform, so that no shortcut (such as always answering ` right`) does better than chance.
'''),
("code", r'''
#| label: fig-balance
#| fig-cap: "Share of trials per value of each latent variable (dotted: perfect balance)."
df["relevant |coh|"] = df["relevant_coh"].abs()
fig = figures.balance(df, ["choice", "context", "congruent", "relevant |coh|"])
'''),
("md", r'''
## What simple strategies would score

The ideal observer sums the relevant samples. The interesting baselines are the ones that
*ignore the context*: they show how far a model can get without doing the task's defining
computation. A model must beat them clearly before we can say it uses the context.
'''),
("code", r'''
y = df["choice"].to_numpy()
base = []
for name, pred in baseline_predictions(trials).items():
    k = int((pred == y).sum())
    lo, hi = wilson_ci(k, len(y))
    base.append({"strategy": name, "accuracy": k / len(y), "95% CI": f"[{lo:.3f}, {hi:.3f}]"})
baselines = pd.DataFrame(base)
baselines
'''),
("code", r'''
#| echo: false
from IPython.display import Markdown
acc = dict(zip(baselines["strategy"], baselines["accuracy"]))
best_blind = max(v for k, v in acc.items() if k.startswith("ignore context"))
Markdown(f"""**Summary.** With these parameters an ideal observer is
{acc['ideal observer (sum of relevant samples)']:.0%} correct, counting the signs of the relevant
samples gets {acc['majority sign of relevant samples']:.1%}, and the best strategy that ignores the
context gets {best_blind:.1%}. Chapter 2 therefore treats accuracy clearly above
{best_blind:.0%} as evidence that a model uses the context.""")
'''),
]
