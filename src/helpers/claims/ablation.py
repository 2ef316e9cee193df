"""Lin (2024)'s ablation claims: the fine-tuned model relies on later-layer heads, the scratch model
on first-layer heads (from :func:`helpers.interventions.effects.depth_profile`)."""
from __future__ import annotations

import numpy as np

from helpers.stats.intervals import wilson_ci


def depth_verdicts(ft: dict, sc: dict, ft_correct: np.ndarray, sc_correct: np.ndarray) -> dict[str, tuple[str, str]]:
    """Verdicts on Lin's two ablation claims from the two models' depth profiles.

    A claim about a model is only judged if that model solves the task on the analysed prompts
    (the lower end of the Wilson 95% interval of its accuracy is above chance); otherwise ablating
    its heads cannot show what it relies on, and the verdict is inconclusive.
    """

    def solves(correct):
        lo, _ = wilson_ci(int(np.sum(correct)), len(correct))
        return lo > 0.5, f"{np.mean(correct):.0%} correct, 95% CI from {lo:.0%}"
    ft_ok, ft_acc = solves(ft_correct)
    sc_ok, sc_acc = solves(sc_correct)
    ev_a = (f"Centre of the ablation drop in depth (0 = first layer, 1 = last): fine-tuned "
            f"{ft['centre']:.2f} (95% CI {ft['centre_ci'][0]:.2f}-{ft['centre_ci'][1]:.2f}; the model is "
            f"{ft_acc}), scratch {sc['centre']:.2f} ({sc['centre_ci'][0]:.2f}-{sc['centre_ci'][1]:.2f}).")
    if not ft_ok:
        a = "inconclusive"
        ev_a += " The fine-tuned model does not solve the task on these prompts."
    elif ft["centre_ci"][0] > 0.5:
        a = "replicated"
    elif ft["centre_ci"][1] < 0.5:
        a = "not replicated"
    else:
        a = "inconclusive"
    sdiff = sc["boot"][:, 1] - ft["boot"][:, 1]
    s_lo, s_hi = np.nanquantile(sdiff, [0.025, 0.975])
    ev_b = (f"Share of the drop in layer 0: scratch {sc['first_layer_share']:.2f} (95% CI "
            f"{sc['first_ci'][0]:.2f}-{sc['first_ci'][1]:.2f}; the model is {sc_acc}), fine-tuned "
            f"{ft['first_layer_share']:.2f} ({ft['first_ci'][0]:.2f}-{ft['first_ci'][1]:.2f}); uniform "
            f"would be {sc['uniform_share']:.2f}; scratch minus fine-tuned CI {s_lo:+.2f} to {s_hi:+.2f}.")
    if not sc_ok:
        b = "inconclusive"
        ev_b += " The scratch model does not solve the task on these prompts."
    elif sc["first_ci"][0] > sc["uniform_share"] and s_lo > 0:
        b = "replicated"
    elif sc["first_ci"][1] < sc["uniform_share"] or s_hi < 0:
        b = "not replicated"
    else:
        b = "inconclusive"
    return {"fine-tuned relies on later-layer heads": (a, ev_a),
            "scratch relies on first-layer heads": (b, ev_b)}
