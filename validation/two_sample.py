"""Do two samples of a vector come from one distribution? Tests that see correlation, not only
the marginals.

Both samples (A: a user's draws, B: reference draws, each n x d) are first whitened by one fixed
affine map, z = L^{-1} (u - m), with m and L L' = Sigma fixed before either sample is looked at
(the mode and the inverse negative Hessian of the log density: its Laplace approximation). The
tests, each with an asymptotic null:

    coordinate j        two-sample Kolmogorov-Smirnov of z_j                       (d tests)
    pair (j, k)         Welch z-test of the means of z_j z_k                       (d(d-1)/2)
    norm                two-sample Kolmogorov-Smirnov of |z|^2                     (1 test)

A sampler with the right marginals and the wrong correlation moves the mean of z_j z_k: with
whitening, a correlation error of delta between two coordinates shifts that mean by about delta,
against a standard error of about sqrt(2/n). The tests are returned as p-values; the caller
holds the family-wise rate with Holm's correction over them (`agreement.holm_adjust`). Under the
null each p-value is uniform up to the asymptotics (measured in docs/validation.md).
"""

from __future__ import annotations

__all__ = ["whiten", "two_sample_tests"]

import numpy as np
from scipy import stats


def whiten(u: np.ndarray, center: np.ndarray, cholesky: np.ndarray) -> np.ndarray:
    """z = L^{-1} (u - m) row by row, for u of shape (n, d) and L lower triangular.

    Parameters
    ----------
    u : numpy.ndarray
        The sample, shape (n, d).
    center : numpy.ndarray
        m, shape (d,).
    cholesky : numpy.ndarray
        L, lower triangular, shape (d, d); L L' = Sigma.

    Returns
    -------
    numpy.ndarray
        z, shape (n, d).
    """
    from scipy.linalg import solve_triangular

    return solve_triangular(cholesky, (u - center).T, lower=True).T


def two_sample_tests(a: np.ndarray, b: np.ndarray) -> list[tuple[str, float, float]]:
    """(test, statistic, p-value) of every test of the module docstring, on whitened samples.

    Parameters
    ----------
    a, b : numpy.ndarray
        Whitened samples, shapes (n_a, d) and (n_b, d).

    Returns
    -------
    list of (str, float, float)
        The name of each test ('z[j]', 'z[j] z[k]', '|z|^2'), its statistic (KS distance or
        z-score) and its two-sided p-value.
    """
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    d = a.shape[1]
    results = []
    for j in range(d):
        ks = stats.ks_2samp(a[:, j], b[:, j])
        results.append((f"z[{j}]", float(ks.statistic), float(ks.pvalue)))
    for j in range(d):
        for k in range(j + 1, d):
            z = _welch_z(a[:, j] * a[:, k], b[:, j] * b[:, k])
            results.append((f"z[{j}] z[{k}]", z, float(2 * stats.norm.sf(abs(z)))))
    ks = stats.ks_2samp((a**2).sum(1), (b**2).sum(1))
    results.append(("|z|^2", float(ks.statistic), float(ks.pvalue)))
    return results


def _welch_z(x: np.ndarray, y: np.ndarray) -> float:
    se = np.sqrt(x.var(ddof=1) / x.size + y.var(ddof=1) / y.size)
    return float((x.mean() - y.mean()) / se) if se > 0 else (0.0 if x.mean() == y.mean() else np.inf)
