"""Posterior-quantile agreement between two engines.

For every scalar and every theta_i, and each probability q, the two engines' q-quantiles differ by

    z = (Q_a(q) - Q_b(q)) / sqrt(mcse_a(q)^2 + mcse_b(q)^2),
    mcse_e(q) = sqrt(q (1 - q) / ESS_e(q)) / f(Q(q))

where ESS_e(q) is engine e's effective sample size for the indicator I(x <= Q(q)) (ArviZ's
`ess(method="quantile")`, which accounts for autocorrelation) and f(Q(q)) the density at the
quantile. Under agreement both engines sample one distribution, so f is estimated from their
draws pooled, as 2 delta / (Q(q + delta) - Q(q - delta)) with delta = min(q, 1 - q)/2. (ArviZ's
own quantile MCSE reads the density off a narrow band of order statistics of one engine's draws;
in the tails that estimate is noisy enough that |z| > 4.4 turned up for a correct sampler about
once in ten runs of 800 comparisons. The wide window is steady and, for unimodal tails, errs
toward a larger MCSE.) Under agreement each z is approximately N(0, 1); the many tests are held to
one family-wise false-alarm rate `alpha` by Holm's step-down correction.
"""

from __future__ import annotations

__all__ = ["QUANTILES", "VARIABLES", "Agreement", "compare", "holm_adjust"]

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from hiercheck.errors import SettingsError
from hiercheck.models.engine import SCALARS, az

from .result import CheckTable

QUANTILES = (0.025, 0.25, 0.5, 0.75, 0.975)
VARIABLES = SCALARS + ("theta",)


@dataclass(frozen=True)
class Agreement(CheckTable):
    """The outcome of `compare`: a row per (variable, school, quantile), and the verdict."""

    alpha: float
    engines: tuple[str, str]

    @property
    def max_abs_z(self) -> float:
        return float(self.table.z.abs().max())

    def __str__(self) -> str:
        a, b = self.engines
        worst = self.table.reindex(self.table.z.abs().sort_values(ascending=False).index).head(5)
        verdict = "AGREE" if self.passed else "DISAGREE"
        return (f"{a} vs {b}: {verdict} at family-wise alpha {self.alpha} (Holm correction over "
                f"{len(self.table)} quantile comparisons; max |z| {self.max_abs_z:.2f})\n"
                + worst.to_string(index=False, float_format=lambda x: f"{x:.4g}"))


def compare(idata_a, idata_b, *, quantiles=QUANTILES, var_names=VARIABLES,
            alpha: float = 0.01) -> Agreement:
    """Compare the posterior quantiles of two engines' InferenceData (design: engine interface)."""
    if not 0 < alpha < 1:
        raise SettingsError(f"alpha must be in (0, 1), got {alpha}")
    rows = []
    posterior_a = idata_a.posterior[list(var_names)]
    posterior_b = idata_b.posterior[list(var_names)]
    for q in quantiles:
        value_a, value_b = (p.quantile(q, dim=("chain", "draw")) for p in (posterior_a, posterior_b))
        density = _pooled_density_at_quantile(posterior_a, posterior_b, q)
        mcse_a, mcse_b = (np.sqrt(q * (1 - q) / az.ess(p, method="quantile", prob=q)) / density
                          for p in (posterior_a, posterior_b))
        for name in var_names:
            for school, a, b, se_a, se_b in _flatten(name, value_a, value_b, mcse_a, mcse_b):
                rows.append({"variable": name, "school": school, "quantile": q, "a": a, "b": b,
                             "mcse_a": se_a, "mcse_b": se_b})
    table = pd.DataFrame(rows)
    table["z"] = (table.a - table.b) / np.hypot(table.mcse_a, table.mcse_b)
    table["p"] = 2 * stats.norm.sf(np.abs(table.z))
    table["p_holm"] = holm_adjust(table.p.to_numpy())
    table["agree"] = table.p_holm > alpha
    return Agreement(table=table, alpha=alpha, engines=(_engine_name(idata_a), _engine_name(idata_b)))


def holm_adjust(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values: reject where the adjusted p <= alpha keeps the
    family-wise error rate at alpha under any dependence between the tests."""
    order = np.argsort(p)
    k = p.size
    adjusted = np.maximum.accumulate(np.minimum(1.0, (k - np.arange(k)) * p[order]))
    out = np.empty(k)
    out[order] = adjusted
    return out


def _pooled_density_at_quantile(posterior_a, posterior_b, q: float):
    """2 delta / (Q(q + delta) - Q(q - delta)) of the two engines' draws pooled, delta =
    min(q, 1 - q)/2: the density at the q-quantile, averaged over a window holding 2 delta of
    the mass."""
    import xarray as xr

    delta = min(q, 1 - q) / 2
    pooled = xr.concat([p.stack(sample=("chain", "draw")).drop_vars(["chain", "draw", "sample"])
                        for p in (posterior_a, posterior_b)], dim="sample")
    upper, lower = (pooled.quantile(level, dim="sample") for level in (q + delta, q - delta))
    return 2 * delta / (upper - lower)


def _flatten(name, *datasets):
    """(school label or "", then one number per dataset) for each element of a variable."""
    arrays = [np.atleast_1d(ds[name].to_numpy()) for ds in datasets]
    labels = datasets[0][name].coords["school"].to_numpy() if "school" in datasets[0][name].dims else [""]
    return zip(labels, *arrays)


def _engine_name(idata) -> str:
    return str(idata.posterior.attrs.get("engine", "?"))
