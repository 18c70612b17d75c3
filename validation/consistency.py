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

The blocked sweep's collapsed conditionals, lam | mu, omega, y and mu | lam, omega, y, are
checked the same way against log p(y, mu, lam, omega) with theta integrated out
(`hiercheck.models.reference.collapsed_logp_function`); `CHECKED` says which density and
coordinate belong to each conditional.

A marginal likelihood log p(y | mu, lam, omega) (the empirical-Bayes objective) is a function,
not a sampler, so `check_marginal_likelihood` checks it exactly: against the multivariate normal
density of each school's scores under their compound-symmetric covariance, and against numerical
integration over theta_i.
"""

from __future__ import annotations

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
MARGINAL_TOLERANCE = 1e-7  # relative: far above rounding, far below any missing term


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


def check_conditionals(conditionals, data: GroupedData, priors: Priors, *, points: int = 3,
                       draws: int = 4000, schools: int = 4, seed=0, alpha: float = 0.01,
                       logp=None, scheme: str = "textbook",
                       collapsed_logp=None) -> ConsistencyResult:
    """Run the comparison for every conditional that `scheme` draws from
    (`gibbs.SCHEME_FIELDS`) at `points` states (see the module docstring). `logp` and
    `collapsed_logp` (`hiercheck.models.reference.joint_logp_function` and
    `collapsed_logp_function` of the data) are compiled here when not given and needed."""
    from hiercheck.models.reference import collapsed_logp_function, joint_logp_function

    fields = gibbs.SCHEME_FIELDS[scheme]
    densities = {"joint": logp or joint_logp_function(data, priors)}
    if any(CHECKED[field][1] == "collapsed" for field in fields):
        collapsed = collapsed_logp or collapsed_logp_function(data, priors)
        densities["collapsed"] = lambda theta, mu, lam, omega: collapsed(mu, lam, omega)
    state_seed, draw_seed = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(draw_seed)
    rows = []
    for k, state in enumerate(states_from_exact_posterior(data, priors, points, state_seed)):
        for field in fields:
            name, density = CHECKED[field]
            label = name if density == "joint" else f"{name} (collapsed)"
            values = draw_many(getattr(conditionals, field), rng, state, data.stats, priors, draws)
            if name == "theta":
                for i in checked_schools(data.n, schools):
                    reference = numerical_conditional(
                        coordinate_log_density(densities[density], state, "theta", i),
                        float(state.theta[i]), positive=False)
                    rows.append({"point": k, "coordinate": f"theta[{data.labels[i]}]",
                                 **compare_draws(values[:, i], *reference)})
                continue
            reference = numerical_conditional(
                coordinate_log_density(densities[density], state, name),
                getattr(state, name), positive=name in POSITIVE)
            rows.append({"point": k, "coordinate": label, **compare_draws(values, *reference)})
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


# -- the marginal likelihood ----------------------------------------------------------------------

@dataclass(frozen=True)
class MarginalLikelihoodResult(CheckTable):
    tolerance: float

    @property
    def max_relative_error(self) -> float:
        return float(self.table[["dense_error", "quadrature_error"]].max().max())


def dense_log_likelihood(data: GroupedData, mu: float, lam: float, omega: float) -> float:
    """sum_i log N(y_i; mu 1, (I + 11'/omega) / lam), each school's covariance written out."""
    total = 0.0
    for i in range(data.m):
        scores = data.values[data.codes == i]
        covariance = (np.eye(scores.size) + 1.0 / omega) / lam
        total += st.multivariate_normal.logpdf(scores, np.full(scores.size, mu), covariance)
    return float(total)


def integrated_log_likelihood(data: GroupedData, mu: float, lam: float, omega: float) -> float:
    """sum_i log of the integral over theta_i of prod_j N(y_ij; theta_i, 1/lam) N(theta_i; mu,
    1/(lam omega)), by adaptive quadrature around the integrand's peak (scaled out in log space)."""
    total = 0.0
    for i in range(data.m):
        scores = data.values[data.codes == i]

        def log_integrand(theta):  # the two normal log densities, written out for speed
            return (0.5 * scores.size * np.log(lam / (2 * np.pi))
                    - 0.5 * lam * np.sum((scores - theta) ** 2)
                    + 0.5 * np.log(lam * omega / (2 * np.pi)) - 0.5 * lam * omega * (theta - mu) ** 2)

        precision = lam * (scores.size + omega)
        peak = (scores.sum() + omega * mu) / (scores.size + omega)
        width = 12.0 / np.sqrt(precision)
        top = log_integrand(peak)
        area, _ = integrate.quad(lambda t: np.exp(log_integrand(t) - top), peak - width,
                                 peak + width, points=[peak], epsabs=0.0, epsrel=1e-12, limit=200)
        total += top + np.log(area)
    return float(total)


def check_marginal_likelihood(log_marginal_likelihood, data: GroupedData, priors: Priors, *,
                              points: int = 3, seed=0,
                              tolerance: float = MARGINAL_TOLERANCE) -> MarginalLikelihoodResult:
    """Compare `log_marginal_likelihood(stats, mu, lam, omega)` with `dense_log_likelihood` and
    `integrated_log_likelihood` at `points` exact posterior draws of (mu, lam, omega). Relative
    errors above `tolerance` fail: the check is deterministic, so it has no false alarms."""
    rows = []
    for k, state in enumerate(states_from_exact_posterior(data, priors, points, seed)):
        value = float(np.asarray(log_marginal_likelihood(data.stats, state.mu, state.lam,
                                                         state.omega)))
        dense = dense_log_likelihood(data, state.mu, state.lam, state.omega)
        integrated = integrated_log_likelihood(data, state.mu, state.lam, state.omega)
        scale = max(1.0, abs(dense))
        rows.append({"point": k, "mu": state.mu, "lam": state.lam, "omega": state.omega,
                     "value": value, "dense": dense, "quadrature": integrated,
                     "dense_error": abs(value - dense) / scale,
                     "quadrature_error": abs(value - integrated) / scale})
    table = pd.DataFrame(rows)
    table["agree"] = table[["dense_error", "quadrature_error"]].max(axis=1) <= tolerance
    return MarginalLikelihoodResult(table=table, tolerance=tolerance)
