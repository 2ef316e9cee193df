"""Prakash et al.'s circuit claims and Lin's read through cross-model patching:
``prakash-circuit-faithful`` (chapter 7), ``prakash-cmap-circuit`` and ``lin-cmap-pretrained``
(chapter 8), ``prakash-et-circuit-faithful`` (chapter 9), ``prakash-et-improves``,
``prakash-et-same-circuit`` and ``prakash-et-cmap`` (chapter 10), and Prakash et al.'s table
beside ours.  Inputs are the measurements of :mod:`helpers.interventions`."""
from __future__ import annotations

import numpy as np

from helpers.claims.verdict import (Verdict, claim, combine_gates, decide, gate_threshold, solves_task, verdict,
                                    with_robustness)
from helpers.interventions.circuits import faithfulness_ci
from helpers.interventions.cmap import moved_share
from helpers.stats.bootstrap import bootstrap_ci, percentile_interval, resample_indices

MAX_SHARE_OF_HEADS = 0.10        # "small": at most this share of the model's heads (Llama-7B's: 7%)

# Prakash et al. (2024), their table of 7-box entity tracking: model: (full model's top-1 accuracy,
# Llama-7B's circuit inside the model, faithfulness); random circuits about 0.00 throughout
PRAKASH_TABLE = {"Llama-7B": (0.66, 0.66, 1.00), "Vicuna-7B": (0.67, 0.65, 0.97),
                 "Goat-7B": (0.82, 0.73, 0.89), "FLoat-7B": (0.82, 0.72, 0.88)}
# the variants whose improvement over Llama-7B Prakash et al. report (``prakash-et-improves``)
PRAKASH_IMPROVED = ("Goat-7B", "FLoat-7B")
LEARNED = "learned-own-task"


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
                         model: str = "fine-tuned", knob: str = "circuit_keep", floor: float | None = None,
                         n_boot: int = 2000, seed: int = 0, outcomes=None, metric: str = "accuracy") -> Verdict:
    """``prakash-circuit-faithful`` (or `claim_id`, a claim with the same criterion:
    ``prakash-et-circuit-faithful`` of chapter 9, ``prakash-et-same-circuit`` of chapter 10) from a
    :class:`~helpers.interventions.circuits.CircuitEvaluation` of `model`'s circuit on held-out
    prompts; `knob` names the parameter that sets the circuit's size.

    The statistic is the faithfulness **above the floor** (the claim's ``floor`` in
    ``claims.yaml``): ``(circuit - floor) / (model - floor)``, the share of the model's accuracy
    above what a circuit blind to the task's input gets (`floor`, an accuracy on the same prompts:
    the best context-blind strategy's for the decision task, 1 / boxes for entity tracking).  Prakash
    et al.'s plain ratio circuit / model credits a blind circuit with the accuracy blindness gets (a
    circuit that ignores the context scored 0.8 of a 94% model).  Without a floor the claim is not
    judged (fail closed).  `outcomes` (circuit, model), per prompt, replace the evaluation's
    correctness to judge the same rule on another `metric` (the probability of the answer)."""
    c = claim(claim_id)
    t = float(c.threshold)
    size = len(ev.circuit.heads)
    rnd = (f" Random circuits of the same group sizes: mean plain ratio {ev.random.mean:.2f} (sd {ev.random.sd:.2f}, "
           f"{len(ev.random.faithfulness)} draws)." if ev.random is not None else "")
    plain = (f"on {ev.n} held-out prompts it is right on {ev.accuracy:.1%} against the full model's "
             f"{ev.model_accuracy:.1%} (plain ratio {ev.faithfulness:.2f})")
    stat = f"faithfulness above the floor, minus {t:g}"
    if floor is None or not np.isfinite(floor):
        return verdict(c.id, model, np.nan, np.nan, np.nan,
                       f"The circuit holds {size} of the model's {n_model_heads} heads; {plain}. No floor was given "
                       f"({c.floor}): faithfulness is not judged without it.", statistic=stat, gate=gate,
                       status="inconclusive")
    circ, full = (ev.correct, ev.model_correct) if outcomes is None else outcomes
    f, lo, hi = faithfulness_ci(circ, full, n_boot=n_boot, seed=seed, floor=float(floor))
    if outcomes is not None:
        plain = (f"on {ev.n} held-out prompts its mean {metric} is {np.mean(circ):.3f} against the full model's "
                 f"{np.mean(full):.3f}")
    evidence = (f"The circuit holds {size} of the model's {n_model_heads} heads ({size / n_model_heads:.0%}); {plain}. "
                f"Floor ({c.floor if outcomes is None else 'the same metric with no head kept'}): {floor:.3f}. Faithfulness above the floor, (circuit - floor) / (model - floor): "
                f"{f:.2f} (95% CI {lo:.2f} to {hi:.2f}).{rnd}")
    status = None
    if not np.isfinite(f):
        status = "inconclusive"
        evidence += " The model is not above the floor: there is nothing for a circuit to be faithful to."
    elif size > MAX_SHARE_OF_HEADS * n_model_heads:
        status = "inconclusive"
        evidence += (f" A circuit of more than {MAX_SHARE_OF_HEADS:.0%} of the heads is not small: the claim is "
                     f"not judged on it (lower `{knob}`).")
    return verdict(c.id, model, f - t, lo - t, hi - t, evidence, statistic=stat, gate=gate, status=status)


def faithfulness_with_robustness(ev, n_model_heads: int, floor: float | None, *, ev_zero=None, ev_empty=None,
                                 **kw) -> Verdict:
    """:func:`faithfulness_verdict` of `ev` with its robustness: the same rule on the circuit
    evaluated with the other heads zero-ablated (`ev_zero`, the same prompts) and on the probability
    of the answer instead of accuracy, with the floor that metric has when no head is kept
    (`ev_empty`: the empty circuit under the same ablation; Wang et al. 2023's normalisation)."""
    main = faithfulness_verdict(ev, n_model_heads, floor=floor, **kw)
    alternatives = {}
    if ev_zero is not None:
        alternatives["zero-ablation of the other heads"] = [faithfulness_verdict(ev_zero, n_model_heads, floor=floor, **kw)]
    if ev_empty is not None:
        alternatives["probability of the answer (floor: no head kept)"] = [faithfulness_verdict(
            ev, n_model_heads, floor=float(np.mean(ev_empty.p_correct)), outcomes=(ev.p_correct, ev.model_p_correct),
            metric="probability of the answer", **kw)]
    return with_robustness([main], alternatives)[0]


def context_blind_floor(trials) -> float:
    """The floor of ``prakash-circuit-faithful``: the best context-blind strategy's accuracy on
    `trials` (chapter 1's baselines), what a circuit blind to the context can reach."""
    from helpers.tasks.decision import baseline_table, best_context_blind
    return float(best_context_blind(baseline_table(trials)))


def query_blind_floor(n_boxes: int) -> float:
    """The floor of the entity-tracking faithfulness claims: 1 / boxes, what a circuit that
    ignores the query gets."""
    return 1.0 / int(n_boxes)


def donor_gate(a, b, donor: str, receiver: str, n_boot: int = 2000, seed: int = 0) -> str | None:
    """The ``donor-better`` gate of a cross-model patch: None when the donor's per-prompt outcomes
    `b` beat the receiver's `a` on the same prompts with a paired bootstrap 95% interval above 0;
    else the reason (a donor barely better than its receiver has no advantage a patch could be
    seen to move)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = b - a
    lo, hi = bootstrap_ci(d, np.mean, n_boot=n_boot, seed=seed)
    if np.isfinite(lo) and lo > 0:
        return None
    return (f"the {donor} is not confidently better than the {receiver} on these prompts ({b.mean():.1%} against "
            f"{a.mean():.1%}, difference {d.mean():+.1%}, 95% CI {lo:+.1%} to {hi:+.1%}): there is no advantage to move")


def _both(*statuses: str) -> str:
    """A claim that needs every condition (an intersection-union test, each at alpha): replicated
    when all are, not replicated when any one is, else inconclusive."""
    if all(s == "replicated" for s in statuses):
        return "replicated"
    if any(s == "not replicated" for s in statuses):
        return "not replicated"
    return "inconclusive"


def cmap_circuit_verdict(outcomes: dict[str, np.ndarray], circuit_name: str = "circuit", gate: str | None = None,
                         n_boot: int = 2000, seed: int = 0, claim_id: str = "prakash-cmap-circuit",
                         model: str = "pretrained", receiver: str = "Pretrained model",
                         donor: str = "fine-tuned model") -> Verdict:
    """``prakash-cmap-circuit`` (or `claim_id`: ``prakash-et-cmap`` of chapter 10, `model` the
    donor variant) from the per-prompt outcomes of a CMAP into the `receiver` (``"A"``, ``"B"``, the
    circuit, ``"random i"``): :func:`~helpers.interventions.decision_circuit.cmap_table`,
    :func:`~helpers.interventions.entity_circuit.cmap_sets`.

    Two conditions, both decided by the book's rule with the claim's material effect: the circuit's
    patch **lifts the receiver** (patched minus the receiver alone) and it **beats random head
    sets** of its size (the headline statistic).  Beating random sets alone is not enough: random
    patches that only damage make a patch that changes nothing look good.  Gated on the donor being
    better than the receiver (:func:`donor_gate`, an interval, not point estimates)."""
    outcomes = {k: np.asarray(v, float) for k, v in outcomes.items()}
    randoms = [v for k, v in outcomes.items() if k.startswith("random ")]
    patched = outcomes.get(circuit_name)
    stat = "accuracy, circuit patch minus random patches"
    if patched is None or not randoms or "A" not in outcomes or "B" not in outcomes:
        missing = "no circuit head was found, so there is nothing to patch" if patched is None else \
            "the random patches or the unpatched models are missing"
        return verdict(claim_id, model, float("nan"), float("nan"), float("nan"),
                       f"Not judged: {missing}.", statistic=stat, gate=gate, status="inconclusive")
    a, b = outcomes["A"], outcomes["B"]
    diff = patched - np.mean(randoms, axis=0)
    lo, hi = bootstrap_ci(diff, np.mean, n_boot=n_boot, seed=seed)
    lift = patched - a
    l_lo, l_hi = bootstrap_ci(lift, np.mean, n_boot=n_boot, seed=seed)
    material = claim(claim_id).material
    beats, lifts = decide(float(diff.mean()), lo, hi, material), decide(float(lift.mean()), l_lo, l_hi, material)
    evidence = (f"{receiver} alone {a.mean():.1%}, {donor} {b.mean():.1%}; with the {donor}'s circuit "
                f"head outputs patched in {patched.mean():.1%}; with {len(randoms)} random head sets of the same "
                f"size {np.mean(randoms):.1%} on average (range {min(r.mean() for r in randoms):.1%} to "
                f"{max(r.mean() for r in randoms):.1%}), on {len(diff)} held-out prompts. Lift of the receiver by the "
                f"circuit's patch {lift.mean():+.1%} (95% CI {l_lo:+.1%} to {l_hi:+.1%}): {lifts}; the patch against "
                f"random sets: {beats}. Both must hold.")
    donor_failed = donor_gate(a, b, donor, receiver.lower(), n_boot=n_boot, seed=seed)
    return verdict(claim_id, model, float(diff.mean()), float(lo), float(hi), evidence, statistic=stat,
                   gate=combine_gates({"donor": donor_failed, "model": gate}, ["donor", "model"]),
                   status=_both(beats, lifts))


def cmap_reliance_verdict(pretrained: dict[str, np.ndarray], scratch: dict[str, np.ndarray],
                          circuit_name: str = "circuit", gate: str | None = None, n_boot: int = 2000,
                          seed: int = 0) -> Verdict:
    """``lin-cmap-pretrained`` from the per-prompt CMAP outcomes of the fine-tuned circuit into the
    pretrained and into the scratch model (the same prompts, in the same order).

    Two conditions: the pretrained model's **own** moved share is material (its interval above 0,
    the estimate at least the claim's material effect: a receiver that barely moves cannot be what
    the fine-tuned model relies on, however badly the scratch model fares), and it exceeds the
    scratch model's by the material effect.  Gated on the donor being confidently better than each
    receiver (:func:`donor_gate`)."""
    c = claim("lin-cmap-pretrained")
    stat = "moved share, pretrained minus scratch"
    if circuit_name not in pretrained or circuit_name not in scratch:
        return verdict(c.id, "pretrained vs scratch", float("nan"), float("nan"), float("nan"),
                       "No circuit head was found, so there is nothing to patch: not judged.", statistic=stat,
                       gate=gate, status="inconclusive")
    arr = {name: {k: np.asarray(v, float) for k, v in o.items()} for name, o in
           (("pretrained", pretrained), ("scratch", scratch))}
    if len(arr["pretrained"]["B"]) != len(arr["scratch"]["B"]) or not np.allclose(arr["pretrained"]["B"], arr["scratch"]["B"],
                                                                                    rtol=1e-5, atol=1e-7):
        raise ValueError("the two CMAP results must come from the same prompts (the donor's outcomes differ)")
    moved = {k: moved_share(o[circuit_name], o["A"], o["B"]) for k, o in arr.items()}
    text = {k: (f"{moved[k]:.0%}" if np.isfinite(moved[k]) else "undefined") for k in moved}
    evidence = (f"Fine-tuned model {arr['pretrained']['B'].mean():.1%}. Pretrained model {arr['pretrained']['A'].mean():.1%}, "
                f"with the circuit patched in {arr['pretrained'][circuit_name].mean():.1%} (share of the advantage moved: "
                f"{text['pretrained']}); scratch model {arr['scratch']['A'].mean():.1%}, with the same patch "
                f"{arr['scratch'][circuit_name].mean():.1%} ({text['scratch']}).")
    donors = {k: donor_gate(o["A"], o["B"], "fine-tuned model", f"{k} model", n_boot=n_boot, seed=seed)
              for k, o in arr.items()}
    gates = combine_gates({**donors, "model": gate}, ["pretrained", "scratch", "model"])
    if not all(np.isfinite(v) for v in moved.values()):
        return verdict(c.id, "pretrained vs scratch", float("nan"), float("nan"), float("nan"),
                       evidence + " A receiver is not worse than the fine-tuned model: no advantage to move.",
                       statistic=stat, gate=gates or "a receiver is not worse than the donor", status="inconclusive")
    idx = resample_indices(len(arr["pretrained"]["B"]), n_boot, seed)
    boots = {k: moved_share(o[circuit_name][idx], o["A"][idx], o["B"][idx]) for k, o in arr.items()}
    diff = boots["pretrained"] - boots["scratch"]
    dropped = int(np.isnan(diff).sum())
    lo, hi = percentile_interval(diff, ignore_nan=True)
    p_lo, p_hi = percentile_interval(boots["pretrained"], ignore_nan=True)
    own = decide(moved["pretrained"], float(p_lo), float(p_hi), c.material)
    rel = decide(moved["pretrained"] - moved["scratch"], float(lo), float(hi), c.material)
    if dropped > (1 - 0.95) / 2 * n_boot:
        own = rel = "inconclusive"
        evidence += (f" In {dropped} of {n_boot} resamples a receiver was not worse than the donor: the shares are "
                     f"too unstable to judge.")
    evidence += (f" The pretrained model's own share: 95% CI {p_lo:.0%} to {p_hi:.0%} ({own}); the difference: {rel}. "
                 f"Both must hold. Percentile bootstrap over prompts ({n_boot} resamples, {dropped} dropped because a "
                 f"receiver was not worse than the donor in them).")
    return verdict(c.id, "pretrained vs scratch", moved["pretrained"] - moved["scratch"],
                   float(lo), float(hi), evidence, statistic=stat, gate=gates, status=_both(own, rel))


def learned_gate(model: str, run) -> str | None:
    """The learned-own-task gate of ``prakash-et-improves``: a variant trained here (`run`, a
    finished run; None for a variant given as a model source, whose fine-tuning is its makers')
    has learned the task it was fine-tuned on when its held-out accuracy on that task has a Wilson
    interval above chance (a uniform guess among the task's choices) plus the gate's threshold in
    ``claims.yaml`` (a material margin).  None when it passes, else the reason: a variant that
    learned little of arithmetic cannot say whether learning arithmetic improves entity tracking."""
    if run is None:
        return None
    from helpers.tasks.base import task_of
    task = task_of(run.config.task)
    margin = gate_threshold(LEARNED)
    chance = task.config.chance
    passed, text = solves_task(run.predictions("test")["correct"].to_numpy(dtype=bool), chance + margin)
    text = text.replace(f"the best context-blind strategy's {chance + margin:.1%}",
                        f"chance, {chance:.1%}, plus {margin:.0%}")
    return None if passed else f"the {model} variant has not learned the task it was fine-tuned on ({task.name}): {text}"


def improvement_verdict(base_correct, variant_correct, model: str, gate: str | None = None,
                        claim_id: str = "prakash-et-improves", n_boot: int = 2000, seed: int = 0,
                        control_correct=None, control: str = "control", given: bool = False) -> Verdict:
    """``prakash-et-improves``: the variant's top-1 accuracy minus the base's on the same prompts.

    `base_correct`: the base's per-prompt correctness (one model, the fixed starting point);
    `variant_correct`: the variant's, one row per training seed ``(seeds, prompts)`` (or one seed,
    ``(prompts,)``), every seed on the same prompts in the same order.  The claim is about training,
    so seeds are its unit: with two seeds or more the interval is the t interval of
    :func:`helpers.stats.seeds.seed_mean_interval` over the per-seed differences (the seeds'
    spread and the prompts'); with one, the percentile bootstrap over prompts, shown, and the
    verdict is inconclusive below the claim's ``seeds`` (:func:`~helpers.claims.verdict.verdict`).

    `given`: the variant is a model given as it is (Prakash et al.'s Goat-7B under the `paper`
    profile), one model, not a training procedure: the verdict is about that model, and the seeds
    rule does not apply.

    With `control_correct` (the control variant's correctness on the same prompts, rows per seed:
    the same further fine-tuning without the task's content), the evidence also gives the variant
    minus the control with its interval: the part of the improvement that is the task's, not any
    further fine-tuning's.  The status is Prakash et al.'s claim, variant against base; the
    control is shown beside it, never folded into it."""
    from helpers.stats.seeds import seed_diff_interval, seed_mean_interval
    base = np.asarray(base_correct, float)
    var = np.atleast_2d(np.asarray(variant_correct, float))
    if given and var.shape[0] != 1:
        raise ValueError(f"a given model is one model: got {var.shape[0]} rows of correctness")
    if base.ndim != 1 or var.shape[1:] != base.shape:
        raise ValueError(f"the base and the variant must be scored on the same prompts: shapes {base.shape} and "
                         f"{var.shape} (seeds, prompts)")
    n_seeds = var.shape[0]
    diff = var - base[None]
    if n_seeds >= 2:
        est, lo, hi = seed_mean_interval(diff)
        unit = f"{n_seeds} seeds of the variant, seeds as the unit (t interval with the seeds' spread and the prompts')"
    else:
        est = float(diff.mean())
        lo, hi = bootstrap_ci(diff[0], np.mean, n_boot=n_boot, seed=seed)
        unit = ("a given model, not trained here; the interval resamples prompts" if given else
                "one seed of the variant; the interval resamples prompts")
    per_seed = ", ".join(f"{x:.1%}" for x in var.mean(1))
    evidence = (f"Base {base.mean():.1%}, {model} variant {var.mean():.1%} (per seed: {per_seed}) on the same "
                f"{base.size} held-out prompts (difference {est:+.1%}, 95% CI {lo:+.1%} to {hi:+.1%}; {unit}).")
    if control_correct is not None:
        ctrl = np.atleast_2d(np.asarray(control_correct, float))
        if ctrl.shape[1:] != base.shape:
            raise ValueError(f"the control must be scored on the variant's prompts: shapes {ctrl.shape} and {var.shape}")
        if min(n_seeds, ctrl.shape[0]) >= 2:
            b_est, c_lo, c_hi = seed_diff_interval(var, ctrl)
        else:
            beyond = var.mean(0) - ctrl.mean(0)
            b_est = float(beyond.mean())
            c_lo, c_hi = bootstrap_ci(beyond, np.mean, n_boot=n_boot, seed=seed)
        evidence += (f" The {control} variant (the same further fine-tuning without the task's content) scores "
                     f"{ctrl.mean():.1%}: the {model} variant minus the {control} {b_est:+.1%} (95% CI "
                     f"{c_lo:+.1%} to {c_hi:+.1%}), the part of the change that is the task's.")
    return verdict(claim_id, model, est, float(lo), float(hi), evidence,
                   statistic="top-1 accuracy, variant minus base", gate=gate,
                   seeds=None if given else n_seeds, given_models=given)

