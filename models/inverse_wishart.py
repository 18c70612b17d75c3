"""Sigma ~ IW(df, Psi) as a PyMC free variable that NUTS samples well (imports PyMC).

PyMC 5.28 has a Wishart distribution but no inverse Wishart, and no transform that maps positive
definite matrices to free coordinates, so NUTS cannot move a matrix-valued variable. Here the
density is written out,

    log p(Sigma) = (df/2) log|Psi| - (df p/2) log 2 - log Gamma_p(df/2)
                   - ((df + p + 1)/2) log|Sigma| - tr(Psi Sigma^{-1})/2,

(the density of the p(p+1)/2 distinct entries of Sigma), and `LogCholesky` is the transform NUTS
sees: Sigma = L L', L lower triangular with positive diagonal, and the free coordinates u are the
entries of L with its diagonal on the log scale (L_kk = exp(u_kk)). Its Jacobian is

    |d Sigma / d u| = 2^p prod_k L_kk^(p - k + 2),   k = 1..p,

2^p prod_k L_kk^(p - k + 1) from Sigma = L L' (Muirhead 1982, theorem 2.1.9) times L_kk from
L_kk = exp(u_kk). The variable's value, and so the Gibbs state, stays Sigma itself.
"""

from __future__ import annotations

__all__ = ["LogCholesky", "inverse_wishart", "inverse_wishart_logp"]

import math
from typing import TYPE_CHECKING

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.distributions.shape_utils import rv_size_is_none
from pymc.logprob.transforms import Transform
from scipy import stats

if TYPE_CHECKING:
    from typing import Any

    from pytensor.graph.basic import Variable


class LogCholesky(Transform):
    """Sigma (p x p, positive definite) <-> u (p(p+1)/2 free coordinates): the lower triangle of
    chol(Sigma), row by row, with the diagonal entries replaced by their logs.

    Parameters
    ----------
    p : int
        The dimension of Sigma.

    Attributes
    ----------
    p : int
        The dimension of Sigma.
    rows, cols : numpy.ndarray
        The row and column indices of the lower triangle, row by row (`numpy.tril_indices`):
        entry j of u belongs to L[rows[j], cols[j]].
    diagonal : numpy.ndarray
        The positions in u of the diagonal entries u_kk = log L_kk.
    jacobian_powers : numpy.ndarray
        The exponent p - k + 2 of L_kk in |d Sigma / d u|, k = 1..p.
    """

    name = "log-cholesky"

    def __init__(self, p: int):
        self.p = p
        self.rows, self.cols = np.tril_indices(p)
        self.diagonal = np.flatnonzero(self.rows == self.cols)
        # exponent of L_kk in |d Sigma / d u|: p - k + 2 for k = 1..p
        self.jacobian_powers = (p + 1 - np.arange(p)).astype(float)

    def forward(self, value: pt.TensorVariable, *inputs: Variable) -> pt.TensorVariable:
        """Sigma -> u: the lower triangle of L = chol(Sigma), row by row, diagonal logged.

        Parameters
        ----------
        value : pytensor.tensor.TensorVariable
            Sigma, (p, p), positive definite.
        *inputs : pytensor.graph.basic.Variable
            The distribution's parameters (df, scale); not used.

        Returns
        -------
        pytensor.tensor.TensorVariable
            u, the p(p+1)/2 free coordinates.
        """
        packed = pt.linalg.cholesky(value)[self.rows, self.cols]
        return pt.set_subtensor(packed[self.diagonal], pt.log(packed[self.diagonal]))

    def backward(self, value: pt.TensorVariable, *inputs: Variable) -> pt.TensorVariable:
        """u -> Sigma = L L', L lower triangular from u with L_kk = exp(u_kk).

        Parameters
        ----------
        value : pytensor.tensor.TensorVariable
            u, the p(p+1)/2 free coordinates.
        *inputs : pytensor.graph.basic.Variable
            The distribution's parameters (df, scale); not used.

        Returns
        -------
        pytensor.tensor.TensorVariable
            Sigma, (p, p).
        """
        packed = pt.set_subtensor(value[self.diagonal], pt.exp(value[self.diagonal]))
        factor = pt.set_subtensor(pt.zeros((self.p, self.p))[self.rows, self.cols], packed)
        return factor @ factor.T

    def log_jac_det(self, value: pt.TensorVariable, *inputs: Variable) -> pt.TensorVariable:
        """log |d vech(Sigma) / d u| = p log 2 + sum_k (p - k + 2) u_kk.

        Parameters
        ----------
        value : pytensor.tensor.TensorVariable
            u, the p(p+1)/2 free coordinates.
        *inputs : pytensor.graph.basic.Variable
            The distribution's parameters (df, scale); not used.

        Returns
        -------
        pytensor.tensor.TensorVariable
            The log Jacobian determinant, a scalar.
        """
        return self.p * math.log(2.0) + pt.sum(self.jacobian_powers * value[self.diagonal])


def inverse_wishart_logp(value: pt.TensorLike, df: pt.TensorLike, scale: pt.TensorLike,
                         p: int) -> pt.TensorVariable:
    """log IW(value; df, scale) in PyTensor (the formula of the module's docstring).

    Parameters
    ----------
    value : pytensor.tensor.TensorLike
        Sigma, (p, p), positive definite.
    df : pytensor.tensor.TensorLike
        Degrees of freedom, > p - 1.
    scale : pytensor.tensor.TensorLike
        The scale matrix Psi, (p, p), symmetric positive definite.
    p : int
        The dimension.

    Returns
    -------
    pytensor.tensor.TensorVariable
        The log density of Sigma's p(p+1)/2 distinct entries, a scalar.
    """
    log_det_sigma = 2.0 * pt.sum(pt.log(pt.diag(pt.linalg.cholesky(value))))
    log_det_scale = 2.0 * pt.sum(pt.log(pt.diag(pt.linalg.cholesky(scale))))
    log_multigamma = (p * (p - 1) / 4.0 * math.log(math.pi)
                      + sum(pt.gammaln(df / 2.0 - j / 2.0) for j in range(p)))
    trace = pt.trace(pt.linalg.solve(value, scale, assume_a="pos"))
    return (df / 2.0 * log_det_scale - df * p / 2.0 * math.log(2.0) - log_multigamma
            - (df + p + 1) / 2.0 * log_det_sigma - trace / 2.0)


def _random(df, scale, rng=None, size=None):
    """Draws by scipy (an implementation independent of the Gibbs sampler's Bartlett draw).

    `df` and `scale` may carry batch axes (as when prior simulation draws many models at once);
    they broadcast against `size`. The common case, one df and one scale, is one call to scipy.
    """
    df, scale = np.asarray(df, dtype=float), np.asarray(scale, dtype=float)
    p = scale.shape[-1]
    batch = (tuple(np.atleast_1d(size)) if size is not None
             else np.broadcast_shapes(df.shape, scale.shape[:-2]))
    dfs = np.broadcast_to(df, batch).reshape(-1)
    scales = np.broadcast_to(scale, batch + (p, p)).reshape(-1, p, p)
    count = max(dfs.size, 1)
    if dfs.size == 0 or (np.all(dfs == dfs[0]) and np.all(scales == scales[0])):
        draws = stats.invwishart.rvs(df=float(df.reshape(-1)[0]), scale=scale.reshape(-1, p, p)[0],
                                     size=count, random_state=rng)
    else:
        draws = np.stack([stats.invwishart.rvs(df=float(d), scale=s, random_state=rng)
                          for d, s in zip(dfs, scales)])
    return np.reshape(draws, batch + (p, p))


def _mode(rv, size, df, scale):
    """Psi / (df + p + 1), the mode: where NUTS starts."""
    p = scale.shape[-1]
    mode = scale / (df + p + 1)
    return mode if rv_size_is_none(size) else pt.broadcast_to(mode, (*size, p, p))


def inverse_wishart(name: str, df: pt.TensorLike, scale: pt.TensorLike, *, p: int,
                    **kwargs: Any) -> pt.TensorVariable:
    """A free variable Sigma ~ IW(df, scale) of the model in context, sampled by NUTS through
    `LogCholesky`.

    Parameters
    ----------
    name : str
        The variable's name.
    df : pytensor.tensor.TensorLike
        Degrees of freedom, > p - 1: a scalar tensor or a number.
    scale : pytensor.tensor.TensorLike
        (p, p),
        The scale matrix Psi, symmetric positive definite.
    p : int
        The dimension (the transform needs it before the graph is built).
    **kwargs
        Passed to `pymc.CustomDist` (dims, for example).

    Returns
    -------
    TensorVariable
        Sigma, shape (p, p).
    """
    # PyTensor makes a Python number such as 5.0 a float32 constant; the density's log-gamma
    # and log 2 terms then lose digits, so both parameters are taken in double precision
    df, scale = (pt.cast(pt.as_tensor_variable(parameter), "float64") for parameter in (df, scale))
    return pm.CustomDist(
        name, df, scale,
        logp=lambda value, df, scale: inverse_wishart_logp(value, df, scale, p),
        random=_random, support_point=_mode, signature="(),(p,p)->(p,p)",
        transform=LogCholesky(p), **kwargs)
