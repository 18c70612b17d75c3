"""The exact posterior: quadrature over (log lam, log omega), and exact i.i.d. draws.

theta and mu integrate out in closed form, which leaves a two-dimensional posterior over the
variances. The closed forms here are derived on their own (docs/derivation.md, section 5.1, from
the school means' distribution), not taken from `hiercheck.samplers.marginal`, `gibbs` or
`empirical_bayes`: agreement with this engine can then catch a slip in those. In u = log lam,
v = log omega (Jacobian lam omega),

    log p(u, v | y) = log p(lam) + log p(omega) + log p(y | lam, omega) + u + v + const.

It is tabulated on an equally spaced grid in (u, v): centred at the mode, spaced a fixed fraction
of a posterior SD, widened until a negligible share of the mass (and of the variances) lies beyond
every edge, and refined until its interleaved half-grids agree with it. Sums over the grid are the
trapezoidal rule, whose error for a smooth density that has died out at the edges falls faster
than any power of the spacing. Every summary follows from the grid's weights w_k:

    E[g(lam, omega)] = sum_k w_k g(lam_k, omega_k)
    mu | y      = sum_k w_k N(M_k, V_k)                        (mixture of normals)
    theta_i | y = sum_k w_k N(m_ik, u_ik)

and the marginal CDFs of log lam and log omega come from sinc interpolation of their marginal
densities on the grid, which has the same accuracy. See docs/derivation.md, section 5.

Under an improper prior on omega (c <= 0 or d = 0, allowed where the posterior is proper:
`hiercheck.models.priors`) a moment of omega, tau or mu may not exist: under the flat prior on
tau^2 the posterior density of omega falls off only as omega^(-2), so E[omega | y] = inf. The
grid then holds the mass and the variances that exist, and `ExactPosterior.mean` and `sd` say
inf (NaN for an undefined mean of mu) for the others; CDFs, quantiles and draws are unchanged.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import optimize, special

from hiercheck._typing import SeedLike
from hiercheck.errors import QuadratureError, SettingsError
from hiercheck.models import GroupedData, Priors, SchoolStats
from hiercheck.models.data import as_column
from hiercheck.models.engine import az, check_run_size, to_inference_data

__all__ = [
    "DEFAULT_EDGE_TOL", "DEFAULT_SPACING", "VARIABLES", "ExactPosterior", "VarianceGrid", "log_likelihood_of_variances",
    "log_posterior_variances", "mu_given_variances", "posterior", "sample",
    "school_mean_precisions", "theta_given_mu", "theta_given_variances", "variance_grid",
]

VARIABLES = ("mu", "lam", "omega", "sigma", "tau", "theta")  # the engine's draws
PER_SCHOOL = ("theta", "kappa")  # kappa_i = omega/(n_i + omega), asked for by name too

DEFAULT_SPACING = 0.2   # grid step, in posterior SDs of log lam and log omega
DEFAULT_EDGE_TOL = 1e-12  # largest share of the mass or variances allowed beyond each edge
LOG_LIMIT = 230.0       # the grid stays within |log lam|, |log omega| <= 230, i.e. 1e-100..1e100
MAX_NODES = 1000        # per axis: 200 posterior SDs at the default spacing
INITIAL_HALF_WIDTH = 8.0  # posterior SDs either side of the mode before any widening
WIDENING = 2.0          # posterior SDs added to an edge that still holds mass (at least)
BLOCK_ELEMENTS = 1 << 21  # grid nodes x schools evaluated at once, to bound memory
RESOLUTION_TOL = 1e-10  # largest disagreement allowed between the half-grids and the grid
NOISE_TOL = 1e-7        # ... or, when refining no longer reduces it (rounding noise), this
MAX_REFINEMENTS = 5     # halvings of the spacing before giving up
DIFFERENCE_STEP = 1e-3  # finite-difference step in log lam and log omega, to find the mode
AXIS_NAMES = ("log lam", "log omega")
LOG_2PI = math.log(2.0 * math.pi)


# -- the densities ------------------------------------------------------------------------------
# Derived in docs/derivation.md, section 5.1, from the school means: given (mu, lam, omega) the
# mean of school i is ybar_i = theta_i + (mean of n_i errors), a sum of independent normals,
#
#     ybar_i | mu, lam, omega ~ N(mu, v_i / lam),   v_i = 1/n_i + 1/omega,
#
# and its n_i - 1 orthonormal within-school contrasts are i.i.d. N(0, 1/lam), independent of it,
# with squares summing to ss_i. Every function broadcasts lam and omega (any common batch shape
# (...)) against the school axis.

def school_mean_precisions(stats: SchoolStats, lam: ArrayLike, omega: ArrayLike) -> np.ndarray:
    """p_i = lam / v_i = lam / (1/n_i + 1/omega), the precision of ybar_i about mu: (..., m).

    Parameters
    ----------
    stats : SchoolStats
        The data's sufficient statistics.
    lam : array_like
        The within-school precision, of any batch shape.
    omega : array_like
        The precision ratio, broadcasting against lam.

    Returns
    -------
    numpy.ndarray
        p_i, shape (..., m).
    """
    return as_column(lam) / (1.0 / stats.n + 1.0 / as_column(omega))


def _pooled_school_mean(stats: SchoolStats, precisions: np.ndarray) -> np.ndarray:
    """ybar_p = sum_i p_i ybar_i / sum_i p_i, summed as deviations from the first school's mean
    so that scores far from zero (1e6 +- 1e-3) keep their digits; shape (...).
    """
    origin = stats.ybar[..., :1]
    return origin[..., 0] + (precisions * (stats.ybar - origin)).sum(-1) / precisions.sum(-1)


def log_likelihood_of_variances(stats: SchoolStats, priors: Priors, lam: ArrayLike,
                                omega: ArrayLike) -> np.ndarray:
    """log p(y | lam, omega), theta and mu integrated out (mu ~ N(nu, 1/phi)), as the density of
    the within-school contrasts times that of the school means:

        contrasts:  -1/2 sum_i log n_i + (N - m)/2 (log lam - log 2pi) - lam/2 sum_i ss_i
        means:      ybar ~ N_m(nu 1, diag(1/p) + 11'/phi), whose log density is
                    -m/2 log 2pi + 1/2 sum_i log p_i - 1/2 log(1 + S/phi)
                    - 1/2 [sum_i p_i (ybar_i - ybar_p)^2 + (ybar_p - nu)^2 / (1/S + 1/phi)]

    with S = sum_i p_i and ybar_p the precision-weighted mean of the school means (the
    -1/2 log n_i is the Jacobian of ybar_i against the contrast sqrt(n_i) ybar_i). Under a flat
    prior on mu (phi = 0) the means' term is its integral over mu instead,

                    -(m - 1)/2 log 2pi + 1/2 sum_i log p_i - 1/2 log S
                    - 1/2 sum_i p_i (ybar_i - ybar_p)^2.

    Parameters
    ----------
    stats : SchoolStats
        The data's sufficient statistics.
    priors : Priors
        The priors.
    lam : array_like
        The within-school precision, of any batch shape.
    omega : array_like
        The precision ratio, broadcasting against lam.

    Returns
    -------
    numpy.ndarray
        log p(y | lam, omega), of the batch shape.
    """
    lam = np.asarray(lam, dtype=float)
    precisions = school_mean_precisions(stats, lam, omega)
    total = precisions.sum(-1)
    pooled = _pooled_school_mean(stats, precisions)
    spread = stats.ybar - pooled[..., None]
    contrasts = (0.5 * (stats.N - stats.m) * (np.log(lam) - LOG_2PI)
                 - 0.5 * lam * stats.ss.sum(-1) - 0.5 * np.log(stats.n).sum(-1))
    if priors.phi == 0:  # flat mu: the integral of N(ybar; mu 1, diag(1/p)) over mu
        means = (-0.5 * (stats.m - 1) * LOG_2PI + 0.5 * np.log(precisions).sum(-1)
                 - 0.5 * np.log(total) - 0.5 * (precisions * spread * spread).sum(-1))
    else:
        means = (-0.5 * stats.m * LOG_2PI + 0.5 * np.log(precisions).sum(-1)
                 - 0.5 * np.log1p(total / priors.phi)
                 - 0.5 * (precisions * spread * spread).sum(-1)
                 - 0.5 * (pooled - priors.nu) ** 2 / (1.0 / total + 1.0 / priors.phi))
    return contrasts + means


def mu_given_variances(stats: SchoolStats, priors: Priors, lam: ArrayLike,
                       omega: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """mu | lam, omega, y ~ N(M, V): the school means measure mu with precisions p_i, so

        V = 1 / (phi + S),   M = ybar_p + phi (nu - ybar_p) / (phi + S),

    the pooled school mean pulled toward the prior's nu by the prior's share of the precision.
    Returns (M, V), each of the batch shape.

    Parameters
    ----------
    stats : SchoolStats
        The data's sufficient statistics.
    priors : Priors
        The priors.
    lam : array_like
        The within-school precision, of any batch shape.
    omega : array_like
        The precision ratio, broadcasting against lam.

    Returns
    -------
    M, V : numpy.ndarray
        The conditional mean and variance of mu, each of the batch shape.
    """
    precisions = school_mean_precisions(stats, lam, omega)
    combined = priors.phi + precisions.sum(-1)
    pooled = _pooled_school_mean(stats, precisions)
    return pooled + priors.phi * (priors.nu - pooled) / combined, 1.0 / combined


def _reliabilities(stats: SchoolStats, omega):
    """(g_i, 1 - g_i) with g_i = (1/omega) / v_i = 1 / (1 + omega/n_i), the share of ybar_i's
    variance about mu that is theta_i's; each computed directly so that neither loses digits
    near 0 (omega = inf gives g_i = 0).
    """
    omega = as_column(omega)
    return 1.0 / (1.0 + omega / stats.n), 1.0 / (1.0 + stats.n / omega)


def theta_given_mu(stats: SchoolStats, mu: ArrayLike, lam: ArrayLike,
                   omega: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """theta_i | mu, lam, omega, y ~ N(mu + g_i (ybar_i - mu), g_i / (lam n_i)): the regression of
    theta_i on ybar_i within the normal pair (theta_i, ybar_i) | mu, whose covariance is
    1/(lam omega) and ybar_i's variance v_i / lam. Returns (mean, variance), each (..., m).

    Parameters
    ----------
    stats : SchoolStats
        The data's sufficient statistics.
    mu : array_like
        The grand mean, of any batch shape.
    lam : array_like
        The within-school precision, of any batch shape.
    omega : array_like
        The precision ratio, broadcasting against lam.

    Returns
    -------
    mean, variance : numpy.ndarray
        Each of shape (..., m).
    """
    reliability, _ = _reliabilities(stats, omega)
    mu = as_column(mu)
    return (mu + reliability * (stats.ybar - mu),
            reliability / (as_column(lam) * stats.n))


def theta_given_variances(stats: SchoolStats, priors: Priors, lam: ArrayLike,
                          omega: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """theta_i | lam, omega, y ~ N(M + g_i (ybar_i - M), g_i / (lam n_i) + (1 - g_i)^2 V):
    `theta_given_mu` is g_i ybar_i + (1 - g_i) mu plus independent noise, and mu ~ N(M, V)
    (`mu_given_variances`). Returns (mean, variance), each of shape (..., m).

    Parameters
    ----------
    stats : SchoolStats
        The data's sufficient statistics.
    priors : Priors
        The priors.
    lam : array_like
        The within-school precision, of any batch shape.
    omega : array_like
        The precision ratio, broadcasting against lam.

    Returns
    -------
    mean, variance : numpy.ndarray
        Each of shape (..., m).
    """
    mu_mean, mu_variance = mu_given_variances(stats, priors, lam, omega)
    mean, variance = theta_given_mu(stats, mu_mean, lam, omega)
    _, pull = _reliabilities(stats, omega)
    return mean, variance + pull * pull * as_column(mu_variance)


def log_posterior_variances(stats: SchoolStats, priors: Priors, log_lam: ArrayLike,
                            log_omega: ArrayLike) -> np.ndarray:
    """log p(u, v | y) up to a constant, u = log lam, v = log omega (mu and theta integrated):

        log Gamma(lam; a, b) + log Gamma(omega; c, d) + log p(y | lam, omega) + u + v

    where log p(y | lam, omega) is `log_likelihood_of_variances` and u + v is the Jacobian of
    (lam, omega) -> (u, v). Broadcasts log_lam against log_omega.

    Parameters
    ----------
    stats : SchoolStats
        The data's sufficient statistics.
    priors : Priors
        The priors.
    log_lam : array_like
        u = log lam.
    log_omega : array_like
        v = log omega, broadcasting against log_lam.

    Returns
    -------
    numpy.ndarray
        log p(u, v | y) up to a constant, of the broadcast shape.
    """
    log_lam = np.asarray(log_lam, dtype=float)
    log_omega = np.asarray(log_omega, dtype=float)
    lam, omega = np.exp(log_lam), np.exp(log_omega)
    return (priors.logpdf_lam(lam) + priors.logpdf_omega(omega) + log_lam + log_omega
            + log_likelihood_of_variances(stats, priors, lam, omega))


def _log_density_table(stats: SchoolStats, priors: Priors, log_lam, log_omega) -> np.ndarray:
    """`log_posterior_variances` on the grid log_lam x log_omega, a block of rows at a time so
    that the (rows, columns, schools) intermediates stay small.
    """
    rows = max(1, BLOCK_ELEMENTS // (log_omega.size * stats.m))
    blocks = [log_posterior_variances(stats, priors, log_lam[start:start + rows, None],
                                      log_omega[None, :])
              for start in range(0, log_lam.size, rows)]
    table = np.concatenate(blocks, axis=0)
    if np.isnan(table).any() or np.isposinf(table).any():
        raise QuadratureError("the posterior density of (log lam, log omega) is not finite on "
                              "the grid; the data or priors are too extreme for quadrature")
    return table


# -- locating the posterior ---------------------------------------------------------------------

def _starting_point(stats: SchoolStats) -> np.ndarray:
    """(log lam, log omega) where the search for the mode starts: lam from the pooled
    within-school variance, 1/omega = tau^2 from how far the school means spread beyond what
    that variance explains, var(ybar_i) lam - mean(1/n_i), at least a tenth of mean(1/n_i). (From
    tau = 1 instead, a search for a mode at tau = 1e8 runs off to the grid's bounds.) It only
    places the search: the grid is checked wherever the mode turns out to be.
    """
    lam = 1.0 / float(stats.pooled_variance)
    typical = float(np.mean(1.0 / stats.n))
    ratio = max(float(np.var(stats.ybar, ddof=1)) * lam - typical, 0.1 * typical)
    return np.array([math.log(lam), -math.log(ratio)])


def _gradient(function, x: np.ndarray, step: float) -> np.ndarray:
    """Central-difference gradient of a function of two variables."""
    return np.array([function(x + e) - function(x - e) for e in np.eye(2) * step]) / (2 * step)


def _hessian(function, x: np.ndarray, step: float) -> np.ndarray:
    """Central-difference Hessian of a function of two variables."""
    hessian = np.empty((2, 2))
    basis = np.eye(2) * step
    centre = function(x)
    for i in range(2):
        hessian[i, i] = (function(x + basis[i]) - 2.0 * centre + function(x - basis[i])) / step**2
    hessian[0, 1] = hessian[1, 0] = (
        function(x + basis[0] + basis[1]) - function(x + basis[0] - basis[1])
        - function(x - basis[0] + basis[1]) + function(x - basis[0] - basis[1])) / (4 * step**2)
    return hessian


def _is_positive_definite(matrix: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(matrix)) and np.all(np.linalg.eigvalsh(matrix) > 0))


def _laplace(stats: SchoolStats, priors: Priors):
    """The mode of log p(u, v | y) and the SDs of the normal approximation there; they only size
    the first grid, so finite differences are accurate enough.

    Returns (mode, sds), each of shape (2,).
    """
    def log_density(x):
        return float(log_posterior_variances(stats, priors, x[0], x[1]))

    found = optimize.minimize(lambda x: -log_density(x), _starting_point(stats),
                              method="L-BFGS-B", bounds=[(-LOG_LIMIT, LOG_LIMIT)] * 2)
    mode = found.x
    # Newton steps polish a mode that L-BFGS-B left short on a very elongated posterior
    for _ in range(3):
        curvature = -_hessian(log_density, mode, DIFFERENCE_STEP)
        if not _is_positive_definite(curvature):
            break
        mode = mode + np.linalg.solve(curvature, _gradient(log_density, mode, DIFFERENCE_STEP))
    curvature = -_hessian(log_density, mode, DIFFERENCE_STEP)
    if np.any(np.abs(mode) >= LOG_LIMIT) or not _is_positive_definite(curvature):
        raise QuadratureError(
            f"the posterior of (log lam, log omega) has no interior mode within +-{LOG_LIMIT:g} "
            f"(search ended at {mode[0]:.3g}, {mode[1]:.3g}); it looks improper or piles up at "
            "a boundary")
    return mode, np.sqrt(np.diag(np.linalg.inv(curvature)))


# -- the grid -----------------------------------------------------------------------------------

def _mean_sd(weights, values):
    """Mean and SD of `values` under `weights` that sum to one."""
    mean = weights @ values
    return mean, math.sqrt(weights @ (values - mean) ** 2)


# For each axis (log lam, log omega), the quantities exp(power x) whose moments the grid must
# hold, as (power, order): order 2 where the posterior variance exists, 1 where only the mean does.
Moments = tuple[tuple[tuple[float, int], ...], tuple[tuple[float, int], ...]]
EVERY_MOMENT: Moments = (((1.0, 2), (-0.5, 2)), ((1.0, 2), (-0.5, 2)))


def _variance_summaries(weights: np.ndarray, log_lam: np.ndarray, log_omega: np.ndarray,
                        moments: Moments):
    """(total mass, means, scales) of exp(power x), x = log lam or log omega, for each axis's
    (power, order) in `moments`, from trapezoidal weights on the grid log_lam x log_omega. A
    quantity's scale is its SD where its variance exists (order 2), else its mean.
    """
    total = weights.sum()
    means, scales = [], []
    for axis, nodes in enumerate((log_lam, log_omega)):
        for power, order in moments[axis]:
            mean, sd = _mean_sd(weights.sum(axis=1 - axis) / total, np.exp(power * nodes))
            means.append(mean)
            scales.append(sd if order == 2 else mean)
    return total, np.array(means), np.array(scales)


def _existing_moments(priors: Priors, m: int) -> Moments:
    """The moments of lam, sigma, omega and tau (powers 1 and -1/2) that the posterior has:
    every one of lam's, and of omega's those `Priors.omega_moment_exists` finds for m schools
    (under an improper prior on omega one may not exist: the flat prior on tau^2 has
    E[omega | y] = inf). Only these weigh in the grid's edge and resolution checks: a moment
    that does not exist has a tail no grid can hold, and the summaries say it is infinite
    instead (`_without_moments`).
    """
    omega = []
    for power in (1.0, -0.5):
        if priors.omega_moment_exists(2 * power, m):
            omega.append((power, 2))
        elif priors.omega_moment_exists(power, m):
            omega.append((power, 1))
    return EVERY_MOMENT[0], tuple(omega)


@dataclass(frozen=True)
class VarianceGrid:
    """log p(u, v, y), the posterior density of (log lam, log omega) times p(y), at the nodes
    log_lam[j] x log_omega[k], equally spaced by `step` (per axis).

    Attributes
    ----------
    log_lam : numpy.ndarray
        The nodes u_j = log lam.
    log_omega : numpy.ndarray
        The nodes v_k = log omega.
    log_density : numpy.ndarray
        log p(u_j, v_k, y), shape (len(log_lam), len(log_omega)).
    step : numpy.ndarray
        The spacing of the nodes of each axis, shape (2,).
    held : tuple, default EVERY_MOMENT
        For each axis, the quantities lam^power or omega^power whose moments the edge and
        resolution checks weigh, as (power, order) (`_existing_moments`): order 2 for a mean
        and a variance, 1 for a mean alone.
    """

    log_lam: np.ndarray
    log_omega: np.ndarray
    log_density: np.ndarray
    step: np.ndarray
    held: Moments = EVERY_MOMENT

    @property
    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        """(log_lam, log_omega): the nodes of each axis."""
        return (self.log_lam, self.log_omega)

    @cached_property
    def weights(self) -> np.ndarray:
        """w_jk = p(u_j, v_k | y) step_u step_v: the trapezoidal weights, normalized to sum 1."""
        weights = np.exp(self.log_density - self.log_density.max())
        return weights / weights.sum()

    def log_evidence(self) -> float:
        """log p(y) = log of the trapezoidal sum of p(u, v, y) over the grid.

        Returns
        -------
        float
            log p(y).
        """
        return float(special.logsumexp(self.log_density) + np.log(self.step).sum())

    def marginal(self, axis: int) -> np.ndarray:
        """The weights of the nodes of one axis (0: log lam, 1: log omega), the other summed.

        Parameters
        ----------
        axis : int
            0 for log lam, 1 for log omega.

        Returns
        -------
        numpy.ndarray
            The summed weights of that axis's nodes.
        """
        return self.weights.sum(axis=1 - axis)

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Posterior means and SDs of (log lam, log omega), each of shape (2,).

        Returns
        -------
        means, sds : numpy.ndarray
            Each of shape (2,): (log lam, log omega).
        """
        return tuple(np.array(pair) for pair in zip(
            *(_mean_sd(self.marginal(axis), nodes) for axis, nodes in enumerate(self.axes))))

    def resolution_errors(self) -> np.ndarray:
        """For each axis, how far the two interleaved half-grids of that axis (every other
        node, weights x 2) fall from the whole grid: in the total mass (relative) and in the
        means and SDs of lam, sigma, omega and tau (in posterior SDs). It estimates the
        half-grid's quadrature error, which bounds the whole grid's: halving the step cuts the
        error at least fourfold, and beyond any power once the density is resolved. Only the
        moments that exist (`held`) are compared, a mean without a variance relative to
        itself: one that does not exist has no value the half-grids could approach.

        Returns
        -------
        numpy.ndarray
            The largest disagreement of each axis, shape (2,).
        """
        weights = self.weights
        _, means, scales = _variance_summaries(weights, *self.axes, self.held)
        with_sd = np.array([order == 2 for axis in self.held for _, order in axis], dtype=bool)
        errors = np.zeros(2)
        for axis in range(2):
            for first in (0, 1):
                every_other = [slice(None), slice(None)]
                every_other[axis] = slice(first, None, 2)
                axes = [nodes[every_other[index]] for index, nodes in enumerate(self.axes)]
                total, half_means, half_scales = _variance_summaries(
                    2.0 * weights[tuple(every_other)], *axes, self.held)
                errors[axis] = max(errors[axis], abs(total - 1.0),
                                   np.max(np.abs(half_means - means) / scales),
                                   np.max(np.abs(half_scales - scales)[with_sd] / scales[with_sd],
                                          initial=0.0))
        return errors

    def _tail_shares(self, axis: int) -> np.ndarray:
        """Each node's share (along one axis, the other summed) of the mass and of the moments
        of the two quantities on that axis (lam and sigma, or omega and tau) that exist
        (`held`): w_j (1 + z_j^2 + z'_j^2) / sum, z the standardized values, or x_j / E[x]
        in place of z_j^2 for a quantity x with a mean but no variance. The variances weight the
        far tails more than the mass does: the tail of log omega toward 0 carries tau^2 = 1/omega.
        """
        weights, nodes = self.marginal(axis), self.axes[axis]
        importance = np.ones_like(nodes)
        for power, order in self.held[axis]:
            values = np.exp(power * nodes)
            mean, sd = _mean_sd(weights, values)
            share = ((values - mean) / sd) ** 2 if order == 2 else values / mean
            # capped so that far-off nodes of negligible weight cannot overflow
            importance += np.minimum(share, 1e150)
        shares = weights * importance
        return shares / shares.sum()

    def share_beyond_edges(self) -> np.ndarray:
        """Estimated share of the mass and the variances (`_tail_shares`) lying beyond each
        edge, shape (axis, side) with side 0 low, 1 high.

        The outermost row's share r_0 and the next one's r_1 give the tail's geometric decay
        q = r_0 / r_1, so the share beyond is r_0 q / (1 - q); a tail that does not decay
        (q >= 1) holds an unknown amount: infinity.

        Returns
        -------
        numpy.ndarray
            The estimated shares, shape (2, 2).
        """
        beyond = np.empty((2, 2))
        for axis in range(2):
            shares = self._tail_shares(axis)
            for side, (edge, inner) in enumerate(((shares[0], shares[1]),
                                                  (shares[-1], shares[-2]))):
                if edge == 0.0:
                    beyond[axis, side] = 0.0
                elif edge >= inner:
                    beyond[axis, side] = math.inf
                else:
                    ratio = edge / inner
                    beyond[axis, side] = edge * ratio / (1.0 - ratio)
        return beyond

    def widened(self, stats: SchoolStats, priors: Priors, axis: int, side: int,
                count: int) -> VarianceGrid:
        """The grid with `count` more nodes beyond one edge, evaluating only the new ones.

        Parameters
        ----------
        stats : SchoolStats
            The data's sufficient statistics.
        priors : Priors
            The priors.
        axis : int
            0 for log lam, 1 for log omega.
        side : int
            0 for the low edge, 1 for the high one.
        count : int
            How many nodes to add.

        Returns
        -------
        VarianceGrid
            The wider grid.
        """
        nodes = self.axes[axis]
        offsets = self.step[axis] * np.arange(1, count + 1)
        new = nodes[0] - offsets[::-1] if side == 0 else nodes[-1] + offsets
        axes = list(self.axes)
        axes[axis] = new
        strip = _log_density_table(stats, priors, *axes)
        parts = (strip, self.log_density) if side == 0 else (self.log_density, strip)
        axes[axis] = np.concatenate((new, nodes) if side == 0 else (nodes, new))
        return VarianceGrid(axes[0], axes[1], np.concatenate(parts, axis=axis), self.step,
                            self.held)


def _grid_around(stats: SchoolStats, priors: Priors, centre: np.ndarray, sds: np.ndarray,
                 spacing: np.ndarray) -> VarianceGrid:
    """A grid spaced `spacing` SDs apart (per axis), reaching INITIAL_HALF_WIDTH SDs either side
    of centre but not beyond LOG_LIMIT (the edge-mass check then reports mass cut off there).
    """
    axes = []
    for axis in range(2):
        reach = math.ceil(INITIAL_HALF_WIDTH / spacing[axis])
        if 2 * reach + 1 > MAX_NODES:
            raise QuadratureError(f"resolving the posterior of {AXIS_NAMES[axis]} needs more "
                                  f"than {MAX_NODES} grid nodes")
        nodes = centre[axis] + spacing[axis] * sds[axis] * np.arange(-reach, reach + 1)
        axes.append(nodes[np.abs(nodes) <= LOG_LIMIT])
    return VarianceGrid(axes[0], axes[1], _log_density_table(stats, priors, *axes),
                        spacing * sds, _existing_moments(priors, stats.m))


def _hold_mass(grid: VarianceGrid, stats: SchoolStats, priors: Priors, spacing: np.ndarray,
               edge_tol: float) -> VarianceGrid:
    """Widen the grid at every edge beyond which more than `edge_tol` of the mass or of the
    variances lies (`VarianceGrid.share_beyond_edges`), by WIDENING SDs or a quarter of the
    axis, whichever is more, until no edge does.
    """
    while True:
        heavy = np.argwhere(grid.share_beyond_edges() > edge_tol)
        if heavy.size == 0:
            return grid
        for axis, side in heavy:
            nodes = grid.axes[axis]
            edge, direction = (nodes[0], -1) if side == 0 else (nodes[-1], 1)
            count = max(math.ceil(WIDENING / spacing[axis]), nodes.size // 4)
            reach = abs(edge + direction * count * grid.step[axis])
            if nodes.size + count > MAX_NODES or reach > LOG_LIMIT:
                raise QuadratureError(
                    f"the posterior of {AXIS_NAMES[axis]} still holds mass (or variance) beyond "
                    f"{edge:.4g} after widening the grid to {nodes.size} nodes; "
                    "it looks improper or piles up at a boundary")
            grid = grid.widened(stats, priors, axis, side, count)


def variance_grid(stats: SchoolStats, priors: Priors, *, spacing: float = DEFAULT_SPACING,
                  edge_tol: float = DEFAULT_EDGE_TOL) -> VarianceGrid:
    """The adaptive grid: `spacing` SDs of the normal approximation at the mode, widened until
    at most `edge_tol` of the mass or variances lies beyond any edge, then checked by its
    half-grids. While an axis's half-grids disagree with the grid by more than RESOLUTION_TOL,
    the grid is rebuilt around its own mean and SDs with that axis's spacing halved, unless the
    last halving did not at least halve the disagreement: then it is rounding noise in the
    density, which a finer grid cannot remove, and it is accepted if below NOISE_TOL.

    Parameters
    ----------
    stats : SchoolStats
        The data's sufficient statistics.
    priors : Priors
        The priors.
    spacing : float, default DEFAULT_SPACING
        The starting distance between nodes, in SDs of the normal approximation.
    edge_tol : float, default DEFAULT_EDGE_TOL
        The largest share of the mass or variances allowed beyond an edge.

    Returns
    -------
    VarianceGrid
        The grid, resolved.

    Raises
    ------
    PriorError
        If the posterior is improper under the priors (`Priors.require_proper_posterior`).
    QuadratureError
        If no grid resolves the posterior.
    """
    priors.require_proper_posterior(stats.m)
    _check_settings(spacing, edge_tol)
    centre, sds = _laplace(stats, priors)
    spacings = np.full(2, float(spacing))
    previous = np.full(2, np.inf)  # each axis's disagreement before its last halving
    for _ in range(MAX_REFINEMENTS):
        grid = _hold_mass(_grid_around(stats, priors, centre, sds, spacings), stats, priors,
                          spacings, edge_tol)
        errors = grid.resolution_errors()
        coarse = (errors > RESOLUTION_TOL) & (errors < previous / 2)
        if not coarse.any():
            if np.any(errors > NOISE_TOL):
                raise QuadratureError(
                    f"the grid does not resolve the posterior: its half-grids disagree by "
                    f"{errors.max():.2g} at {spacings.min():.3g} posterior SDs between nodes")
            return grid
        previous = np.where(coarse, errors, np.inf)
        centre, sds = grid.moments()
        spacings[coarse] /= 2
    raise QuadratureError(f"the grid does not resolve the posterior even at {spacings.min():.3g} "
                          f"posterior SDs between nodes")


def _check_settings(spacing, edge_tol) -> None:
    if not 0.0 < spacing <= 1.0:
        raise QuadratureError(f"spacing must be in (0, 1] posterior SDs, got {spacing!r}")
    if not 0.0 < edge_tol <= 1e-3:
        raise QuadratureError(f"edge_tol must be in (0, 1e-3], got {edge_tol!r}")


# -- one variable's posterior -------------------------------------------------------------------

def _invert_increasing(cdf_and_pdf, target, lower, upper, start, tolerance):
    """x with F(x) = target for an increasing F, elementwise, where cdf_and_pdf(x) = (F, F'):
    Newton steps, replaced by bisection whenever they leave the bracket [lower, upper] that the
    iterates keep shrinking.
    """
    lower, upper, x, tolerance = np.broadcast_arrays(
        *(np.asarray(value, dtype=float) for value in (lower, upper, start, tolerance)))
    lower, upper = lower.copy(), upper.copy()
    x = np.clip(x, lower, upper)
    for _ in range(200):
        cdf, pdf = cdf_and_pdf(x)
        excess = cdf - target
        upper = np.where(excess > 0, x, upper)
        lower = np.where(excess > 0, lower, x)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = excess / pdf
        converged = np.abs(step) <= tolerance
        if np.all(converged):
            return x - step
        newton = x - step
        # a converged Newton step may round onto the bracket's edge; it must not bisect
        accept = converged | (np.isfinite(newton) & (newton > lower) & (newton < upper))
        x = np.where(accept, newton, 0.5 * (lower + upper))
    raise QuadratureError("a posterior quantile did not converge in 200 steps")


@dataclass(frozen=True)
class _NormalMixture:
    """sum_k w_k N(means[k], sds[k]^2); axes after the first (components) are a batch."""

    weights: np.ndarray
    means: np.ndarray
    sds: np.ndarray

    def _over_components(self, values) -> np.ndarray:
        """sum_k w_k values[..., k, batch]."""
        return np.tensordot(self.weights, values, axes=(0, values.ndim - self.means.ndim))

    def mean(self) -> np.ndarray:
        """sum_k w_k means_k, summed as means_0 + sum_k w_k (means_k - means_0): the offsets are
        small where the means are large (scores near 1e6), so rounding does not pile up.
        """
        reference = self.means[0]
        return reference + self._over_components(self.means - reference)

    def sd(self) -> np.ndarray:
        deviation = self.means - self.mean()
        return np.sqrt(self._over_components(self.sds * self.sds + deviation * deviation))

    def _standardized(self, x) -> np.ndarray:
        """(x - means_k) / sds_k for x of shape (...) + batch, components inserted before batch."""
        x = np.expand_dims(np.asarray(x, dtype=float), axis=-self.means.ndim)
        return (x - self.means) / self.sds

    def cdf(self, x) -> np.ndarray:
        return self._over_components(special.ndtr(self._standardized(x)))

    def cdf_and_pdf(self, x):
        z = self._standardized(x)
        density = np.exp(-0.5 * z * z) / (math.sqrt(2 * math.pi) * self.sds)
        return self._over_components(special.ndtr(z)), self._over_components(density)

    def quantile(self, q) -> np.ndarray:
        """Bracketed 40 component SDs beyond the extreme components, where no mass lies."""
        q = np.asarray(q, dtype=float)[(...,) + (None,) * (self.means.ndim - 1)]
        mean, sd = self.mean(), self.sd()
        return _invert_increasing(self.cdf_and_pdf, q, (self.means - 40 * self.sds).min(axis=0),
                                  (self.means + 40 * self.sds).max(axis=0),
                                  mean + sd * special.ndtri(q), 1e-12 * sd)


@dataclass(frozen=True)
class _SincMarginal:
    """The marginal density of log lam or log omega, known as weights p_k at equally spaced nodes
    x_k (step h); between nodes it is the sinc interpolant

        p(x) = sum_k (p_k / h) sinc((x - x_k) / h),
        F(x) = sum_k p_k (1/2 + Si(pi (x - x_k) / h) / pi),

    which, like the trapezoidal rule, is accurate beyond any power of h for a smooth density.
    """

    nodes: np.ndarray
    weights: np.ndarray
    step: float

    def _scaled_distance(self, x) -> np.ndarray:
        return (np.asarray(x, dtype=float)[..., None] - self.nodes) / self.step

    def cdf(self, x) -> np.ndarray:
        return self.cdf_and_pdf(x)[0]

    def cdf_and_pdf(self, x):
        distance = self._scaled_distance(x)
        sine_integral, _ = special.sici(np.pi * distance)
        return ((0.5 + sine_integral / np.pi) @ self.weights,
                np.sinc(distance) @ self.weights / self.step)

    def quantile(self, q) -> np.ndarray:
        mean, sd = _mean_sd(self.weights, self.nodes)
        return _invert_increasing(self.cdf_and_pdf, q, self.nodes[0], self.nodes[-1],
                                  mean + sd * special.ndtri(q), 1e-12 * sd)


@dataclass(frozen=True)
class _PowerOfVariance:
    """exp(power * x), x = log lam or log omega: lam, omega (power 1), sigma, tau (power -1/2)."""

    marginal: _SincMarginal
    power: float

    def _mean_sd(self):
        return _mean_sd(self.marginal.weights, np.exp(self.power * self.marginal.nodes))

    def mean(self) -> float:
        return float(self._mean_sd()[0])

    def sd(self) -> float:
        return self._mean_sd()[1]

    def cdf(self, t) -> np.ndarray:
        with np.errstate(divide="ignore"):  # t <= 0 maps to log 0 = -inf, CDF 0
            below = self.marginal.cdf(np.log(np.maximum(t, 0.0)) / self.power)
        return below if self.power > 0 else 1.0 - below

    def quantile(self, q) -> np.ndarray:
        q = np.asarray(q, dtype=float)
        return np.exp(self.power * self.marginal.quantile(q if self.power > 0 else 1.0 - q))


@dataclass(frozen=True)
class _ShrinkageCoefficient:
    """kappa_i = omega/(n_i + omega) = 1/(1 + n_i e^(-v)), v = log omega: increasing in v, so its
    CDF and quantiles are v's at the transformed point, its moments sums over v's nodes.
    """

    marginal: _SincMarginal
    n: np.ndarray

    def _values(self) -> np.ndarray:
        return 1.0 / (1.0 + self.n / np.exp(self.marginal.nodes)[:, None])  # (nodes, m)

    def mean(self) -> np.ndarray:
        return self.marginal.weights @ self._values()

    def sd(self) -> np.ndarray:
        values = self._values()
        mean = self.marginal.weights @ values
        return np.sqrt(self.marginal.weights @ (values - mean) ** 2)

    def cdf(self, k) -> np.ndarray:
        k = np.asarray(k, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):  # k at 0 or 1: CDF 0 or 1
            v = np.log(self.n * k / (1.0 - k))
        return np.where(k <= 0, 0.0, np.where(k >= 1, 1.0, self.marginal.cdf(v)))

    def quantile(self, q) -> np.ndarray:
        v = self.marginal.quantile(np.asarray(q, dtype=float))
        return 1.0 / (1.0 + self.n / np.exp(np.asarray(v)[..., None]))


@dataclass(frozen=True)
class _WithoutMoments:
    """A quantity whose posterior mean or variance does not exist (`Priors.omega_moment_exists`;
    derived in hiercheck.models.priors): its mean is `undefined_mean` where the mean does not
    exist (+inf for a positive quantity, NaN for mu, whose mean is then undefined) and its SD
    +inf where the variance does not; its CDF and quantiles, which always exist, are the
    quantity's own. A grid's sums would give finite values here, set by where it stops.
    """

    variable: _PowerOfVariance | _NormalMixture
    mean_exists: bool
    variance_exists: bool
    undefined_mean: float

    def mean(self):
        return self.variable.mean() if self.mean_exists else self.undefined_mean

    def sd(self):
        return self.variable.sd() if self.variance_exists else math.inf

    def cdf(self, x) -> np.ndarray:
        return self.variable.cdf(x)

    def quantile(self, q) -> np.ndarray:
        return self.variable.quantile(q)


def _without_moments(variable, priors: Priors, m: int, power: float, undefined_mean: float):
    """`variable` as is if its mean and variance exist, else wrapped in `_WithoutMoments`; they
    exist when E[omega^power | y] and E[omega^(2 power) | y] do: power 1 for omega, -1/2 for tau
    and for mu under a flat prior (given the variances mu is N(M, V), V of order
    1/(lam omega) as omega -> 0, so E|mu| needs E[omega^(-1/2)] and Var mu E[1/omega]).
    """
    mean_exists, variance_exists = (priors.omega_moment_exists(k, m) for k in (power, 2 * power))
    if mean_exists and variance_exists:
        return variable
    return _WithoutMoments(variable, mean_exists, variance_exists, undefined_mean)


# -- exact draws --------------------------------------------------------------------------------

def _draw_unit_exponential(rng: np.random.Generator, k) -> np.ndarray:
    """t in [0, 1] with density proportional to exp(-k t), k >= 0, by inverting its CDF
    (1 - exp(-k t)) / (1 - exp(-k)).
    """
    uniform = rng.random(np.shape(k))
    safe = np.where(k > 0, k, 1.0)
    return np.where(k > 0, -np.log1p(uniform * np.expm1(-safe)) / safe, uniform)


def _unit_exponential_mass(k) -> np.ndarray:
    """int_0^1 exp(-k t) dt = (1 - exp(-k)) / k for k >= 0 (1 at k = 0)."""
    safe = np.where(k > 0, k, 1.0)
    return np.where(k > 0, -np.expm1(-safe) / safe, 1.0)


def _cell_log_mass(slope, curvature, step) -> np.ndarray:
    """log of a cell's probability weight along one axis, relative to its centre's density,
    where the log density has slope s and curvature c across the cell [-h/2, h/2]:

        log (1/h) int exp(s e) de + c h^2 / 24,

    the first term exactly k/2 + log int_0^1 exp(-k t) dt with k = |s| h (substituting
    e = sign(s) (h/2 - t h)), the second the mean of c e^2 / 2 over the cell. Offsets drawn
    from exp(s e) then follow the posterior times exp(c h^2/24 - c e^2/2): a factor that
    averages to one over every cell and, where c does not vary (a normal posterior), repeats
    from cell to cell, so that, like the trapezoidal rule's error, its effect on smooth
    expectations vanishes faster than any power of h. The variation of c leaves O(h^4).
    """
    k = np.abs(slope) * step
    return 0.5 * k + np.log(_unit_exponential_mass(k)) + curvature * step * step / 24.0


def _draw_offsets(rng: np.random.Generator, slope, step) -> np.ndarray:
    """Offsets e in [-h/2, h/2] from a cell's centre with density proportional to exp(s e)."""
    k = np.abs(slope) * step
    return np.where(slope < 0, -1.0, 1.0) * step * (0.5 - _draw_unit_exponential(rng, k))


def _second_differences(table: np.ndarray, step: float, axis: int) -> np.ndarray:
    """(f[j+1] - 2 f[j] + f[j-1]) / h^2 along one axis, repeated at the two edges."""
    inner = np.diff(table, 2, axis=axis) / (step * step)
    return np.pad(inner, [(1, 1) if a == axis else (0, 0) for a in range(table.ndim)],
                  mode="edge")


@dataclass(frozen=True)
class _GridSampler:
    """Draws of (log lam, log omega) from the grid, with sub-cell placement.

    Each node x_j owns the cell of width h (per axis) around it, where the log density is
    log p(x_j) + s_j . e + sum_axes c_j e^2/2 + O(e^3), slopes s_j and curvatures c_j from
    central differences of the table. A cell is drawn with probability given by
    `_cell_log_mass`, the offset within it from the log-linear density exp(s_j . e)
    (`_draw_offsets`). The draws' moments then match the posterior's to O(h^4) (the linear
    tilt alone would leave O(h^2)): at the default spacing the means of lam, sigma, omega and
    tau lie within 1e-5 posterior SDs and their SDs within 1e-5 (relative) on rail, dyestuff
    and dyestuff2, within 2e-7 on radon and the math test (measured in tests/test_exact.py).
    """

    grid: VarianceGrid
    probabilities: np.ndarray
    slopes: tuple

    @classmethod
    def from_grid(cls, grid: VarianceGrid) -> _GridSampler:
        slopes = tuple(np.gradient(grid.log_density, nodes, axis=axis)
                       for axis, nodes in enumerate(grid.axes))
        log_mass = grid.log_density + sum(
            _cell_log_mass(slopes[axis], _second_differences(grid.log_density, step, axis), step)
            for axis, step in enumerate(grid.step))
        mass = np.exp(log_mass - log_mass.max())
        return cls(grid, (mass / mass.sum()).ravel(), slopes)

    def draw(self, rng: np.random.Generator, size) -> tuple[np.ndarray, np.ndarray]:
        """(log lam, log omega), each of shape `size`."""
        cells = np.unravel_index(rng.choice(self.probabilities.size, size=size,
                                            p=self.probabilities),
                                 self.grid.log_density.shape)
        return tuple(nodes[cells[axis]] + _draw_offsets(rng, self.slopes[axis][cells], step)
                     for axis, (nodes, step) in enumerate(zip(self.grid.axes, self.grid.step)))


# -- the results object and the engine ----------------------------------------------------------

class ExactPosterior:
    """The posterior of every quantity by quadrature over the variance grid.

    `mean(name)`, `sd(name)`, `cdf(name, x)` and `quantile(name, q)` for name in
    mu, lam, omega, sigma, tau, theta (theta answers per school, on the last axis);
    `summary()` tabulates them; `draw(rng, size)` gives exact i.i.d. draws; `log_evidence` is
    log p(y).

    Parameters
    ----------
    data : GroupedData
        The scores.
    priors : Priors
        The priors.
    grid : VarianceGrid
        The resolved grid over (log lam, log omega) (`variance_grid`).
    """

    def __init__(self, data: GroupedData, priors: Priors, grid: VarianceGrid):
        self.data, self.priors, self.grid = data, priors, grid
        stats = data.stats
        lam = np.exp(grid.log_lam)[:, None]
        omega = np.exp(grid.log_omega)[None, :]
        weights = grid.weights.ravel()
        mu_mean, mu_variance = mu_given_variances(stats, priors, lam, omega)
        theta_mean, theta_variance = theta_given_variances(stats, priors, lam, omega)
        log_lam = _SincMarginal(grid.log_lam, grid.marginal(0), grid.step[0])
        log_omega = _SincMarginal(grid.log_omega, grid.marginal(1), grid.step[1])
        mu = _NormalMixture(weights, mu_mean.ravel(), np.sqrt(mu_variance.ravel()))
        self._variables = {
            # a proper prior on mu bounds its conditional variance by 1/phi
            "mu": mu if priors.phi > 0 else _without_moments(mu, priors, stats.m, -0.5, math.nan),
            "lam": _PowerOfVariance(log_lam, 1.0),
            "omega": _without_moments(_PowerOfVariance(log_omega, 1.0), priors, stats.m, 1.0,
                                      math.inf),
            "sigma": _PowerOfVariance(log_lam, -0.5),
            "tau": _without_moments(_PowerOfVariance(log_omega, -0.5), priors, stats.m, -0.5,
                                    math.inf),
            "theta": _NormalMixture(weights, theta_mean.reshape(weights.size, stats.m),
                                    np.sqrt(theta_variance.reshape(weights.size, stats.m))),
            "kappa": _ShrinkageCoefficient(log_omega, stats.n),
        }
        self._sampler = _GridSampler.from_grid(grid)

    def __repr__(self):
        return (f"ExactPosterior({self.data.name!r}: {self.grid.log_density.shape[0]} x "
                f"{self.grid.log_density.shape[1]} grid over (log lam, log omega))")

    @property
    def log_evidence(self) -> float:
        """log p(y), every parameter integrated out."""
        return self.grid.log_evidence()

    def _variable(self, name: str):
        if name not in self._variables:
            raise SettingsError(f"unknown variable {name!r}; variables are "
                                      f"{', '.join(VARIABLES)}")
        return self._variables[name]

    def mean(self, name: str) -> float | np.ndarray:
        """Posterior mean; for theta an array over schools. inf where it does not exist (omega
        or tau under some improper priors on omega; NaN for mu's: the module docstring).

        Parameters
        ----------
        name : str
            One of VARIABLES: mu, lam, omega, sigma, tau, theta, kappa.

        Returns
        -------
        float or numpy.ndarray
            The mean; an array over schools for theta and kappa.
        """
        return self._variable(name).mean()

    def sd(self, name: str) -> float | np.ndarray:
        """Posterior SD; for theta an array over schools. inf where the variance does not exist
        (omega, tau or mu under some improper priors on omega: the module docstring).

        Parameters
        ----------
        name : str
            One of VARIABLES: mu, lam, omega, sigma, tau, theta, kappa.

        Returns
        -------
        float or numpy.ndarray
            The SD; an array over schools for theta and kappa.
        """
        return self._variable(name).sd()

    def cdf(self, name: str, x: ArrayLike) -> np.ndarray:
        """P(name <= x | y); for theta, x broadcasts against the school axis (last).

        Parameters
        ----------
        name : str
            One of VARIABLES: mu, lam, omega, sigma, tau, theta, kappa.
        x : array_like
            The values.

        Returns
        -------
        numpy.ndarray
            The CDF at each value.
        """
        return self._variable(name).cdf(x)

    def quantile(self, name: str, q: ArrayLike) -> np.ndarray:
        """The q-quantile(s); shape of q, with a trailing school axis for theta.

        Parameters
        ----------
        name : str
            One of VARIABLES: mu, lam, omega, sigma, tau, theta, kappa.
        q : array_like
            Levels strictly between 0 and 1.

        Returns
        -------
        numpy.ndarray
            The quantiles.

        Raises
        ------
        SettingsError
            If a level is not strictly between 0 and 1 (or the name is unknown).
        """
        variable = self._variable(name)
        q = np.asarray(q, dtype=float)
        if not np.all((q > 0) & (q < 1)):
            raise SettingsError(f"quantile levels must lie strictly between 0 and 1, "
                                      f"got {q.tolist()}")
        return variable.quantile(q)

    def summary(self, quantiles: Sequence[float] = (0.025, 0.5, 0.975)) -> pd.DataFrame:
        """Mean, SD and quantiles of every quantity; one row per scalar and per school's theta
        and kappa.

        Parameters
        ----------
        quantiles : sequence of float, default (0.025, 0.5, 0.975)
            The levels tabulated.

        Returns
        -------
        pandas.DataFrame
            Columns mean, sd and a column per level.
        """
        names = VARIABLES + ("kappa",)
        index = [name for name in names if name not in PER_SCHOOL]
        index += [f"{name}[{label}]" for name in PER_SCHOOL for label in self.data.labels]
        columns = {"mean": np.hstack([self.mean(name) for name in names]),
                   "sd": np.hstack([self.sd(name) for name in names])}
        for q in quantiles:
            columns[f"{100 * q:g}%"] = np.hstack([self.quantile(name, q) for name in names])
        return pd.DataFrame(columns, index=index)

    def _repr_html_(self) -> str:
        caption = (f"Exact posterior of {html.escape(self.data.name)} by quadrature, "
                   f"log evidence {self.log_evidence:.6f}")
        return f"<p><b>{caption}</b></p>" + self.summary().to_html(
            float_format=lambda x: f"{x:.6g}")

    def draw(self, rng: np.random.Generator,
             size: int | tuple[int, ...]) -> dict[str, np.ndarray]:
        """Exact i.i.d. draws of (mu, lam, omega, theta) with leading shape `size`: (lam, omega)
        from the grid (see `_GridSampler`), then mu | lam, omega, y (`mu_given_variances`) and
        theta | mu, lam, omega, y (`theta_given_mu`) from their normal conditionals.

        Parameters
        ----------
        rng : numpy.random.Generator
            The source of the draws.
        size : int or tuple of int
            The draws' leading shape.

        Returns
        -------
        dict of str to numpy.ndarray
            mu, lam, omega of shape `size`, and theta of shape (*size, m).
        """
        log_lam, log_omega = self._sampler.draw(rng, size)
        lam, omega = np.exp(log_lam), np.exp(log_omega)
        stats = self.data.stats
        mu_mean, mu_variance = mu_given_variances(stats, self.priors, lam, omega)
        mu = mu_mean + np.sqrt(mu_variance) * rng.standard_normal(np.shape(lam))
        theta_mean, theta_variance = theta_given_mu(stats, mu, lam, omega)
        theta = theta_mean + np.sqrt(theta_variance) * rng.standard_normal(theta_mean.shape)
        return {"mu": mu, "lam": lam, "omega": omega, "theta": theta}


def posterior(data: GroupedData, priors: Priors, *, spacing: float = DEFAULT_SPACING,
              edge_tol: float = DEFAULT_EDGE_TOL) -> ExactPosterior:
    """The exact posterior of `data` under `priors`, by quadrature on the adaptive grid.

    Parameters
    ----------
    data : GroupedData
        The scores.
    priors : Priors
        The priors.
    spacing : float, default DEFAULT_SPACING
        The grid's starting spacing, in SDs (`variance_grid`).
    edge_tol : float, default DEFAULT_EDGE_TOL
        The largest share allowed beyond the grid's edges (`variance_grid`).

    Returns
    -------
    ExactPosterior
        The posterior.
    """
    return ExactPosterior(data, priors,
                          variance_grid(data.stats, priors, spacing=spacing, edge_tol=edge_tol))


def sample(data: GroupedData, priors: Priors, *, draws: int, chains: int, seed: SeedLike = None,
           spacing: float = DEFAULT_SPACING,
           edge_tol: float = DEFAULT_EDGE_TOL) -> az.InferenceData:
    """The engine interface: `chains` x `draws` exact i.i.d. posterior draws. The chains are
    independent by construction; they exist so the result looks like any other engine's.

    Parameters
    ----------
    data : GroupedData
        The scores.
    priors : Priors
        The priors.
    draws : int
        Draws per chain.
    chains : int
        The number of chains.
    seed : SeedLike, optional
        Determines every draw.
    spacing : float, default DEFAULT_SPACING
        The grid's starting spacing, in SDs (`variance_grid`).
    edge_tol : float, default DEFAULT_EDGE_TOL
        The largest share allowed beyond the grid's edges (`variance_grid`).

    Returns
    -------
    arviz.InferenceData
        The draws, dims (chain, draw[, school]).
    """
    check_run_size(draws, chains)
    start = time.perf_counter()
    exact = posterior(data, priors, spacing=spacing, edge_tol=edge_tol)
    values = exact.draw(np.random.default_rng(seed), (chains, draws))
    settings = {"spacing": spacing, "edge_tol": edge_tol,
                "grid": list(exact.grid.log_density.shape)}
    return to_inference_data(values, data, priors, engine="exact", settings=settings,
                             sampling_time=time.perf_counter() - start)
