"""The Gibbs sampler: one pure function per full conditional, two sweeps, one batched runner.

Every formula below is derived in docs/derivation.md, sections 2 and 3, in its notation.

A draw function has the signature `draw_x(rng, state, stats, priors)` and returns a new value
of x, a draw from its conditional at `state`. Everything broadcasts over leading batch axes
(chains, simulated data sets, or both): `state.theta` is (..., m), `state.mu`, `state.lam`,
`state.omega` are (...), `stats.ybar`, `stats.ss` are (..., m), and the batch shapes of the
state and the statistics broadcast against each other, e.g. a state of (chains, R) against
the statistics of R data sets. A draw has the broadcast batch shape of what it reads; the sweeps
expect a state already spread over the whole batch (`broadcast_state`, which `run` applies).

`Conditionals` bundles the conditionals as a value, the four complete ones and the two collapsed
ones of the blocked sweep: `Conditionals(draw_omega=mine)` is the sampler with one derivation
replaced, and runs through the same machinery; the sweeps check what a replaced function returns
(`hiercheck.samplers.user_functions`). `sweep` is the textbook sweep (the four complete
conditionals), `blocked_sweep` the partially collapsed one (draw_omega, draw_lam_collapsed,
draw_mu_collapsed, draw_theta; `SCHEME_FIELDS` lists each scheme's); `run` is the batched runner
that validation calls on bare statistics, and `sample` / `sample_blocked` the engines.

Speed. The sweeps are the reference: numpy, one vectorized call per conditional, so any
conditional can be replaced. A sweep of 4 chains on 100 schools is then about 40 numpy calls,
50 to 90 us, nearly all of it call overhead rather than arithmetic. When the conditionals are the
package's own (every field the sweep draws from) and numba is installed, `run` instead hands the
whole loop to a compiled kernel (`_textbook_kernel`, `_blocked_kernel`) that computes the same
formulas from the sufficient statistics, in place, writing kept draws into preallocated storage,
and draws the same variates from the same `Generator` in the same order: its draws equal the
reference sweeps' up to rounding (tests/test_gibbs.py compares them draw for draw). Its cost is
about one normal variate per school per sweep and little else (benchmarks/ measures it).
"""

from __future__ import annotations

__all__ = [
    "CORRECT", "DEFAULT_TUNE", "SCHEMES", "between_spread", "blocked_sweep", "broadcast_state",
    "check_schedule", "Conditionals", "draw_lam", "draw_lam_collapsed", "draw_mu",
    "draw_mu_collapsed", "draw_omega", "draw_theta", "GibbsState", "initial_state",
    "lam_full_conditional", "mu_full_conditional", "omega_full_conditional", "run", "sample",
    "sample_blocked", "sweep", "within_spread",
]

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

try:
    import numba  # an optional accelerator (installed with PyMC, through PyTensor)
except ImportError:  # without it every run takes the reference path: the sweeps below
    numba = None

from hiercheck._typing import SeedLike
from hiercheck.errors import SettingsError, require_integer
from hiercheck.models import GroupedData, Priors, SchoolStats
from hiercheck.models.data import as_column
from hiercheck.models.engine import az, check_run_size, to_inference_data

from .marginal import lam_given_mu_omega, mu_conditional, theta_conditional
from .user_functions import checked_conditionals

DEFAULT_TUNE = 1000
LOG_JITTER = 1.0     # SD of the starting values' jitter of log lam and log omega: a factor e
MEAN_JITTER = 2.0    # the jitter of the starting theta_i, in standard errors of ybar_i
TAU2_FLOOR = 0.1     # smallest starting tau^2, as a fraction of mean_i(1/n_i)


class GibbsState(NamedTuple):
    """Every unknown: `theta` of shape (..., m), `mu`, `lam`, `omega` of the batch shape (...).

    Attributes
    ----------
    theta : numpy.ndarray
        The school means, shape (..., m).
    mu : numpy.ndarray
        The grand mean, of the batch shape.
    lam : numpy.ndarray
        The within-school precision 1/sigma^2, of the batch shape.
    omega : numpy.ndarray
        The precision ratio sigma^2/tau^2, of the batch shape.
    """

    theta: np.ndarray
    mu: np.ndarray
    lam: np.ndarray
    omega: np.ndarray


Draw = Callable[[np.random.Generator, GibbsState, SchoolStats, Priors], np.ndarray]


# -- shared pieces of the conditionals ----------------------------------------------------------

def _normal(rng: np.random.Generator, mean, precision) -> np.ndarray:
    """A draw from N(mean, 1/precision), broadcast; built in one buffer."""
    draw = rng.standard_normal(np.broadcast_shapes(np.shape(mean), np.shape(precision)))
    draw /= np.sqrt(precision)
    draw += mean
    return draw


def _gamma(rng: np.random.Generator, shape: float, rate) -> np.ndarray:
    """A draw from Gamma(shape, rate) (scalar shape, rate of any shape)."""
    draw = rng.standard_gamma(shape, np.shape(rate))
    draw /= rate
    return draw


def between_spread(state: GibbsState) -> np.ndarray:
    """sum_i (theta_i - mu)^2: the spread of the school means about mu, shape (...).

    Parameters
    ----------
    state : GibbsState
        The state.

    Returns
    -------
    numpy.ndarray
        The spread, of the batch shape.
    """
    deviation = state.theta - as_column(state.mu)
    return np.einsum("...i,...i->...", deviation, deviation)


def within_spread(state: GibbsState, stats: SchoolStats) -> np.ndarray:
    """sum_i ss_i + sum_i n_i (ybar_i - theta_i)^2 = sum_ij (y_ij - theta_i)^2, shape (...).

    Parameters
    ----------
    state : GibbsState
        The state.
    stats : SchoolStats
        The data's sufficient statistics.

    Returns
    -------
    numpy.ndarray
        The spread, of the batch shape.
    """
    deviation = stats.ybar - state.theta
    return stats.ss.sum(-1) + np.einsum("i,...i,...i->...", stats.n, deviation, deviation)


# -- the full conditionals' parameters ----------------------------------------------------------
# (theta's are `hiercheck.samplers.marginal.theta_conditional`, shared with empirical Bayes)

def mu_full_conditional(state: GibbsState, stats: SchoolStats,
                        priors: Priors) -> tuple[np.ndarray, np.ndarray]:
    """mu | theta, lam, omega ~ N(mean, 1/precision), precision = omega lam m + phi,
    mean = (omega lam sum_i theta_i + phi nu) / precision.

    Parameters
    ----------
    state : GibbsState
        The state, of any batch shape.
    stats : SchoolStats
        The data's sufficient statistics.
    priors : Priors
        The priors' constants.

    Returns
    -------
    tuple of numpy.ndarray
        (mean, precision), each of the batch shape.
    """
    theta_precision = np.multiply(state.omega, state.lam)  # omega lam: each theta_i about mu
    precision = theta_precision * stats.m + priors.phi
    mean = (theta_precision * np.sum(state.theta, -1) + priors.phi * priors.nu) / precision
    return mean, precision


def lam_full_conditional(state: GibbsState, stats: SchoolStats,
                         priors: Priors) -> tuple[float, np.ndarray]:
    """lam | theta, mu, omega, y ~ Gamma(a + (N + m)/2,
    b + [sum_i ss_i + sum_i n_i (ybar_i - theta_i)^2 + omega sum_i (theta_i - mu)^2] / 2).

    Parameters
    ----------
    state : GibbsState
        The state, of any batch shape.
    stats : SchoolStats
        The data's sufficient statistics.
    priors : Priors
        The priors' constants.

    Returns
    -------
    tuple
        (shape, rate): the shape a float, the rate of the batch shape.
    """
    spread = within_spread(state, stats) + state.omega * between_spread(state)
    return priors.a + (stats.N + stats.m) / 2.0, priors.b + spread / 2.0


def omega_full_conditional(state: GibbsState, stats: SchoolStats,
                           priors: Priors) -> tuple[float, np.ndarray]:
    """omega | theta, mu, lam ~ Gamma(c + m/2, d + lam sum_i (theta_i - mu)^2 / 2).

    Parameters
    ----------
    state : GibbsState
        The state, of any batch shape.
    stats : SchoolStats
        The data's sufficient statistics.
    priors : Priors
        The priors' constants.

    Returns
    -------
    tuple
        (shape, rate): the shape a float, the rate of the batch shape.
    """
    return priors.c + stats.m / 2.0, priors.d + state.lam * between_spread(state) / 2.0


# -- the four full conditionals -----------------------------------------------------------------

def draw_theta(rng: np.random.Generator, state: GibbsState, stats: SchoolStats,
               priors: Priors) -> np.ndarray:
    """theta_i | mu, lam, omega, y ~ N((n_i ybar_i + omega mu)/(n_i + omega), 1/(lam (n_i + omega)))

    independently over the schools i = 1..m. Shape (..., m).

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the draws.
    state : GibbsState
        The current state, of any batch shape.
    stats : SchoolStats
        The data's sufficient statistics.
    priors : Priors
        The priors' constants.

    Returns
    -------
    numpy.ndarray
        The new theta, shape (..., m).
    """
    mean, precision = theta_conditional(stats, state.mu, state.lam, state.omega)
    return _normal(rng, mean, precision)


def draw_mu(rng: np.random.Generator, state: GibbsState, stats: SchoolStats,
            priors: Priors) -> np.ndarray:
    """mu | theta, lam, omega ~ N((omega lam sum_i theta_i + phi nu)/(omega lam m + phi),
    1/(omega lam m + phi))

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the draws.
    state : GibbsState
        The current state, of any batch shape.
    stats : SchoolStats
        The data's sufficient statistics.
    priors : Priors
        The priors' constants.

    Returns
    -------
    numpy.ndarray
        The new mu, of the batch shape.
    """
    return _normal(rng, *mu_full_conditional(state, stats, priors))


def draw_lam(rng: np.random.Generator, state: GibbsState, stats: SchoolStats,
             priors: Priors) -> np.ndarray:
    """lam | theta, mu, omega, y ~ Gamma(a + (N + m)/2,
    b + [sum_i ss_i + sum_i n_i (ybar_i - theta_i)^2 + omega sum_i (theta_i - mu)^2] / 2)

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the draws.
    state : GibbsState
        The current state, of any batch shape.
    stats : SchoolStats
        The data's sufficient statistics.
    priors : Priors
        The priors' constants.

    Returns
    -------
    numpy.ndarray
        The new lam, of the batch shape.
    """
    return _gamma(rng, *lam_full_conditional(state, stats, priors))


def draw_omega(rng: np.random.Generator, state: GibbsState, stats: SchoolStats,
               priors: Priors) -> np.ndarray:
    """omega | theta, mu, lam ~ Gamma(c + m/2, d + lam sum_i (theta_i - mu)^2 / 2)

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the draws.
    state : GibbsState
        The current state, of any batch shape.
    stats : SchoolStats
        The data's sufficient statistics.
    priors : Priors
        The priors' constants.

    Returns
    -------
    numpy.ndarray
        The new omega, of the batch shape.
    """
    return _gamma(rng, *omega_full_conditional(state, stats, priors))


# -- the collapsed conditionals of the blocked sweep --------------------------------------------

def draw_lam_collapsed(rng: np.random.Generator, state: GibbsState, stats: SchoolStats,
                       priors: Priors) -> np.ndarray:
    """lam | mu, omega, y ~ Gamma(a + N/2, b + [sum_i ss_i + sum_i w_i (ybar_i - mu)^2] / 2),

    theta integrated out, w_i = n_i omega/(n_i + omega) (`hiercheck.samplers.marginal.lam_given_mu_omega`).

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the draws.
    state : GibbsState
        The current state, of any batch shape.
    stats : SchoolStats
        The data's sufficient statistics.
    priors : Priors
        The priors' constants.

    Returns
    -------
    numpy.ndarray
        The new lam, of the batch shape.
    """
    shape, rate = lam_given_mu_omega(stats, priors, state.mu, state.omega)
    return _gamma(rng, shape, rate)


def draw_mu_collapsed(rng: np.random.Generator, state: GibbsState, stats: SchoolStats,
                      priors: Priors) -> np.ndarray:
    """mu | lam, omega, y ~ N(B/A, 1/A), A = lam sum_i w_i + phi, B = lam sum_i w_i ybar_i + phi nu,

    theta integrated out (`hiercheck.samplers.marginal.mu_conditional`).

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the draws.
    state : GibbsState
        The current state, of any batch shape.
    stats : SchoolStats
        The data's sufficient statistics.
    priors : Priors
        The priors' constants.

    Returns
    -------
    numpy.ndarray
        The new mu, of the batch shape.
    """
    mean, precision = mu_conditional(stats, priors, state.lam, state.omega)
    return _normal(rng, mean, precision)


class Conditionals(NamedTuple):
    """The conditionals the sweeps draw from, replace any of them by keyword: the four complete
    conditionals (the textbook sweep's) and the two with theta integrated out (which the blocked
    sweep uses with draw_omega and draw_theta).

    Attributes
    ----------
    draw_theta : callable
        theta | mu, lam, omega, y; `draw_theta` by default.
    draw_mu : callable
        mu | theta, lam, omega; `draw_mu` by default.
    draw_lam : callable
        lam | theta, mu, omega, y; `draw_lam` by default.
    draw_omega : callable
        omega | theta, mu, lam; `draw_omega` by default.
    draw_lam_collapsed : callable
        lam | mu, omega, y; `draw_lam_collapsed` by default.
    draw_mu_collapsed : callable
        mu | lam, omega, y; `draw_mu_collapsed` by default.
    """

    draw_theta: Draw = draw_theta
    draw_mu: Draw = draw_mu
    draw_lam: Draw = draw_lam
    draw_omega: Draw = draw_omega
    draw_lam_collapsed: Draw = draw_lam_collapsed
    draw_mu_collapsed: Draw = draw_mu_collapsed

    def names(self) -> dict[str, str]:
        """Each field's function by its dotted name, to record which derivation ran.

        Returns
        -------
        dict of str to str
            Each field's function's dotted name, by field.
        """
        return {field: f"{function.__module__}.{function.__qualname__}"
                for field, function in self._asdict().items()}


CORRECT = Conditionals()


# -- sweeps -------------------------------------------------------------------------------------

def sweep(rng: np.random.Generator, state: GibbsState, stats: SchoolStats, priors: Priors,
          conditionals: Conditionals = CORRECT) -> GibbsState:
    """One textbook Gibbs sweep: theta, mu, lam, omega in turn, each drawn from its full
    conditional given the state as updated so far.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the draws.
    state : GibbsState
        The current state, of any batch shape.
    stats : SchoolStats
        The data's sufficient statistics.
    priors : Priors
        The priors' constants.
    conditionals : Conditionals, default CORRECT
        The draw functions; the package's own by default.

    Returns
    -------
    GibbsState
        The state after the sweep.
    """
    conditionals = checked_conditionals(conditionals)  # a user's function must return draws
    state = state._replace(theta=conditionals.draw_theta(rng, state, stats, priors))
    state = state._replace(mu=conditionals.draw_mu(rng, state, stats, priors))
    state = state._replace(lam=conditionals.draw_lam(rng, state, stats, priors))
    return state._replace(omega=conditionals.draw_omega(rng, state, stats, priors))


def blocked_sweep(rng: np.random.Generator, state: GibbsState, stats: SchoolStats,
                  priors: Priors, conditionals: Conditionals = CORRECT) -> GibbsState:
    """One partially collapsed sweep, in this order (docs/derivation.md, section 3.2, says why the
    order matters):

        omega | theta, mu, lam         complete conditional   (conditionals.draw_omega)
        lam   | mu, omega, y           theta integrated out   (conditionals.draw_lam_collapsed)
        mu    | lam, omega, y          theta integrated out   (conditionals.draw_mu_collapsed)
        theta | mu, lam, omega, y      complete conditional   (conditionals.draw_theta)

    `conditionals.draw_mu` and `conditionals.draw_lam` play no part.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the draws.
    state : GibbsState
        The current state, of any batch shape.
    stats : SchoolStats
        The data's sufficient statistics.
    priors : Priors
        The priors' constants.
    conditionals : Conditionals, default CORRECT
        The draw functions; the package's own by default.

    Returns
    -------
    GibbsState
        The state after the sweep.
    """
    conditionals = checked_conditionals(conditionals)  # a user's function must return draws
    state = state._replace(omega=conditionals.draw_omega(rng, state, stats, priors))
    state = state._replace(lam=conditionals.draw_lam_collapsed(rng, state, stats, priors))
    state = state._replace(mu=conditionals.draw_mu_collapsed(rng, state, stats, priors))
    return state._replace(theta=conditionals.draw_theta(rng, state, stats, priors))


Sweep = Callable[[np.random.Generator, GibbsState, SchoolStats, Priors, Conditionals], GibbsState]
SCHEMES: dict[str, Sweep] = {"textbook": sweep, "blocked": blocked_sweep}
# The fields of `Conditionals` each scheme draws from, in the order it draws them
SCHEME_FIELDS: dict[str, tuple[str, ...]] = {
    "textbook": ("draw_theta", "draw_mu", "draw_lam", "draw_omega"),
    "blocked": ("draw_omega", "draw_lam_collapsed", "draw_mu_collapsed", "draw_theta"),
}
ENGINE_NAMES = {"textbook": "gibbs", "blocked": "blocked"}  # as in hiercheck.validation.engines


# -- starting values ----------------------------------------------------------------------------

def initial_state(rng: np.random.Generator, stats: SchoolStats, priors: Priors,
                  batch_shape: tuple[int, ...] | None = None) -> GibbsState:
    """Dispersed starting values around the data's moment estimates, independent per batch cell
    (batch_shape defaults to the statistics' batch shape and must broadcast against it):

        lam     = exp(z_1) / s2,   s2 = sum_i ss_i / (N - m)   (pooled within-school variance;
                                                                var_i(ybar_i) + 1 when there is none)
        omega   = exp(z_2) / t2,   t2 = max(var_i(ybar_i)/s2 - mean_i(1/n_i),
                                            TAU2_FLOOR mean_i(1/n_i))     (moment estimate of tau^2)
        mu      = mean_i(ybar_i) + z_3 sd_i(ybar_i)
        theta_i = ybar_i + MEAN_JITTER z_4i sqrt(s2 / n_i)

    with z_1, z_2 ~ N(0, LOG_JITTER^2) and z_3, z_4i ~ N(0, 1). mu's jitter is sqrt(m) times its
    posterior SD and lam's and omega's a factor e, far wider than their posteriors, so chains
    that agree have forgotten where they started.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the jitter.
    stats : SchoolStats
        The data's sufficient statistics.
    priors : Priors
        The priors (the starting values do not depend on them).
    batch_shape : tuple of int, optional
        The batch shape; the statistics' by default.

    Returns
    -------
    GibbsState
        The starting state.
    """
    stats_batch = stats.ybar.shape[:-1]
    shape = np.broadcast_shapes(stats_batch if batch_shape is None else tuple(batch_shape),
                                stats_batch)
    total_ss = stats.ss.sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s2 = np.where(total_ss > 0, stats.pooled_variance, np.var(stats.ybar, -1) + 1.0)
    inverse_n = np.mean(1.0 / stats.n)
    t2 = np.maximum(np.var(stats.ybar, -1) / s2 - inverse_n, TAU2_FLOOR * inverse_n)
    lam = np.exp(rng.normal(0.0, LOG_JITTER, shape)) / s2
    omega = np.exp(rng.normal(0.0, LOG_JITTER, shape)) / t2
    mu = np.mean(stats.ybar, -1) + rng.standard_normal(shape) * np.std(stats.ybar, -1)
    spread = MEAN_JITTER * np.sqrt(as_column(s2) / stats.n)
    theta = stats.ybar + rng.standard_normal(shape + (stats.m,)) * spread
    return GibbsState(theta=theta, mu=mu, lam=lam, omega=omega)


def broadcast_state(state: GibbsState, stats: SchoolStats,
                    batch_shape: tuple[int, ...] = ()) -> GibbsState:
    """`state` as float arrays of one batch shape: the broadcast of its own, the statistics' and
    `batch_shape`. Rejects states that no sampler can start from.

    Parameters
    ----------
    state : GibbsState
        The state, its arrays of any broadcastable batch shapes.
    stats : SchoolStats
        The data's sufficient statistics.
    batch_shape : tuple of int, default ()
        A batch shape the result broadcasts to as well.

    Returns
    -------
    GibbsState
        The state's float arrays broadcast to one batch shape.

    Raises
    ------
    SettingsError
        If theta's last axis is not the schools, the shapes do not broadcast, or a value is not
        finite or a precision not positive.
    """
    theta = np.asarray(state.theta, dtype=float)
    scalars = [np.asarray(x, dtype=float) for x in (state.mu, state.lam, state.omega)]
    if theta.ndim == 0 or theta.shape[-1] != stats.m:
        raise SettingsError(f"the state's theta has shape {theta.shape}; its last axis must "
                                 f"be the {stats.m} schools")
    try:
        batch = np.broadcast_shapes(tuple(batch_shape), theta.shape[:-1], stats.ybar.shape[:-1],
                                    *(x.shape for x in scalars))
    except ValueError:
        raise SettingsError("the state's batch shapes do not broadcast against each other "
                                 "and the statistics'") from None
    for name, value in zip(GibbsState._fields, (theta, *scalars)):
        if not np.all(np.isfinite(value)):
            raise SettingsError(f"the state's {name} is not finite")
        if name in ("lam", "omega") and not np.all(value > 0):
            raise SettingsError(f"the state's {name} must be positive (it is a precision)")
    return GibbsState(np.broadcast_to(theta, batch + (stats.m,)),
                      *(np.broadcast_to(x, batch) for x in scalars))


# -- running ------------------------------------------------------------------------------------

def check_schedule(tune: int, draws: int, thin: int) -> None:
    """tune >= 0 sweeps, then draws >= 1 kept every thin >= 1 sweeps.

    Parameters
    ----------
    tune : int
        Sweeps discarded first, at least 0.
    draws : int
        Kept draws, at least 1.
    thin : int
        Sweeps per kept draw, at least 1.
    """
    require_integer("tune", tune, least=0)
    require_integer("draws", draws)
    require_integer("thin", thin)


def run(rng: np.random.Generator, stats: SchoolStats, priors: Priors, state: GibbsState, *,
        tune: int, draws: int, thin: int = 1, conditionals: Conditionals = CORRECT,
        sweep: Sweep = sweep) -> dict[str, np.ndarray]:
    """Run `tune + draws * thin` sweeps from `state`, keeping every `thin`-th after the first
    `tune`. The state's batch shape broadcasts against the statistics'; the result is
    {"theta": (draws, *batch, m), "mu", "lam", "omega": (draws, *batch)}.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the draws.
    stats : SchoolStats
        The data's sufficient statistics.
    priors : Priors
        The priors' constants.
    state : GibbsState
        The starting state.
    tune : int
        Sweeps discarded first.
    draws : int
        Kept draws.
    thin : int, default 1
        Sweeps per kept draw.
    conditionals : Conditionals, default CORRECT
        The draw functions; with the package's own the compiled kernel runs.
    sweep : callable, default sweep
        The sweep (`sweep` or `blocked_sweep`).

    Returns
    -------
    dict of str to numpy.ndarray
        The kept draws of theta, mu, lam and omega, draws first.

    Raises
    ------
    PriorError
        If the posterior of m schools is improper under the priors
        (`Priors.require_proper_posterior`); a sweep would run on regardless.
    """
    priors.require_proper_posterior(stats.m)
    check_schedule(tune, draws, thin)
    state = broadcast_state(state, stats)
    kernel = _kernel_for(rng, sweep, conditionals)
    if kernel is not None:
        return _run_kernel(kernel, rng, stats, priors, state, tune=tune, draws=draws, thin=thin)
    return _run_reference(rng, stats, priors, state, tune=tune, draws=draws, thin=thin,
                          conditionals=conditionals, sweep=sweep)


def _run_reference(rng: np.random.Generator, stats: SchoolStats, priors: Priors,
                   state: GibbsState, *, tune: int, draws: int, thin: int,
                   conditionals: Conditionals, sweep: Sweep) -> dict[str, np.ndarray]:
    """`run` by the sweeps themselves, one numpy call per conditional: the reference."""
    kept = GibbsState(*(np.empty((draws,) + value.shape) for value in state))
    for _ in range(tune):
        state = sweep(rng, state, stats, priors, conditionals)
    for k in range(draws):
        for _ in range(thin):
            state = sweep(rng, state, stats, priors, conditionals)
        for store, value in zip(kept, state):
            store[k] = value
    return kept._asdict()


# -- the compiled kernels -----------------------------------------------------------------------
#
# Each runs `tune + draws * thin` sweeps of one scheme over chains k = 1..K (the batch, flattened)
# in place on the state arrays, and writes every `thin`-th sweep after `tune` into `kept_*`. The
# variates are drawn in the reference sweeps' order (all of one conditional's, over the chains in
# C order, before the next conditional's), so both consume the Generator's stream alike. Sums run
# inside the loops that draw, so the state is read about once per sweep.

def _textbook_kernel(rng, theta, mu, lam, omega, n, ybar, ss_total, a, b, c, d, nu, phi, N,
                     tune, draws, thin, kept_theta, kept_mu, kept_lam, kept_omega):
    """`sweep` (draw_theta, draw_mu, draw_lam, draw_omega) repeated; formulas as there."""
    chains, m = theta.shape
    lam_shape = a + (N + m) / 2.0
    omega_shape = c + m / 2.0
    theta_sum = np.empty(chains)
    between = np.empty(chains)
    for s in range(tune + draws * thin):
        # theta_i ~ N(mu + n_i/(n_i + omega) (ybar_i - mu), 1/(lam (n_i + omega)))
        for k in range(chains):
            total_sum = 0.0
            for i in range(m):
                total = n[i] + omega[k]
                mean = mu[k] + n[i] / total * (ybar[k, i] - mu[k])
                value = rng.standard_normal() / np.sqrt(lam[k] * total) + mean
                theta[k, i] = value
                total_sum += value
            theta_sum[k] = total_sum
        # mu ~ N((omega lam sum theta + phi nu)/A, 1/A), A = omega lam m + phi
        for k in range(chains):
            theta_precision = omega[k] * lam[k]
            precision = theta_precision * m + phi
            mean = (theta_precision * theta_sum[k] + phi * nu) / precision
            mu[k] = rng.standard_normal() / np.sqrt(precision) + mean
        for k in range(chains):  # lam ~ Gamma(a + (N+m)/2, b + [within + omega between]/2)
            within = 0.0
            spread = 0.0
            for i in range(m):
                error = ybar[k, i] - theta[k, i]
                within += n[i] * error * error
                deviation = theta[k, i] - mu[k]
                spread += deviation * deviation
            between[k] = spread
            rate = b + (ss_total[k] + within + omega[k] * spread) / 2.0
            lam[k] = rng.standard_gamma(lam_shape) / rate
        for k in range(chains):  # omega ~ Gamma(c + m/2, d + lam between/2); theta, mu unchanged
            omega[k] = rng.standard_gamma(omega_shape) / (d + lam[k] * between[k] / 2.0)
        _keep(s, tune, thin, theta, mu, lam, omega, kept_theta, kept_mu, kept_lam, kept_omega)


def _blocked_kernel(rng, theta, mu, lam, omega, n, ybar, ss_total, a, b, c, d, nu, phi, N,
                    tune, draws, thin, kept_theta, kept_mu, kept_lam, kept_omega):
    """`blocked_sweep` (draw_omega, draw_lam_collapsed, draw_mu_collapsed, draw_theta)
    repeated; formulas as there, with w_i = n_i / (1 + n_i/omega).
    """
    chains, m = theta.shape
    lam_shape = a + N / 2.0
    omega_shape = c + m / 2.0
    weight_sum = np.empty(chains)
    weighted_ybar = np.empty(chains)
    for s in range(tune + draws * thin):
        for k in range(chains):  # omega ~ Gamma(c + m/2, d + lam sum (theta_i - mu)^2 / 2)
            spread = 0.0
            for i in range(m):
                deviation = theta[k, i] - mu[k]
                spread += deviation * deviation
            omega[k] = rng.standard_gamma(omega_shape) / (d + lam[k] * spread / 2.0)
        for k in range(chains):  # lam ~ Gamma(a + N/2, b + [sum ss + sum w (ybar - mu)^2]/2)
            spread = 0.0
            total_weight = 0.0
            total_weighted = 0.0
            for i in range(m):
                weight = n[i] / (1.0 + n[i] / omega[k])
                deviation = ybar[k, i] - mu[k]
                spread += weight * deviation * deviation
                total_weight += weight
                total_weighted += weight * ybar[k, i]
            weight_sum[k] = total_weight  # mu's step below needs these at the same omega
            weighted_ybar[k] = total_weighted
            lam[k] = rng.standard_gamma(lam_shape) / (b + (ss_total[k] + spread) / 2.0)
        # mu ~ N(B/A, 1/A), A = lam sum w + phi, B = lam sum w ybar + phi nu
        for k in range(chains):
            precision = lam[k] * weight_sum[k] + phi
            mean = (lam[k] * weighted_ybar[k] + phi * nu) / precision
            mu[k] = rng.standard_normal() / np.sqrt(precision) + mean
        for k in range(chains):  # theta as in the textbook kernel
            for i in range(m):
                total = n[i] + omega[k]
                mean = mu[k] + n[i] / total * (ybar[k, i] - mu[k])
                theta[k, i] = rng.standard_normal() / np.sqrt(lam[k] * total) + mean
        _keep(s, tune, thin, theta, mu, lam, omega, kept_theta, kept_mu, kept_lam, kept_omega)


def _keep(s, tune, thin, theta, mu, lam, omega, kept_theta, kept_mu, kept_lam, kept_omega):
    """Copy the state after sweep s (0-based) into slot (s - tune + 1)/thin - 1 when it is kept."""
    if s >= tune and (s - tune + 1) % thin == 0:
        j = (s - tune) // thin
        chains, m = theta.shape
        for k in range(chains):
            for i in range(m):
                kept_theta[j, k, i] = theta[k, i]
            kept_mu[j, k] = mu[k]
            kept_lam[j, k] = lam[k]
            kept_omega[j, k] = omega[k]


if numba is not None:
    # cache=True: compiled once per machine (in __pycache__), loaded in ~0.1 s by later processes
    _keep = numba.njit(cache=True)(_keep)
    _textbook_kernel = numba.njit(cache=True)(_textbook_kernel)
    _blocked_kernel = numba.njit(cache=True)(_blocked_kernel)
    _KERNELS = {sweep: ("textbook", _textbook_kernel), blocked_sweep: ("blocked", _blocked_kernel)}
else:
    _KERNELS = {}


def _kernel_for(rng, chosen_sweep: Sweep, conditionals: Conditionals):
    """The compiled kernel equivalent to `chosen_sweep` with `conditionals`, or None when there
    is none (a replaced conditional that the sweep draws from, another sweep, no numba, or not a
    numpy Generator).
    """
    if chosen_sweep not in _KERNELS or not isinstance(rng, np.random.Generator):
        return None
    scheme, kernel = _KERNELS[chosen_sweep]
    if any(getattr(conditionals, field) is not getattr(CORRECT, field)
           for field in SCHEME_FIELDS[scheme]):
        return None
    return kernel


def _run_kernel(kernel, rng: np.random.Generator, stats: SchoolStats, priors: Priors,
                state: GibbsState, *, tune: int, draws: int, thin: int) -> dict[str, np.ndarray]:
    """`run` by a compiled kernel: the state and the statistics spread over the batch as fresh
    C-ordered (K, m) and (K,) arrays (the kernel writes into the state, never into the caller's),
    the kept draws in storage allocated once.
    """
    batch = state.mu.shape
    m = stats.m
    chains = int(np.prod(batch, dtype=np.int64))
    theta = np.array(state.theta, dtype=float, order="C").reshape(chains, m)
    mu, lam, omega = (np.array(x, dtype=float, order="C").reshape(chains)
                      for x in (state.mu, state.lam, state.omega))
    ybar = np.array(np.broadcast_to(stats.ybar, batch + (m,)), dtype=float,
                    order="C").reshape(chains, m)
    ss_total = np.array(np.broadcast_to(np.sum(stats.ss, -1), batch), dtype=float,
                        order="C").reshape(chains)
    kept = {"theta": np.empty((draws, chains, m)),
            **{name: np.empty((draws, chains)) for name in ("mu", "lam", "omega")}}
    kernel(rng, theta, mu, lam, omega, np.array(stats.n, dtype=float), ybar, ss_total,
           float(priors.a), float(priors.b), float(priors.c), float(priors.d), float(priors.nu),
           float(priors.phi), float(stats.N), tune, draws, thin,
           kept["theta"], kept["mu"], kept["lam"], kept["omega"])
    return {"theta": kept["theta"].reshape((draws,) + batch + (m,)),
            **{name: kept[name].reshape((draws,) + batch) for name in ("mu", "lam", "omega")}}


def sweep_for(scheme: str, conditionals: Conditionals) -> Sweep:
    """The sweep of `scheme` ("textbook" or "blocked"), once `conditionals` is known to suit it.

    Raises
    ------
    SettingsError
        For an unknown scheme, conditionals that are not a `Conditionals`, or a replaced field
        that the scheme does not draw from (it would be silently ignored, and so never checked).
    """
    if scheme not in SCHEMES:
        raise SettingsError(f"unknown scheme {scheme!r}; schemes are {', '.join(SCHEMES)}")
    if not isinstance(conditionals, Conditionals):
        raise SettingsError(f"conditionals must be a hiercheck.samplers.gibbs.Conditionals, "
                                 f"got {type(conditionals).__name__}")
    unused = [field for field in Conditionals._fields if field not in SCHEME_FIELDS[scheme]
              and getattr(conditionals, field) is not getattr(CORRECT, field)]
    if unused:  # a derivation the run would silently ignore, so never check
        raise SettingsError(f"the {scheme} scheme does not draw from {', '.join(unused)} (it "
                            f"draws from {', '.join(SCHEME_FIELDS[scheme])}); leave "
                            f"{'it' if len(unused) == 1 else 'them'} as the package's own")
    return SCHEMES[scheme]


def _starting_state(rng, stats: SchoolStats, priors: Priors, chains: int, init) -> GibbsState:
    if isinstance(init, GibbsState):
        return broadcast_state(init, stats, (chains,))
    if isinstance(init, str) and init == "dispersed":
        return initial_state(rng, stats, priors, (chains,))
    raise SettingsError(f"init must be 'dispersed' or a GibbsState, got {init!r}")


def sample(data: GroupedData, priors: Priors, *, draws: int, chains: int, seed: SeedLike = None,
           tune: int = DEFAULT_TUNE, thin: int = 1, conditionals: Conditionals = CORRECT,
           init: str | GibbsState = "dispersed", scheme: str = "textbook") -> az.InferenceData:
    """The engine interface: `chains` vectorized chains of `draws` kept draws each, after
    `tune` sweeps, keeping every `thin`-th (so `tune + draws * thin` sweeps in all).

    `scheme` is "textbook" (`sweep`) or "blocked" (`blocked_sweep`); `init` is "dispersed"
    (`initial_state`) or a GibbsState broadcast to the chains. The seed (int, SeedSequence or
    None) determines every draw.

    Parameters
    ----------
    data : GroupedData
        The scores.
    priors : Priors
        The priors.
    draws : int
        Kept draws per chain.
    chains : int
        The number of chains.
    seed : SeedLike, optional
        Determines every draw.
    tune : int, default DEFAULT_TUNE
        Sweeps discarded first.
    thin : int, default 1
        Sweeps per kept draw.
    conditionals : Conditionals, default CORRECT
        The draw functions.
    init : str or GibbsState, default "dispersed"
        "dispersed" (`initial_state`) or a state broadcast to the chains.
    scheme : str, default "textbook"
        "textbook" (`sweep`) or "blocked" (`blocked_sweep`).

    Returns
    -------
    arviz.InferenceData
        The posterior draws, dims (chain, draw[, school]) (`models.engine.to_inference_data`).
    """
    check_run_size(draws, chains)
    chosen_sweep = sweep_for(scheme, conditionals)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    state = _starting_state(rng, data.stats, priors, chains, init)
    kept = run(rng, data.stats, priors, state, tune=tune, draws=draws, thin=thin,
               conditionals=conditionals, sweep=chosen_sweep)
    elapsed = time.perf_counter() - start
    posterior = {name: np.moveaxis(values, 0, 1) for name, values in kept.items()}
    settings = {"scheme": scheme, "tune": tune, "thin": thin, "seed": seed,
                "init": "dispersed" if isinstance(init, str) else "given",
                "conditionals": conditionals.names()}
    return to_inference_data(posterior, data, priors, engine=ENGINE_NAMES[scheme],
                             settings=settings, sampling_time=elapsed)


def sample_blocked(data: GroupedData, priors: Priors, *, draws: int, chains: int,
                   seed: SeedLike = None, **options: Any) -> az.InferenceData:
    """The engine interface for the blocked scheme: `sample(..., scheme="blocked")`.

    Parameters
    ----------
    data : GroupedData
        The scores.
    priors : Priors
        The priors.
    draws : int
        Kept draws per chain.
    chains : int
        The number of chains.
    seed : SeedLike, optional
        Determines every draw.
    **options
        Further keywords of `sample` (tune, thin, conditionals, init).

    Returns
    -------
    arviz.InferenceData
        The posterior draws, as `sample`'s.
    """
    return sample(data, priors, draws=draws, chains=chains, seed=seed, scheme="blocked",
                  **options)
