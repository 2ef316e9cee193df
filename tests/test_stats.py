"""One statistics implementation for the book, pinned by references and known answers."""
import numpy as np
import pytest
from scipy import stats as sps

from helpers.stats import bootstrap, intervals, multiplicity, tests


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (81, 100), (242, 300)])
def test_wilson_matches_scipy(k, n):
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = intervals.wilson_ci(k, n)
    assert lo == pytest.approx(ref.low, abs=1e-6) and hi == pytest.approx(ref.high, abs=1e-6)


def test_newcombe_known_answer():
    """Newcombe (1998), Statistics in Medicine 17:873, Table II example (a): 56/70 vs 48/80,
    method 10 (the score interval without continuity correction): 0.0524 to 0.3339."""
    d, lo, hi = intervals.newcombe_diff(56, 70, 48, 80)
    assert d == pytest.approx(0.2)
    assert lo == pytest.approx(0.0524, abs=1e-4) and hi == pytest.approx(0.3339, abs=1e-4)


def test_benjamini_hochberg_matches_scipy():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(0, 0.01, 20), rng.uniform(0, 1, 200)])
    for alpha in (0.01, 0.05, 0.2):
        ref = sps.false_discovery_control(p, method="bh") <= alpha
        assert np.array_equal(multiplicity.benjamini_hochberg(p, alpha), ref)
    assert multiplicity.benjamini_hochberg(p.reshape(20, 11), 0.05).shape == (20, 11)


def test_holm_known_answer():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max
    assert np.allclose(multiplicity.holm(p), [0.03, 0.06, 0.06, 0.02])
    assert multiplicity.holm(np.array([0.9, 0.8])).max() <= 1.0


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
    """bootstrap_means (through resample counts) and bootstrap_ci (any statistic) resample the
    same rows for the same seed, so intervals of two statistics on the same prompts are paired."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 3))
    m, lo, hi = bootstrap.bootstrap_means(X, n_boot=500, seed=7)
    for j in range(3):
        l2, h2 = bootstrap.bootstrap_ci(X[:, j], n_boot=500, seed=7)
        assert lo[j] == pytest.approx(l2, abs=1e-12) and hi[j] == pytest.approx(h2, abs=1e-12)
    assert np.allclose(m, X.mean(0))
    counts = bootstrap.resample_counts(40, 500, 7)
    assert np.array_equal(counts.sum(1), np.full(500, 40.0))
    idx = bootstrap.resample_indices(40, 500, 7)
    assert np.array_equal(np.bincount(idx[0], minlength=40), counts[0])


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
