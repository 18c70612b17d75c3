"""The math-test hierarchy as a student writes it in PyMC: variances, not precisions.

    y_ij | theta_i       ~ N(theta_i, sigma^2)                 school i = 1..P, student j = 1..n_i
    theta_i | mu         ~ N(mu, tau^2 sigma^2)
    p(mu)                proportional to 1                     (flat)
    p(sigma^2)           proportional to 1/sigma^2             (Jeffreys)
    tau^2                ~ inverse-Gamma(1/2, 1/2)

It is the flagship under `Priors.course()` (lam = 1/sigma^2 with a = b = 0, omega = 1/tau^2 ~
Gamma(1/2, 1/2), phi = 0), parametrized the way the exercise sheet writes it, with the raw scores
observed and the school of each score a constant of the model. Its Gibbs sampler, ported from R
one state at a time, is `hiercheck.samplers.student`; docs/five-minutes.md checks it.
"""

from __future__ import annotations

__all__ = ["student_model"]

from typing import TYPE_CHECKING

from .data import GroupedData

if TYPE_CHECKING:
    import pymc as pm


def student_model(data: GroupedData) -> pm.Model:
    """The hierarchy in sigma^2 and tau^2 under the course's priors, as a PyMC model: mu flat
    (`pm.Flat`), sigma^2 flat on (0, inf) with Jeffreys' factor 1/sigma^2 as a `pm.Potential`,
    tau^2 ~ inverse-Gamma(1/2, 1/2), theta_i ~ N(mu, tau^2 sigma^2) and the scores
    y_ij ~ N(theta_i, sigma^2), observed as "y".

    Parameters
    ----------
    data : GroupedData
        The scores and the school of each (`data.codes`, a constant of the model).

    Returns
    -------
    pymc.Model
        Free variables mu, sigma2, tau2 and theta (dim "school"); observed y.
    """
    import pymc as pm

    with pm.Model(coords={"school": data.labels}) as model:
        mu = pm.Flat("mu")
        sigma2 = pm.HalfFlat("sigma2")
        pm.Potential("jeffreys", -pm.math.log(sigma2))  # p(sigma^2) proportional to 1/sigma^2
        tau2 = pm.InverseGamma("tau2", alpha=0.5, beta=0.5)
        theta = pm.Normal("theta", mu=mu, sigma=pm.math.sqrt(tau2 * sigma2), dims="school")
        pm.Normal("y", mu=theta[data.codes], sigma=pm.math.sqrt(sigma2), observed=data.values)
    return model
