"""Posterior-quantile agreement between two engines.

For every scalar and every theta_i, and each probability q, the two engines' q-quantiles differ by

    z = (Q_a(q) - Q_b(q)) / sqrt(mcse_a(q)^2 + mcse_b(q)^2),
    mcse_e(q) = sqrt(q (1 - q) / ESS_e(q)) / f(Q(q))

where ESS_e(q) is engine e's effective sample size for the indicator I(x <= Q(q)) (ArviZ's
`ess(method="quantile")`, which accounts for autocorrelation, computed for all quantities at once
by `diagnostics.ess_quantile`) and f(Q(q)) the density at the
quantile. Under agreement both engines sample one distribution, so f is estimated from their
draws pooled, as 2 delta / (Q(q + delta) - Q(q - delta)) with delta = min(q, 1 - q)/2. (ArviZ's
own quantile MCSE reads the density off a narrow band of order statistics of one engine's draws;
in the tails that estimate is noisy enough that |z| > 4.4 turned up for a correct sampler about
once in ten runs of 800 comparisons. The wide window is steady and, for unimodal tails, errs
toward a larger MCSE.) Under agreement each z is approximately N(0, 1); the many tests are held to
one family-wise false-alarm rate `alpha` by Holm's step-down correction.

The z-test can only be trusted where the MCSE is: a biased sampler that mixes slowly has a large
MCSE, and its bias hides inside it (a 0.5-SD bias passed at lag-one correlation 0.999). So a
comparison is verified only when both engines clear the mixing gate
(`diagnostics.mixing_table`): every compared quantity has bulk and tail ESS of at least ESS_FLOOR
and rank-normalized split R-hat at most RHAT_CEILING (Vehtari, Gelman, Simpson, Carpenter and Buerkner 2021, whose recommendations
these are). Otherwise the comparison says "cannot verify" and does not pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from hiercheck.errors import SettingsError
from hiercheck.models.engine import SCALARS, az

from . import diagnostics
from .diagnostics import ESS_FLOOR, RHAT_CEILING
from .result import CheckTable
from .statistics import holm_adjust

if TYPE_CHECKING:
    pass

__all__ = ["QUANTILES", "VARIABLES", "Agreement", "Summary", "compare", "summarize"]

QUANTILES = (0.025, 0.25, 0.5, 0.75, 0.975)
VARIABLES = SCALARS + ("theta",)
@dataclass(frozen=True)
class Agreement(CheckTable):
    """The outcome of `compare`: a row per (variable, school, quantile), each with its verdict
    ("agree", "disagree", "cannot verify" when the sampler's draws of that quantity miss the
    mixing gate, "cannot verify: reference" when the reference's do), and both engines' mixing
    tables (`mixing`, with a column `engine`: "sampler" or "reference").

    Attributes
    ----------
    table : pandas.DataFrame
        A row per (variable, school, quantile): the z-test, its Holm-adjusted p-value, each
        engine's lowest ESS and R-hat of that quantity, the `verdict`, and `agree`.
    alpha : float
        The family-wise false-alarm rate.
    engines : tuple of (str, str)
        The names of the sampler's and the reference's engines.
    mixing : pandas.DataFrame
        Both engines' `mixing_table`s, with a column `engine`: "sampler" or "reference".
    """

    alpha: float
    engines: tuple[str, str]
    mixing: pd.DataFrame

    @property
    def max_abs_z(self) -> float:
        """max over rows of |z|."""
        return float(self.table.z.abs().max())

    @property
    def verified(self) -> bool:
        """Whether both engines clear the mixing gate on every compared quantity."""
        return bool(self.mixing.mixed.all())

    def gate(self) -> tuple[str, float, float] | None:
        """None when both engines clear the mixing gate; otherwise (what failed, its value,
        the floor or ceiling) for the first failure, the sampler before the reference and the
        lowest ESS before the highest R-hat: ("cannot verify: lowest ESS", 23.0, 400), or
        ("cannot verify: reference's highest R-hat", 1.02, 1.01).

        Returns
        -------
        tuple of (str, float, float) or None
            The first failure of the mixing gate, or None if there is none.
        """
        for role, whose in (("sampler", ""), ("reference", "reference's ")):
            mixing = self.mixing[self.mixing.engine == role]
            lowest = float(mixing[["ess_bulk", "ess_tail"]].to_numpy().min())
            if not lowest >= ESS_FLOOR:  # NaN (a constant chain) fails too
                return f"cannot verify: {whose}lowest ESS", lowest, ESS_FLOOR
            highest = float(mixing.r_hat.to_numpy().max())
            if not highest <= RHAT_CEILING:
                return f"cannot verify: {whose}highest R-hat", highest, RHAT_CEILING
        return None

    def __str__(self) -> str:
        a, b = self.engines
        failed = self.gate()
        if failed is not None:
            what, value, limit = failed
            unmixed = self.mixing[~self.mixing.mixed].head(5)
            return (f"{a} vs {b}: {what} {value:.4g} (limit {limit:g}); the quantities that "
                    "miss the gate:\n"
                    + unmixed.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        worst = self.table.reindex(self.table.z.abs().sort_values(ascending=False).index).head(5)
        verdict = "AGREE" if self.passed else "DISAGREE"
        return (f"{a} vs {b}: {verdict} at family-wise alpha {self.alpha} (Holm correction over "
                f"{len(self.table)} quantile comparisons; max |z| {self.max_abs_z:.2f})\n"
                + worst.to_string(index=False, float_format=lambda x: f"{x:.4g}"))


@dataclass(frozen=True)
class Summary:
    """One engine's side of `compare`, which depends on its draws alone: for each probability q
    and quantity (a scalar or a theta_i) the sample q-quantile Q(q) and the ESS of the indicator
    I(x <= Q(q)), and the engine's mixing table. A reference's summary is computed once and
    reused (the suite caches it beside the reference posterior).

    Attributes
    ----------
    quantiles : tuple of float
        The probabilities q.
    var_names : tuple of str
        The variables summarized.
    labels : list of (str, object)
        The (variable, school) of each quantity ("" for a scalar's school).
    values : numpy.ndarray
        Shape (len(quantiles), K): the sample quantiles.
    ess : numpy.ndarray
        Shape (len(quantiles), K): the ESS of each quantile's indicator.
    mixing : pandas.DataFrame
        `mixing_table` of the draws.
    """

    quantiles: tuple[float, ...]
    var_names: tuple[str, ...]
    labels: list[tuple[str, object]]
    values: np.ndarray
    ess: np.ndarray
    mixing: pd.DataFrame


def summarize(idata: az.InferenceData, *, quantiles: Sequence[float] = QUANTILES,
              var_names: Sequence[str] = VARIABLES, mixing: pd.DataFrame | None = None
              ) -> Summary:
    """An engine's `Summary`: its quantiles, their indicators' ESS and its mixing table.

    Parameters
    ----------
    idata : arviz.InferenceData
        The engine's draws.
    quantiles : sequence of float
        The probabilities q.
    var_names : sequence of str
        The variables (every element of each).
    mixing : pandas.DataFrame, optional
        `mixing_table(idata, var_names)` when the caller has it already; computed when None.

    Returns
    -------
    Summary
        The engine's side of `compare`.
    """
    draws, labels = diagnostics.quantity_draws(idata.posterior, var_names)
    return _summary(draws, _pooled(draws), labels, quantiles, var_names, mixing)


def _summary(draws: np.ndarray, pooled: np.ndarray, labels: list[tuple[str, object]],
             quantiles: Sequence[float], var_names: Sequence[str],
             mixing: pd.DataFrame | None) -> Summary:
    """`summarize` of draws (chain, draw, K) already extracted, and pooled by `_pooled`."""
    return Summary(quantiles=tuple(quantiles), var_names=tuple(var_names), labels=labels,
                   values=np.quantile(pooled, quantiles, axis=1),
                   ess=np.array([diagnostics.ess_quantile(draws, q) for q in quantiles]),
                   mixing=(diagnostics.mixing_table_of_draws(draws, labels) if mixing is None
                           else mixing))


def _pooled(draws: np.ndarray) -> np.ndarray:
    """Draws (chain, draw, K) as (K, chain x draw), each quantity's draws contiguous for the
    quantiles' partial sorts.
    """
    return np.ascontiguousarray(draws.reshape(-1, draws.shape[2]).T)


def compare(idata_a: az.InferenceData, idata_b: az.InferenceData, *,
            quantiles: Sequence[float] = QUANTILES, var_names: Sequence[str] = VARIABLES,
            alpha: float = 0.01, summary_a: Summary | None = None,
            summary_b: Summary | None = None) -> Agreement:
    """Compare the posterior quantiles of a sampler (`idata_a`) and a reference (`idata_b`).

    Parameters
    ----------
    idata_a, idata_b : arviz.InferenceData
        The sampler's and the reference engine's draws (design: engine interface).
    quantiles : sequence of float
        The probabilities q whose quantiles are compared.
    var_names : sequence of str
        The variables compared (every element of each).
    alpha : float
        The family-wise false-alarm rate, held by Holm's correction over all comparisons.
    summary_a, summary_b : Summary, optional
        `summarize(idata_a, quantiles=quantiles, var_names=var_names)`, and the same of
        `idata_b`, when the caller has them (a sampler compared with several references, a
        reference with many samplers); computed here when None.

    Returns
    -------
    Agreement
        A row per (variable, school, quantile) with the z-test, its Holm-adjusted p-value, the
        lowest ESS and the R-hat of that quantity under each engine, and its verdict; `passed`
        only if every row agrees, which needs both engines to clear the mixing gate.

    Raises
    ------
    SettingsError
        If alpha is not in (0, 1), or a summary given summarizes other quantiles or
        quantities than are compared.
    """
    if not 0 < alpha < 1:
        raise SettingsError(f"alpha must be in (0, 1), got {alpha}")
    (draws_a, labels), (draws_b, _) = (diagnostics.quantity_draws(idata.posterior, var_names)
                                       for idata in (idata_a, idata_b))
    pooled_a, pooled_b = _pooled(draws_a), _pooled(draws_b)
    compared = (tuple(quantiles), tuple(var_names), labels)
    for name, summary in (("summary_a", summary_a), ("summary_b", summary_b)):
        if summary is not None and (summary.quantiles, summary.var_names,
                                    summary.labels) != compared:
            raise SettingsError(f"compare: {name} summarizes other quantiles or quantities than "
                                "are compared")
    if summary_a is None:
        summary_a = _summary(draws_a, pooled_a, labels, quantiles, var_names, None)
    if summary_b is None:
        summary_b = _summary(draws_b, pooled_b, labels, quantiles, var_names, None)
    densities = _pooled_density_at_quantiles(pooled_a, pooled_b, quantiles)
    rows = []
    for k, (q, density) in enumerate(zip(quantiles, densities)):
        mcse_a, mcse_b = (np.sqrt(q * (1 - q) / summary.ess[k]) / density
                          for summary in (summary_a, summary_b))
        for (name, school), a, b, se_a, se_b in zip(summary_a.labels, summary_a.values[k],
                                                    summary_b.values[k], mcse_a, mcse_b):
            rows.append({"variable": name, "school": school, "quantile": q, "a": a, "b": b,
                         "mcse_a": se_a, "mcse_b": se_b})
    table = pd.DataFrame(rows)
    table["z"] = (table.a - table.b) / np.hypot(table.mcse_a, table.mcse_b)
    table["p"] = 2 * stats.norm.sf(np.abs(table.z))
    table["p_holm"] = holm_adjust(table.p.to_numpy())
    mixing = {"sampler": summary_a.mixing, "reference": summary_b.mixing}
    for role, suffix in (("sampler", "a"), ("reference", "b")):
        per_quantity = mixing[role].assign(**{
            f"min_ess_{suffix}": np.minimum(mixing[role].ess_bulk, mixing[role].ess_tail),
            f"r_hat_{suffix}": mixing[role].r_hat, f"mixed_{suffix}": mixing[role].mixed})
        table = table.merge(per_quantity[["variable", "school", f"min_ess_{suffix}",
                                         f"r_hat_{suffix}", f"mixed_{suffix}"]],
                            on=["variable", "school"], how="left")
    table["verdict"] = np.select(
        [~table.mixed_a, ~table.mixed_b, table.p_holm > alpha],
        ["cannot verify", "cannot verify: reference", "agree"], "disagree")
    table["agree"] = table.verdict == "agree"
    table = table.drop(columns=["mixed_a", "mixed_b"])
    return Agreement(table=table, alpha=alpha,
                     engines=(_engine_name(idata_a), _engine_name(idata_b)),
                     mixing=pd.concat([m.assign(engine=role) for role, m in mixing.items()],
                                      ignore_index=True))


def _pooled_density_at_quantiles(pooled_a: np.ndarray, pooled_b: np.ndarray,
                                 quantiles: Sequence[float]) -> np.ndarray:
    """2 delta / (Q(q + delta) - Q(q - delta)) of the two engines' draws (K, sample) pooled,
    delta = min(q, 1 - q)/2: the density at the q-quantile, averaged over a window holding
    2 delta of the mass; shape (len(quantiles), K).
    """
    q = np.asarray(quantiles, dtype=float)
    delta = np.minimum(q, 1 - q) / 2
    pooled = np.concatenate((pooled_a, pooled_b), axis=1)
    upper, lower = np.split(np.quantile(pooled, np.concatenate((q + delta, q - delta)), axis=1), 2)
    with np.errstate(divide="ignore"):  # draws all equal: infinite density, and not mixed
        return 2 * delta[:, None] / (upper - lower)


def _engine_name(idata) -> str:
    return str(idata.posterior.attrs.get("engine", "?"))
