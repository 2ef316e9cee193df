"""Chapter 2's exercises: the book's two intervals.

* ``02-wilson``: ``wilson_interval(k, n, z=1.96) -> (lo, hi)``, the Wilson score interval of a
  proportion (:func:`helpers.stats.intervals.wilson_ci`).
* ``02-paired-bootstrap``: ``paired_bootstrap_diff(a, b, n_boot=2000, seed=0) -> (diff, lo, hi)``:
  mean(b) - mean(a) over the same prompts with the 95% percentile interval, resampling *prompts*
  with :func:`helpers.stats.bootstrap.resample_indices` (the book's one bootstrap).
"""
from __future__ import annotations

import numpy as np

from helpers.exercises.checking import Result, call
from helpers.stats.bootstrap import percentile_interval, resample_indices
from helpers.stats.intervals import wilson_ci

WILSON_CASES = [(0, 10), (3, 10), (10, 10), (47, 60), (1, 200), (150, 300)]


def check_wilson(fn) -> Result:
    name = "02-wilson"
    for k, n in WILSON_CASES:
        got = tuple(float(x) for x in call(fn, k, n))
        lo, hi = wilson_ci(k, n, z=1.96)
        if np.allclose(got, (lo, hi), atol=1e-6):
            continue
        p = k / n
        wald = (p - 1.96 * np.sqrt(p * (1 - p) / n), p + 1.96 * np.sqrt(p * (1 - p) / n))
        if np.allclose(got, wald, atol=1e-6) or np.allclose(got, np.clip(wald, 0, 1), atol=1e-6):
            why = ("that is the normal (Wald) interval p ± z·sqrt(p(1-p)/n), symmetric around k/n; Wilson's "
                   "is centred at (k + z²/2) / (n + z²)")
        elif np.allclose(got, (hi, lo), atol=1e-6):
            why = "the bounds are swapped: return (lower, upper)"
        elif np.allclose(got, wilson_ci(k, n, z=1.645), atol=1e-6):
            why = "that is the 90% interval (z = 1.645); the book's intervals are 95% (z = 1.96)"
        else:
            why = f"expected ({lo:.4f}, {hi:.4f})"
        return Result(name, False, f"for k={k}, n={n} you return ({got[0]:.4f}, {got[1]:.4f}): {why}")
    return Result(name, True, f"equals helpers.stats.intervals.wilson_ci on {len(WILSON_CASES)} cases, "
                              "k = 0 and k = n included")


def _paired(a, b, n_boot, seed):
    idx = resample_indices(len(a), n_boot, seed)
    boots = (b[idx] - a[idx]).mean(axis=1)
    lo, hi = percentile_interval(boots)
    return float((b - a).mean()), float(lo), float(hi)


def check_paired_bootstrap(fn) -> Result:
    name = "02-paired-bootstrap"
    rng = np.random.default_rng(5)
    a = (rng.random(300) < 0.6).astype(float)
    b = np.where(rng.random(300) < 0.9, a, 1 - a)          # b agrees with a on about 90% of prompts
    got = tuple(float(x) for x in call(fn, a, b, n_boot=2000, seed=0))
    want = _paired(a, b, 2000, 0)
    if np.allclose(got, want, atol=1e-9):
        return Result(name, True, "equals the book's paired percentile bootstrap on 300 correlated prompts")
    if np.isclose(got[0], -want[0]):
        return Result(name, False, f"the difference is {got[0]:+.3f}, expected {want[0]:+.3f}: the exercise "
                                   "asks for mean(b) - mean(a)")
    width, paired_width = got[2] - got[1], want[2] - want[1]
    if width > 1.5 * paired_width:
        return Result(name, False, f"your interval is {width / paired_width:.1f} times wider than the paired one "
                                   f"({got[1]:+.3f} to {got[2]:+.3f} against {want[1]:+.3f} to {want[2]:+.3f}): "
                                   "did you resample a and b independently? Draw the prompt indices once per "
                                   "resample and take both arms at the same indices")
    return Result(name, False, f"you return {tuple(round(x, 4) for x in got)}, expected "
                               f"{tuple(round(x, 4) for x in want)}: use resample_indices(len(a), n_boot, seed) "
                               "and the 2.5% and 97.5% percentiles of the resampled mean differences")


SHARE_CASES = [(0.80, 0.60, 0.90), (0.60, 0.60, 0.90), (0.95, 0.60, 0.90), (0.50, 0.60, 0.90), (0.70, 0.70, 0.70),
               (0.65, 0.70, 0.60)]


def check_share_moved(fn) -> Result:
    """``10-share-moved``: ``share_moved(patched, a, b)``: the share of model B's accuracy advantage
    over model A that a patch from B moves into A, ``(patched - a) / (b - a)``; NaN when B is not
    better than A (no advantage to move), as :func:`helpers.claims.circuits.moved_share` (the "moved"
    column of chapters 8 and 10)."""
    from helpers.claims.circuits import moved_share
    name = "10-share-moved"
    for patched, a, b in SHARE_CASES:
        got = call(fn, patched, a, b)
        want = float(moved_share(np.array([patched]), np.array([a]), np.array([b])))
        got_f = float("nan") if got is None else float(got)
        if (np.isnan(want) and np.isnan(got_f)) or np.isclose(got_f, want):
            continue
        case = f"patched {patched}, A {a}, B {b}"
        if np.isnan(want):
            why = (f"you return {got_f:.3g}, but B is not better than A here, so there is no advantage to move: "
                   "return NaN (float('nan')) instead of a ratio of a zero or negative gap")
        elif np.isclose(got_f, (patched - a) / b) or np.isclose(got_f, patched / b):
            why = f"you return {got_f:.3g}: divide by B's advantage over A (b - a), not by b"
        elif np.isclose(got_f, -want):
            why = f"you return {got_f:.3g}: the sign is reversed (patched - a, not a - patched)"
        else:
            why = f"you return {got_f:.3g}, expected {want:.3g}"
        return Result(name, False, f"for {case}: {why}")
    return Result(name, True, f"equals the book's share moved on {len(SHARE_CASES)} cases, B no better than A included")


def check_random_circuit(fn) -> Result:
    """``08-random-circuit``: ``random_circuit(group_sizes, n_layers, n_heads, rng) -> list of lists of
    (layer, head)``: one random circuit with the same number of heads per group, each group's heads
    drawn without replacement from all ``n_layers x n_heads`` heads, as
    :func:`helpers.interventions.circuits.random_circuits` draws its baselines.  Random draws cannot
    be compared value by value: the checker draws 400 circuits on a model whose layer and head counts
    differ (the case Prakash et al.'s code got wrong: it mapped a flat head index with
    ``head // num_layers``) and checks sizes, ranges, distinctness and that every head can be drawn."""
    name = "08-random-circuit"
    sizes, L, H = [3, 2, 4], 3, 5
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(400):
        circuit = call(fn, list(sizes), L, H, rng)
        if [len(g) for g in circuit] != sizes:
            return Result(name, False, f"group sizes {[len(g) for g in circuit]}, expected {sizes}: draw as many "
                                       "heads per group as the circuit has")
        for g in circuit:
            heads = [(int(lh[0]), int(lh[1])) for lh in g]
            bad = [lh for lh in heads if not (0 <= lh[0] < L and 0 <= lh[1] < H)]
            if bad:
                return Result(name, False, f"head(s) {bad} do not exist in a model of {L} layers x {H} heads: a flat "
                                           f"index i maps to (layer, head) = divmod(i, n_heads), not by n_layers")
            if len(set(heads)) != len(heads):
                return Result(name, False, f"the group {heads} repeats a head: draw without replacement")
            seen.update(heads)
    missing = sorted({(l, h) for l in range(L) for h in range(H)} - seen)
    if missing:
        return Result(name, False, f"in 400 draws the heads {missing[:6]} never appeared: every head of every layer "
                                   "must be possible (a flat index i is (layer, head) = divmod(i, n_heads))")
    return Result(name, True, f"400 draws on {L} layers x {H} heads: right sizes, real heads, no repeats within a "
                              "group, every head possible")
