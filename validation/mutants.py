"""A catalogue of wrong derivations: the slips people make, each a value the checks must catch.

A Gibbs mutant is `Conditionals` with one conditional replaced by a wrong formula, and the sweep
(`scheme`) that draws from it: "textbook" for the four complete conditionals, "blocked" for the
collapsed ones; an EB mutant is a wrong marginal log-likelihood (ML) or a wrong restricted
log-likelihood (REML). Each carries a one-line description of the slip. The correct forms are in
`hiercheck.samplers.gibbs`, `hiercheck.samplers.empirical_bayes` and docs/derivation.md; each
mutant below differs from its correct twin in exactly the place its description names.
"""

from __future__ import annotations

__all__ = ["CATALOGUE", "get_mutant", "Mutant"]

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from hiercheck.errors import SettingsError
from hiercheck.models.data import as_column
from hiercheck.samplers import gibbs
from hiercheck.samplers.empirical_bayes import gls_mean
from hiercheck.samplers.marginal import (LOG_2PI, log_marginal_likelihood, marginal_spread,
                                         school_weights)


class Mutant(NamedTuple):
    """A deliberately wrong piece of inference that the checks must catch.

    Attributes
    ----------
    name : str
        The mutant's name, as `get_mutant` and the command take it.
    description : str
        What is wrong, in words.
    conditionals : gibbs.Conditionals or None
        The wrong full conditionals, or None when the mutant is a likelihood.
    log_marginal_likelihood : Callable or None
        A wrong log p(y | mu, lam, omega), or None.
    restricted_log_likelihood : Callable or None
        A wrong restricted (REML) log-likelihood of (lam, omega), or None.
    subtle : bool
        Documented as hard to catch: not every check is expected to see it.
    scheme : str
        The Gibbs sweep the checks run it in (a key of `hiercheck.samplers.gibbs.SCHEMES`).
    """

    name: str
    description: str
    conditionals: gibbs.Conditionals | None = None
    log_marginal_likelihood: Callable | None = None
    restricted_log_likelihood: Callable | None = None
    subtle: bool = False  # documented as hard to catch: not every check is expected to see it
    scheme: str = "textbook"  # the sweep the checks run it in (hiercheck.samplers.gibbs.SCHEMES)


def _theta_sum_of_squares(state, stats):
    return (stats.n * (stats.ybar - state.theta) ** 2).sum(-1)


def _between_sum_of_squares(state):
    return ((state.theta - as_column(state.mu)) ** 2).sum(-1)


# -- theta ----------------------------------------------------------------------------------------

def draw_theta_variance_for_precision(rng, state, stats, priors):
    """theta_i ~ N((n_i ybar_i + omega mu)/(n_i + omega), lam (n_i + omega))  [precision used as variance]"""
    omega = as_column(state.omega)
    mean = (stats.n * stats.ybar + omega * as_column(state.mu)) / (stats.n + omega)
    variance = as_column(state.lam) * (stats.n + omega)
    return mean + np.sqrt(variance) * rng.standard_normal(np.broadcast_shapes(mean.shape, variance.shape))


def draw_theta_mean_for_total(rng, state, stats, priors):
    """theta_i ~ N((ybar_i + omega mu)/(n_i + omega), 1/(lam (n_i + omega)))  [school mean for total]"""
    omega = as_column(state.omega)
    mean = (stats.ybar + omega * as_column(state.mu)) / (stats.n + omega)
    precision = as_column(state.lam) * (stats.n + omega)
    return mean + rng.standard_normal(np.broadcast_shapes(mean.shape, precision.shape)) / np.sqrt(precision)


def draw_theta_mean_school_size(rng, state, stats, priors):
    """theta_i ~ N((nbar ybar_i + omega mu)/(nbar + omega), 1/(lam (nbar + omega))), nbar = N/m
    [every school given the mean size]
    """
    omega = as_column(state.omega)
    size = stats.N / stats.m
    mean = (size * stats.ybar + omega * as_column(state.mu)) / (size + omega)
    precision = as_column(state.lam) * (size + omega)
    return mean + rng.standard_normal(np.broadcast_shapes(mean.shape, precision.shape)) / np.sqrt(precision)


# -- mu -------------------------------------------------------------------------------------------

def draw_mu_precision_missing_lam(rng, state, stats, priors):
    """mu ~ N((omega sum theta + phi nu)/(omega m + phi), 1/(omega m + phi))  [lam dropped]"""
    omega = np.asarray(state.omega, dtype=float)
    precision = omega * stats.m + priors.phi
    mean = (omega * np.sum(state.theta, -1) + priors.phi * priors.nu) / precision
    return mean + rng.standard_normal(mean.shape) / np.sqrt(precision)


# -- lam ------------------------------------------------------------------------------------------

def _lam_spread(state, stats):
    return (stats.ss.sum(-1) + _theta_sum_of_squares(state, stats)
            + state.omega * _between_sum_of_squares(state))


def draw_lam_rate_inside_bracket(rng, state, stats, priors):
    """lam ~ Gamma(a + (N + m)/2, [b + sum ss + sum n (ybar - theta)^2 + omega sum (theta - mu)^2]/2)  [b halved]"""
    rate = (priors.b + _lam_spread(state, stats)) / 2
    return rng.standard_gamma(priors.a + (stats.N + stats.m) / 2, np.shape(rate)) / rate


def draw_lam_shape_missing_m(rng, state, stats, priors):
    """lam ~ Gamma(a + N/2, b + [...]/2)  [the m/2 from theta's prior left out of the shape]"""
    rate = priors.b + _lam_spread(state, stats) / 2
    return rng.standard_gamma(priors.a + stats.N / 2, np.shape(rate)) / rate


def draw_lam_shape_off_by_one(rng, state, stats, priors):
    """lam ~ Gamma(a + (N + m)/2 - 1, b + [...]/2)  [shape off by one: subtle]"""
    rate = priors.b + _lam_spread(state, stats) / 2
    return rng.standard_gamma(priors.a + (stats.N + stats.m) / 2 - 1, np.shape(rate)) / rate


def draw_lam_collapsed_shape_keeps_m(rng, state, stats, priors):
    """lam | mu, omega, y ~ Gamma(a + (N + m)/2, b + [sum ss + sum w (ybar - mu)^2]/2)
    [the m/2 of theta's prior kept in the shape after theta is integrated out]
    """
    rate = priors.b + marginal_spread(stats, state.mu, state.omega) / 2
    return rng.standard_gamma(priors.a + (stats.N + stats.m) / 2, np.shape(rate)) / rate


# -- omega ----------------------------------------------------------------------------------------

def draw_omega_rate_missing_lam(rng, state, stats, priors):
    """omega ~ Gamma(c + m/2, d + sum (theta - mu)^2 / 2)  [lam dropped from the rate]"""
    rate = priors.d + _between_sum_of_squares(state) / 2
    return rng.standard_gamma(priors.c + stats.m / 2, np.shape(rate)) / rate


def draw_omega_shape_off_by_half(rng, state, stats, priors):
    """omega ~ Gamma(c + (m - 1)/2, d + lam sum (theta - mu)^2 / 2)  [shape off by a half: subtle]"""
    rate = priors.d + state.lam * _between_sum_of_squares(state) / 2
    return rng.standard_gamma(priors.c + (stats.m - 1) / 2, np.shape(rate)) / rate


# -- empirical Bayes ------------------------------------------------------------------------------

def log_marginal_likelihood_missing_log_ratio(stats, mu, lam, omega):
    """-N/2 log 2pi + N/2 log lam - lam/2 [sum ss + sum w (ybar - mu)^2]  [1/2 sum log(omega/(n+omega)) left out]"""
    lam = np.asarray(lam, dtype=float)
    return 0.5 * (stats.N * (np.log(lam) - LOG_2PI) - lam * marginal_spread(stats, mu, omega))


def log_marginal_likelihood_without_2pi(stats, mu, lam, omega):
    """N/2 log lam + 1/2 sum log(omega/(n+omega)) - lam/2 [sum ss + sum w (ybar - mu)^2]  [-N/2 log 2pi dropped as a constant]"""
    lam = np.asarray(lam, dtype=float)
    log_ratio = -np.log1p(stats.n / as_column(omega))
    return 0.5 * (stats.N * np.log(lam) + log_ratio.sum(-1) - lam * marginal_spread(stats, mu, omega))


def restricted_log_likelihood_2pi_sign(stats, lam, omega):
    """log p(y | mu_hat, lam, omega) - 1/2 log 2pi - 1/2 log(lam sum w)  [the Gaussian integral's sqrt(2 pi) divided instead of multiplied: off by log 2pi]"""
    lam = np.asarray(lam, dtype=float)
    total_weight = school_weights(stats.n, omega).sum(-1)
    return (log_marginal_likelihood(stats, gls_mean(stats, omega), lam, omega)
            - 0.5 * (LOG_2PI + np.log(lam * total_weight)))


def _mutant(name, description, subtle=False, scheme="textbook", **replaced):
    return Mutant(name, description, conditionals=gibbs.Conditionals(**replaced), subtle=subtle,
                  scheme=scheme)


CATALOGUE: tuple[Mutant, ...] = (
    _mutant("theta-variance-for-precision",
            "theta_i's conditional uses lam (n_i + omega) as its variance instead of its precision",
            draw_theta=draw_theta_variance_for_precision),
    _mutant("theta-mean-for-total",
            "theta_i's conditional mean uses the school mean ybar_i where the total n_i ybar_i belongs",
            draw_theta=draw_theta_mean_for_total),
    _mutant("mu-precision-missing-lam",
            "mu's conditional precision (and mean) drops the factor lam: omega m + phi",
            draw_mu=draw_mu_precision_missing_lam),
    _mutant("lam-rate-b-inside-bracket",
            "lam's rate puts the prior rate b inside the bracket that is halved",
            draw_lam=draw_lam_rate_inside_bracket),
    _mutant("lam-shape-missing-m",
            "lam's shape misses the m/2 that theta's prior contributes: a + N/2",
            draw_lam=draw_lam_shape_missing_m),
    _mutant("omega-rate-missing-lam",
            "omega's rate drops lam: d + sum (theta_i - mu)^2 / 2",
            draw_omega=draw_omega_rate_missing_lam),
    _mutant("lam-shape-off-by-one",
            "lam's shape is one too small: a + (N + m)/2 - 1", subtle=True,
            draw_lam=draw_lam_shape_off_by_one),
    _mutant("omega-shape-off-by-half",
            "omega's shape counts m - 1 schools: c + (m - 1)/2", subtle=True,
            draw_omega=draw_omega_shape_off_by_half),
    _mutant("theta-mean-school-size",
            "theta_i's conditional gives every school the mean size N/m in place of its own n_i",
            draw_theta=draw_theta_mean_school_size),
    _mutant("blocked-lam-shape-keeps-m",
            "the blocked sweep's lam | mu, omega, y keeps the m/2 that integrating theta out "
            "removes: a + (N + m)/2", scheme="blocked",
            draw_lam_collapsed=draw_lam_collapsed_shape_keeps_m),
    Mutant("eb-missing-log-ratio",
           "the EB marginal likelihood leaves out 1/2 sum_i log(omega / (n_i + omega))",
           log_marginal_likelihood=log_marginal_likelihood_missing_log_ratio),
    Mutant("eb-ml-missing-2pi",
           "the EB marginal likelihood drops -N/2 log 2pi as a constant (its maximum does not move)",
           log_marginal_likelihood=log_marginal_likelihood_without_2pi),
    Mutant("reml-2pi-sign",
           "the REML likelihood divides by the Gaussian integral's sqrt(2 pi) instead of "
           "multiplying: off by log 2pi",
           restricted_log_likelihood=restricted_log_likelihood_2pi_sign),
)


def get_mutant(name: str) -> Mutant:
    """The mutant of the catalogue called `name`.

    Parameters
    ----------
    name : str
        A mutant's name (`Mutant.name`).

    Returns
    -------
    Mutant
        The catalogue's mutant of that name.

    Raises
    ------
    SettingsError
        If no mutant has that name.
    """
    for mutant in CATALOGUE:
        if mutant.name == name:
            return mutant
    raise SettingsError(f"unknown mutant {name!r}; mutants are {', '.join(m.name for m in CATALOGUE)}")
