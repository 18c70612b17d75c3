"""The uniformity tests of SBC ranks (hiercheck.validation.ranks): counts, chi-square, the ECDF test and its
simultaneous band, each against an independent computation or simulation."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from scipy import stats

from hiercheck.validation import ranks as rk


def test_ecdf_counts_match_brute_force():
    rng = np.random.default_rng(0)
    draws = 37
    ranks = rng.integers(0, draws + 1, size=(3, 4, 50))
    k = np.array([1, 5, 20, 37])
    expected = (ranks[..., None] < k).sum(-2)
    np.testing.assert_array_equal(rk.ecdf_counts(ranks, draws, k), expected)


def test_chi_square_with_one_bin_per_rank_is_pearsons_on_the_rank_counts():
    rng = np.random.default_rng(1)
    draws = 9  # ten rank values, R // 5 = 20 bins allowed: one bin per rank
    ranks = rng.integers(0, draws + 1, size=100)
    statistic, p = rk.chi_square(ranks, draws)
    expected = stats.chisquare(np.bincount(ranks, minlength=draws + 1))
    assert statistic == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue)


def test_rank_bins_cover_every_rank_and_keep_five_expected_per_bin():
    for draws, replications in [(100, 1000), (100, 40), (3, 500), (999, 200)]:
        edges = rk.rank_bins(draws, replications)
        assert edges[0] == 0 and edges[-1] == draws + 1
        assert np.all(np.diff(edges) > 0)
        assert np.min(np.diff(edges)) / (draws + 1) * replications >= 5


def test_tail_probability_is_the_smallest_two_sided_binomial_tail():
    """Against scipy's exact one-sided binomial tests (`binomtest`, less and greater) at every
    evaluation point, on counts taken rank by rank (independent of the vectorized counts)."""
    rng = np.random.default_rng(2)
    draws, n = 19, 60
    ranks = rng.integers(0, draws + 1, size=n)
    z = rk.ecdf_evaluation_points(draws, n)
    pointwise = []
    for zk in z:
        count = sum(1 for rank in ranks if rank / (draws + 1) < zk)
        lower = stats.binomtest(count, n, zk, alternative="less").pvalue
        upper = stats.binomtest(count, n, zk, alternative="greater").pvalue
        pointwise.append(min(1.0, 2 * min(lower, upper)))
    assert rk.ecdf_tail_probability(ranks, draws) == pytest.approx(min(pointwise))


@pytest.mark.parametrize("draws, replications", [(100, 200), (30, 500)])
def test_ecdf_test_holds_its_level_on_uniform_ranks(draws, replications):
    """Fresh uniform rank samples (a seed other than the null simulation's): the share with
    p <= 0.05 is within the 99.9% binomial range of 0.05 (false-alarm rate of this test 0.001)."""
    rng = np.random.default_rng(3)
    trials = 400
    p = np.array([rk.ecdf_test(rng.integers(0, draws + 1, replications), draws)
                  for _ in range(trials)])
    rejections = int(np.sum(p <= 0.05))
    low, high = stats.binom.ppf([0.0005, 0.9995], trials, 0.05)
    assert low <= rejections <= high


def test_simultaneous_band_is_left_with_probability_alpha():
    """Uniform rank samples leave the 95% band in about 5% of cases: within the 99.9% binomial
    range of 0.05 over 1000 samples (false-alarm rate 0.001)."""
    rng = np.random.default_rng(4)
    draws, replications, trials = 50, 300, 1000
    z, lower, upper = rk.simultaneous_band(draws, replications, alpha=0.05)
    samples = rng.integers(0, draws + 1, size=(trials, replications))
    ecdf = (samples[..., None] < np.rint(z * (draws + 1))).mean(-2)  # rank < k, k = z (L+1)
    left = int(np.sum(np.any((ecdf < lower) | (ecdf > upper), axis=-1)))
    low, high = stats.binom.ppf([0.0005, 0.9995], trials, 0.05)
    assert low <= left <= high


def test_both_tests_reject_ranks_from_a_too_narrow_posterior():
    """A posterior half as wide as it should be puts the truth in the extremes (U-shaped ranks)."""
    rng = np.random.default_rng(5)
    draws, replications = 100, 300
    truth = rng.standard_normal(replications)
    posterior = 0.5 * rng.standard_normal((replications, draws))
    ranks = (posterior < truth[:, None]).sum(-1)
    result = rk.uniformity(ranks, draws)
    assert result.chi2_p < 1e-6
    assert result.ecdf_p < 1e-3  # the smallest p the 4000 null simulations can give is 1/4001


def test_uniformity_rejects_ranks_out_of_range():
    with pytest.raises(ValueError, match="0..10"):
        rk.uniformity(np.array([0, 3, 11]), 10)
    with pytest.raises(ValueError, match="1-d"):
        rk.uniformity(np.zeros((2, 3), dtype=int), 10)


def test_plot_ranks_draws_histogram_and_band(tmp_path):
    rng = np.random.default_rng(6)
    axes = rk.plot_ranks(rng.integers(0, 101, 200), 100, "mu")
    hist_ax, ecdf_ax = axes
    assert "mu" in hist_ax.get_title() and "ECDF" in ecdf_ax.get_title()
    assert len(hist_ax.patches) > 0 and len(ecdf_ax.collections) > 0  # bars; the band
    hist_ax.figure.savefig(tmp_path / "ranks.png")
    assert (tmp_path / "ranks.png").stat().st_size > 1000
