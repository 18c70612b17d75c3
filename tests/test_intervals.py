"""Profile-likelihood intervals of the EB estimates: against lme4's published intervals for
Dyestuff, and each end against a profile computed independently (a generic optimizer on the dense
normal density of the scores)."""

import numpy as np
import pytest
from scipy import optimize, stats

from hiercheck.models import load_dataset
from hiercheck.samplers import empirical_bayes as eb
from hiercheck.samplers.intervals import profile_intervals
from hiercheck.validation.eb_references import dense_log_likelihood

# Bates, "lme4: Mixed-effects modeling with R" (2010), chapter 1: confint() of the profiled ML fit
# of Dyestuff, 95%. lme4 reads the ends off a spline through the profile's points, good to
# about 1e-4 relative; the intervals here solve the profile exactly.
LME4_DYESTUFF_ML = {"between_sd": (12.197461, 84.063361), "sigma": (38.230701, 67.664889),
                    "mu": (1486.451506, 1568.548494)}


def test_dyestuff_ml_intervals_are_lme4s():
    intervals = profile_intervals(eb.fit(load_dataset("dyestuff")))
    for name, ends in LME4_DYESTUFF_ML.items():
        np.testing.assert_allclose(intervals.loc[name, ["lower", "upper"]], ends, rtol=2e-4)


def dense_profile(data, fixed: str, value: float, reml: bool) -> float:
    """max of the dense ML log-likelihood (or, for REML, of the dense restricted one: the ML one
    integrated over mu) with `fixed` held at `value`, by Nelder-Mead over the other parameters
    from the fit: shares no code with the profile intervals."""
    def loglik(mu, lam, r):
        return dense_log_likelihood(data, mu, lam, 1.0 / r if r > 0 else np.inf)

    def restricted(lam, r):
        """log of the integral over mu of the dense likelihood, which is exactly quadratic in mu:
        its peak and curvature from three evaluations."""
        centre, h = data.values.mean(), data.values.std()
        low, mid, high = (loglik(centre + k * h, lam, r) for k in (-1, 0, 1))
        curvature = -(high - 2 * mid + low) / h**2
        peak = centre + h * (high - low) / (2 * curvature * h**2)
        return loglik(peak, lam, r) + 0.5 * np.log(2 * np.pi / curvature)

    def objective(free):
        if fixed == "sigma":
            lam, r = value ** -2, np.exp(free[0])
            mu = free[1] if not reml else None
        elif fixed == "between_sd":
            lam = np.exp(free[0])
            r = value ** 2 * lam
            mu = free[1] if not reml else None
        else:  # mu
            lam, r, mu = np.exp(free[0]), np.exp(free[1]), value
        return -(restricted(lam, r) if reml and fixed != "mu" else loglik(mu, lam, r))

    fit = eb.fit(data, reml=reml)
    starts = {"sigma": [np.log(fit.variance_ratio), fit.mu],
              "between_sd": [np.log(fit.lam), fit.mu],
              "mu": [np.log(fit.lam), np.log(fit.variance_ratio)]}[fixed]
    starts = starts[:1] if reml and fixed != "mu" else starts
    best = optimize.minimize(objective, np.array(starts), method="Nelder-Mead",
                             options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 2000})
    return -best.fun


@pytest.mark.parametrize("reml", [False, True])
@pytest.mark.parametrize("name", ["mu", "sigma", "between_sd"])
def test_each_end_is_where_the_independent_profile_drops_by_the_chi_square_cut(name, reml):
    data = load_dataset("rail")
    fit = eb.fit(data, reml=reml)
    intervals = profile_intervals(fit)
    top = fit.loglik if (name != "mu" or not reml) else eb.fit(data).loglik
    cut = top - stats.chi2.ppf(0.95, 1) / 2
    for end in ("lower", "upper"):
        at_end = dense_profile(data, name, intervals.loc[name, end], reml and name != "mu")
        assert at_end == pytest.approx(cut, abs=1e-5)
    inside = dense_profile(data, name, intervals.loc[name, "estimate"], reml and name != "mu")
    assert inside == pytest.approx(top, abs=1e-5)


def test_a_boundary_fit_has_a_lower_end_of_exactly_zero():
    for reml in (False, True):
        fit = eb.fit(load_dataset("dyestuff2"), reml=reml)
        intervals = profile_intervals(fit)
        assert fit.at_boundary and intervals.loc["between_sd", "lower"] == 0.0
        assert 0 < intervals.loc["between_sd", "upper"] < np.inf
