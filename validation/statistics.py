"""The statistics every check shares: Holm's correction, and two-sample tests of a vector that see
correlation, not only the marginals. No check imports another check; what two of them need lives
here (or, for effective sample sizes and R-hat, in `hiercheck.validation.diagnostics`).

Holm's step-down correction holds the family-wise false-alarm rate of a check's many tests at its
alpha under any dependence between them (`holm_adjust`); a check whose tests fall in groups of
very different sizes (consistency's blocks) gives each group an equal share of alpha and Holm's
correction within it (`holm_adjust_per_group`). A check reports its smallest adjusted p-value
(`min_holm_p`).

The two-sample tests compare a user's draws A with reference draws B (each n x d), both first
whitened by one fixed affine map, z = L^{-1} (u - m), with m and L L' = Sigma fixed before either
sample is looked at (the mode and the inverse negative Hessian of the log density: its Laplace
approximation). The tests, each with an asymptotic null:

    coordinate j        two-sample Kolmogorov-Smirnov of z_j                       (d tests)
    pair (j, k)         Welch z-test of the means of z_j z_k                       (d(d-1)/2)
    norm                two-sample Kolmogorov-Smirnov of |z|^2                     (1 test)

A sampler with the right marginals and the wrong correlation moves the mean of z_j z_k: with
whitening, a correlation error of delta between two coordinates shifts that mean by about delta,
against a standard error of about sqrt(2/n). The tests are returned as p-values; the caller
holds the family-wise rate with `holm_adjust` over them. Under the null each p-value is uniform
up to the asymptotics (measured in docs/validation.md).
"""

from __future__ import annotations

__all__ = ["holm_adjust", "holm_adjust_per_group", "min_holm_p", "two_sample_tests", "welch_z", "whiten"]

import numpy as np
import pandas as pd
from scipy import stats


def holm_adjust(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values: reject where the adjusted p <= alpha keeps the
    family-wise error rate at alpha under any dependence between the tests.

    Parameters
    ----------
    p : numpy.ndarray
        The tests' p-values, one-dimensional.

    Returns
    -------
    numpy.ndarray
        The adjusted p-values, in the tests' order.
    """
    order = np.argsort(p)
    k = p.size
    adjusted = np.maximum.accumulate(np.minimum(1.0, (k - np.arange(k)) * p[order]))
    out = np.empty(k)
    out[order] = adjusted
    return out


def holm_adjust_per_group(p: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Holm's adjusted p-values within each of G groups, times G (at most 1): each group's tests
    get alpha/G of the family-wise rate, Holm's correction within it, so a group of few tests
    keeps its power beside a group of many (Bonferroni over the groups; the family-wise rate
    over all tests stays at most alpha under any dependence).

    Parameters
    ----------
    p : numpy.ndarray
        The tests' p-values, one-dimensional.
    groups : numpy.ndarray
        Each test's group label, of p's length.

    Returns
    -------
    numpy.ndarray
        The adjusted p-values, in the tests' order.
    """
    p, groups = np.asarray(p, dtype=float), np.asarray(groups)
    labels = np.unique(groups)
    adjusted = np.empty(p.size)
    for label in labels:
        members = groups == label
        adjusted[members] = np.minimum(1.0, labels.size * holm_adjust(p[members]))
    return adjusted


def min_holm_p(table: pd.DataFrame) -> float:
    """The smallest Holm-adjusted p-value of a check's table: the least of its columns whose
    names contain "holm"; NaN for a table without rows.

    Parameters
    ----------
    table : pandas.DataFrame
        A check's table.

    Returns
    -------
    float
        The smallest adjusted p-value.
    """
    columns = [column for column in table.columns if "holm" in column]
    return float(table[columns].min().min()) if len(table) else np.nan


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
            z = welch_z(a[:, j] * a[:, k], b[:, j] * b[:, k])
            results.append((f"z[{j}] z[{k}]", z, float(2 * stats.norm.sf(abs(z)))))
    ks = stats.ks_2samp((a**2).sum(1), (b**2).sum(1))
    results.append(("|z|^2", float(ks.statistic), float(ks.pvalue)))
    return results


def welch_z(x: np.ndarray, y: np.ndarray) -> float:
    """Welch's z of the difference of two samples' means: (mean x - mean y) / its standard error.

    Parameters
    ----------
    x, y : numpy.ndarray
        One-dimensional samples.

    Returns
    -------
    float
        The z-score; 0 for equal constant samples, inf for different ones.
    """
    se = np.sqrt(x.var(ddof=1) / x.size + y.var(ddof=1) / y.size)
    if se > 0:
        return float((x.mean() - y.mean()) / se)
    return 0.0 if x.mean() == y.mean() else np.inf
