"""Geweke's joint-distribution test of a set of Gibbs conditionals.

Two simulators of the joint distribution p(theta, mu, lam, omega, y) for a design n:

    marginal-conditional:    params ~ prior, then y ~ p(y | params)            (i.i.d.)
    successive-conditional:  y ~ p(y | params), then params ~ one Gibbs sweep given y, repeated

The second is a Markov chain whose stationary law is the joint only if every conditional is
right. Test functions g (first and second moments of the parameters and of a data-dependent
quantity) must have the same mean under both. K successive-conditional chains run as one batch;
each chain's time average is one observation, so the standard error of their mean accounts for
autocorrelation without a spectral estimate: the K averages are independent.
"""

from __future__ import annotations

__all__ = ["geweke_functions", "geweke_test", "GewekeResult"]

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as st

from hiercheck.models import Priors, SchoolStats
from hiercheck.models.simulate import Parameters, draw_parameters, draw_school_stats
from hiercheck.samplers import gibbs

from .agreement import holm_adjust
from .result import CheckTable


def geweke_functions(params, stats: SchoolStats) -> dict[str, np.ndarray]:
    """g(params, y): functions whose every moment exists under the joint, so that means of a few
    hundred chain averages are close to normal and the z-test holds its level:

        mu, log lam, log omega                     the parameters on scales with light tails
        e_0 = sqrt(omega lam) (theta_0 - mu)       ~ N(0, 1): school 0 about the mean
        r_0 = sqrt(lam n_0) (ybar_0 - theta_0)     ~ N(0, 1): school 0's data about theta_0
        z   = (ybar.. - mu) / sqrt(v),             ~ N(0, 1): the grand mean about mu, with
              v = sum_i n_i^2 (1/(lam n_i) + 1/(omega lam)) / N^2  its variance given mu, lam, omega

    and their squares. Raw squares such as (theta_0 - mu)^2 = e_0^2/(omega lam) are avoided on
    purpose: 1/(omega lam) has only a few finite moments under Gamma priors, so the standard error
    of their mean is itself unreliable and the test raises false alarms.
    """
    theta, mu, lam, omega = (np.asarray(x, dtype=float) for x in
                             (params.theta, params.mu, params.lam, params.omega))
    n = np.asarray(stats.n, dtype=float)
    grand_mean = (n * stats.ybar).sum(-1) / stats.N
    grand_variance = (n**2 * (1.0 / n + 1.0 / omega[..., None])).sum(-1) / (lam * stats.N**2)
    first = {
        "mu": mu,
        "log lam": np.log(lam),
        "log omega": np.log(omega),
        "e_0": np.sqrt(omega * lam) * (theta[..., 0] - mu),
        "r_0 (data)": np.sqrt(lam * n[0]) * (stats.ybar[..., 0] - theta[..., 0]),
        "z (data)": (grand_mean - mu) / np.sqrt(grand_variance),
    }
    second = {f"({name})^2": value**2 for name, value in first.items()}
    return first | second


@dataclass(frozen=True)
class GewekeResult(CheckTable):
    alpha: float

    @property
    def max_abs_z(self) -> float:
        return float(self.table.z.abs().max())


def marginal_conditional(rng, priors: Priors, n: np.ndarray, size: int) -> dict[str, np.ndarray]:
    truth = draw_parameters(rng, priors, n.size, size=size)
    return geweke_functions(truth, draw_school_stats(rng, truth, n))


def successive_conditional(rng, priors: Priors, n: np.ndarray, chains: int, steps: int, burn: int,
                           conditionals) -> dict[str, np.ndarray]:
    """Time averages of g over each of `chains` successive-conditional chains (shape (chains,))."""
    state = gibbs.GibbsState(*draw_parameters(rng, priors, n.size, size=chains))
    totals = None
    for step in range(burn + steps):
        data = draw_school_stats(rng, Parameters(*state), n)
        if step >= burn:
            values = geweke_functions(state, data)
            totals = values if totals is None else {k: totals[k] + v for k, v in values.items()}
        state = gibbs.sweep(rng, state, data, priors, conditionals)
    return {name: total / steps for name, total in totals.items()}


def geweke_test(priors: Priors, n, *, conditionals=None, chains: int = 400, steps: int = 250,
                burn: int = 20, independent: int = 100_000, seed=0, alpha: float = 0.01) -> GewekeResult:
    """Compare the means of every test function under the two simulators.

    z = (mean_sc - mean_mc) / sqrt(var(chain averages)/K + var_mc/M), two-sided normal p-values;
    Holm's correction over the test functions holds the family-wise false-alarm rate at alpha
    (0.01 by default; measured in benchmarks/false_alarms.py). The defaults take ~0.3 s for a
    design of 6 schools and catch every Gibbs mutant of hiercheck.validation.mutants on
    `sbc.QUICK_DESIGN` with `sbc.QUICK_PRIORS`.
    """
    n = np.asarray(n)
    conditionals = conditionals or gibbs.Conditionals()
    mc_stream, sc_stream = np.random.SeedSequence(seed).spawn(2)
    mc = marginal_conditional(np.random.default_rng(mc_stream), priors, n, independent)
    sc = successive_conditional(np.random.default_rng(sc_stream), priors, n, chains, steps, burn,
                                conditionals)
    rows = []
    for name in mc:
        sc_values = sc[name]
        if np.all(np.isfinite(sc_values)):
            se = np.sqrt(np.var(sc_values) / chains + np.var(mc[name]) / independent)
            z = (np.mean(sc_values) - np.mean(mc[name])) / se
        else:  # a chain that diverged (a wrong conditional can send lam to 0 or inf) fails
            se, z = np.nan, np.inf
        rows.append({"function": name, "successive": np.mean(sc_values), "marginal": np.mean(mc[name]),
                     "se": se, "z": z})
    table = pd.DataFrame(rows)
    table["p"] = 2 * st.norm.sf(np.abs(table.z.to_numpy(dtype=float)))
    table["p_holm"] = holm_adjust(table.p.to_numpy())
    table["agree"] = table.p_holm > alpha
    return GewekeResult(table=table, alpha=alpha)
