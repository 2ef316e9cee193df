"""Lin (2024)'s ablation claims: the fine-tuned model relies on later-layer heads
(``lin-ablation-finetuned-late``), the scratch model on first-layer heads
(``lin-ablation-scratch-first``), from :func:`helpers.interventions.effects.depth_profile`."""
from __future__ import annotations

from helpers.claims.verdict import Verdict, verdict
from helpers.stats.bootstrap import percentile_interval


def depth_verdicts(ft: dict, sc: dict, gates: dict[str, str | None] | None = None) -> list[Verdict]:
    """Verdicts on Lin's two ablation claims from the two models' depth profiles (computed with
    the same bootstrap seed over the same prompts, so their resamples are paired).  `gates` maps
    'fine-tuned' / 'scratch' to the failed solves-task gate of that model (None when it passed)."""
    gates = gates or {}
    ev_a = (f"Centre of the ablation drop in depth (0 = first layer, 1 = last): fine-tuned "
            f"{ft['centre']:.2f} (95% CI {ft['centre_ci'][0]:.2f}-{ft['centre_ci'][1]:.2f}), scratch "
            f"{sc['centre']:.2f} ({sc['centre_ci'][0]:.2f}-{sc['centre_ci'][1]:.2f}); the statistic is the "
            f"fine-tuned centre minus 0.5.")
    a = verdict("lin-ablation-finetuned-late", "fine-tuned", ft["centre"] - 0.5, ft["centre_ci"][0] - 0.5,
                ft["centre_ci"][1] - 0.5, ev_a, statistic="depth centre of the drop minus 0.5",
                gate=gates.get("fine-tuned"))
    sdiff = sc["boot"][:, 1] - ft["boot"][:, 1]
    s_lo, s_hi = percentile_interval(sdiff, ignore_nan=True)
    ev_b = (f"Share of the drop in layer 0: scratch {sc['first_layer_share']:.2f} (95% CI "
            f"{sc['first_ci'][0]:.2f}-{sc['first_ci'][1]:.2f}), fine-tuned {ft['first_layer_share']:.2f} "
            f"({ft['first_ci'][0]:.2f}-{ft['first_ci'][1]:.2f}); uniform would be {sc['uniform_share']:.2f}.")
    b = verdict("lin-ablation-scratch-first", "scratch", sc["first_layer_share"] - ft["first_layer_share"],
                float(s_lo), float(s_hi), ev_b, statistic="layer-0 share of the drop, scratch minus fine-tuned",
                gate=gates.get("scratch"))
    return [a, b]

