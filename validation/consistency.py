"""Each Gibbs conditional against the full conditional implied by the PyMC joint density.

A draw function is a black box (a user's may come with no density), and it need not be a direct
draw: a Markov kernel (say a few random-walk Metropolis steps) that leaves its full conditional
invariant is as correct. So the check is an invariance test. At a few states (exact posterior
draws, so the points do not depend on the sampler under test), for each coordinate x (mu, lam,
omega and theta_i of some schools):

    1. tabulate log p(y, theta, mu, lam, omega) from the PyMC reference model along x, the
       others fixed, and normalize it numerically: the true full conditional of x;
    2. draw S starting values of x from it, and call the draw function once on the batch of S
       states that differ only in x;
    3. compare what it returns with the same conditional: a Kolmogorov-Smirnov test against the
       numerical CDF, and z-scores of the mean and variance against the numerical moments.

A kernel that leaves the conditional invariant returns draws from it, whatever it does inside; a
direct draw ignores the starting values and passes as before. theta is drawn as one block, so its
starting values are a draw of the whole vector from its conditional given (mu, lam, omega, y),
which is the product of every school's own: each is tabulated, all at once, from the
reference model's density left unsummed (`log_density_terms_function`). Every comparison is
one-dimensional; Holm's correction over all the tests holds the family-wise false-alarm rate at
alpha.

A kernel that never moves (returns its input) leaves every distribution invariant and passes this
test by design; the agreement check's mixing floors must catch it (docs/validation.md).

On a large data set the prior's constants hardly move a conditional (b next to a sum of squares
of thousands of scores), so a slip in them cannot show; `simulated_data` makes a second operating
point, a few small schools under informative priors, where every constant matters.

The blocked sweep's collapsed conditionals, lam | mu, omega, y and mu | lam, omega, y, are
checked the same way against log p(y, mu, lam, omega) with theta integrated out
(`hiercheck.models.reference.collapsed_logp_function`); `CHECKED` says which density and
coordinate belong to each conditional.

The empirical-Bayes objectives are functions, not samplers: `hiercheck.validation.likelihood`
checks them exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import integrate
from numpy.typing import ArrayLike
from scipy import stats as st

from hiercheck._typing import SeedLike
from hiercheck.errors import QuadratureError
from hiercheck.models import GroupedData, Priors
from hiercheck.models.data import schools_across_sizes
from hiercheck.models.simulate import draw_parameters, draw_scores
from hiercheck.samplers import exact, gibbs
from hiercheck.samplers.user_functions import checked_conditionals

from .statistics import holm_adjust
from .result import CheckTable, in_stages

__all__ = ["ConsistencyResult", "GridConditional", "TabulatedState", "check_conditionals", "check_in_stages", "simulated_data",
           "states_from_exact_posterior", "tabulate_conditionals", "tabulate_states"]

GRID_POINTS = 2001
GRID_HALF_WIDTH = 14.0  # Laplace SDs either side of the conditional's mode
NEWTON_STEPS = 30       # at most, to find the modes; a log-concave conditional needs a few
TAIL_DENSITY = 1e-5     # most a grid's end may carry, relative to its peak
CHUNK_VALUES = 2**22    # per-score log-density terms evaluated at once (32 MB)
POSITIVE = ("lam", "omega")
# The Holm-adjusted p-values of a check's table, one column per test.
HOLM_COLUMNS = ["ks_p_holm", "mean_p_holm", "var_p_holm"]


@dataclass(frozen=True)
class ConsistencyResult(CheckTable):
    """The invariance test of every conditional: a row per point and coordinate.

    Attributes
    ----------
    table : pandas.DataFrame
        A row per point and coordinate: the KS p-value, the mean and variance z-scores and
        p-values, their Holm-adjusted p-values, and `agree`.
    alpha : float
        The family-wise false-alarm rate of the Holm-adjusted tests.
    """

    alpha: float


def states_from_exact_posterior(data: GroupedData, priors: Priors, points: int,
                                seed: SeedLike) -> list[gibbs.GibbsState]:
    """`points` states (theta, mu, lam, omega) drawn from the exact posterior.

    Parameters
    ----------
    data : GroupedData
        The scores.
    priors : Priors
        The priors.
    points : int
        How many states.
    seed : SeedLike
        Fixes the draws.

    Returns
    -------
    list of GibbsState
        The states, one per exact posterior draw.
    """
    idata = exact.sample(data, priors, draws=points, chains=1, seed=seed)
    post = idata.posterior.isel(chain=0)
    return [gibbs.GibbsState(theta=post.theta.values[k], mu=float(post.mu.values[k]),
                             lam=float(post.lam.values[k]), omega=float(post.omega.values[k]))
            for k in range(points)]


# -- the full conditionals, tabulated -------------------------------------------------------------

@dataclass(frozen=True)
class GridConditional:
    """One coordinate's full conditional, normalized on a grid in u (u = log x for a precision,
    u = x otherwise): `density` is p(u) and `cdf` its integral, both by the trapezoidal rule.

    Attributes
    ----------
    u : numpy.ndarray
        The grid in u.
    density : numpy.ndarray
        p(u) on the grid, normalized.
    cdf : numpy.ndarray
        The CDF on the grid, from 0 to 1.
    positive : bool
        Whether x is a precision (u = log x) rather than u = x.
    """

    u: np.ndarray
    density: np.ndarray
    cdf: np.ndarray
    positive: bool

    def to_x(self, u: np.ndarray) -> np.ndarray:
        """x of u: exp(u) for a precision, u otherwise.

        Parameters
        ----------
        u : numpy.ndarray
            Values in u.

        Returns
        -------
        numpy.ndarray
            The same values in x.
        """
        return np.exp(u) if self.positive else u

    def to_u(self, x: np.ndarray) -> np.ndarray:
        """u of x: log x for a precision, x otherwise.

        Parameters
        ----------
        x : numpy.ndarray
            Values of the coordinate.

        Returns
        -------
        numpy.ndarray
            The same values in u.
        """
        return np.log(x) if self.positive else x

    def cdf_at(self, x: np.ndarray) -> np.ndarray:
        """P(X <= x), the tabulated CDF interpolated linearly in u.

        Parameters
        ----------
        x : numpy.ndarray
            Values of the coordinate.

        Returns
        -------
        numpy.ndarray
            The CDF at each value.
        """
        return np.interp(self.to_u(x), self.u, self.cdf, left=0.0, right=1.0)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """`size` draws by inverting the tabulated CDF, linearly between grid points.

        Parameters
        ----------
        rng : numpy.random.Generator
            The source of the uniforms.
        size : int
            How many draws.

        Returns
        -------
        numpy.ndarray
            The draws of x, shape (size,).
        """
        return self.to_x(np.interp(rng.random(size), self.cdf, self.u))

    def moments(self) -> tuple[float, float, float]:
        """Mean, variance and fourth central moment of x.

        Returns
        -------
        tuple of (float, float, float)
            The mean, the variance and the fourth central moment.
        """
        x = self.to_x(self.u)
        mean = integrate.trapezoid(x * self.density, self.u)
        variance = integrate.trapezoid((x - mean) ** 2 * self.density, self.u)
        fourth = integrate.trapezoid((x - mean) ** 4 * self.density, self.u)
        return mean, variance, fourth


def tabulate_conditionals(log_density: Callable, start: ArrayLike, positive: bool,
                          name: str = "x") -> list[GridConditional]:
    """The conditionals of k coordinates at once, each normalized on its own grid.

    `log_density` maps K points of k values (an array (K, k), a value per coordinate) to the
    (K, k) conditional log densities, each up to its own constant: for theta_i,
    log N(theta_i; mu, 1/(omega lam)) + sum_j log N(y_ij; theta_i, 1/lam) for every school at
    once; for a scalar, the joint log density (k = 1). In u (log x for a precision, with the
    Jacobian + u), Newton's method from `start` finds each mode, the curvature there a Laplace
    scale s, and each grid spans GRID_HALF_WIDTH of them either side, all k grids evaluated
    together. A grid whose ends still carry more than TAIL_DENSITY of its peak does not hold the
    conditional (a very wide one, or no mode found): QuadratureError, naming `name`.

    Parameters
    ----------
    log_density : callable
        (K, k) points -> (K, k) conditional log densities in x, each up to a constant.
    start : array_like
        The k values Newton's method starts from, in x.
    positive : bool
        Whether the coordinates are precisions (tabulated in u = log x).
    name : str, default "x"
        The coordinate's name, for the message.

    Returns
    -------
    list of GridConditional
        The k conditionals, in the order of the coordinates.

    Raises
    ------
    QuadratureError
        If a grid's ends carry more than TAIL_DENSITY of its peak.
    """
    def in_u(u):
        return log_density(np.exp(u)) + u if positive else log_density(u)

    start = np.atleast_1d(np.asarray(start, dtype=float))
    mode, scale = _modes_and_scales(in_u, np.log(start) if positive else start)
    offsets = np.linspace(-GRID_HALF_WIDTH, GRID_HALF_WIDTH, GRID_POINTS)
    u = mode[:, None] + offsets * scale[:, None]
    log_values = in_u(u.T).T
    density = np.exp(log_values - log_values.max(axis=1, keepdims=True))
    ends = density[:, [0, -1]].max()
    if not ends <= TAIL_DENSITY:
        raise QuadratureError(f"the full conditional of {name} is not resolved on its grid "
                              f"(density at the grid's end {ends:.2g} of its peak)")
    density /= integrate.trapezoid(density, u, axis=1)[:, None]
    cdf = integrate.cumulative_trapezoid(density, u, axis=1, initial=0.0)
    cdf /= cdf[:, -1:]
    return [GridConditional(*rows, positive=positive) for rows in zip(u, density, cdf)]


def _modes_and_scales(log_density: Callable, u: np.ndarray):
    """Newton's method on k log densities at once, derivatives by central differences; returns
    the modes and s = (-d^2/du^2 log p)^(-1/2) there.
    """
    for _ in range(NEWTON_STEPS):
        h = 1e-3 * np.maximum(1.0, np.abs(u))
        centre, up, down = log_density(np.stack([u, u + h, u - h]))
        curvature = -(up - 2 * centre + down) / h**2
        step = (up - down) / (2 * h) / np.where(curvature > 0, curvature, np.nan)
        if not np.all(np.isfinite(step)):
            break  # not log-concave here: the grid's tail check reports it
        u = u + step
        if np.all(np.abs(step) * np.sqrt(curvature) < 1e-3):
            break
    return u, 1.0 / np.sqrt(np.abs(curvature))


def _points(state: gibbs.GibbsState, size: int, **replaced) -> dict[str, np.ndarray]:
    """`size` copies of `state` as the reference density's arguments, some coordinates
    replaced by arrays of `size` values.
    """
    point = {"theta": np.broadcast_to(state.theta, (size, np.size(state.theta))),
             **{name: np.full(size, getattr(state, name)) for name in ("mu", "lam", "omega")}}
    return point | replaced


def _in_chunks(evaluate: Callable, points: np.ndarray, scores: int) -> np.ndarray:
    """`evaluate` on the rows of `points` a chunk at a time, stacked: each row of the reference
    density holds a term per score, so a chunk has at most CHUNK_VALUES / `scores` rows.
    """
    rows = max(1, CHUNK_VALUES // scores)
    return np.concatenate([evaluate(points[i:i + rows]) for i in range(0, len(points), rows)])


def school_log_densities(terms: Callable, state: gibbs.GibbsState, data: GroupedData):
    """theta (K, m) -> the m conditional log densities of theta_i given (mu, lam, omega, y) at
    each of K points, up to constants: theta_i's own term plus its students' y terms.
    """
    order = np.argsort(data.codes, kind="stable")
    first = np.searchsorted(data.codes[order], np.arange(data.m))  # every school has a student

    def evaluate(theta):
        values = terms(**_points(state, len(theta), theta=theta))
        return values["theta"] + np.add.reduceat(values["y"][:, order], first, axis=1)
    return lambda theta: _in_chunks(evaluate, theta, data.N)


def scalar_log_density(terms: Callable, state: gibbs.GibbsState, name: str, data: GroupedData):
    """x (K, 1) -> log p(y, params) (K, 1), every parameter but `name` held at `state`."""
    def evaluate(x):
        values = terms(**_points(state, len(x), **{name: x[:, 0]}))
        return sum(value.reshape(len(x), -1).sum(axis=1) for value in values.values())[:, None]
    return lambda x: _in_chunks(evaluate, x, data.N)


# -- one step from the conditional, and the comparison -----------------------------------------

def step_from(draw, rng, state: gibbs.GibbsState, name: str, starts: np.ndarray, stats,
              priors) -> np.ndarray:
    """One call of `draw` on a batch of len(starts) states: `state` with `name` set to each
    start (shape (S, m) for theta, (S,) for a scalar), the other coordinates the same.
    """
    batch = gibbs.GibbsState(**_points(state, len(starts), **{name: starts}))
    return draw(rng, batch, stats, priors)


def compare_draws(draws: np.ndarray, conditional: GridConditional) -> dict[str, float]:
    """How many draws, the KS test of them against the tabulated CDF, and z-scores of their
    mean and variance.
    """
    mean, variance, fourth = conditional.moments()
    size = draws.size
    ks = st.kstest(draws, conditional.cdf_at)
    mean_z = (draws.mean() - mean) / np.sqrt(variance / size)
    var_z = (draws.var() - variance) / np.sqrt(max(fourth - variance**2, 1e-300) / size)
    return {"draws": size, "ks_p": ks.pvalue, "mean": mean, "draws_mean": draws.mean(),
            "mean_z": mean_z, "var_z": var_z}


# Each conditional of `Conditionals`: the coordinate it draws, and the density whose slice along
# that coordinate is its conditional: "joint" is log p(y, theta, mu, lam, omega), "collapsed"
# log p(y, mu, lam, omega) with theta integrated out (the blocked sweep's lam and mu steps).
CHECKED = {
    "draw_theta": ("theta", "joint"),
    "draw_mu": ("mu", "joint"),
    "draw_lam": ("lam", "joint"),
    "draw_omega": ("omega", "joint"),
    "draw_lam_collapsed": ("lam", "collapsed"),
    "draw_mu_collapsed": ("mu", "collapsed"),
}


def collapsed_log_density(collapsed_logp: Callable, state: gibbs.GibbsState, name: str):
    """x (K, 1) -> log p(y, mu, lam, omega) (K, 1), theta integrated out, every parameter but
    `name` held at `state`.
    """
    fixed = {"mu": state.mu, "lam": state.lam, "omega": state.omega}
    return lambda x: np.array([[collapsed_logp(**(fixed | {name: value}))] for value in x[:, 0]])


@dataclass(frozen=True)
class TabulatedState:
    """A state of the invariance test and the full conditionals tabulated there.

    Attributes
    ----------
    state : hiercheck.samplers.gibbs.GibbsState
        The state (an exact posterior draw).
    conditionals : dict of str to list of GridConditional
        A field of `Conditionals` -> its coordinate's full conditional at `state` (a list of
        one, or for draw_theta one per school).
    """

    state: gibbs.GibbsState
    conditionals: dict[str, list[GridConditional]]


def _check_seeds(seed: SeedLike, stage: int = 0) -> list[np.random.SeedSequence]:
    """The seeds of the states, of the draw functions' calls and of the starting values: the
    states' the same at every stage, the others fresh children at each later stage.
    """
    children = np.random.SeedSequence(seed).spawn(3 + stage)
    if stage == 0:
        return children
    return [children[0], *children[-1].spawn(2)]


def tabulate_states(data: GroupedData, priors: Priors, fields: tuple[str, ...], *,
                    points: int = 3, seed: SeedLike = 0,
                    log_density_terms: Callable | None = None,
                    collapsed_logp: Callable | None = None) -> list[TabulatedState]:
    """The reference side of the invariance test: `points` exact posterior states and, at each,
    the full conditional of every coordinate that `fields` draw, tabulated from the reference
    model's density. It depends on the data, the priors, the fields, `points` and `seed`, never
    on the draw functions under test, so `hiercheck.validation.suite` keeps it in the reference
    cache.

    Parameters
    ----------
    data, priors : GroupedData, Priors
        Where the conditionals are tabulated.
    fields : tuple of str
        Fields of `Conditionals` (keys of `CHECKED`).
    points : int
        How many states.
    seed : int or SeedSequence
        The seed of `check_conditionals`: the states are the ones it tests.
    log_density_terms : callable, optional
        `hiercheck.models.reference.log_density_terms_function(data, priors)`; compiled here
        when None.
    collapsed_logp : callable, optional
        `hiercheck.models.reference.collapsed_logp_function(data, priors)`, for collapsed
        fields; compiled here when needed and None.

    Returns
    -------
    list of TabulatedState
        One per state.
    """
    from hiercheck.models.reference import collapsed_logp_function, log_density_terms_function

    terms = log_density_terms or log_density_terms_function(data, priors)
    if any(CHECKED[field][1] == "collapsed" for field in fields):
        collapsed_logp = collapsed_logp or collapsed_logp_function(data, priors)
    tabulated = []
    for state in states_from_exact_posterior(data, priors, points, _check_seeds(seed)[0]):
        grids = {}
        for field in fields:
            name, density = CHECKED[field]
            if name == "theta":
                grids[field] = tabulate_conditionals(school_log_densities(terms, state, data),
                                                     state.theta, positive=False, name="theta")
                continue
            log_density = (scalar_log_density(terms, state, name, data) if density == "joint"
                           else collapsed_log_density(collapsed_logp, state, name))
            grids[field] = tabulate_conditionals(log_density, getattr(state, name),
                                                 name in POSITIVE, name)
        tabulated.append(TabulatedState(state, grids))
    return tabulated


def check_conditionals(conditionals: gibbs.Conditionals, data: GroupedData, priors: Priors, *,
                       points: int = 3, draws: int = 4000, theta_draws: int | None = None,
                       schools: int = 4, seed: SeedLike = 0,
                       alpha: float = 0.01, log_density_terms: Callable | None = None,
                       scheme: str = "textbook", collapsed_logp: Callable | None = None,
                       tabulated: list[TabulatedState] | None = None,
                       stage: int = 0) -> ConsistencyResult:
    """Run the invariance test of every conditional that `scheme` draws from
    (`gibbs.SCHEME_FIELDS`) at `points` states (the module docstring).

    Parameters
    ----------
    conditionals : hiercheck.samplers.gibbs.Conditionals
        The draw functions (direct draws or kernels).
    data, priors : GroupedData, Priors
        Where the conditionals are tested.
    points : int
        Exact posterior draws at which every conditional is tested.
    draws : int
        Starting values per scalar (mu, lam, omega) and point, so draws compared with each
        scalar's conditional.
    theta_draws : int, optional
        The same for the theta block (each a value per school); `draws` when None.
    schools : int
        theta_i tested for this many schools spread over the sizes (all start from their
        conditionals).
    seed : int or SeedSequence
        Fixes the points, the starting values and the draws.
    alpha : float
        Family-wise false-alarm rate of the Holm-adjusted tests.
    log_density_terms : callable, optional
        `hiercheck.models.reference.log_density_terms_function(data, priors)`, compiled once
        by the caller; compiled here when None and `tabulated` is None.
    scheme : {"textbook", "blocked"}
        Which conditionals are tested: the sweep's.
    collapsed_logp : callable, optional
        `hiercheck.models.reference.collapsed_logp_function(data, priors)`, for the blocked
        sweep's collapsed conditionals; compiled here when needed and None.
    tabulated : list of TabulatedState, optional
        `tabulate_states(data, priors, gibbs.SCHEME_FIELDS[scheme], points=points, seed=seed)`
        computed before (the reference cache keeps it); tabulated here when None.
    stage : int, default 0
        Which independent set of starting values and calls to draw at the seed's states: each
        stage's are independent of every other's (`check_in_stages`).

    Returns
    -------
    ConsistencyResult
        A row per point and coordinate: p-values, z-scores, Holm-adjusted p-values, `agree`.

    Raises
    ------
    UserFunctionError
        If a replaced draw function returns something that cannot be draws.
    """
    fields = gibbs.SCHEME_FIELDS[scheme]
    if tabulated is None:
        tabulated = tabulate_states(data, priors, fields, points=points, seed=seed,
                                    log_density_terms=log_density_terms,
                                    collapsed_logp=collapsed_logp)
    conditionals = checked_conditionals(conditionals)
    _, draw_seed, start_seed = _check_seeds(seed, stage)
    rng, start_rng = np.random.default_rng(draw_seed), np.random.default_rng(start_seed)
    rows = []
    for k, point in enumerate(tabulated):
        state = point.state
        for field in fields:
            name, density = CHECKED[field]
            draw = getattr(conditionals, field)
            if name == "theta":
                thetas = point.conditionals[field]
                starts = np.column_stack([theta.sample(start_rng, theta_draws or draws)
                                          for theta in thetas])
                returned = step_from(draw, rng, state, "theta", starts, data.stats, priors)
                for i in schools_across_sizes(data.n, schools):
                    rows.append({"point": k, "coordinate": f"theta[{data.labels[i]}]",
                                 **compare_draws(returned[:, i], thetas[i])})
                continue
            [conditional] = point.conditionals[field]
            values = step_from(draw, rng, state, name, conditional.sample(start_rng, draws),
                               data.stats, priors)
            label = name if density == "joint" else f"{name} (collapsed)"
            rows.append({"point": k, "coordinate": label, **compare_draws(values, conditional)})
    table = pd.DataFrame(rows)
    table["mean_p"] = 2 * st.norm.sf(np.abs(table.mean_z))
    table["var_p"] = 2 * st.norm.sf(np.abs(table.var_z))
    adjusted = holm_adjust(np.r_[table.ks_p, table.mean_p, table.var_p].astype(float))
    table[HOLM_COLUMNS] = np.column_stack(np.split(adjusted, 3))
    table["agree"] = table[HOLM_COLUMNS].min(axis=1) > alpha
    return ConsistencyResult(table=table, alpha=alpha)


def check_in_stages(conditionals: gibbs.Conditionals, data: GroupedData, priors: Priors, *,
                    tabulated: list[TabulatedState], draws: int, theta_draws: int | None = None,
                    seed: SeedLike = 0, alpha: float = 0.01, **options: Any) -> ConsistencyResult:
    """`check_conditionals` in two stages at the same states (`result.in_stages`): the first
    fails the conditionals if its smallest Holm-adjusted p-value is at most alpha/2 and passes
    them if it is above AMBIGUOUS_P; in between, a second stage with LATER_STAGE_DRAWS times the
    draws, independent of the first, decides alone; at most alpha false alarms in all. An error
    that leaves the first stage in doubt is tested with twice the first stage's z.

    Parameters
    ----------
    conditionals : hiercheck.samplers.gibbs.Conditionals
        The draw functions (direct draws or kernels).
    data, priors : GroupedData, Priors
        Where the conditionals are tested.
    tabulated : list of TabulatedState
        `tabulate_states` with the same seed, points and scheme: the states both stages test.
    draws, theta_draws : int
        The first stage's `draws` and `theta_draws` (`check_conditionals`).
    seed : int or SeedSequence
        Fixes the states and both stages' starting values and draws.
    alpha : float
        The family-wise false-alarm rate of the whole check.
    **options
        Passed on to `check_conditionals` (points, schools, scheme).

    Returns
    -------
    ConsistencyResult
        The rows of every stage run, with a column `stage` (0, then 1 if it ran), at level
        alpha/2: it passes where no row of the stage that decided disagrees.
    """
    theta_draws = theta_draws or draws

    def run_stage(stage: int, factor: int) -> ConsistencyResult:
        result = check_conditionals(conditionals, data, priors, draws=factor * draws,
                                    theta_draws=factor * theta_draws, seed=seed,
                                    alpha=alpha / 2, tabulated=tabulated, stage=stage,
                                    **options)
        return replace(result, table=result.table.assign(stage=stage))
    stages = in_stages(run_stage, alpha)
    return ConsistencyResult(table=pd.concat([result.table for result in stages],
                                             ignore_index=True), alpha=alpha / 2)


def simulated_data(n: ArrayLike, priors: Priors, seed: SeedLike = 0) -> GroupedData:
    """Scores for school sizes `n`, simulated from the priors (parameters, then scores).

    Parameters
    ----------
    n : array_like of int
        Each school's number of students.
    priors : Priors
        The priors the parameters are drawn from.
    seed : SeedLike, default 0
        Fixes the parameters and the scores.

    Returns
    -------
    GroupedData
        The simulated scores, named "<m> simulated schools".
    """
    rng = np.random.default_rng(seed)
    n = np.asarray(n)
    codes = np.repeat(np.arange(n.size), n)
    params = draw_parameters(rng, priors, n.size)
    return GroupedData.from_arrays(codes, draw_scores(rng, params, codes),
                                   name=f"{n.size} simulated schools")

