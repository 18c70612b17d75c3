"""The generative model: prior draws, scores, and directly drawn sufficient statistics."""

import math

import numpy as np
from scipy import stats

from hiercheck.models import GroupedData, Priors
from hiercheck.models.simulate import Parameters, draw_parameters, draw_school_stats, draw_scores

PRIORS = Priors(a=4.0, b=3.0, c=2.0, d=1.0, nu=-1.0, phi=0.5)


def test_parameters_have_batch_shapes():
    params = draw_parameters(np.random.default_rng(0), PRIORS, m=7, size=(3, 2))
    assert params.theta.shape == (3, 2, 7)
    assert params.mu.shape == params.lam.shape == params.omega.shape == (3, 2)


def test_theta_given_hyperparameters_has_variance_tau2_sigma2():
    rng = np.random.default_rng(11)
    params = draw_parameters(rng, PRIORS, m=3, size=100_000)
    # standardized theta_i = (theta_i - mu) sqrt(omega lam) is N(0, 1) whatever the hyperparameters
    z = (params.theta - params.mu[:, None]) * np.sqrt(params.omega * params.lam)[:, None]
    for i in range(3):
        # Kolmogorov-Smirnov at alpha = 1e-4 per school
        assert stats.kstest(z[:, i], "norm").pvalue > 1e-4


def test_scores_are_normal_around_their_school_effect():
    rng = np.random.default_rng(5)
    codes = np.repeat(np.arange(4), [1, 3, 5, 2])
    params = Parameters(theta=np.array([0.0, 10.0, -5.0, 2.0]), mu=np.array(0.0),
                        lam=np.array(4.0), omega=np.array(1.0))
    scores = draw_scores(rng, Parameters(*(np.broadcast_to(p, (50_000,) + np.shape(p))
                                           for p in params)), codes)
    assert scores.shape == (50_000, 11)
    z = (scores - params.theta[codes]) * 2.0
    assert stats.kstest(z.ravel()[::11], "norm").pvalue > 1e-4  # alpha 1e-4


def test_directly_drawn_statistics_match_statistics_of_drawn_scores():
    """ybar_i and ss_i drawn in O(m) have the law of those computed from N simulated scores."""
    n = np.array([1, 2, 6])
    codes = np.repeat(np.arange(3), n)
    reps = 40_000
    params = Parameters(theta=np.array([1.0, 2.0, 3.0]), mu=np.array(0.0), lam=np.array(0.5),
                        omega=np.array(1.0))
    batch = Parameters(theta=np.broadcast_to(params.theta, (reps, 3)), mu=np.zeros(reps),
                       lam=np.full(reps, 0.5), omega=np.ones(reps))
    direct = draw_school_stats(np.random.default_rng(1), batch, n)
    scores = draw_scores(np.random.default_rng(2), batch, codes)
    from_scores = [GroupedData.from_arrays(codes, row) for row in scores[:2000]]
    ybar_s = np.array([d.ybar for d in from_scores])
    ss_s = np.array([d.ss for d in from_scores])
    assert direct.ybar.shape == direct.ss.shape == (reps, 3)
    np.testing.assert_array_equal(direct.ss[:, 0], 0.0)
    for i in range(3):
        # two-sample KS at alpha = 1e-4 for each statistic and school
        assert stats.ks_2samp(direct.ybar[:, i], ybar_s[:, i]).pvalue > 1e-4
        if n[i] > 1:
            assert stats.ks_2samp(direct.ss[:, i], ss_s[:, i]).pvalue > 1e-4
            # and lam ss_i ~ chi^2_{n_i - 1} exactly
            assert stats.kstest(0.5 * direct.ss[:, i], stats.chi2(n[i] - 1).cdf).pvalue > 1e-4
        z = (direct.ybar[:, i].mean() - params.theta[i]) / math.sqrt(1 / (0.5 * n[i]) / reps)
        assert abs(z) < 4.5  # false alarm 7e-6


def test_same_seed_same_simulation():
    one = draw_parameters(np.random.default_rng(9), PRIORS, m=4, size=3)
    two = draw_parameters(np.random.default_rng(9), PRIORS, m=4, size=3)
    for x, y in zip(one, two):
        np.testing.assert_array_equal(x, y)
