"""Each Gibbs conditional against the full conditional implied by the PyMC joint density.

A draw function is a black box (a user's may come with no density), so the check looks at what it
draws. At a few states (exact posterior draws, so the points do not depend on the sampler under
test), for each coordinate x (mu, lam, omega and theta_i of some schools):

    1. draw S values of x from the draw function, in one batched call;
    2. tabulate log p(y, theta, mu, lam, omega) from the PyMC reference model along x, others
       fixed, and normalize it numerically: that is the true full conditional of x;
    3. compare: a Kolmogorov-Smirnov test against the numerical CDF, and z-scores of the draws'
       mean and variance against the numerical moments.

Every comparison is one-dimensional (the theta_i are conditionally independent). Holm's
correction over all the tests holds the family-wise false-alarm rate at alpha.

On a large data set the prior's constants hardly move a conditional (b next to a sum of squares
of thousands of scores), so a slip in them cannot show; `simulated_data` makes a second operating
point, a few small schools under informative priors, where every constant matters.

The empirical-Bayes objectives are functions, not samplers: `hiercheck.validation.likelihood`
checks them exactly.
"""

from __future__ import annotations

__all__ = [
    "check_conditionals", "ConsistencyResult", "numerical_conditional", "simulated_data",
    "states_from_exact_posterior",
]

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import integrate, optimize
from scipy import stats as st

from hiercheck.models import GroupedData, Priors
from hiercheck.models.simulate import draw_parameters, draw_scores
from hiercheck.samplers import exact, gibbs

from .agreement import holm_adjust
from .result import CheckTable

GRID_POINTS = 2001
GRID_HALF_WIDTH = 14.0  # Laplace SDs either side of the conditional's mode
POSITIVE = ("lam", "omega")


@dataclass(frozen=True)
class ConsistencyResult(CheckTable):
    alpha: float


def states_from_exact_posterior(data: GroupedData, priors: Priors, points: int, seed) -> list:
    idata = exact.sample(data, priors, draws=points, chains=1, seed=seed)
    post = idata.posterior.isel(chain=0)
    return [gibbs.GibbsState(theta=post.theta.values[k], mu=float(post.mu.values[k]),
                             lam=float(post.lam.values[k]), omega=float(post.omega.values[k]))
            for k in range(points)]


def checked_schools(n: np.ndarray, count: int) -> np.ndarray:
    """Schools spread over the range of sizes, smallest and largest included."""
    order = np.argsort(n, kind="stable")
    return np.unique(order[np.linspace(0, n.size - 1, min(count, n.size)).round().astype(int)])


def coordinate_log_density(logp, state: gibbs.GibbsState, name: str, school=None):
    """x -> log p(y, params) with every parameter but x held at `state`."""
    def at(x):
        if name == "theta":
            theta = np.array(state.theta, dtype=float)
            theta[school] = x
            return logp(theta, state.mu, state.lam, state.omega)
        return logp(**(state._asdict() | {name: x}))
    return at


def numerical_conditional(log_density, start: float, positive: bool):
    """(grid in x, normalized density, CDF) of a 1-D log density, on a grid around its mode.

    Positive coordinates are gridded in log x (so the grid follows the Gamma-like shape) and the
    density is carried back to x with its Jacobian."""
    to_x = np.exp if positive else (lambda u: u)
    in_u = (lambda u: log_density(np.exp(u)) + u) if positive else log_density
    u0 = np.log(start) if positive else start
    mode = optimize.minimize_scalar(lambda u: -in_u(u), bracket=(u0 - 0.1, u0)).x
    h = 1e-3 * max(1.0, abs(mode))
    curvature = -(in_u(mode + h) - 2 * in_u(mode) + in_u(mode - h)) / h**2
    scale = 1.0 / np.sqrt(max(curvature, 1e-300))
    u = mode + np.linspace(-GRID_HALF_WIDTH, GRID_HALF_WIDTH, GRID_POINTS) * scale
    log_values = np.array([in_u(v) for v in u])
    density_u = np.exp(log_values - log_values.max())
    density_u /= integrate.trapezoid(density_u, u)
    cdf = integrate.cumulative_trapezoid(density_u, u, initial=0.0)
    x = to_x(u)
    return x, density_u, u, cdf / cdf[-1]


def compare_draws(draws: np.ndarray, x, density_u, u, cdf) -> dict[str, float]:
    """KS test of draws against the tabulated CDF, and z-scores of their mean and variance."""
    if not np.all(np.isfinite(draws)):  # a broken conditional; the tests below need numbers
        return {"ks_p": 0.0, "mean": np.nan, "draws_mean": np.nan, "mean_z": np.inf,
                "var_z": np.inf}
    mean = integrate.trapezoid(x * density_u, u)
    variance = integrate.trapezoid((x - mean) ** 2 * density_u, u)
    fourth = integrate.trapezoid((x - mean) ** 4 * density_u, u)
    size = draws.size
    ks = st.kstest(draws, lambda v: np.interp(v, x, cdf, left=0.0, right=1.0))
    mean_z = (draws.mean() - mean) / np.sqrt(variance / size)
    var_z = (draws.var() - variance) / np.sqrt(max(fourth - variance**2, 1e-300) / size)
    return {"ks_p": ks.pvalue, "mean": mean, "draws_mean": draws.mean(), "mean_z": mean_z,
            "var_z": var_z}


def draw_many(draw, rng, state: gibbs.GibbsState, stats, priors, size: int) -> np.ndarray:
    """`size` draws of one conditional in one call, by broadcasting the state over a batch."""
    batch = gibbs.GibbsState(theta=np.broadcast_to(state.theta, (size, state.theta.size)),
                             mu=np.full(size, state.mu), lam=np.full(size, state.lam),
                             omega=np.full(size, state.omega))
    return np.asarray(draw(rng, batch, stats, priors), dtype=float)


def check_conditionals(conditionals, data: GroupedData, priors: Priors, *, points: int = 3,
                       draws: int = 4000, schools: int = 4, seed=0, alpha: float = 0.01,
                       logp=None) -> ConsistencyResult:
    """Run the comparison for every conditional at `points` states (see the module docstring)."""
    from hiercheck.models.reference import joint_logp_function

    logp = logp or joint_logp_function(data, priors)
    state_seed, draw_seed = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(draw_seed)
    rows = []
    for k, state in enumerate(states_from_exact_posterior(data, priors, points, state_seed)):
        theta_draws = draw_many(conditionals.draw_theta, rng, state, data.stats, priors, draws)
        for i in checked_schools(data.n, schools):
            reference = numerical_conditional(coordinate_log_density(logp, state, "theta", i),
                                              float(state.theta[i]), positive=False)
            rows.append({"point": k, "coordinate": f"theta[{data.labels[i]}]",
                         **compare_draws(theta_draws[:, i], *reference)})
        for name in ("mu", "lam", "omega"):
            values = draw_many(getattr(conditionals, f"draw_{name}"), rng, state, data.stats,
                               priors, draws)
            reference = numerical_conditional(coordinate_log_density(logp, state, name),
                                              getattr(state, name), positive=name in POSITIVE)
            rows.append({"point": k, "coordinate": name, **compare_draws(values, *reference)})
    table = pd.DataFrame(rows)
    table["mean_p"] = 2 * st.norm.sf(np.abs(table.mean_z))
    table["var_p"] = 2 * st.norm.sf(np.abs(table.var_z))
    adjusted = holm_adjust(np.r_[table.ks_p, table.mean_p, table.var_p].astype(float))
    table["ks_p_holm"], table["mean_p_holm"], table["var_p_holm"] = np.split(adjusted, 3)
    table["agree"] = table[["ks_p_holm", "mean_p_holm", "var_p_holm"]].min(axis=1) > alpha
    return ConsistencyResult(table=table, alpha=alpha)


def simulated_data(n, priors: Priors, seed=0) -> GroupedData:
    """Scores for school sizes `n`, simulated from the priors (parameters, then scores)."""
    rng = np.random.default_rng(seed)
    n = np.asarray(n)
    codes = np.repeat(np.arange(n.size), n)
    params = draw_parameters(rng, priors, n.size)
    return GroupedData.from_arrays(codes, draw_scores(rng, params, codes),
                                   name=f"{n.size} simulated schools")

