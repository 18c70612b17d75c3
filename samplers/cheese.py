"""The cheese model's Gibbs sampler, in the generic interface, and its mutants.

The model (`hiercheck.models.cheese`), stores i = 1..S, weeks j = 1..n_i, design rows x_ij:

    log(vol_ij) = y_ij ~ N(x_ij' beta_i, 1/lam),   beta_i ~ N_4(m, Sigma),
    lam ~ Gamma(a, b),   m ~ N_4(nu, Phi^{-1}),   Sigma ~ IW(df, Psi).

Each full conditional is derived in docs/derivation.md, section 8. A conditional's parameters come
from `*_conditional(state, data)`, its draw from `draw_*(rng, state, data)`, with `state` and
`data` as in the generic interface (`hiercheck.models.cheese.model_data` builds `data`).

Speed. beta's conditional needs each store's X_i'X_i and X_i'y_i, O(N) to form; `store_moments`
keeps the last ones it computed and reuses them while the design and response it is handed are
equal to those it computed them from (an element-wise comparison, far cheaper than the sums). A
sweep is then a few batched 4 x 4 inversions and Cholesky factors over the stores, and the
residuals of lam's conditional, O(N).

Batches. Every function reads stores and coefficients on the last axes and states on any axes
before them: with beta (B, S, 4), m (B, 4), Sigma (B, 4, 4), lam (B,) and y (B, N) a draw returns
B values, so `check_gibbs(..., batched=True)` checks these functions a batch at a time. A
conditional's docstring gives the shapes of one state; a batch puts B before each.
"""

from __future__ import annotations

__all__ = [
    "MUTANTS", "Sigma_conditional", "beta_conditional", "conditionals", "draw_Sigma",
    "draw_beta", "draw_lam", "draw_m", "initial_state", "lam_conditional", "m_conditional",
    "sample", "store_moments",
]

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from hiercheck.errors import DataError
from hiercheck.models.cheese import COEFFICIENTS, CheeseData, CheesePriors, model_data
from hiercheck.models.engine import az, check_run_size

from .distributions import draw_gaussian, draw_inverse_wishart, gaussian_from_precision
from .sweeps import Sampler, run_chains, to_inference_data

if TYPE_CHECKING:
    from hiercheck._typing import SeedLike

DEFAULT_TUNE = 300


# -- what the conditionals read from the data ---------------------------------------------------

# ((X, store, y, S) as store_moments last saw them, copied; the moments it returned), replaced as
# one tuple so that a reader never pairs one call's inputs with another's moments
_last: dict = {"entry": None}


def store_moments(data: Mapping, S: int) -> tuple[np.ndarray, np.ndarray]:
    """(X_i'X_i, X_i'y_i) for stores i = 0..S-1, shapes (S, 4, 4) and (S, 4) (with y (B, N):
    (B, S, 4)).

    Parameters
    ----------
    data : Mapping
        Holds "X" (N, 4), "store" (N,) and "y" (N,).
    S : int
        The number of stores.

    Returns
    -------
    tuple of numpy.ndarray
        The moments, read-only (the next call with equal data hands out the same arrays).

    Raises
    ------
    DataError
        If a store index is S or more, or a store of 0..S-1 has no week.
    """
    X, store, y = (np.asarray(data[name]) for name in ("X", "store", "y"))
    # one response broadcast over a batch of states (stride 0): its one row is what to sum
    shared = y.ndim == 2 and y.strides[0] == 0
    response = y[0] if shared else y
    entry = _last["entry"]
    if entry is not None:
        seen, moments = entry
        if seen[3:] == (S, y.shape) and all(
                np.array_equal(old, new) for old, new in zip(seen, (X, store, response))):
            return moments
    order = np.argsort(store, kind="stable")
    sizes = np.bincount(store, minlength=S)
    if sizes.size != S or np.any(sizes == 0):  # reduceat would give an empty store a neighbour's
        raise DataError(f"store_moments: every one of the {S} stores needs at least one week")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rows = X[order]
    cross = np.add.reduceat(rows[:, :, None] * rows[:, None, :], starts, axis=0)
    linear = np.add.reduceat(rows * response[..., order, None], starts, axis=-2)
    if shared:
        linear = np.broadcast_to(linear, (*y.shape[:-1], S, rows.shape[1]))
    cross.flags.writeable = linear.flags.writeable = False  # handed out again: read-only
    _last["entry"] = ((X.copy(), store.copy(), response.copy(), S, y.shape), (cross, linear))
    return cross, linear


def _fitted(state: Mapping, data: Mapping) -> np.ndarray:
    """x_ij' beta_i for every store-week."""
    beta = np.asarray(state["beta"])
    return np.einsum("nk,...nk->...n", data["X"], beta[..., data["store"], :])


def _precision_and_shift(state: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """Sigma^{-1} and Sigma^{-1} m."""
    prior_precision = np.linalg.inv(state["Sigma"])
    return prior_precision, np.einsum("...ij,...j->...i", prior_precision, state["m"])


# -- the full conditionals ----------------------------------------------------------------------

def beta_conditional(state: Mapping, data: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """beta_i | rest ~ N_4(P_i^{-1} h_i, P_i^{-1}), independently over stores, with

        P_i = lam X_i'X_i + Sigma^{-1},   h_i = lam X_i'y_i + Sigma^{-1} m.

    Parameters
    ----------
    state : Mapping
        The current value of every free variable: beta (S, 4), m (4,), Sigma (4, 4), lam.
    data : Mapping
        The observed values and the model's data (`model_data`): y, store, X and the
        hyperparameters.

    Returns
    -------
    mean : numpy.ndarray
        P_i^{-1} h_i, shape (S, 4).
    covariance : numpy.ndarray
        P_i^{-1}, shape (S, 4, 4).
    """
    cross, linear = store_moments(data, np.shape(state["beta"])[-2])
    prior_precision, shift = _precision_and_shift(state)
    lam = np.asarray(state["lam"], dtype=float)
    return gaussian_from_precision(
        lam[..., None, None, None] * cross + prior_precision[..., None, :, :],
        lam[..., None, None] * linear + shift[..., None, :])


def draw_beta(rng: np.random.Generator, state: Mapping, data: Mapping) -> np.ndarray:
    """A draw of every store's beta_i (S, 4), each a 4-vector drawn jointly from
    `beta_conditional`.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the draw.
    state : Mapping
        The current value of every free variable: beta (S, 4), m (4,), Sigma (4, 4), lam.
    data : Mapping
        The observed values and the model's data (`model_data`): y, store, X and the
        hyperparameters.

    Returns
    -------
    numpy.ndarray
        The new beta, shape (S, 4).
    """
    return draw_gaussian(rng, *beta_conditional(state, data))


def m_conditional(state: Mapping, data: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """m | rest ~ N_4(P^{-1} h, P^{-1}),  P = S Sigma^{-1} + Phi,
    h = Sigma^{-1} sum_i beta_i + Phi nu.

    Parameters
    ----------
    state : Mapping
        The current value of every free variable: beta (S, 4), m (4,), Sigma (4, 4), lam.
    data : Mapping
        The observed values and the model's data (`model_data`): y, store, X and the
        hyperparameters.

    Returns
    -------
    mean : numpy.ndarray
        P^{-1} h, shape (4,).
    covariance : numpy.ndarray
        P^{-1}, shape (4, 4).
    """
    beta = np.asarray(state["beta"])
    prior_precision = np.linalg.inv(state["Sigma"])
    precision = beta.shape[-2] * prior_precision + data["Phi"]
    linear = (np.einsum("...ij,...j->...i", prior_precision, beta.sum(axis=-2))
              + data["Phi"] @ data["nu"])
    return gaussian_from_precision(precision, linear)


def draw_m(rng: np.random.Generator, state: Mapping, data: Mapping) -> np.ndarray:
    """A draw of m (4,) from `m_conditional`.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the draw.
    state : Mapping
        The current value of every free variable: beta (S, 4), m (4,), Sigma (4, 4), lam.
    data : Mapping
        The observed values and the model's data (`model_data`): y, store, X and the
        hyperparameters.

    Returns
    -------
    numpy.ndarray
        The new m, shape (4,).
    """
    return draw_gaussian(rng, *m_conditional(state, data))


def Sigma_conditional(state: Mapping, data: Mapping) -> tuple[float, np.ndarray]:
    """Sigma | rest ~ IW(df + S, Psi + sum_i (beta_i - m)(beta_i - m)')

    Parameters
    ----------
    state : Mapping
        The current value of every free variable: beta (S, 4), m (4,), Sigma (4, 4), lam.
    data : Mapping
        The observed values and the model's data (`model_data`): y, store, X and the
        hyperparameters.

    Returns
    -------
    df : float
        The degrees of freedom df + S.
    scale : numpy.ndarray
        The scale matrix Psi + sum_i (beta_i - m)(beta_i - m)', shape (4, 4).
    """
    deviation = np.asarray(state["beta"]) - np.asarray(state["m"])[..., None, :]
    return (float(data["df"]) + deviation.shape[-2],
            data["Psi"] + np.einsum("...si,...sj->...ij", deviation, deviation))


def draw_Sigma(rng: np.random.Generator, state: Mapping, data: Mapping) -> np.ndarray:
    """A draw of Sigma (4, 4) from `Sigma_conditional`.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the draw.
    state : Mapping
        The current value of every free variable: beta (S, 4), m (4,), Sigma (4, 4), lam.
    data : Mapping
        The observed values and the model's data (`model_data`): y, store, X and the
        hyperparameters.

    Returns
    -------
    numpy.ndarray
        The new Sigma, shape (4, 4).
    """
    return draw_inverse_wishart(rng, *Sigma_conditional(state, data))


def lam_conditional(state: Mapping, data: Mapping) -> tuple[float, float]:
    """lam | rest ~ Gamma(a + N/2, b + sum_ij (y_ij - x_ij' beta_i)^2 / 2)

    Parameters
    ----------
    state : Mapping
        The current value of every free variable: beta (S, 4), m (4,), Sigma (4, 4), lam.
    data : Mapping
        The observed values and the model's data (`model_data`): y, store, X and the
        hyperparameters.

    Returns
    -------
    shape : float
        a + N/2.
    rate : numpy.ndarray
        b + sum_ij (y_ij - x_ij' beta_i)^2 / 2, shape ().
    """
    residual = np.asarray(data["y"]) - _fitted(state, data)
    return (float(data["a"]) + residual.shape[-1] / 2.0,
            float(data["b"]) + np.sum(residual**2, axis=-1) / 2.0)


def draw_lam(rng: np.random.Generator, state: Mapping, data: Mapping) -> float:
    """A draw of lam from `lam_conditional`.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the draw.
    state : Mapping
        The current value of every free variable: beta (S, 4), m (4,), Sigma (4, 4), lam.
    data : Mapping
        The observed values and the model's data (`model_data`): y, store, X and the
        hyperparameters.

    Returns
    -------
    numpy.ndarray
        The new lam, shape ().
    """
    shape, rate = lam_conditional(state, data)
    return rng.gamma(shape, size=np.shape(rate)) / rate


def conditionals() -> dict:
    """The Gibbs sampler: {"beta": draw_beta, "m": draw_m, "Sigma": draw_Sigma, "lam": draw_lam},
    in sweep order. The priors come from `data`, so one mapping serves any priors.

    Returns
    -------
    dict
        The sampler: {name: draw}, in sweep order.
    """
    return {"beta": draw_beta, "m": draw_m, "Sigma": draw_Sigma, "lam": draw_lam}


# -- the mutants: one plausible slip each -------------------------------------------------------

def _draw_beta_diagonal(rng: np.random.Generator, state: Mapping, data: Mapping):
    """Each beta_ik from its correct marginal: the right means and variances, the 4 x 4
    covariance's off-diagonal terms (the correlations between a store's coefficients) lost.
    """
    mean, covariance = beta_conditional(state, data)
    spread = np.sqrt(np.diagonal(covariance, axis1=-2, axis2=-1))
    return mean + spread * rng.standard_normal(mean.shape)


def _draw_beta_prior_scaled_by_sigma2(rng: np.random.Generator, state: Mapping, data: Mapping):
    """beta_i's prior taken as N(m, sigma^2 Sigma), the flagship's tau^2 sigma^2 habit:
    P_i = lam (X_i'X_i + Sigma^{-1}), h_i = lam (X_i'y_i + Sigma^{-1} m).
    """
    cross, linear = store_moments(data, np.shape(state["beta"])[-2])
    prior_precision, shift = _precision_and_shift(state)
    lam = np.asarray(state["lam"], dtype=float)
    return draw_gaussian(rng, *gaussian_from_precision(
        lam[..., None, None, None] * (cross + prior_precision[..., None, :, :]),
        lam[..., None, None] * (linear + shift[..., None, :])))


def _draw_m_without_store_count(rng: np.random.Generator, state: Mapping, data: Mapping):
    """m's precision Sigma^{-1} + Phi and mean about the stores' average: the covariance of
    m is about Sigma instead of Sigma / S.
    """
    beta = np.asarray(state["beta"])
    prior_precision = np.linalg.inv(state["Sigma"])
    return draw_gaussian(rng, *gaussian_from_precision(
        prior_precision + data["Phi"],
        np.einsum("...ij,...j->...i", prior_precision, beta.mean(axis=-2))
        + data["Phi"] @ data["nu"]))


def _draw_Sigma_half_df(rng: np.random.Generator, state: Mapping, data: Mapping):
    """Sigma ~ IW(df + S/2, ...): the Gamma shape's 'plus n/2' carried over to the Wishart."""
    df, scale = Sigma_conditional(state, data)
    return draw_inverse_wishart(rng, df - np.shape(state["beta"])[-2] / 2.0, scale)


def _mutant(key, draw) -> dict:
    """The sampler with the draw of `key` replaced, in the same sweep order."""
    return {**conditionals(), key: draw}


MUTANTS: dict[str, tuple[str, Sampler]] = {
    "beta-diagonal-covariance": (
        "each store's beta_i from a normal with the right mean and variances but a diagonal "
        "covariance: the correlations within the block are lost",
        _mutant("beta", _draw_beta_diagonal)),
    "beta-prior-scaled-by-sigma2": (
        "beta_i's prior covariance taken as sigma^2 Sigma: P_i = lam (X_i'X_i + Sigma^{-1})",
        _mutant("beta", _draw_beta_prior_scaled_by_sigma2)),
    "m-without-store-count": (
        "m's conditional precision Sigma^{-1} + Phi instead of S Sigma^{-1} + Phi",
        _mutant("m", _draw_m_without_store_count)),
    "Sigma-half-df": (
        "Sigma's degrees of freedom df + S/2 instead of df + S",
        _mutant("Sigma", _draw_Sigma_half_df)),
}


# -- the engine ---------------------------------------------------------------------------------

def initial_state(rng: np.random.Generator, data: Mapping) -> dict:
    """Dispersed starting values about the priors' centres: with z ~ N(0, 1) independent,

        m = nu + z sqrt(diag Psi),   Sigma = e^z Psi,   lam = e^z a / b,   beta_i = m.

    The sweep draws beta first, so only (m, Sigma, lam) matter; the first sweeps move beta to
    the data (every store's coefficients are well determined except those of stores whose
    display never changes, which the population then fills in).

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the z.
    data : Mapping
        The observed values and the model's data (`model_data`): y, store, X and the
        hyperparameters.

    Returns
    -------
    dict
        A starting state: "beta" (S, 4), S = 1 + the largest store index, "m" (4,),
        "Sigma" (4, 4), "lam".
    """
    psi = np.asarray(data["Psi"])
    S = int(np.max(data["store"])) + 1
    m = data["nu"] + rng.standard_normal(psi.shape[0]) * np.sqrt(np.diag(psi))
    z = rng.standard_normal(2)
    return {"beta": np.tile(m, (S, 1)), "m": m, "Sigma": np.exp(z[0]) * psi,
            "lam": float(np.exp(z[1]) * data["a"] / data["b"])}


def sample(data: CheeseData, priors: CheesePriors | None = None, *, draws: int = 1000,
           chains: int = 4, seed: SeedLike = None, tune: int = DEFAULT_TUNE,
           sampler: Sampler | None = None) -> az.InferenceData:
    """The Gibbs sampler as an engine: `chains` chains of `tune + draws` sweeps.

    Parameters
    ----------
    data : CheeseData
        The sales.
    priors : CheesePriors, optional
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
        posterior: beta (store, coef), m (coef), Sigma (coef, coef_), lam, sigma;
        constant_data: the log-price centre lbar.
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
    coefficients = list(COEFFICIENTS)
    return to_inference_data(
        kept, coords={"store": data.labels, "coef": coefficients, "coef_": coefficients},
        dims={"beta": ["store", "coef"], "m": ["coef"], "Sigma": ["coef", "coef_"]},
        constant_data={"log_price_center": np.array(data.log_price_center)},
        engine="gibbs-cheese",
        settings={"tune": tune, "seed": seed, "sampler": "default" if sampler is None else "given"},
        priors=priors.as_dict(), data_name=data.name, sampling_time=elapsed)
