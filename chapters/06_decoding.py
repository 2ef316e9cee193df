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
# # Decoding the task variables {#sec-decoding}
#
# Lin (2024) makes three claims about what the fine-tuned network's activations carry:
#
# 1. **The last layer encodes the task variables.** Context, motion sign, color sign and choice can
#    be read out of the last layer's hidden states with logistic regression, token by token, and
#    this changes with fine-tuning.
# 2. **Single units show mixed selectivity** [@rigotti2013importance]: after fine-tuning, many units
#    respond to several task variables at once, as neurons of prefrontal cortex do
#    [@mante2013context].
# 3. **Attention heads carry the response type**: a linear SVM reads it from single heads' outputs.
#
# We test each on held-out test trials, for the model before fine-tuning (**pretrained**), after it
# (**fine-tuned**) and the same architecture trained from scratch (**scratch**).
#
# **Variables.** `context` (motion / color), `motion_sign` and `color_sign` (the sign of each
# stream's mean coherence), `choice` (the correct answer, ` right` / ` left`). The **response type**
# is context x choice: four classes, *motion-left, motion-right, color-left, color-right*, i.e. which
# stream the trial asks for and which answer that stream gives. A second head target is
# **congruent vs incongruent** (do both streams point the same way?), which needs both signs at once.
#
# **Design decisions.**
#
# * *States.* The residual stream after each layer (layer 0 = embeddings; the last layer is read
#   before the final norm, see @sec-representations). Prompts have one token length, so positions
#   align across trials; the answer position is the last token.
# * *Decoder.* L2 logistic regression on standardised units. The outer loop is a `cv_folds`-fold
#   cross-validation; inside each outer training fold the regularisation `C` is chosen from
#   {0.001, 0.01, 0.1, 1, 10} by a 3-fold inner cross-validation of that fold only, so the held-out
#   fold never influences any choice. Accuracy is the mean over outer folds, with a 95% Wilson
#   interval over the pooled held-out predictions. The solver is exact and checked against
#   scikit-learn's `LogisticRegression`; it fits all variables, label shuffles and values of `C` of
#   one position in one batched Newton solve, which makes thousands of nested cross-validations
#   affordable on a CPU.
# * *Chance.* `n_shuffles` permutations of the trials' labels (all variables permuted jointly, the
#   same permutations at every position and layer) go through the same outer folds with the `C`
#   chosen for the real labels; their mean accuracy is the dashed line.
# * *Mixed selectivity.* The variables are correlated by design (the choice *is* the relevant
#   stream's sign on most trials), so testing each variable on its own would credit a unit that only
#   encodes the choice with motion or color selectivity as well. For every unit we fit **one** linear
#   regression on all four variables and test each coefficient (t-test), correcting all units x
#   variables together (Holm, family-wise 5%, the book's one multiplicity policy). The baseline repeats this with the trials' variables
#   permuted. The residual stream has no privileged basis, so we also repeat it after a random
#   rotation of the units: if rotated "units" are just as mixed, mixed selectivity says more about the
#   basis than about the network.
# * *Heads.* Each head's output `z` (before the output projection), read with the architecture
#   adapter's typed hook point, at the answer position; a linear SVM (one-vs-rest, `C` = 1,
#   standardised units, `cv_folds`-fold stratified cross-validation) per head. Heads significantly
#   above the majority-class rate are marked (binomial test, Holm over heads). The verdict asks
#   more: the response type is context x choice, and a head that knows only one of them already
#   reaches about 50% on the four classes, so the claim is judged against that one-factor baseline.

# %% tags=["parameters"]
profile = "quick"
study_overrides = {}
show_solutions = True
n_analysis = 200
analysis_bf16 = False
cv_folds = 5
n_shuffles = 5

# %%
#| echo: false
from helpers.book.kernel import take_parameters
take_parameters("06_decoding", globals())   # checked as the command line does; what is not given comes from the profile
from helpers.book.card import run_card
from helpers.figures.style import setup_notebook
from helpers.study import Study

setup_notebook()   # the book's figure style, high-resolution (retina) PNGs

study = Study.from_profile(profile, **study_overrides)
run_card(study, n_analysis=n_analysis, n_train=max(study.train_sizes), seed=study.seeds[0],
         analysis_bf16=analysis_bf16, cv_folds=cv_folds, n_shuffles=n_shuffles)

# %%
import pandas as pd
from IPython.display import Markdown, display
from helpers.book.scorecard import show_verdicts
from helpers.claims import decoding as claims
from helpers.claims.verdict import alpha, gate_note, task_gates
from helpers.figures import decoding as decoding_figures
from helpers.readouts import activations, heads as head_decoders, probes, selectivity as sel
from helpers.study import ANALYSED_MODELS as MODELS
from helpers.stats.permutation import min_shuffles
from helpers.tasks.decision import DECODED, HEAD_TARGETS, one_factor_baseline, task_variables

runs = study.selected_runs()
gates = task_gates(runs, study.trials("test", study.n_test))
display(Markdown(gate_note(gates)))
trials = study.trials("test", n_analysis)
variables = task_variables(trials)
seed = study.task_seed          # seeds folds, shuffles and the random rotation
counts = variables["response_type"].value_counts()
Markdown(f"Analysed: **{len(trials)}** held-out test trials ({', '.join(f'{k}: {v}' for k, v in counts.items())}); "
         f"fine-tuned lr = {runs['fine-tuned'].config.lr:g}, scratch lr = {runs['scratch'].config.lr:g}, "
         f"both at N = {max(study.train_sizes)}.")

# %%
acts = {}
for name in MODELS:   # one forward pass per batch gives all three selections
    model, tok = study.load(name, runs)
    acts[name] = activations.collect_activations(model, tok, trials,
                                                 {"by_position": ([-1], "all"), "by_layer": (None, "last")},
                                                 heads_position=-1, bf16=analysis_bf16)
    labels = activations.token_labels(tok, [t.prompt for t in trials])
    del model

# %% [markdown]
# ## Along the prompt (last layer)
#
# At each token position, how well does the last layer's state predict each variable? A variable can
# only be decodable once the tokens that define it have been read (causal attention): the context
# from its word on, each sign from its stream on, the choice from the relevant stream on.

# %%
#| label: fig-decode-position
#| fig-cap: "Cross-validated logistic-regression accuracy of each variable from the last layer's residual stream at every token position (bands: 95% Wilson intervals; dashed: the same decoder on shuffled labels; dotted: 50%). Tokens that differ between trials are shown as their alternatives (`+| -`) or `#` (digits)."
by_position = pd.concat([probes.decode_by_position(acts[m]["by_position"], variables, labels=labels,
                                                   cv_folds=cv_folds, n_shuffles=n_shuffles, seed=seed).assign(model=m)
                         for m in MODELS], ignore_index=True)
fig = decoding_figures.plot_by_position(by_position, labels, DECODED)

# %% [markdown]
# ## Across layers (answer position)

# %%
#| label: fig-decode-layer
#| fig-cap: "Decoding accuracy at the answer position after every layer (0 = embeddings; the last point is the last layer). Bands: 95% Wilson intervals; dashed: shuffled labels."
by_layer = pd.concat([probes.decode_by_layer(acts[m]["by_layer"], variables, cv_folds=cv_folds,
                                             n_shuffles=n_shuffles, seed=seed).assign(model=m)
                      for m in MODELS], ignore_index=True)
fig = decoding_figures.plot_by_layer(by_layer, DECODED)

# %%
last = by_layer[by_layer["layer"] == by_layer["layer"].max()]
last.pivot(index="variable", columns="model", values="accuracy").loc[list(DECODED), list(MODELS)].round(3)

# %% [markdown]
# ## Mixed selectivity of single units
#
# Units of the last layer at the answer position. How correlated the four regressors are (variance
# inflation factor; 1 = uncorrelated, above 5 would make single coefficients unreliable):

# %%
sel.variance_inflation(variables).round(2).to_frame("VIF").T

# %%
#| label: fig-mixed
#| fig-cap: "Share of last-layer units (answer position) selective for 0 to 4 task variables: one joint regression per unit on context, motion sign, color sign and choice, each coefficient tested, Holm over units x variables at 5%. Black marks: the same after permuting the trials' variables (mean +- sd over shuffles)."
last_layer = {m: acts[m]["by_layer"][:, -1, 0] for m in MODELS}
mixed = {m: sel.mixed_selectivity(X, variables, n_shuffles=n_shuffles, seed=seed) for m, X in last_layer.items()}
fig = decoding_figures.plot_mixed_selectivity(mixed)

# %%
rotation = sel.random_rotation(last_layer["fine-tuned"].shape[1], seed=seed)
rotated = sel.mixed_selectivity(last_layer["fine-tuned"] @ rotation, variables, n_shuffles=0)
sel.selectivity_table(mixed, rotated).round(3)

# %% [markdown]
# ## Response types from single attention heads

# %%
#| label: fig-heads
#| fig-cap: "Cross-validated accuracy of a linear SVM reading the response type (top: context x choice, 4 classes) and congruency (bottom) from each head's output at the answer position, per layer and head. The colour scale starts at the majority-class rate; white dots: heads significantly above it (binomial test, Holm over heads, 5%)."
heads = {}
for m in MODELS:
    for target in HEAD_TARGETS:
        heads[(m, target)] = head_decoders.head_decoding(acts[m]["z"], variables[target].to_numpy(),
                                                         cv_folds=cv_folds, seed=seed)
fig = decoding_figures.plot_head_heatmaps(heads)

# %%
head_decoders.head_summary(heads).round(3)

# %% [markdown]
# ## Verdict

# %%
#| echo: false
correct = {m: probes.held_out_correct(last_layer[m], variables, cv_folds=cv_folds, seed=seed) for m in MODELS}
n_perm = max(n_shuffles, min_shuffles(alpha()))      # the permutation test needs enough shuffles for alpha
shuffled_ft = sel.shuffled_mixed_fractions(last_layer["fine-tuned"], variables, n_shuffles=n_perm, seed=seed)
mixed_fraction = {m: sel.mixed_summary(t)["mixed"] for m, t in mixed.items()}
boot_diff = sel.mixed_difference_bootstrap(last_layer["fine-tuned"], last_layer["pretrained"], variables, seed=seed)
baseline = one_factor_baseline(variables)
show_verdicts(study, "06", [
    claims.decoding_verdict(correct, gate=gates["fine-tuned"], seed=seed),
    claims.mixed_selectivity_verdict(mixed_fraction, boot_diff, shuffled_ft, sel.mixed_summary(rotated)["mixed"],
                                     gate=gates["fine-tuned"]),
    claims.head_verdict(heads, baseline, gate=gates["fine-tuned"])])

# %% [markdown]
# ## Exercises
#
# **Exercise 6.1: standardise without leaking.** Each decoder standardises the units before it is
# fitted, inside each cross-validation fold. Write `standardize(Xtr, Xte)` returning both sets of
# rows scaled with the *training* rows' mean and standard deviation, a unit that is constant on the
# training rows only centred. Why would statistics of all rows flatter a decoder?

# %%
#| code-fold: false
from helpers.exercises import check, show_solution


def standardize(Xtr, Xte):
    raise NotImplementedError       # your code here


check("06-standardize", standardize)

# %%
#| echo: false
show_solution("06-standardize", show_solutions)

# %% [markdown]
# **Exercise 6.2: a unit's selectivity.** A unit is selective for a task variable when its
# activation's regression coefficient on that variable is significant. Write
# `regression_t(design, Y)` returning `(coef, pvalues)`, each `(units, variables)`: ordinary least
# squares of every column of `Y` on `design` (an intercept column first, then the variables) and the
# two-sided t-test p-value of each non-intercept coefficient. How many degrees of freedom do the
# residuals have?

# %%
#| code-fold: false
def regression_t(design, Y):
    raise NotImplementedError       # your code here


check("06-regression-t", regression_t)

# %%
#| echo: false
show_solution("06-regression-t", show_solutions)

# %% [markdown]
# ## Downloads
#
# The tables this chapter's figures and verdicts rest on, as CSV, and the executed notebook.

# %%
#| echo: false
from helpers.book.downloads import save_tables
save_tables(study, "06", {"by-position": by_position, "by-layer": by_layer,
                       "mixed-selectivity": pd.concat([t.assign(model=m) for m, t in mixed.items()], ignore_index=True),
                       "heads": pd.concat([t.assign(model=m, target=target) for (m, target), t in heads.items()],
                                          ignore_index=True)})
