"""The exercises' checkers (helpers.exercises): every checker accepts its solution and rejects
typical wrong answers with a message that names the mistake; an unwritten stub is "not attempted";
a wrong answer that leaves a hook behind does not spoil the next check."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.core.errors import ParameterError
from helpers.exercises import EXERCISES, check, show_solution, solution
from helpers.exercises.checking import hook_count, where_different
from helpers.stats.bootstrap import resample_indices
from helpers.tasks.entity import make_trial


@pytest.mark.parametrize("exercise_id", list(EXERCISES))
def test_every_solution_passes_its_check(exercise_id):
    result = check(exercise_id, solution(exercise_id))
    assert result.passed, result.message


def test_a_stub_is_not_attempted_and_an_unknown_exercise_is_named():
    def stub(*args):
        raise NotImplementedError
    r = check("03-zero-head", stub)
    assert not r.passed and not r.attempted and "not attempted" in r.message
    with pytest.raises(ParameterError, match="unknown exercise '03-zero'.*accepted exercises"):
        check("03-zero", stub)


def _rejects(exercise_id, fn, *fragments):
    r = check(exercise_id, fn)
    assert not r.passed, f"{exercise_id} accepted a wrong answer"
    for f in fragments:
        assert f in r.message, (f, r.message)
    return r


# ---- chapter 1 ---------------------------------------------------------------------------------

def test_answer_checker_names_the_ignored_context_a_missing_space_and_a_reversed_rule():
    _rejects("01-answer", lambda ctx, m, c: " right" if sum(m) > 0 else " left", "colour trials",
             "motion stream")
    _rejects("01-answer", lambda ctx, m, c: (" right" if sum(m if ctx == "motion" else c) > 0 else " left").strip(),
             "leading space")
    _rejects("01-answer", lambda ctx, m, c: " left" if sum(m if ctx == "motion" else c) > 0 else " right",
             "opposite one")


def test_ignore_context_checker_names_true_coherence_a_count_and_the_error_share():
    sol = solution("01-ignore-context")

    def coherence(trials, stream):
        return float(np.mean([np.sign(t.motion_coh if stream == "motion" else t.color_coh) == t.choice for t in trials]))
    _rejects("01-ignore-context", coherence, "true coherence")
    _rejects("01-ignore-context", lambda trials, stream: sol(trials, stream) * len(trials), "a count")
    _rejects("01-ignore-context", lambda trials, stream: 1 - sol(trials, stream), "gets wrong")


# ---- chapter 2 ---------------------------------------------------------------------------------

def test_wilson_checker_names_the_wald_interval_swapped_bounds_and_a_90_percent_z():
    from helpers.exercises.solutions.ch02 import wilson_interval

    def wald(k, n, z=1.96):
        p = k / n
        h = z * np.sqrt(p * (1 - p) / n)
        return p - h, p + h
    _rejects("02-wilson", wald, "normal (Wald) interval", "for k=")
    _rejects("02-wilson", lambda k, n, z=1.96: wilson_interval(k, n, z)[::-1], "bounds are swapped")
    _rejects("02-wilson", lambda k, n, z=1.96: wilson_interval(k, n, 1.645), "90% interval")


def test_paired_bootstrap_checker_names_unpaired_resampling_and_a_flipped_sign():
    def unpaired(a, b, n_boot=2000, seed=0):
        ia, ib = resample_indices(len(a), n_boot, seed), resample_indices(len(b), n_boot, seed + 1)
        d = b[ib].mean(axis=1) - a[ia].mean(axis=1)
        return (b - a).mean(), *np.quantile(d, [0.025, 0.975])
    _rejects("02-paired-bootstrap", unpaired, "resample a and b independently")
    flipped = solution("02-paired-bootstrap")
    _rejects("02-paired-bootstrap", lambda a, b, n_boot=2000, seed=0: flipped(b, a, n_boot, seed), "mean(b) - mean(a)")


# ---- chapter 3 ---------------------------------------------------------------------------------

def test_zero_head_checker_names_the_wrong_axis_an_off_by_one_head_and_a_missing_return():
    def wrong_axis(z, head):
        z = z.clone()
        z[:, head] = 0
        return z

    def off_by_one(z, head):
        z = z.clone()
        z[:, :, head + 1] = 0
        return z

    def no_return(z, head):
        z = z.clone()
        z[:, :, head] = 0
    _rejects("03-zero-head", wrong_axis, "zeroed position 2, not head 2", "z[:, :, head]")
    _rejects("03-zero-head", off_by_one, "zeroed head 3", "numbered from 0")
    _rejects("03-zero-head", no_return, "returned None")


def _ablating_hook(arch, head):
    def pre(module, args):
        x = args[0]
        z = x.reshape(*x.shape[:-1], arch.n_heads, arch.d_head).clone()
        z[:, :, head] = 0
        return (z.reshape(x.shape),) + tuple(args[1:])
    return pre


def test_hook_checker_names_a_hook_never_removed_and_one_not_removed_on_error():
    from helpers.exercises.heads import _arch
    counts = {m: hook_count(_arch(m).model) for m in ("tiny-gpt2", "tiny-llama")}

    def never_removed(arch, ids, layer, head):
        arch.out_proj(layer).register_forward_pre_hook(_ablating_hook(arch, head))
        with torch.no_grad():
            return arch.model(input_ids=ids).logits

    def removed_on_success_only(arch, ids, layer, head):
        handle = arch.out_proj(layer).register_forward_pre_hook(_ablating_hook(arch, head))
        with torch.no_grad():
            out = arch.model(input_ids=ids).logits
        handle.remove()
        return out
    _rejects("03-hook-removed", never_removed, "still registered afterwards", "handle.remove()")
    _rejects("03-hook-removed", removed_on_success_only, "when the model raised", "finally:")
    # the wrong answers' hooks were removed (transformers' own stay): the solution passes again
    assert all(hook_count(_arch(m).model) == counts[m] for m in counts)
    assert check("03-hook-removed", solution("03-hook-removed")).passed


# ---- chapter 4 ---------------------------------------------------------------------------------

def test_attention_checker_names_a_missing_causal_mask_scaling_and_the_softmax_axis():
    def no_mask(q, k):
        return (q @ k.T / q.shape[-1] ** 0.5).softmax(-1)

    def no_scale(q, k):
        causal = torch.ones(len(q), len(k), dtype=torch.bool).tril()
        return (q @ k.T).masked_fill(~causal, float("-inf")).softmax(-1)

    def wrong_axis(q, k):
        causal = torch.ones(len(q), len(k), dtype=torch.bool).tril()
        return (q @ k.T / q.shape[-1] ** 0.5).masked_fill(~causal, float("-inf")).softmax(0)
    _rejects("04-attention", no_mask, "causal attention")
    _rejects("04-attention", no_scale, "sqrt(d_head)")
    _rejects("04-attention", wrong_axis, "columns sum to 1")


# ---- chapters 5 and 6 ---------------------------------------------------------------------------

def test_permutation_checker_names_the_missing_plus_one_a_strict_comparison_and_the_wrong_tail():
    _rejects("05-permutation-p", lambda obs, null: float(np.mean(null >= obs)), "never 0")
    _rejects("05-permutation-p", lambda obs, null: (1 + np.sum(null > obs)) / (len(null) + 1), ">=, not >")
    _rejects("05-permutation-p", lambda obs, null: (1 + np.sum(null <= obs)) / (len(null) + 1), "one-sided")


def test_standardize_checker_names_leakage_own_statistics_and_a_constant_unit():
    def leaky(Xtr, Xte):
        both = np.vstack([Xtr, Xte])
        mu, sd = both.mean(0), both.std(0)
        return (Xtr - mu) / np.where(sd > 0, sd, 1.0), (Xte - mu) / np.where(sd > 0, sd, 1.0)

    def own(Xtr, Xte):
        f = lambda X: (X - X.mean(0)) / np.where(X.std(0) > 0, X.std(0), 1.0)   # noqa: E731
        return f(Xtr), f(Xte)

    def divides_by_zero(Xtr, Xte):
        with np.errstate(divide="ignore", invalid="ignore"):
            return (Xtr - Xtr.mean(0)) / Xtr.std(0), (Xte - Xtr.mean(0)) / Xtr.std(0)
    _rejects("06-standardize", leaky, "statistics of all rows", "training rows only")
    _rejects("06-standardize", own, "their own statistics")
    _rejects("06-standardize", divides_by_zero, "constant unit")


def test_answer_mass_checker_names_a_column_a_mean_and_the_first_row():
    def column(pattern, types, kind):
        return float(sum(pattern[:, i].sum() for i, t in enumerate(types) if t == kind))

    def mean(pattern, types, kind):
        return float(np.mean([float(pattern[-1, i]) for i, t in enumerate(types) if t == kind]))

    def first_row(pattern, types, kind):
        return float(sum(pattern[0, i] for i, t in enumerate(types) if t == kind))
    _rejects("04-answer-mass", column, "sums a column", "pattern[-1]")
    _rejects("04-answer-mass", mean, "the mass is their sum")
    _rejects("04-answer-mass", first_row, "first row")


def test_holm_checker_names_bonferroni_a_missing_running_maximum_and_sorted_output():
    def bonferroni(p):
        return np.minimum(np.asarray(p) * len(p), 1.0)

    def no_running_max(p):
        p = np.asarray(p)
        m, order = len(p), np.argsort(p)
        out = np.empty(m)
        out[order] = np.minimum((m - np.arange(m)) * p[order], 1.0)
        return out

    def sorted_output(p):
        return np.sort(solution("05-holm")(p))
    _rejects("05-holm", bonferroni, "Bonferroni")
    _rejects("05-holm", no_running_max, "running maximum")
    _rejects("05-holm", sorted_output, "sorted order")


def test_regression_checker_names_the_intercept_the_degrees_of_freedom_and_a_one_sided_test():
    from scipy import stats
    sol = solution("06-regression-t")

    def with_intercept(design, Y):
        coef = np.linalg.lstsq(design, Y, rcond=None)[0].T
        return coef, sol(design, Y)[1]

    def dof_n(design, Y):
        n, p = design.shape
        inv = np.linalg.inv(design.T @ design)
        B = inv @ design.T @ Y
        se = np.sqrt(np.outer(np.diag(inv)[1:], ((Y - design @ B) ** 2).sum(0) / n))
        return B[1:].T, (2 * stats.t.sf(np.abs(B[1:] / se), n)).T

    def one_sided(design, Y):
        coef, p = sol(design, Y)
        return coef, p / 2
    _rejects("06-regression-t", with_intercept, "drop the intercept")
    _rejects("06-regression-t", dof_n, "degrees of freedom")
    _rejects("06-regression-t", one_sided, "one-sided")


# ---- chapter 7 ---------------------------------------------------------------------------------

def _patcher(select):
    """A patch_head variant whose put() edits z where `select(z, position, head)` says."""
    def patch_head(arch, clean_ids, cf_ids, layer, head, position):
        saved = {}
        with torch.no_grad():
            with arch.hooks({("z", layer): lambda z: saved.__setitem__("z", z.clone())}):
                arch.model(input_ids=cf_ids)

            def put(z):
                z = z.clone()
                idx = select(z, position, head)
                z[idx] = saved["z"][idx]
                return z
            with arch.hooks({("z", layer): put}):
                return arch.model(input_ids=clean_ids).logits[:, -1]
    return patch_head


def test_patch_checker_names_every_position_a_neighbouring_head_and_every_head():
    _rejects("07-patch-head", _patcher(lambda z, p, h: (slice(None), slice(None), h)), "at every position")
    _rejects("07-patch-head", _patcher(lambda z, p, h: (slice(None), p, h + 1)), "neighbouring head")
    _rejects("07-patch-head", _patcher(lambda z, p, h: (slice(None), p)), "every head of layer")
    assert check("07-patch-head", _patcher(lambda z, p, h: (slice(None), p, h))).passed


# ---- chapter 8 ---------------------------------------------------------------------------------

def _cmap(select, donor="b"):
    def cmap_head(a, b, ids, layer, head):
        saved = {}
        src = b if donor == "b" else a
        with torch.no_grad():
            with src.hooks({("z", layer): lambda z: saved.__setitem__("z", z.clone())}):
                src.model(input_ids=ids)

            def put(z):
                z = z.clone()
                idx = select(head)
                z[idx] = saved["z"][idx]
                return z
            with a.hooks({("z", layer): put}):
                return a.model(input_ids=ids).logits[:, -1]
    return cmap_head


def test_cmap_checker_names_the_wrong_donor_the_whole_layer_and_a_neighbouring_head():
    _rejects("08-cmap-head", _cmap(lambda h: (slice(None), slice(None), h), donor="a"), "model A's own logits")
    _rejects("08-cmap-head", _cmap(lambda h: (slice(None), slice(None))), "every head of layer")
    _rejects("08-cmap-head", _cmap(lambda h: (slice(None), slice(None), h + 1)), "neighbouring head")
    assert check("08-cmap-head", _cmap(lambda h: (slice(None), slice(None), h))).passed


def test_path_patch_checker_names_activation_patching_and_a_missing_swap():
    patch_head = solution("07-patch-head")                        # activation patching: nothing frozen
    _rejects("07-path-patch", patch_head, "activation-patching", "Freeze every other head")

    def frozen_without_swap(arch, clean_ids, cf_ids, layer, head, position):
        from helpers.interventions.patching import record
        clean = record(arch, clean_ids, [("z", l) for l in range(arch.n_layers)])
        with torch.no_grad(), arch.hooks({("z", l): (lambda z, l=l: clean[("z", l)].clone())
                                          for l in range(arch.n_layers)}):
            return arch.model(input_ids=clean_ids).logits[:, -1]
    _rejects("07-path-patch", frozen_without_swap, "clean run's logits", "counterfactual")


def test_random_circuit_checker_names_prakashs_index_bug_repeats_and_sizes():
    def prakash_mapping(sizes, L, H, rng):
        return [[(int(i) // L, int(i) % L) for i in rng.choice(L * H, size=s, replace=False)] for s in sizes]

    def with_replacement(sizes, L, H, rng):
        return [[divmod(int(i), H) for i in rng.integers(0, L * H, size=s)] for s in sizes]

    def one_group(sizes, L, H, rng):
        return [[divmod(int(i), H) for i in rng.choice(L * H, size=sum(sizes), replace=False)]]
    _rejects("08-random-circuit", prakash_mapping, "divmod(i, n_heads)")
    _rejects("08-random-circuit", with_replacement, "without replacement")
    _rejects("08-random-circuit", one_group, "heads per group")


# ---- chapter 9 ---------------------------------------------------------------------------------

def test_counterfactual_checker_names_shared_objects_the_same_query_and_another_box_count():
    def shared_objects(clean, rng, cfg):
        objs = [cfg.objects[i] for i in rng.choice(len(cfg.objects), clean.n_boxes - 1, replace=False)
                if cfg.objects[i] != clean.objects[0]]
        objs = [clean.objects[0]] + objs[:clean.n_boxes - 1]
        q = (clean.query_index + 1) % clean.n_boxes
        return make_trial(objs, clean.labels, q)

    def same_query(clean, rng, cfg):
        pool = [o for o in cfg.objects if o not in clean.objects]
        return make_trial(pool[:clean.n_boxes], clean.labels, clean.query_index)

    def one_box_more(clean, rng, cfg):
        pool = [o for o in cfg.objects if o not in clean.objects]
        labels = [x for x in cfg.labels if x not in clean.labels][:1] + list(clean.labels)
        return make_trial(pool[:clean.n_boxes + 1], labels, (clean.query_index + 1) % clean.n_boxes)
    _rejects("09-counterfactual", shared_objects, "shares the object(s)")
    _rejects("09-counterfactual", same_query, "queries the same box")
    _rejects("09-counterfactual", one_box_more, "5 boxes instead of 4", "token positions")


def test_label_position_checker_names_the_query_occurrence_and_a_letter_inside_a_word():
    def query_occurrence(tokenizer, trial):
        from helpers.tasks.entity import role_positions
        return role_positions(tokenizer, trial).query_label

    def substring(tokenizer, trial):
        start = trial.prompt.index(trial.query_label)            # "T" is found inside "The"
        enc = tokenizer(trial.prompt, return_offsets_mapping=True)
        return next(i for i, (a, b) in enumerate(enc["offset_mapping"]) if a <= start < b)
    _rejects("09-label-position", query_occurrence, "query's occurrence")
    _rejects("09-label-position", substring, "never a letter inside one")


# ---- chapter 10 --------------------------------------------------------------------------------

def test_share_moved_checker_names_the_wrong_denominator_a_missing_nan_and_the_sign():
    _rejects("10-share-moved", lambda p, a, b: (p - a) / b, "not by b")
    _rejects("10-share-moved", lambda p, a, b: (p - a) / (b - a) if b != a else 0.0, "return NaN")
    _rejects("10-share-moved", lambda p, a, b: (a - p) / (b - a) if b > a else float("nan"), "sign is reversed")


def test_dcm_mix_checker_names_swapped_roles_and_a_rounded_mask():
    _rejects("10-dcm-mix", lambda zb, zs, m: m[None, :, None] * zs + (1 - m[None, :, None]) * zb, "roles are swapped")
    _rejects("10-dcm-mix", lambda zb, zs, m: m.round()[None, :, None] * zb + (1 - m.round()[None, :, None]) * zs,
             "rounded the mask")
    _rejects("10-dcm-mix", lambda zb, zs, m: m[None, None, :] * zb + (1 - m[None, None, :]) * zs,
             "your function raised RuntimeError")


# ---- the chapter side ----------------------------------------------------------------------------

def test_a_chapter_shows_the_solution_folded_and_a_course_build_leaves_it_out():
    shown = show_solution("03-zero-head")._repr_markdown_()
    assert shown.startswith("<details><summary>Solution") and "def zero_head" in shown and "✅" in shown
    hidden = show_solution("03-zero-head", show=False)._repr_markdown_()
    assert "def zero_head" not in hidden and "not part of this build" in hidden


def test_where_different_names_axes_and_shapes():
    a = torch.zeros(2, 3, 4)
    b = a.clone()
    b[:, :, 1] = 1
    msg = where_different(b, a, ("batch", "position", "head"))
    assert "every batch" in msg and "every position" in msg and "head 1 (of 4)" in msg
    assert "expected (2, 3, 4)" in where_different(torch.zeros(2, 3), a, ("batch", "position", "head"))
    assert where_different(a, a, ("batch", "position", "head")) is None


def test_every_chapter_takes_show_solutions_so_a_course_build_can_leave_them_out():
    from helpers.book.chapters import list_chapters
    from helpers.book.runner import build_dir, resolve_parameters
    for ch in list_chapters():
        assert resolve_parameters(ch, "smoke", {"show_solutions": False})["show_solutions"] is False, ch
    assert build_dir("quick", {"show_solutions": False}).name == "quick+show_solutions=false"


@pytest.mark.slow
def test_a_chapter_built_without_solutions_shows_the_exercise_and_not_its_solution(tmp_path, monkeypatch):
    import nbformat

    from helpers.book.runner import run_chapter
    monkeypatch.setenv("BOOK_BUILD_DIR", str(tmp_path / "build"))
    out = run_chapter("01", "smoke", {"show_solutions": False})
    nb = nbformat.read(out, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    shown = " ".join(str(o.get("data", {}).get("text/markdown", "")) for c in nb.cells if c.cell_type == "code"
                     for o in c.outputs)
    assert "raise NotImplementedError" in code and "not attempted yet" in shown
    assert "not part of this build" in shown and "sum(relevant)" not in shown
