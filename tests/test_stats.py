"""One statistics implementation for the book, pinned by references and known answers."""
import numpy as np
import pytest
from scipy import stats as sps

from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from helpers.stats import bootstrap, intervals, multiplicity, permutation, tests


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (81, 100), (242, 300)])
def test_wilson_matches_scipy(k, n):
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = intervals.wilson_ci(k, n)
    assert lo == pytest.approx(ref.low, abs=1e-6) and hi == pytest.approx(ref.high, abs=1e-6)


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (0, 10), (3, 10), (10, 10), (81, 100), (242, 300), (1, 3)])
@pytest.mark.parametrize("level", [0.95, 0.9, 0.99])
def test_wilson_matches_statsmodels(k, n, level):
    ref_lo, ref_hi = proportion_confint(k, n, alpha=1 - level, method="wilson")
    lo, hi = intervals.wilson_ci(k, n, z=intervals.z_for(level))
    assert lo == pytest.approx(ref_lo, abs=1e-12) and hi == pytest.approx(ref_hi, abs=1e-12)
    assert lo <= k / n <= hi


def test_wilson_default_is_95_percent_and_empty_is_nan():
    assert intervals.z_for(0.95) == pytest.approx(1.959964, abs=1e-6)
    assert intervals.wilson_ci(30, 40) == pytest.approx(intervals.wilson_ci(30, 40, z=intervals.z_for(0.95)), abs=1e-7)
    assert all(np.isnan(v) for v in intervals.wilson_ci(0, 0))
    assert intervals.wilson_ci(0, 5)[0] == 0.0 and intervals.wilson_ci(5, 5)[1] == 1.0
    with pytest.raises(ValueError, match="level=1"):
        intervals.z_for(1)


@pytest.mark.parametrize("k1,n1,k2,n2", [(56, 70, 48, 80), (9, 10, 3, 10), (0, 20, 5, 20), (30, 30, 29, 31),
                                         (240, 300, 200, 300)])
def test_newcombe_matches_statsmodels(k1, n1, k2, n2):
    ref = confint_proportions_2indep(k1, n1, k2, n2, method="newcomb", compare="diff")
    d, lo, hi = intervals.newcombe_diff(k1, n1, k2, n2)
    assert d == pytest.approx(k1 / n1 - k2 / n2)
    assert lo == pytest.approx(ref[0], abs=1e-7) and hi == pytest.approx(ref[1], abs=1e-7)


def test_newcombe_known_answer():
    """Newcombe (1998), Statistics in Medicine 17:873, Table II example (a): 56/70 vs 48/80,
    method 10 (the score interval without continuity correction): 0.0524 to 0.3339."""
    d, lo, hi = intervals.newcombe_diff(56, 70, 48, 80)
    assert d == pytest.approx(0.2)
    assert lo == pytest.approx(0.0524, abs=1e-4) and hi == pytest.approx(0.3339, abs=1e-4)


def _pairs(n11, n10, n01, n00):
    a = np.r_[np.ones(n11 + n10), np.zeros(n01 + n00)]
    b = np.r_[np.ones(n11), np.zeros(n10), np.ones(n01), np.zeros(n00)]
    return a, b


def test_paired_diff_published_example():
    """Fagerland, Lydersen & Laake (2017), Statistical Analysis of Contingency Tables, ch. 8:
    complete response before and after consolidation therapy (Cavo et al. 2012), the 2x2 table
    59, 6 / 16, 80; Newcombe's square-and-add (method 10) interval -0.0621 (-0.1186 to -0.0046)."""
    d, lo, hi = intervals.paired_diff_ci(*_pairs(59, 6, 16, 80))
    assert d == pytest.approx(-10 / 161)
    assert lo == pytest.approx(-0.1186, abs=1e-4) and hi == pytest.approx(-0.0046, abs=1e-4)


def test_paired_diff_is_antisymmetric_and_handles_edges():
    a, b = _pairs(30, 12, 4, 14)
    d, lo, hi = intervals.paired_diff_ci(a, b)
    d2, lo2, hi2 = intervals.paired_diff_ci(b, a)
    assert (d2, lo2, hi2) == pytest.approx((-d, -hi, -lo))
    same = intervals.paired_diff_ci(a, a)
    assert same[0] == 0 and same[1] < 0 < same[2]
    wide = intervals.paired_diff_ci(a, b, level=0.99)
    assert wide[0] == d and wide[1] < lo and wide[2] > hi
    ones = np.ones(20)
    d1, lo1, hi1 = intervals.paired_diff_ci(ones, ones)       # an empty margin: phi = 0
    assert d1 == 0 and -0.2 < lo1 < 0 < hi1 < 0.2             # +- (1 - lower end of Wilson(20, 20))
    assert all(np.isnan(v) for v in intervals.paired_diff_ci([], []))
    with pytest.raises(ValueError, match="same trials"):
        intervals.paired_diff_ci([1, 0], [1])


def test_paired_diff_covers_nominally():
    """Correlated pairs on 60 trials (P(both) 0.6, only a 0.15, only b 0.05): the 95% interval
    covers the true difference 0.1 in 92-97.5% of 1000 draws (measured 94.6% in 2000)."""
    rng = np.random.default_rng(0)
    P = np.array([0.6, 0.15, 0.05, 0.2])
    hits = []
    for _ in range(1000):
        _, lo, hi = intervals.paired_diff_ci(*_pairs(*rng.multinomial(60, P)))
        hits.append(lo <= 0.1 <= hi)
    assert 0.92 <= np.mean(hits) <= 0.975


def test_holm_known_answer():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max
    assert np.allclose(multiplicity.holm(p), [0.03, 0.06, 0.06, 0.02])
    assert multiplicity.holm(np.array([0.9, 0.8])).max() <= 1.0


def test_holm_matches_statsmodels_and_is_the_only_correction():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(0, 0.002, 10), rng.uniform(0, 1, 100)])
    reject, adj, _, _ = multipletests(p, alpha=0.05, method="holm")
    assert np.allclose(multiplicity.holm(p), adj)
    assert np.array_equal(multiplicity.holm_significant(p, 0.05), reject)
    assert multiplicity.holm_significant(p.reshape(10, 11), 0.05).shape == (10, 11)
    assert not hasattr(multiplicity, "benjamini_hochberg")       # the book's policy is Holm (FWER)


def test_bonferroni_level():
    assert multiplicity.bonferroni_level(0.95, 1) == pytest.approx(0.95)
    assert multiplicity.bonferroni_level(0.95, 10) == pytest.approx(0.995)
    with pytest.raises(ValueError):
        multiplicity.bonferroni_level(0.95, 0)


# ---- permutation tests ----------------------------------------------------------------------------

def test_permutation_p():
    null = np.arange(19.0)                                        # 0 .. 18
    assert permutation.permutation_p(100.0, null) == pytest.approx(1 / 20)
    assert permutation.permutation_p(18.0, null) == pytest.approx(2 / 20)       # ties count against
    assert permutation.permutation_p(-1.0, null) == pytest.approx(1.0)
    assert permutation.permutation_p(-1.0, null, alternative="less") == pytest.approx(1 / 20)
    assert permutation.permutation_p(5.0, [], alternative="less") == 1.0
    with pytest.raises(ValueError, match="alternative='two-sided'"):
        permutation.permutation_p(1.0, null, alternative="two-sided")
    with pytest.raises(ValueError, match="nan"):
        permutation.permutation_p(1.0, [0.0, np.nan])


@pytest.mark.parametrize("alpha,n", [(0.05, 19), (0.01, 99), (0.1, 9), (0.07, 14), (0.001, 999), (1.0, 0), (0.3, 3)])
def test_min_shuffles(alpha, n):
    assert permutation.min_shuffles(alpha) == n
    assert 1 / (n + 1) <= alpha and (n == 0 or 1 / n > alpha)
    assert permutation.permutation_p(1.0, np.zeros(n)) <= alpha


def test_t_two_sided_matches_scipy():
    rng = np.random.default_rng(1)
    X = rng.normal(0.2, 1.0, size=(25, 6))
    assert np.allclose(tests.t_two_sided(X), sps.ttest_1samp(X, 0.0).pvalue)
    flat = np.column_stack([np.zeros(5), np.full(5, 2.0)])
    assert tests.t_two_sided(flat).tolist() == [1.0, 0.0]


def test_t_greater_matches_scipy():
    rng = np.random.default_rng(1)
    X = rng.normal(0.1, 1.0, size=(30, 5))
    ref = sps.ttest_1samp(X, 0.0, alternative="greater").pvalue
    assert np.allclose(tests.t_greater(X), ref)
    assert tests.t_greater(np.ones((5, 1)))[0] == 0.0 and tests.t_greater(-np.ones((5, 1)))[0] == 1.0


def test_regression_t_matches_a_per_unit_ols():
    rng = np.random.default_rng(2)
    n = 60
    D = np.hstack([np.ones((n, 1)), rng.choice([-1.0, 1.0], size=(n, 3))])
    Y = D @ rng.normal(size=(4, 7)) + rng.normal(size=(n, 7))
    coef, p, dof = tests.regression_t(D, Y)
    assert dof == n - 4 and coef.shape == p.shape == (7, 3)
    for u in range(7):
        b, res, *_ = np.linalg.lstsq(D, Y[:, u], rcond=None)
        sigma2 = res[0] / dof
        se = np.sqrt(np.diag(np.linalg.inv(D.T @ D)) * sigma2)
        assert np.allclose(coef[u], b[1:])
        assert np.allclose(p[u], 2 * sps.t.sf(np.abs(b[1:] / se[1:]), dof))


def test_every_bootstrap_draws_the_same_resamples():
    """bootstrap_means (through resample counts) and bootstrap_ci (scipy's BCa, with a generator
    seeded the same way) resample the same rows for the same seed, so intervals of two statistics
    on the same prompts are paired."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 3))
    m, lo, hi = bootstrap.bootstrap_means(X, n_boot=500, seed=7)
    idx = bootstrap.resample_indices(40, 500, 7)
    boots = X[idx].mean(1)                                        # (500, 3)
    l2, h2 = bootstrap.percentile_interval(boots)
    assert np.allclose(lo, l2, atol=1e-12) and np.allclose(hi, h2, atol=1e-12)
    assert np.allclose(bootstrap.bootstrap_mean_draws(X, 500, 7), boots)
    ref = sps.bootstrap((np.arange(40),), lambda i: X[i, 0].mean(), n_resamples=500, vectorized=False,
                        rng=np.random.default_rng(7))
    assert np.allclose(ref.bootstrap_distribution, boots[:, 0])
    assert np.allclose(m, X.mean(0))
    counts = bootstrap.resample_counts(40, 500, 7)
    assert np.array_equal(counts.sum(1), np.full(500, 40.0))
    assert np.array_equal(np.bincount(idx[0], minlength=40), counts[0])


def test_bootstrap_ci_is_scipys_bca():
    x = np.random.default_rng(5).exponential(size=60)              # skewed: BCa differs from percentile
    lo, hi = bootstrap.bootstrap_ci(x, n_boot=1000, seed=3, level=0.9)
    ref = sps.bootstrap((x,), np.mean, n_resamples=1000, confidence_level=0.9, method="BCa",
                        rng=np.random.default_rng(3))
    assert lo == pytest.approx(ref.confidence_interval.low, abs=1e-12)
    assert hi == pytest.approx(ref.confidence_interval.high, abs=1e-12)
    plo, phi = bootstrap.percentile_interval(x[bootstrap.resample_indices(60, 1000, 3)].mean(1), 0.9)
    assert (lo, hi) != pytest.approx((plo, phi), abs=1e-6)
    rows = np.column_stack([x, 2 * x])                            # a statistic of whole rows
    lo2, hi2 = bootstrap.bootstrap_ci(rows, stat=lambda r: r[:, 1].mean() - r[:, 0].mean(), n_boot=1000, seed=3,
                                      level=0.9)
    assert (lo2, hi2) == pytest.approx((lo, hi))


def test_bootstrap_ci_falls_back_to_percentile_where_bca_is_undefined():
    assert bootstrap.bootstrap_ci(np.full(20, 3.5)) == (3.5, 3.5)           # no jackknife spread
    assert bootstrap.bootstrap_ci(np.array([2.0])) == (2.0, 2.0)            # one row
    x = np.r_[np.zeros(29), 1.0]
    lo, hi = bootstrap.bootstrap_ci(x, stat=np.min, n_boot=400, seed=0)     # BCa is nan for np.min
    assert (lo, hi) == (0.0, 0.0)


# ---- the two-way bootstrap (seeds x trials) ---------------------------------------------------------

def _crossed(rng, S, T, seed_sd=0.5, trial_sd=0.5, noise_sd=1.0, mean=0.0):
    return (mean + seed_sd * rng.normal(size=(S, 1)) + trial_sd * rng.normal(size=(1, T))
            + noise_sd * rng.normal(size=(S, T)))


def test_two_way_bootstrap_shapes_and_one_seed_reduction():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 30))
    m, lo, hi = bootstrap.two_way_bootstrap_means(x, n_boot=300, seed=1)
    assert isinstance(m, float) and m == pytest.approx(x.mean()) and lo < m < hi
    d, dlo, dhi = bootstrap.two_way_bootstrap_diff(x, x[:2] + 1.0, n_boot=300, seed=1)
    assert d == pytest.approx(x.mean() - x[:2].mean() - 1.0) and dlo < d < dhi
    # one seed: exactly the bootstrap over trials (the same resamples as bootstrap_means)
    ref = bootstrap.bootstrap_means(x[0][:, None], n_boot=300, seed=1)
    assert bootstrap.two_way_bootstrap_means(x[:1], n_boot=300, seed=1) == pytest.approx(
        tuple(float(v[0]) for v in ref), abs=1e-12)
    ref = bootstrap.bootstrap_means((x[0] - x[1])[:, None], n_boot=300, seed=1)
    assert bootstrap.two_way_bootstrap_diff(x[:1], x[1:2], n_boot=300, seed=1) == pytest.approx(
        tuple(float(v[0]) for v in ref), abs=1e-12)
    with pytest.raises(ValueError, match="same trials"):
        bootstrap.two_way_bootstrap_diff(x, x[:, :10])
    with pytest.raises(ValueError, match="n_seeds, n_trials"):
        bootstrap.two_way_bootstrap_means(x[0])


def test_two_way_interval_is_wider_than_pooling_seeds_when_seeds_differ():
    """Seeds that differ (a seed random effect): pooling the seeds' trials as if independent
    understates the uncertainty; resampling seeds does not."""
    rng = np.random.default_rng(1)
    x = _crossed(rng, 8, 60, seed_sd=1.0)
    _, lo, hi = bootstrap.two_way_bootstrap_means(x, n_boot=500, seed=0)
    _, plo, phi = bootstrap.bootstrap_means(x.ravel()[:, None], n_boot=500, seed=0)
    assert hi - lo > 2 * (phi[0] - plo[0])


def test_two_way_bootstrap_covers_roughly_nominally():
    """20 seeds x 40 trials with seed, trial and residual variation: the 95% interval covers the
    true mean in 97% of 200 draws (the two-way bootstrap is slightly conservative).  Two arms of
    12 and 10 seeds sharing a large trial effect: the difference's interval (paired over trials)
    covers the true difference in 94% (with 6 and 5 seeds it under-covers, about 90%: any
    bootstrap over a handful of units does)."""
    rng = np.random.default_rng(2)
    cover, cover_d = [], []
    for r in range(200):
        x = _crossed(rng, 20, 40)
        _, lo, hi = bootstrap.two_way_bootstrap_means(x, n_boot=200, seed=r)
        cover.append(lo <= 0 <= hi)
        trials = 2.0 * rng.normal(size=(1, 40))                   # a large effect shared by both arms
        a = _crossed(rng, 12, 40, trial_sd=0.0) + trials + 0.3
        b = _crossed(rng, 10, 40, trial_sd=0.0) + trials
        _, dlo, dhi = bootstrap.two_way_bootstrap_diff(a, b, n_boot=200, seed=r)
        cover_d.append(dlo <= 0.3 <= dhi)
    assert 0.88 <= np.mean(cover) <= 0.99
    assert 0.88 <= np.mean(cover_d) <= 0.99


def test_normal_interval():
    boots = np.random.default_rng(0).normal(0, 2.0, size=(4000, 3))
    lo, hi = bootstrap.normal_interval(np.array([0.0, 1.0, 2.0]), boots, 0.95)
    assert np.allclose(hi - lo, 2 * 1.96 * boots.std(0, ddof=1), rtol=1e-3)
    assert np.allclose((lo + hi) / 2, [0.0, 1.0, 2.0])


def test_bootstrap_interval_covers_like_the_normal_one():
    """A known answer in the large-sample limit: the percentile interval of a mean is close to
    mean +- 1.96 sd / sqrt(n)."""
    x = np.random.default_rng(4).normal(size=2000)
    lo, hi = bootstrap.bootstrap_ci(x, n_boot=4000, seed=0)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    assert lo == pytest.approx(x.mean() - half, abs=0.01) and hi == pytest.approx(x.mean() + half, abs=0.01)


def test_percentile_interval_ignores_nan_when_asked():
    b = np.array([[1.0, np.nan], [2.0, 1.0], [3.0, 2.0]])
    lo, hi = bootstrap.percentile_interval(b, 0.5, ignore_nan=True)
    assert np.isfinite(lo).all() and np.isfinite(hi).all()


# ---- seeds as the unit; max-T permutation over heads ----------------------------------------------

def test_seed_intervals_reduce_to_welch_when_the_trials_add_nothing():
    """Each seed's row constant over trials (no trial variance): the difference's interval is
    scipy's Welch interval of the per-seed accuracies, and one arm's is the one-sample t interval."""
    from scipy import stats as sps

    from helpers.stats import seeds
    rng = np.random.default_rng(0)
    for _ in range(20):
        a_acc, b_acc = rng.uniform(0.5, 0.9, 3), rng.uniform(0.5, 0.9, 4)
        a = np.repeat(a_acc[:, None], 50, 1)
        b = np.repeat(b_acc[:, None], 50, 1)
        d, lo, hi = seeds.seed_diff_interval(a, b, level=0.9)
        ci = sps.ttest_ind(a_acc, b_acc, equal_var=False).confidence_interval(0.9)
        assert d == pytest.approx(a_acc.mean() - b_acc.mean(), rel=1e-9)
        assert (lo, hi) == pytest.approx((ci.low, ci.high), rel=1e-8, abs=1e-12)
        m, mlo, mhi = seeds.seed_mean_interval(a)
        one = sps.ttest_1samp(a_acc, 0).confidence_interval(0.95)
        assert (mlo, mhi) == pytest.approx((one.low, one.high), rel=1e-8)
    # one seed: no interval (nothing to estimate the seeds' spread from)
    assert np.isnan(seeds.seed_diff_interval(a[:1], b)[1]) and np.isnan(seeds.seed_mean_interval(a[:1])[1])
    with pytest.raises(ValueError, match="same trials"):
        seeds.seed_diff_interval(a, b[:, :10])


def test_seed_intervals_cover_nominally_with_three_seeds():
    """Three seeds per arm with a seed effect (sd 0.06) on 300 shared trials, equal arms: the 95%
    interval of the difference covers 0 in about 95% of 400 draws (the two-way bootstrap: ~88%)."""
    from helpers.stats import seeds
    rng = np.random.default_rng(1)
    cover = 0
    for _ in range(400):
        hard = rng.normal(0, 0.1, 300)
        arm = [np.clip(0.75 + rng.normal(0, 0.06, (3, 1)) + hard, 0, 1) for _ in range(2)]
        a, b = (rng.random((3, 300)) < p for p in arm)
        _, lo, hi = seeds.seed_diff_interval(a, b)
        cover += lo <= 0 <= hi
    assert 0.93 <= cover / 400 <= 0.995


def test_max_t_matches_welch_and_a_one_column_permutation_test():
    from scipy import stats as sps

    from helpers.stats import permutation
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 5))
    x[:, 0] += 0.8 * (np.arange(40) < 15)
    g = np.arange(40) < 15
    r = permutation.max_t_two_groups(x, g, n_perm=999, seed=0)
    welch = sps.ttest_ind(x[g], x[~g], equal_var=False)
    np.testing.assert_allclose(r["t"], welch.statistic, rtol=1e-9)
    np.testing.assert_allclose(r["diff"], x[g].mean(0) - x[~g].mean(0), rtol=1e-12)
    assert r["p_adj"][0] < 0.05 and (r["p_adj"][1:] > 0.05).all() and (r["lo"] <= r["lo_one"]).all()
    # one column: the max-T p-value is the permutation p-value of its own t (same permutations)
    one = permutation.max_t_two_groups(x[:, :1], g, n_perm=199, seed=5)
    perm_rng = np.random.default_rng(5)
    null = [sps.ttest_ind(x[p, 0], x[~p, 0], equal_var=False).statistic
            for p in (perm_rng.permutation(g) for _ in range(199))]
    assert one["p_adj"][0] == pytest.approx(permutation.permutation_p(float(one["t"][0]), null), abs=1e-12)
    assert np.isnan(permutation.max_t_two_groups(x, np.arange(40) < 1)["lo"]).all()


def test_bootstrap_t_over_columns_approaches_welch_and_keeps_skewness():
    """One gaussian column, 400 rows: the bootstrap-t interval is about Welch's normal interval;
    left-skewed values: its lower end is further from the mean than its upper end is (the
    skewness a permutation symmetrises away is kept)."""
    from helpers.stats import bootstrap
    rng = np.random.default_rng(4)
    g = np.arange(400) < 200
    x = rng.normal(size=(400, 1))
    r = bootstrap.max_t_bootstrap_two_groups(x, g, n_boot=2000, seed=1)
    half = 1.96 * r["se"][0]
    assert r["hi"][0] - r["diff"][0] == pytest.approx(half, rel=0.1)
    assert r["diff"][0] - r["lo"][0] == pytest.approx(half, rel=0.1)
    g60 = np.arange(60) < 30
    skew = np.where(g60, 1 - rng.exponential(1.0, 60), rng.normal(0, 0.01, 60))[:, None]    # left-skewed group
    s = bootstrap.max_t_bootstrap_two_groups(skew, g60, n_boot=4000, seed=1)
    assert s["diff"][0] - s["lo"][0] > s["hi"][0] - s["diff"][0]
    assert np.isnan(bootstrap.max_t_bootstrap_two_groups(x, np.arange(400) < 1)["lo"]).all()
