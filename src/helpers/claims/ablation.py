"""Lin (2024)'s ablation claims: the fine-tuned model relies on later-layer heads
(``lin-ablation-finetuned-late``), the scratch model on first-layer heads
(``lin-ablation-scratch-first``), from :func:`helpers.interventions.effects.depth_profile`.

Both statistics are ratios of the heads' drops, so a model whose heads, ablated one at a time,
change nothing material has no depth profile to judge: the ``ablation-matters`` gate (threshold in
``claims.yaml``) asks the summed drop's interval, as a share of the clean logit difference, to lie
above it.  The scratch-minus-fine-tuned statistic rests on both models, so it needs both models'
gates (solves-task and ablation-matters)."""
from __future__ import annotations

import math

from helpers.claims.verdict import Verdict, combine_gates, gate_threshold, verdict
from helpers.stats.bootstrap import percentile_interval

MATTERS = "ablation-matters"


def ablation_gate(model: str, prof: dict) -> str | None:
    """The ``ablation-matters`` gate of one model's :func:`depth_profile`: None when the summed drop
    of all heads, as a share of the clean logit difference, has its 95% interval above the gate's
    threshold; else the reason (also when the clean logit difference was not given: fail closed)."""
    t = gate_threshold(MATTERS)
    lo, hi = prof.get("total_rel_ci", (math.nan, math.nan))
    rel = prof.get("total_rel", math.nan)
    if not (math.isfinite(lo) and math.isfinite(rel)):
        return (f"the {model} model's summed ablation drop could not be set against its clean logit difference "
                f"(not given, or not positive): the depth of its reliance is not judged")
    if lo > t:
        return None
    return (f"ablating the {model} model's heads one at a time changes little: their summed drop is {rel:.0%} of the "
            f"clean logit difference (95% CI {lo:.0%} to {hi:.0%}), not above the {t:.0%} that makes a depth "
            f"profile of the drops more than noise")


def depth_verdicts_from_sweep(results: dict, choice, gates: dict[str, str | None] | None, kind: str = "mean",
                              metric: str = "logit difference") -> list[Verdict]:
    """The two depth verdicts from the chapter's ablation sweeps (`results`: arm -> the arrays of
    :func:`helpers.interventions.ablation.ablation_results`, ``"clean"`` and one per kind) with one
    ablation `kind` and one `metric`: the drop of the logit difference toward the correct answer
    (the verdicts' own) or of correctness (``"accuracy"``, the robustness check's), the same prompts
    and resamples for both arms."""
    import numpy as np

    from helpers.interventions import effects
    if metric not in ("logit difference", "accuracy"):
        raise ValueError(f"metric={metric!r} is not accepted: accepted values are ['logit difference', 'accuracy']")
    choice = np.asarray(choice)
    accuracy = metric == "accuracy"
    drops = effects.per_prompt_accuracy_drops if accuracy else effects.per_prompt_drops
    prof = {arm: effects.depth_profile(drops(r["clean"], r[kind], choice),
                                       (np.sign(r["clean"]) == choice).astype(float) if accuracy else r["clean"] * choice)
            for arm, r in results.items()}
    return depth_verdicts(prof["fine-tuned"], prof["scratch"], gates)


def depth_verdicts(ft: dict, sc: dict, gates: dict[str, str | None] | None = None) -> list[Verdict]:
    """Verdicts on Lin's two ablation claims from the two models' depth profiles (computed with
    the same bootstrap seed over the same prompts, so their resamples are paired).  `gates` maps
    'fine-tuned' / 'scratch' to that model's failed solves-task gate (None when it passed); a model
    missing from `gates` has not been gated, and its claims are not judged (gates fail closed)."""
    gates = dict(gates or {})
    all_gates = {m: combine_gates({m: gates[m]} if m in gates else {}, [m]) or ablation_gate(m, p)
                 for m, p in (("fine-tuned", ft), ("scratch", sc))}

    def drop(name, p):
        return (f"{name}: summed drop {p['total']:+.2f} logits, {p['total_rel']:.0%} of the clean logit difference "
                f"(95% CI {p['total_rel_ci'][0]:.0%} to {p['total_rel_ci'][1]:.0%})")
    ev_a = (f"Centre of the signed ablation drop in depth (0 = first layer, 1 = last): fine-tuned "
            f"{ft['centre']:.2f} (95% CI {ft['centre_ci'][0]:.2f}-{ft['centre_ci'][1]:.2f}), scratch "
            f"{sc['centre']:.2f} ({sc['centre_ci'][0]:.2f}-{sc['centre_ci'][1]:.2f}); the statistic is the "
            f"fine-tuned centre minus 0.5. {drop('Fine-tuned', ft)}; {drop('scratch', sc)}.")
    a = verdict("lin-ablation-finetuned-late", "fine-tuned", ft["centre"] - 0.5, ft["centre_ci"][0] - 0.5,
                ft["centre_ci"][1] - 0.5, ev_a, statistic="depth centre of the drop minus 0.5",
                gate=all_gates["fine-tuned"])
    if len(sc["boot"]) != len(ft["boot"]) or sc.get("n_prompts") != ft.get("n_prompts"):
        raise ValueError("the two depth profiles must come from the same prompts and resamples (same seed, n_boot)")
    sdiff = sc["boot"][:, 1] - ft["boot"][:, 1]
    s_lo, s_hi = percentile_interval(sdiff, ignore_nan=True) if (sdiff == sdiff).any() else (math.nan, math.nan)
    ev_b = (f"Share of the signed drop in layer 0: scratch {sc['first_layer_share']:.2f} (95% CI "
            f"{sc['first_ci'][0]:.2f}-{sc['first_ci'][1]:.2f}), fine-tuned {ft['first_layer_share']:.2f} "
            f"({ft['first_ci'][0]:.2f}-{ft['first_ci'][1]:.2f}); uniform would be {sc['uniform_share']:.2f}. "
            f"The difference rests on both models, so both models' gates apply.")
    b = verdict("lin-ablation-scratch-first", "scratch", sc["first_layer_share"] - ft["first_layer_share"],
                float(s_lo), float(s_hi), ev_b, statistic="layer-0 share of the drop, scratch minus fine-tuned",
                gate=combine_gates(all_gates, ["scratch", "fine-tuned"]))
    return [a, b]
