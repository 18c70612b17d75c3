"""The math-test hierarchy's Gibbs sampler written the student's way, for `check_gibbs`.

The model is `hiercheck.models.student.student_model` (re-exported here), in the exercise
sheet's variances: with P schools, N scores, n_i of them in school i, ybar_i their mean,

    y_ij | theta_i ~ N(theta_i, sigma^2),   theta_i | mu ~ N(mu, tau^2 sigma^2),
    p(mu) proportional to 1,   p(sigma^2) proportional to 1/sigma^2,   tau^2 ~ IG(1/2, 1/2)

(IG(alpha, beta): density proportional to x^(-alpha-1) e^(-beta/x)). The joint density, every
factor with an unknown kept, is

    (sigma^2)^(-1) (tau^2)^(-3/2) e^(-1/(2 tau^2)) (tau^2 sigma^2)^(-P/2) e^(-S_b/(2 tau^2 sigma^2))
    (sigma^2)^(-N/2) e^(-S_w/(2 sigma^2)),

S_w = sum_ij (y_ij - theta_i)^2 and S_b = sum_i (theta_i - mu)^2. Read as a function of one
unknown at a time:

    theta_i | .  ~ N((n_i ybar_i + mu/tau^2) / (n_i + 1/tau^2), sigma^2 / (n_i + 1/tau^2))
                   completing the square in n_i (theta_i - ybar_i)^2 + (theta_i - mu)^2 / tau^2
    mu | .       ~ N(mean_i theta_i, tau^2 sigma^2 / P)          (flat prior: the school means'
                   own average, each of variance tau^2 sigma^2)
    sigma^2 | .  ~ IG((N + P)/2, (S_w + S_b/tau^2) / 2)            (powers -1 - P/2 - N/2)
    tau^2 | .    ~ IG((P + 1)/2, (1 + S_b/sigma^2) / 2)            (powers -3/2 - P/2)

These are the flagship's conditionals (docs/derivation.md, section 2) with lam = 1/sigma^2,
omega = 1/tau^2 and the course's priors, written for the variances.

`student_conditionals(data)` returns the draw functions as R code ported line by line would
have them: one state at a time (`state["theta"]` of shape (P,), the rest scalars), over the raw
scores `data["y"]` that `check_gibbs` hands over, the school index and the school sizes held in
a closure, the priors' constants typed in, and the R idioms translated: rnorm(n, mean, sd) is
rng.normal(mean, sd), rgamma(n, shape, rate) is rng.gamma(shape, 1/rate) (numpy wants the
scale), and an inverse-Gamma draw is 1/rgamma (or scipy's invgamma.rvs(shape, scale=rate): its
scale is the rate). `student_conditionals(data, slip=NAME)` puts in
one of `SLIPS`, a mistake of the kind a port makes; tests/test_student.py shows consistency
fails each.
"""

from __future__ import annotations

__all__ = ["SLIPS", "mutants", "previous_mu_conditionals", "sample", "student_conditionals",
           "student_model"]

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from hiercheck._typing import SeedLike
from hiercheck.errors import SettingsError
from hiercheck.models import GroupedData
from hiercheck.models.student import student_model

if TYPE_CHECKING:
    import arviz as az

# each slip: the variable whose function it replaces, and what it gets wrong
SLIPS = {
    "draw_theta_variance_as_sd": ("theta", "rnorm's sd given the variance "
                                           "sigma^2 / (n_i + 1/tau^2)"),
    "draw_theta_schools_for_students": ("theta", "n_i, the school's size, replaced by P, the "
                                                 "number of schools"),
    "draw_sigma2_rate_as_scale": ("sigma2", "rgamma's rate passed where numpy's gamma wants "
                                            "the scale"),
    "draw_tau2_misses_sigma2": ("tau2", "the rate (1 + S_b)/2, without S_b's factor "
                                        "1/sigma^2: theta's variance taken as tau^2"),
    "draw_tau2_scipy_scale_as_inverse_rate": ("tau2", "scipy's invgamma given scale=1/rate, as "
                                                      "scipy's gamma would want it; invgamma's "
                                                      "scale is the rate itself"),
}


def student_conditionals(data: GroupedData, slip: str | None = None) -> dict[str, Callable]:
    """The sweep {"theta": draw_theta, "mu": draw_mu, "sigma2": draw_sigma2, "tau2": draw_tau2}
    for `check_gibbs(student_model(data), ...)`, each `draw(rng, state, data)` for one state
    (the module docstring derives the conditionals).

    Parameters
    ----------
    data : GroupedData
        The design: the school of each score, held by the functions, which read the scores
        themselves from the `data` mapping `check_gibbs` passes them ("y").
    slip : str, optional
        The name of one of `SLIPS`, put in place of the correct function for its variable.

    Returns
    -------
    dict of str to callable
        The draw functions by variable, in the sweep's order.

    Raises
    ------
    SettingsError
        If `slip` is not a name of `SLIPS`.
    """
    school = data.codes                   # the school of each score, 0..P-1
    P = data.m                            # schools
    n = np.bincount(school, minlength=P)  # students per school: R's table(school)

    def school_means(y):
        return np.bincount(school, weights=y, minlength=P) / n  # tapply(y, school, mean)

    def draw_theta(rng, state, data):
        """theta_i | . ~ N((n_i ybar_i + mu/tau^2) / (n_i + 1/tau^2), sigma^2 / (n_i + 1/tau^2))"""
        mu, sigma2, tau2 = state["mu"], state["sigma2"], state["tau2"]
        mean = (n * school_means(data["y"]) + mu / tau2) / (n + 1 / tau2)
        variance = sigma2 / (n + 1 / tau2)
        return rng.normal(mean, np.sqrt(variance))     # rnorm(P, mean, sqrt(variance))

    def draw_mu(rng, state, data):
        """mu | . ~ N(mean(theta), tau^2 sigma^2 / P)"""
        theta = state["theta"]
        return rng.normal(theta.mean(), np.sqrt(state["tau2"] * state["sigma2"] / P))

    def draw_sigma2(rng, state, data):
        """sigma^2 | . ~ IG((N + P)/2, (S_w + S_b/tau^2)/2)"""
        y, theta = data["y"], state["theta"]
        within = np.sum((y - theta[school]) ** 2)
        between = np.sum((theta - state["mu"]) ** 2)
        rate = (within + between / state["tau2"]) / 2
        return 1 / rng.gamma((y.size + P) / 2, 1 / rate)  # 1 / rgamma(1, shape, rate)

    def draw_tau2(rng, state, data):
        """tau^2 | . ~ IG((P + 1)/2, (1 + S_b/sigma^2)/2)"""
        between = np.sum((state["theta"] - state["mu"]) ** 2)
        rate = (1 + between / state["sigma2"]) / 2
        return 1 / rng.gamma((P + 1) / 2, 1 / rate)

    def draw_theta_variance_as_sd(rng, state, data):
        """draw_theta with rnorm's sd given the variance."""
        mu, sigma2, tau2 = state["mu"], state["sigma2"], state["tau2"]
        mean = (n * school_means(data["y"]) + mu / tau2) / (n + 1 / tau2)
        return rng.normal(mean, sigma2 / (n + 1 / tau2))

    def draw_theta_schools_for_students(rng, state, data):
        """draw_theta with every n_i replaced by P."""
        mu, sigma2, tau2 = state["mu"], state["sigma2"], state["tau2"]
        mean = (P * school_means(data["y"]) + mu / tau2) / (P + 1 / tau2)
        return rng.normal(mean, np.sqrt(sigma2 / (P + 1 / tau2)))

    def draw_sigma2_rate_as_scale(rng, state, data):
        """draw_sigma2 with numpy's scale given the rate."""
        y, theta = data["y"], state["theta"]
        within = np.sum((y - theta[school]) ** 2)
        between = np.sum((theta - state["mu"]) ** 2)
        rate = (within + between / state["tau2"]) / 2
        return 1 / rng.gamma((y.size + P) / 2, rate)

    def draw_tau2_misses_sigma2(rng, state, data):
        """draw_tau2 with the rate (1 + S_b)/2."""
        between = np.sum((state["theta"] - state["mu"]) ** 2)
        return 1 / rng.gamma((P + 1) / 2, 1 / ((1 + between) / 2))

    def draw_tau2_scipy_scale_as_inverse_rate(rng, state, data):
        """draw_tau2 through scipy.stats.invgamma with scale 1/rate (right: scale=rate)."""
        between = np.sum((state["theta"] - state["mu"]) ** 2)
        rate = (1 + between / state["sigma2"]) / 2
        return stats.invgamma.rvs((P + 1) / 2, scale=1 / rate, random_state=rng)

    sweep = {"theta": draw_theta, "mu": draw_mu, "sigma2": draw_sigma2, "tau2": draw_tau2}
    if slip is None:
        return sweep
    if slip not in SLIPS:
        raise SettingsError(f"unknown slip {slip!r}; slips are {', '.join(SLIPS)}")
    mistakes = {function.__name__: function for function in (
        draw_theta_variance_as_sd, draw_theta_schools_for_students, draw_sigma2_rate_as_scale,
        draw_tau2_misses_sigma2, draw_tau2_scipy_scale_as_inverse_rate)}
    return {**sweep, SLIPS[slip][0]: mistakes[slip]}


def previous_mu_conditionals(data: GroupedData) -> dict[str, Callable]:
    """The sweep with sigma^2 and tau^2 drawn given the mu of the previous sweep, which draw_mu
    keeps before it draws the new one: a student's slip that leaves every marginal nearly right
    and that only a test of the functions' repeatability sees (the functions read a kept value,
    not their arguments).

    Parameters
    ----------
    data : GroupedData
        The design, as for `student_conditionals`.

    Returns
    -------
    dict of str to callable
        The draw functions by variable, in the sweep's order.
    """
    sweep, kept = student_conditionals(data), {}

    def draw_mu(rng, state, data_):
        kept["mu"] = state["mu"]
        return sweep["mu"](rng, state, data_)

    def given_kept_mu(name: str) -> Callable:
        def draw(rng, state, data_):
            return sweep[name](rng, {**state, "mu": kept.get("mu", state["mu"])}, data_)
        draw.__name__ = draw.__qualname__ = f"draw_{name}"
        return draw
    return {**sweep, "mu": draw_mu, "sigma2": given_kept_mu("sigma2"),
            "tau2": given_kept_mu("tau2")}


def mutants(data: GroupedData) -> dict[str, dict[str, Callable]]:
    """Every slip as a whole sweep, by name: those of `SLIPS` and "previous-mu"
    (`previous_mu_conditionals`), for the detection matrix (`hiercheck mutants --model student`).

    Parameters
    ----------
    data : GroupedData
        The design.

    Returns
    -------
    dict of str to dict
        Mutant name -> its sweep.
    """
    return {**{slip: student_conditionals(data, slip) for slip in SLIPS},
            "previous-mu": previous_mu_conditionals(data)}


def sample(data: GroupedData, *, draws: int = 1000, chains: int = 4, seed: SeedLike = 0,
           tune: int = 200) -> az.InferenceData:
    """The student's sweep run as a Gibbs sampler on the scores: `chains` chains of `draws`
    sweeps after `tune`, each started at the school means, the grand mean and their spreads.

    Parameters
    ----------
    data : GroupedData
        The scores.
    draws, chains : int
        Sweeps kept per chain, and chains.
    seed : SeedLike
        Seeds every chain (each its own stream).
    tune : int, default 200
        Sweeps dropped at the start of each chain.

    Returns
    -------
    arviz.InferenceData
        Posterior draws of theta, mu, sigma2 and tau2, attributed to the engine "student".
    """
    from hiercheck.models.engine import az

    sweep = student_conditionals(data)
    scores = {"y": np.asarray(data.values, dtype=float)}
    means = np.bincount(data.codes, weights=scores["y"]) / np.bincount(data.codes)
    start = {"theta": means, "mu": float(means.mean()),
             "sigma2": float(np.var(scores["y"] - means[data.codes])),
             "tau2": float(np.var(means) / np.var(scores["y"] - means[data.codes]))}
    kept = {name: np.empty((chains, draws, *np.shape(value))) for name, value in start.items()}
    for chain, stream in enumerate(np.random.SeedSequence(seed).spawn(chains)):
        rng, state = np.random.default_rng(stream), dict(start)
        for step in range(tune + draws):
            for name, draw in sweep.items():
                state[name] = draw(rng, state, scores)
            if step >= tune:
                for name in kept:
                    kept[name][chain, step - tune] = state[name]
    posterior = az.from_dict(posterior=kept, dims={"theta": ["school"]},
                             coords={"school": data.labels})
    posterior.posterior.attrs["engine"] = "student"
    return posterior
