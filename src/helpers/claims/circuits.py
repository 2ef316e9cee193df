"""Prakash et al.'s circuit claims and Lin's read through cross-model patching:
``prakash-circuit-faithful`` (chapter 7), ``prakash-cmap-circuit`` and ``lin-cmap-pretrained``
(chapter 8), ``prakash-et-circuit-faithful`` (chapter 9), ``prakash-et-improves``,
``prakash-et-same-circuit`` and ``prakash-et-cmap`` (chapter 10), and Prakash et al.'s table
beside ours.  Inputs are the measurements of :mod:`helpers.interventions`."""
from __future__ import annotations

import numpy as np

from helpers.claims.verdict import Verdict, claim, solves_task, verdict
from helpers.stats.bootstrap import bootstrap_ci, percentile_interval, resample_indices

MAX_SHARE_OF_HEADS = 0.10        # "small": at most this share of the model's heads (Llama-7B's: 7%)

# Prakash et al. (2024), their table of 7-box entity tracking: model: (full model's top-1 accuracy,
# Llama-7B's circuit inside the model, faithfulness); random circuits about 0.00 throughout
PRAKASH_TABLE = {"Llama-7B": (0.66, 0.66, 1.00), "Vicuna-7B": (0.67, 0.65, 0.97),
                 "Goat-7B": (0.82, 0.73, 0.89), "FLoat-7B": (0.82, 0.72, 0.88)}
# the variants whose improvement over Llama-7B Prakash et al. report (``prakash-et-improves``)
PRAKASH_IMPROVED = ("Goat-7B", "FLoat-7B")


def circuit_comparison(evals: dict, analogues: dict[str, str | None]):
    """Prakash et al.'s table for our models: one row per evaluated model (name: a
    :class:`~helpers.interventions.circuits.CircuitEvaluation` of the base's circuit inside it) with
    the full model's and the circuit's accuracy (Wilson intervals), the mean of the random circuits,
    the faithfulness (paired bootstrap interval), and, beside it, the numbers Prakash et al. report
    for the model of their table it stands for (`analogues`: name -> ``PRAKASH_TABLE`` key or None)."""
    import pandas as pd
    rows = []
    for name, ev in evals.items():
        theirs = PRAKASH_TABLE.get(analogues.get(name) or "", (np.nan,) * 3)
        rows.append({"model name": name, "model": ev.model_accuracy, "model_lo": ev.model_accuracy_ci[0],
                     "model_hi": ev.model_accuracy_ci[1], "circuit": ev.accuracy, "circuit_lo": ev.accuracy_ci[0],
                     "circuit_hi": ev.accuracy_ci[1],
                     "random": float(ev.random.accuracy.mean()) if ev.random is not None else np.nan,
                     "faithfulness": ev.faithfulness, "faith_lo": ev.faithfulness_ci[0],
                     "faith_hi": ev.faithfulness_ci[1], "Prakash's model": analogues.get(name) or "",
                     "their full model": theirs[0], "their circuit": theirs[1], "their faithfulness": theirs[2]})
    return pd.DataFrame(rows)


def faithfulness_verdict(ev, n_model_heads: int, gate: str | None = None, claim_id: str = "prakash-circuit-faithful",
                         model: str = "fine-tuned", knob: str = "circuit_keep") -> Verdict:
    """``prakash-circuit-faithful`` (or `claim_id`, a claim with the same criterion:
    ``prakash-et-circuit-faithful`` of chapter 9) from a
    :class:`~helpers.interventions.circuits.CircuitEvaluation` of `model`'s circuit on held-out
    prompts; `knob` names the parameter that sets the circuit's size."""
    c = claim(claim_id)
    t = float(c.threshold)
    size = len(ev.circuit.heads)
    f, (lo, hi) = ev.faithfulness, ev.faithfulness_ci
    rnd = (f" Random circuits of the same group sizes: mean {ev.random.mean:.2f} (sd {ev.random.sd:.2f}, "
           f"{len(ev.random.faithfulness)} draws)." if ev.random is not None else "")
    evidence = (f"The circuit holds {size} of the model's {n_model_heads} heads ({size / n_model_heads:.0%}); "
                f"on {ev.n} held-out prompts it is right on {ev.accuracy:.1%} against the full model's "
                f"{ev.model_accuracy:.1%}: faithfulness {f:.2f} (95% CI {lo:.2f} to {hi:.2f}).{rnd}")
    status = None
    if size > MAX_SHARE_OF_HEADS * n_model_heads:
        status = "inconclusive"
        evidence += (f" A circuit of more than {MAX_SHARE_OF_HEADS:.0%} of the heads is not small: the claim is "
                     f"not judged on it (lower `{knob}`).")
    return verdict(c.id, model, f - t, lo - t, hi - t, evidence,
                   statistic=f"faithfulness minus {t:g}", gate=gate, status=status)


def cmap_circuit_verdict(outcomes: dict[str, np.ndarray], circuit_name: str = "circuit", gate: str | None = None,
                         n_boot: int = 2000, seed: int = 0, claim_id: str = "prakash-cmap-circuit",
                         model: str = "pretrained", receiver: str = "Pretrained model",
                         donor: str = "fine-tuned model") -> Verdict:
    """``prakash-cmap-circuit`` (or `claim_id`: ``prakash-et-cmap`` of chapter 10, `model` the
    donor variant) from the per-prompt outcomes of a CMAP into the `receiver` (``"A"``, ``"B"``, the
    circuit, ``"random i"``): :func:`~helpers.interventions.decision_circuit.cmap_table`,
    :func:`~helpers.interventions.entity_circuit.cmap_sets`.  Inconclusive when the donor is not
    better than the receiver: there is no advantage to move."""
    outcomes = {k: np.asarray(v, float) for k, v in outcomes.items()}
    randoms = [v for k, v in outcomes.items() if k.startswith("random ")]
    patched = outcomes.get(circuit_name)
    if patched is None or not randoms:
        return verdict(claim_id, model, float("nan"), float("nan"), float("nan"),
                       "No circuit head was found, so there is nothing to patch: not judged.",
                       statistic="circuit patch minus random patches", gate=gate, status="inconclusive")
    diff = np.asarray(patched, float) - np.mean(randoms, axis=0)
    lo, hi = bootstrap_ci(diff, np.mean, n_boot=n_boot, seed=seed)
    a, b = outcomes["A"].mean(), outcomes["B"].mean()
    evidence = (f"{receiver} alone {a:.1%}, {donor} {b:.1%}; with the {donor}'s circuit "
                f"head outputs patched in {patched.mean():.1%}; with {len(randoms)} random head sets of the same "
                f"size {np.mean(randoms):.1%} on average (range {min(r.mean() for r in randoms):.1%} to "
                f"{max(r.mean() for r in randoms):.1%}), on {len(diff)} held-out prompts.")
    status = None
    if not b > a:
        status = "inconclusive"
        evidence += f" The {donor} is not better than the receiver: there is no advantage to move, so the claim is not judged."
    return verdict(claim_id, model, float(diff.mean()), float(lo), float(hi), evidence,
                   statistic="accuracy, circuit patch minus random patches", gate=gate, status=status)


def moved_share(patched, a, b):
    """The share of B's advantage over A that a patch moves: ``(mean(patched) - mean(a)) /
    (mean(b) - mean(a))`` over the last axis (per-prompt outcomes), NaN where B is not better."""
    gap = b.mean(-1) - a.mean(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(gap > 0, (patched.mean(-1) - a.mean(-1)) / gap, np.nan)


def cmap_reliance_verdict(pretrained: dict[str, np.ndarray], scratch: dict[str, np.ndarray],
                          circuit_name: str = "circuit", gate: str | None = None, n_boot: int = 2000,
                          seed: int = 0) -> Verdict:
    """``lin-cmap-pretrained`` from the per-prompt CMAP outcomes of the fine-tuned circuit into the
    pretrained and into the scratch model (the same prompts, in the same order)."""
    stat = "moved share, pretrained minus scratch"
    if circuit_name not in pretrained or circuit_name not in scratch:
        return verdict("lin-cmap-pretrained", "pretrained vs scratch", float("nan"), float("nan"), float("nan"),
                       "No circuit head was found, so there is nothing to patch: not judged.", statistic=stat,
                       gate=gate, status="inconclusive")
    arr = {name: {k: np.asarray(v, float) for k, v in o.items()} for name, o in
           (("pretrained", pretrained), ("scratch", scratch))}
    if len(arr["pretrained"]["B"]) != len(arr["scratch"]["B"]) or not np.array_equal(arr["pretrained"]["B"], arr["scratch"]["B"]):
        raise ValueError("the two CMAP results must come from the same prompts (the donor's outcomes differ)")
    moved = {k: float(moved_share(o[circuit_name], o["A"], o["B"])) for k, o in arr.items()}
    text = {k: (f"{moved[k]:.0%}" if np.isfinite(moved[k]) else "undefined") for k in moved}
    evidence = (f"Fine-tuned model {arr['pretrained']['B'].mean():.1%}. Pretrained model {arr['pretrained']['A'].mean():.1%}, "
                f"with the circuit patched in {arr['pretrained'][circuit_name].mean():.1%} (share of the advantage moved: "
                f"{text['pretrained']}); scratch model {arr['scratch']['A'].mean():.1%}, with the same patch "
                f"{arr['scratch'][circuit_name].mean():.1%} ({text['scratch']}).")
    if not all(np.isfinite(v) for v in moved.values()):
        worse = [k for k, v in moved.items() if not np.isfinite(v)]
        return verdict("lin-cmap-pretrained", "pretrained vs scratch", float("nan"), float("nan"), float("nan"),
                       evidence + f" The {' and '.join(worse)} model{'s are' if len(worse) > 1 else ' is'} not worse than the fine-tuned model on these "
                       "prompts: there is no advantage to move, so the claim is not judged.",
                       statistic=stat, gate=gate, status="inconclusive")
    idx = resample_indices(len(arr["pretrained"]["B"]), n_boot, seed)
    boots = {k: moved_share(o[circuit_name][idx], o["A"][idx], o["B"][idx]) for k, o in arr.items()}
    diff = boots["pretrained"] - boots["scratch"]
    dropped = int(np.isnan(diff).sum())
    lo, hi = percentile_interval(diff, ignore_nan=True)
    evidence += (f" Percentile bootstrap over prompts ({n_boot} resamples, {dropped} dropped because a receiver "
                 f"was not worse than the donor in them).")
    return verdict("lin-cmap-pretrained", "pretrained vs scratch", moved["pretrained"] - moved["scratch"],
                   float(lo), float(hi), evidence, statistic=stat, gate=gate)


def learned_gate(model: str, run) -> str | None:
    """The learned-own-task gate of ``prakash-et-improves``: a variant trained here (`run`, a
    finished run; None for a variant given as a model source, whose fine-tuning is its makers')
    has learned the task it was fine-tuned on when its held-out accuracy on that task has a Wilson
    interval above chance (a uniform guess among the task's choices).  None when it passes, else
    the reason: a variant that learned nothing of arithmetic cannot say whether learning
    arithmetic improves entity tracking."""
    if run is None:
        return None
    from helpers.tasks.base import task_of
    task = task_of(run.config.task)
    passed, text = solves_task(run.predictions("test")["correct"].to_numpy(dtype=bool), task.config.chance)
    text = text.replace("the best context-blind strategy's", "chance,")
    return None if passed else f"the {model} variant has not learned the task it was fine-tuned on ({task.name}): {text}"


def improvement_verdict(base_correct, variant_correct, model: str, gate: str | None = None,
                        claim_id: str = "prakash-et-improves", n_boot: int = 2000, seed: int = 0) -> Verdict:
    """``prakash-et-improves``: the variant's top-1 accuracy minus the base's on the same prompts
    (per-prompt correctness, in the same order), percentile bootstrap over prompts."""
    base = np.asarray(base_correct, float)
    var = np.asarray(variant_correct, float)
    if base.shape != var.shape:
        raise ValueError(f"the base and the variant must be scored on the same prompts: shapes {base.shape} and {var.shape}")
    diff = var - base
    lo, hi = bootstrap_ci(diff, np.mean, n_boot=n_boot, seed=seed)
    evidence = (f"Base {base.mean():.1%}, {model} variant {var.mean():.1%} on the same {len(diff)} held-out prompts "
                f"(difference {diff.mean():+.1%}, 95% CI {lo:+.1%} to {hi:+.1%}).")
    return verdict(claim_id, model, float(diff.mean()), float(lo), float(hi), evidence,
                   statistic="top-1 accuracy, variant minus base", gate=gate)
