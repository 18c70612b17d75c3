"""The blood-pressure model's Gibbs sampler, in the generic interface, and its mutants.

The model (`hiercheck.models.bloodpressure`):

    y_ij ~ N(theta_i, 1/lam),  theta_i ~ N(mu + beta x_i, 1/(omega lam)),
    lam ~ Gamma(a, b),  omega ~ Gamma(c, d),  mu ~ N(nu, 1/phi),  beta ~ N(0, 1/phi_beta).

Each full conditional is derived in docs/derivation.md, section 7. A conditional's parameters
come from `*_conditional(state, data)`, its draw from `draw_*(rng, state, data)`; `state` and
`data` are those of the generic interface (`hiercheck.models.bloodpressure.model_data` builds
`data`). Every conditional is vectorized over subjects and reads only per-subject sums, O(N) at
worst (the within-subject sum of squares), never a Python loop; and over a leading batch axis
of states: with theta (B, m), mu, beta, lam, omega (B,) and y (B, N) (or y (N,) shared) a draw
returns B values, so `check_gibbs(..., batched=True)` checks these functions a batch at a time.
A conditional's docstring gives the shapes of one state; a batch puts B before each.

`conditionals()` is the sampler (theta, then (mu, beta) jointly, then lam, then omega); `MUTANTS`
the catalogue of wrong derivations, each one conditional replaced; `sample` the engine.
"""

from __future__ import annotations

__all__ = [
    "MUTANTS", "conditionals", "draw_lam", "draw_mu_beta", "draw_omega", "draw_theta",
    "initial_state", "lam_conditional", "mu_beta_conditional", "omega_conditional", "sample",
    "subject_totals", "theta_conditional",
]

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from hiercheck.models.bloodpressure import BloodPressureData, BloodPressurePriors, model_data
from hiercheck.models.engine import az, check_run_size

from .distributions import draw_gaussian, gaussian_from_precision
from .sweeps import Sampler, run_chains, to_inference_data

if TYPE_CHECKING:
    from hiercheck._typing import SeedLike

DEFAULT_TUNE = 500


# -- what the conditionals read from the data ---------------------------------------------------

def subject_totals(data: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """(n_i, sum_j y_ij) per subject, i = 0..m-1 (m = the length of x).

    Parameters
    ----------
    data : Mapping
        The model's data: "subject" (each measurement's subject index), "y" and "x".

    Returns
    -------
    n : numpy.ndarray
        The number of measurements n_i of each subject, shape (m,).
    total : numpy.ndarray
        The sum sum_j y_ij of each subject's measurements, shape (m,).
    """
    subject = np.asarray(data["subject"])
    membership = subject[:, None] == np.arange(np.size(data["x"]))  # (N, m): Z_jk = [j in k]
    return membership.sum(axis=0), np.asarray(data["y"], dtype=float) @ membership


def _scalar(state: Mapping, name: str) -> np.ndarray:
    """A scalar variable's values with a trailing axis, to broadcast against subjects."""
    return np.asarray(state[name], dtype=float)[..., None]


def _arm_means(state: Mapping, data: Mapping) -> np.ndarray:
    """mu + beta x_i, each subject's prior mean."""
    return _scalar(state, "mu") + _scalar(state, "beta") * np.asarray(data["x"], dtype=float)


def _between_spread(state: Mapping, data: Mapping) -> np.ndarray:
    """sum_i (theta_i - mu - beta x_i)^2"""
    deviation = np.asarray(state["theta"]) - _arm_means(state, data)
    return np.sum(deviation**2, axis=-1)


def _within_spread(state: Mapping, data: Mapping) -> np.ndarray:
    """sum_ij (y_ij - theta_i)^2"""
    residual = np.asarray(data["y"]) - np.asarray(state["theta"])[..., data["subject"]]
    return np.sum(residual**2, axis=-1)


# -- the full conditionals ----------------------------------------------------------------------

def theta_conditional(state: Mapping, data: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """theta_i | rest ~ N((sum_j y_ij + omega (mu + beta x_i)) / (n_i + omega),
                         1/(lam (n_i + omega))),  independently over i.

    Parameters
    ----------
    state : Mapping
        The current value of every free variable: theta (m,), mu, beta, lam, omega.
    data : Mapping
        The observed values and the model's data (`model_data`): y, subject, x and the
        hyperparameters.

    Returns
    -------
    mean : numpy.ndarray
        The conditional means, shape (m,).
    precision : numpy.ndarray
        The conditional precisions lam (n_i + omega), shape (m,).
    """
    n, total = subject_totals(data)
    omega, lam = _scalar(state, "omega"), _scalar(state, "lam")
    mean = (total + omega * _arm_means(state, data)) / (n + omega)
    return mean, lam * (n + omega)


def draw_theta(rng: np.random.Generator, state: Mapping, data: Mapping) -> np.ndarray:
    """A draw of theta (m,) from `theta_conditional`.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the draw.
    state : Mapping
        The current value of every free variable: theta (m,), mu, beta, lam, omega.
    data : Mapping
        The observed values and the model's data (`model_data`): y, subject, x and the
        hyperparameters.

    Returns
    -------
    numpy.ndarray
        The new theta, shape (m,).
    """
    mean, precision = theta_conditional(state, data)
    return mean + rng.standard_normal(mean.shape) / np.sqrt(precision)


def mu_beta_conditional(state: Mapping, data: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """(mu, beta) | rest ~ N_2(P^{-1} h, P^{-1}), with z_i = (1, x_i)' and

        P = omega lam sum_i z_i z_i' + diag(phi, phi_beta)
          = [[omega lam m + phi,      omega lam sum_i x_i          ],
             [omega lam sum_i x_i,    omega lam sum_i x_i^2 + phi_beta]]
        h = omega lam sum_i z_i theta_i + (phi nu, 0)'
          = (omega lam sum_i theta_i + phi nu,  omega lam sum_i x_i theta_i)'

    Parameters
    ----------
    state : Mapping
        The current value of every free variable: theta (m,), mu, beta, lam, omega.
    data : Mapping
        The observed values and the model's data (`model_data`): y, subject, x and the
        hyperparameters.

    Returns
    -------
    mean : numpy.ndarray
        P^{-1} h, shape (2,), in the order (mu, beta).
    covariance : numpy.ndarray
        P^{-1}, shape (2, 2).
    """
    x = np.asarray(data["x"], dtype=float)
    theta = np.asarray(state["theta"], dtype=float)
    weight = np.asarray(state["omega"], dtype=float) * np.asarray(state["lam"], dtype=float)
    phi, phi_beta, nu = (float(data[name]) for name in ("phi", "phi_beta", "nu"))
    corner = weight * x.sum()
    precision = np.stack([np.stack([weight * x.size + phi, corner], axis=-1),
                          np.stack([corner, weight * (x @ x) + phi_beta], axis=-1)], axis=-2)
    linear = np.stack([weight * theta.sum(axis=-1) + phi * nu, weight * (theta @ x)], axis=-1)
    return gaussian_from_precision(precision, linear)


def draw_mu_beta(rng: np.random.Generator, state: Mapping, data: Mapping) -> tuple[float, float]:
    """A joint draw of (mu, beta) from `mu_beta_conditional`.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the draw.
    state : Mapping
        The current value of every free variable: theta (m,), mu, beta, lam, omega.
    data : Mapping
        The observed values and the model's data (`model_data`): y, subject, x and the
        hyperparameters.

    Returns
    -------
    tuple[numpy.ndarray, numpy.ndarray]
        The new (mu, beta), each of shape ().
    """
    draw = draw_gaussian(rng, *mu_beta_conditional(state, data))
    return draw[..., 0], draw[..., 1]


def lam_conditional(state: Mapping, data: Mapping) -> tuple[float, float]:
    """lam | rest ~ Gamma(a + (N + m)/2,
        b + [sum_ij (y_ij - theta_i)^2 + omega sum_i (theta_i - mu - beta x_i)^2] / 2)

    Parameters
    ----------
    state : Mapping
        The current value of every free variable: theta (m,), mu, beta, lam, omega.
    data : Mapping
        The observed values and the model's data (`model_data`): y, subject, x and the
        hyperparameters.

    Returns
    -------
    shape : float
        a + (N + m)/2.
    rate : numpy.ndarray
        b + [sum_ij (y_ij - theta_i)^2 + omega sum_i (theta_i - mu - beta x_i)^2] / 2, shape ().
    """
    N, m = np.shape(data["subject"])[0], np.size(data["x"])
    spread = _within_spread(state, data) + state["omega"] * _between_spread(state, data)
    return float(data["a"]) + (N + m) / 2.0, float(data["b"]) + spread / 2.0


def draw_lam(rng: np.random.Generator, state: Mapping, data: Mapping) -> float:
    """A draw of lam from `lam_conditional`.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the draw.
    state : Mapping
        The current value of every free variable: theta (m,), mu, beta, lam, omega.
    data : Mapping
        The observed values and the model's data (`model_data`): y, subject, x and the
        hyperparameters.

    Returns
    -------
    numpy.ndarray
        The new lam, shape ().
    """
    shape, rate = lam_conditional(state, data)
    return rng.gamma(shape, size=np.shape(rate)) / rate


def omega_conditional(state: Mapping, data: Mapping) -> tuple[float, float]:
    """omega | rest ~ Gamma(c + m/2, d + lam sum_i (theta_i - mu - beta x_i)^2 / 2)

    Parameters
    ----------
    state : Mapping
        The current value of every free variable: theta (m,), mu, beta, lam, omega.
    data : Mapping
        The observed values and the model's data (`model_data`): y, subject, x and the
        hyperparameters.

    Returns
    -------
    shape : float
        c + m/2.
    rate : numpy.ndarray
        d + lam sum_i (theta_i - mu - beta x_i)^2 / 2, shape ().
    """
    m = np.size(data["x"])
    rate = float(data["d"]) + state["lam"] * _between_spread(state, data) / 2.0
    return float(data["c"]) + m / 2.0, rate


def draw_omega(rng: np.random.Generator, state: Mapping, data: Mapping) -> float:
    """A draw of omega from `omega_conditional`.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the draw.
    state : Mapping
        The current value of every free variable: theta (m,), mu, beta, lam, omega.
    data : Mapping
        The observed values and the model's data (`model_data`): y, subject, x and the
        hyperparameters.

    Returns
    -------
    numpy.ndarray
        The new omega, shape ().
    """
    shape, rate = omega_conditional(state, data)
    return rng.gamma(shape, size=np.shape(rate)) / rate


def conditionals() -> dict:
    """The Gibbs sampler: {"theta": draw_theta, ("mu", "beta"): draw_mu_beta, "lam": draw_lam,
    "omega": draw_omega}, in sweep order. The priors come from `data`, so one mapping serves
    any priors.

    Returns
    -------
    dict
        The sampler: {name or tuple of names: draw}, in sweep order.
    """
    return {"theta": draw_theta, ("mu", "beta"): draw_mu_beta, "lam": draw_lam,
            "omega": draw_omega}


# -- the mutants: one plausible slip each -------------------------------------------------------

def _draw_mu_beta_independent(rng: np.random.Generator, state: Mapping, data: Mapping):
    """mu and beta drawn independently from their correct marginal conditionals: the right
    means and variances, correlation 0 instead of the right one (about -0.7 on these data).
    """
    mean, covariance = mu_beta_conditional(state, data)
    draw = mean + rng.standard_normal(mean.shape) * np.sqrt(np.diagonal(covariance, 0, -2, -1))
    return draw[..., 0], draw[..., 1]


def _draw_theta_without_treatment(rng: np.random.Generator, state: Mapping, data: Mapping):
    """theta_i shrunk toward mu for every subject: beta x_i left out of its prior mean."""
    return draw_theta(rng, {**state, "beta": 0.0}, data)


def _draw_lam_without_theta_prior(rng: np.random.Generator, state: Mapping, data: Mapping):
    """lam ~ Gamma(a + N/2, b + sum_ij (y_ij - theta_i)^2 / 2): the theta_i prior's dependence
    on lam (its variance tau^2 sigma^2) forgotten.
    """
    N = np.shape(data["subject"])[0]
    rate = float(data["b"]) + _within_spread(state, data) / 2.0
    return rng.gamma(float(data["a"]) + N / 2.0, size=np.shape(rate)) / rate


def _draw_omega_without_lam(rng: np.random.Generator, state: Mapping, data: Mapping):
    """omega ~ Gamma(c + m/2, d + sum_i (theta_i - mu - beta x_i)^2 / 2): lam left out, as if
    omega were the precision of theta_i itself.
    """
    return draw_omega(rng, {**state, "lam": 1.0}, data)


def _mutant(key, draw) -> dict:
    """The sampler with the draw of `key` replaced, in the same sweep order."""
    return {**conditionals(), key: draw}


MUTANTS: dict[str, tuple[str, Sampler]] = {
    "mu-beta-independent": (
        "(mu, beta) from independent normals with the right marginal means and variances: "
        "their correlation is lost", _mutant(("mu", "beta"), _draw_mu_beta_independent)),
    "theta-ignores-treatment": (
        "theta_i's conditional mean shrinks toward mu, not mu + beta x_i",
        _mutant("theta", _draw_theta_without_treatment)),
    "lam-misses-theta-prior": (
        "lam's conditional ignores theta's prior: shape a + N/2, rate without "
        "omega sum_i (theta_i - mu - beta x_i)^2", _mutant("lam", _draw_lam_without_theta_prior)),
    "omega-misses-lam": (
        "omega's rate d + sum_i (theta_i - mu - beta x_i)^2 / 2, without the factor lam",
        _mutant("omega", _draw_omega_without_lam)),
}


# -- the engine ---------------------------------------------------------------------------------

def initial_state(rng: np.random.Generator, data: Mapping) -> dict:
    """Dispersed starting values about the data's moment estimates (as the flagship's
    `hiercheck.samplers.gibbs.initial_state`): with s_w^2 the pooled within-subject variance and
    z ~ N(0, 1) independent,

        lam = e^z / s_w^2,   omega = e^z / t2,   t2 = max(var_i(ybar_i)/s_w^2 - mean(1/n_i), 0.1),
        mu = mean of the control subjects' ybar_i + z sd_i(ybar_i),   beta = z sd_i(ybar_i),
        theta_i = ybar_i.

    The first conditional of the sweep redraws theta, so only (mu, beta, lam, omega) matter.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the four z.
    data : Mapping
        The observed values and the model's data (`model_data`): y, subject, x and the
        hyperparameters.

    Returns
    -------
    dict
        A starting state: "theta" (m,), "mu", "beta", "lam", "omega".
    """
    n, total = subject_totals(data)
    ybar = total / n
    y = np.asarray(data["y"])
    within = float(np.sum((y - ybar[data["subject"]]) ** 2)) / (y.size - n.size)
    spread = float(np.std(ybar))
    t2 = max(np.var(ybar) / within - np.mean(1.0 / n), 0.1)
    control = np.asarray(data["x"]) == 0
    z = rng.standard_normal(4)
    return {"theta": ybar, "mu": float(np.mean(ybar[control]) + z[0] * spread),
            "beta": float(z[1] * spread), "lam": float(np.exp(z[2]) / within),
            "omega": float(np.exp(z[3]) / t2)}


def sample(data: BloodPressureData, priors: BloodPressurePriors | None = None, *,
           draws: int = 1000, chains: int = 4, seed: SeedLike = None, tune: int = DEFAULT_TUNE,
           sampler: Sampler | None = None) -> az.InferenceData:
    """The Gibbs sampler as an engine: `chains` chains of `tune + draws` sweeps.

    Parameters
    ----------
    data : BloodPressureData
        The measurements.
    priors : BloodPressurePriors, optional
        The priors; `data.default_priors` when omitted.
    draws, chains : int
        Kept draws per chain, and chains.
    seed : int, SeedSequence or None
        Fixes the draws.
    tune : int, default DEFAULT_TUNE
        Sweeps discarded at the start of each chain.
    sampler : Mapping, optional
        Another mapping of conditionals (a mutant, say); `conditionals()` when omitted.

    Returns
    -------
    arviz.InferenceData
        posterior: theta (dim subject), mu, beta, lam, omega, sigma, tau; constant_data: x.
    """
    check_run_size(draws, chains)
    priors = data.default_priors if priors is None else priors
    values = model_data(data, priors)
    start = time.perf_counter()
    kept = run_chains(seed, conditionals() if sampler is None else sampler,
                      lambda rng: initial_state(rng, values), values, draws=draws, chains=chains,
                      tune=tune)
    elapsed = time.perf_counter() - start
    kept["sigma"] = kept["lam"] ** -0.5
    kept["tau"] = kept["omega"] ** -0.5
    return to_inference_data(
        kept, coords={"subject": data.labels}, dims={"theta": ["subject"], "x": ["subject"]},
        constant_data={"x": data.x}, engine="gibbs-bloodpressure",
        settings={"tune": tune, "seed": seed, "sampler": "default" if sampler is None else "given"},
        priors=priors.as_dict(), data_name=data.name, sampling_time=elapsed)
