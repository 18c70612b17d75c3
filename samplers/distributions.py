"""Draws that the built-in models' conditionals share: Gaussian blocks and the inverse Wishart.

Everything broadcasts over leading batch axes (one Gaussian block per store, for example); the
last axis (or the last two) is the block. numpy only.
"""

from __future__ import annotations

__all__ = ["draw_gaussian", "draw_inverse_wishart", "gaussian_from_precision"]

import numpy as np


def gaussian_from_precision(precision: np.ndarray, linear: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) = (P^{-1} h, P^{-1}) of the Gaussian with log density
    -x'Px/2 + h'x + const, the form every conjugate normal conditional takes.

    Parameters
    ----------
    precision : numpy.ndarray
        P, shape (..., k, k), symmetric positive definite.
    linear : numpy.ndarray
        h, shape (..., k).

    Returns
    -------
    mean : numpy.ndarray
        Shape (..., k).
    covariance : numpy.ndarray
        Shape (..., k, k), symmetrized against rounding.
    """
    covariance = np.linalg.inv(precision)
    covariance = (covariance + np.swapaxes(covariance, -1, -2)) / 2.0
    mean = np.einsum("...ij,...j->...i", covariance, linear)
    return mean, covariance


def draw_gaussian(rng: np.random.Generator, mean: np.ndarray, covariance: np.ndarray
                  ) -> np.ndarray:
    """A draw of N(mean, covariance) per batch cell: mean + C z, C C' = covariance, z ~ N(0, I).

    Parameters
    ----------
    rng : numpy.random.Generator
        The random stream.
    mean : numpy.ndarray
        Shape (..., k).
    covariance : numpy.ndarray
        Shape (..., k, k), positive definite.

    Returns
    -------
    numpy.ndarray
        Shape (..., k).
    """
    factor = np.linalg.cholesky(covariance)
    noise = rng.standard_normal(np.shape(mean))
    return mean + np.einsum("...ij,...j->...i", factor, noise)


def draw_inverse_wishart(rng: np.random.Generator, df: float, scale: np.ndarray) -> np.ndarray:
    """One draw of Sigma ~ IW(df, scale), the density proportional to
    |Sigma|^{-(df + p + 1)/2} exp(-tr(scale Sigma^{-1})/2), by Bartlett's decomposition:

        Sigma^{-1} = W ~ Wishart(df, scale^{-1}),   W = (C A)(C A)',   C C' = scale^{-1},
        A lower triangular, A_kk^2 ~ chi^2(df - k + 1) (k = 1..p), A_jk ~ N(0, 1) for j > k.

    Parameters
    ----------
    rng : numpy.random.Generator
        The random stream.
    df : float
        Degrees of freedom, > p - 1.
    scale : numpy.ndarray
        The scale matrix, shape (..., p, p), symmetric positive definite: one draw per batch
        cell.

    Returns
    -------
    numpy.ndarray
        Sigma, shape (..., p, p), symmetric.
    """
    batch, p = scale.shape[:-2], scale.shape[-1]
    bartlett = np.tril(rng.standard_normal((*batch, p, p)), -1)
    diagonal = np.arange(p)
    bartlett[..., diagonal, diagonal] = np.sqrt(rng.chisquare(df - diagonal, size=(*batch, p)))
    factor = np.linalg.cholesky(np.linalg.inv(scale)) @ bartlett
    # Sigma = (factor factor')^{-1} = factor'^{-1} factor^{-1}
    inverse_factor = np.linalg.inv(factor)
    sigma = np.swapaxes(inverse_factor, -1, -2) @ inverse_factor
    return (sigma + np.swapaxes(sigma, -1, -2)) / 2.0
