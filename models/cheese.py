"""Cheese: price elasticity of demand, a hierarchical regression (the course's exercise).

Weekly sales of sliced cheese in store i = 1..S, week j = 1..n_i, with x_ij the design row

    x_ij = (1, l_ij, disp_ij, l_ij disp_ij),   l_ij = log(price_ij) - lbar,

(lbar the mean log price of all store-weeks, so beta_i0 is the log volume at a typical price
without display; the elasticity beta_i1 means what it means uncentered), and

    log(vol_ij) | beta_i, lam ~ N(x_ij' beta_i, 1/lam)
    beta_i | m, Sigma         ~ N_4(m, Sigma)                    the stores' coefficients
    lam = 1/sigma^2           ~ Gamma(a, b)                      (shape, rate)
    m                         ~ N_4(nu, Phi^{-1})                Phi a precision matrix
    Sigma                     ~ IW(df, Psi)                      inverse Wishart

The inverse Wishart is the conjugate prior of Sigma, so the Gibbs sampler draws Sigma exactly;
`hiercheck.models.inverse_wishart` writes its density in PyMC with a log-Cholesky transform, so
NUTS samples the same density (see that module for why PyMC's own distributions do not serve).

`load()` reads the packaged copy of the course's file; `build_model` writes the model in PyMC
(imported only there); `model_data` is the `data` mapping of the generic interface.
"""

from __future__ import annotations

__all__ = [
    "COEFFICIENTS", "CheeseData", "CheesePriors", "PRIOR_NAMES", "build_model", "load",
    "model_data",
]

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hiercheck.errors import DataError, PriorError

from .data import GroupedData, _numeric_column, _Where
from .packaged import read_packaged_csv

if TYPE_CHECKING:
    import pymc as pm

COEFFICIENTS = ("intercept", "log_price", "disp", "log_price:disp")
PRIOR_NAMES = ("a", "b", "nu", "Phi", "df", "Psi")
P = len(COEFFICIENTS)


@dataclass(frozen=True, eq=False)
class CheesePriors:
    """lam ~ Gamma(a, b), m ~ N_4(nu, Phi^{-1}), Sigma ~ IW(df, Psi), checked to be proper:
    a, b > 0; nu finite; Phi and Psi symmetric positive definite 4 x 4; df > 3.

    Parameters
    ----------
    a : float
        Shape of lam's Gamma prior; positive.
    b : float
        Rate of lam's Gamma prior; positive.
    nu : numpy.ndarray
        The prior mean of m, 4 finite numbers (stored as a read-only float array).
    Phi : numpy.ndarray
        The prior precision matrix of m, 4 x 4 (stored read-only).
    df : float
        The degrees of freedom of Sigma's inverse Wishart prior; > 3 = p - 1.
    Psi : numpy.ndarray
        The scale matrix of Sigma's inverse Wishart prior, 4 x 4 (stored read-only).

    Raises
    ------
    PriorError
        If a, b or df is not a finite number above its bound, nu is not 4 finite numbers, or
        Phi or Psi is not a finite, symmetric, positive definite 4 x 4 matrix.
    """

    a: float
    b: float
    nu: np.ndarray
    Phi: np.ndarray
    df: float
    Psi: np.ndarray

    def __post_init__(self):
        for name in ("a", "b", "df"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                                 np.floating)):
                raise PriorError(f"prior {name} must be a number, got {value!r}")
            least = P - 1 if name == "df" else 0
            if not (math.isfinite(value) and value > least):
                raise PriorError(f"prior {name} must be finite and > {least} for a proper "
                                 f"prior, got {value}")
            object.__setattr__(self, name, float(value))
        nu = np.array(self.nu, dtype=float)
        if nu.shape != (P,) or not np.all(np.isfinite(nu)):
            raise PriorError(f"prior nu must be {P} finite numbers, got {self.nu!r}")
        nu.flags.writeable = False
        object.__setattr__(self, "nu", nu)
        for name in ("Phi", "Psi"):
            object.__setattr__(self, name, _positive_definite(name, getattr(self, name)))

    @classmethod
    def weakly_informative(cls, data: CheeseData) -> CheesePriors:
        """Priors scaled to the data, in the spirit of `Priors.weakly_informative`. With s_w^2
        the pooled residual variance of the stores' own least-squares fits, s_y^2 the variance
        of log(vol), s_k^2 the variance of design column k (s_0 = 1):

            a = 1, b = s_w^2                      E[lam] = 1/s_w^2
            nu = (mean log(vol), 0, 0, 0)         no effect of price or display
            Phi = diag(s_k^2) / (100 s_y^2)       m_k's SD: ten data SDs, per unit of x_k
            df = p + 2, Psi = s_w^2 diag(1/s_k^2) E[Sigma] = Psi: one observation's noise

        Sigma's prior carries the weight of about one store among 88 in its scale and p + 2
        in its degrees of freedom.

        Parameters
        ----------
        data : CheeseData
            The sales the priors are scaled to.

        Returns
        -------
        CheesePriors
            The priors.
        """
        y = data.log_volume
        scales = np.var(data.design, axis=0)
        scales[0] = 1.0
        within = data.pooled_residual_variance
        return cls(a=1.0, b=within, nu=np.array([y.mean(), 0.0, 0.0, 0.0]),
                   Phi=np.diag(scales / (100.0 * np.var(y))), df=P + 2.0,
                   Psi=np.diag(within / scales))

    def as_dict(self) -> dict[str, float | np.ndarray]:
        """The parameters by name (nu, Phi, Psi as read-only arrays).

        Returns
        -------
        dict[str, float | numpy.ndarray]
            {"a": a, "b": b, "nu": nu, "Phi": Phi, "df": df, "Psi": Psi}, in the order of
            `PRIOR_NAMES`.
        """
        return {name: getattr(self, name) for name in PRIOR_NAMES}


def _positive_definite(name: str, matrix) -> np.ndarray:
    matrix = np.array(matrix, dtype=float)
    if matrix.shape != (P, P) or not np.all(np.isfinite(matrix)):
        raise PriorError(f"prior {name} must be a finite {P} x {P} matrix, got shape "
                         f"{matrix.shape}")
    if not np.allclose(matrix, matrix.T, rtol=1e-12, atol=0):
        raise PriorError(f"prior {name} must be symmetric")
    try:
        np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        raise PriorError(f"prior {name} must be positive definite") from None
    matrix.flags.writeable = False
    return matrix


@dataclass(frozen=True, eq=False)
class CheeseData:
    """Store-weeks: store labels (sorted) and each week's store index, price, volume, display.

    `design` is the matrix of rows x_ij, `log_volume` the response, `log_price_center` lbar.

    Parameters
    ----------
    labels : numpy.ndarray
        The stores' labels, sorted; `labels[i]` names store i.
    codes : numpy.ndarray
        The store index (0..S-1) of each store-week.
    price : numpy.ndarray
        The price of each store-week, positive.
    volume : numpy.ndarray
        The sales volume vol_ij of each store-week, positive.
    display : numpy.ndarray
        The display indicator disp_ij of each store-week, 0.0 or 1.0.
    name : str, default "cheese"
        What messages and results call the data.
    """

    labels: np.ndarray
    codes: np.ndarray
    price: np.ndarray
    volume: np.ndarray
    display: np.ndarray
    name: str = "cheese"

    @property
    def N(self) -> int:
        """The number of store-weeks."""
        return int(self.codes.size)

    @property
    def S(self) -> int:
        """The number of stores."""
        return int(self.labels.size)

    @property
    def log_price_center(self) -> float:
        """lbar, the mean of log(price) over all store-weeks."""
        return float(np.mean(np.log(self.price)))

    @property
    def log_volume(self) -> np.ndarray:
        """y_ij = log(vol_ij), the response."""
        return np.log(self.volume)

    @property
    def design(self) -> np.ndarray:
        """Rows x_ij = (1, l_ij, disp_ij, l_ij disp_ij), l_ij = log(price_ij) - lbar; (N, 4)."""
        centered = np.log(self.price) - self.log_price_center
        return np.column_stack([np.ones(self.N), centered, self.display,
                                centered * self.display])

    @property
    def pooled_residual_variance(self) -> float:
        """s_w^2 = sum_i RSS_i / (N - sum_i rank(X_i)), each store fitted on its own by least
        squares (a store whose display never changes has a design of rank 2).
        """
        design, y = self.design, self.log_volume
        residual_ss, rank_total = 0.0, 0
        for store in range(self.S):
            rows = self.codes == store
            coefficients, _, rank, _ = np.linalg.lstsq(design[rows], y[rows], rcond=None)
            residual = y[rows] - design[rows] @ coefficients
            residual_ss += float(residual @ residual)
            rank_total += int(rank)
        return residual_ss / (self.N - rank_total)

    @property
    def default_priors(self) -> CheesePriors:
        """The weakly informative priors scaled to these data."""
        return CheesePriors.weakly_informative(self)

    def __repr__(self):
        return f"CheeseData({self.name!r}: {self.N} store-weeks in {self.S} stores)"

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, name: str = "cheese") -> CheeseData:
        """From a frame with the course file's columns store, price, vol, disp.

        Parameters
        ----------
        frame : pandas.DataFrame
            One row per store-week.
        name : str, default "cheese"
            What messages and results call the data.

        Returns
        -------
        CheeseData
            The checked data.

        Raises
        ------
        DataError
            If a column is missing or a value is not a number, a price or volume is not
            positive, or a display indicator is not 0 or 1.
        """
        stores = GroupedData.from_frame(frame, "store", "vol", name=name)
        where = _Where(name, 0, "row")
        for column in ("price", "disp"):
            if column not in frame.columns:
                raise DataError(where.missing_column(column, frame.columns))
        price = _numeric_column(frame["price"], "price", where)
        display = _numeric_column(frame["disp"], "disp", where)
        for column, values in (("price", price), ("vol", stores.values)):
            bad = values <= 0
            if bad.any():
                raise DataError(f"{name}: column {column!r}, {where.row(int(np.argmax(bad)))}: "
                                f"{values[np.argmax(bad)]} is not positive")
        bad = ~np.isin(display, (0.0, 1.0))
        if bad.any():
            raise DataError(f"{name}: column 'disp', {where.row(int(np.argmax(bad)))}: "
                            f"{display[np.argmax(bad)]} is neither 0 nor 1")
        return cls(labels=stores.labels, codes=stores.codes, price=price, volume=stores.values,
                   display=display, name=name)


def load() -> CheeseData:
    """The course's cheese data, from the copy packaged with hiercheck.

    Returns
    -------
    CheeseData
        5555 store-weeks in 88 stores.
    """
    return CheeseData.from_frame(read_packaged_csv("cheese.csv"))


def model_data(data: CheeseData, priors: CheesePriors | None = None) -> dict[str, np.ndarray]:
    """The `data` mapping of the generic interface, named as in `build_model`.

    Parameters
    ----------
    data : CheeseData
        The sales.
    priors : CheesePriors, optional
        The priors; `data.default_priors` when omitted.

    Returns
    -------
    dict
        "y" (log volume, observed), "store" (each week's store index), "X" (the design, (N, 4))
        and the hyperparameters a, b, nu, Phi, df, Psi as float arrays.
    """
    priors = data.default_priors if priors is None else priors
    values = {"y": data.log_volume, "store": data.codes, "X": data.design}
    values.update({name: np.asarray(value, dtype=float)
                   for name, value in priors.as_dict().items()})
    return values


def build_model(data: CheeseData, priors: CheesePriors | None = None) -> pm.Model:
    """The model as a `pm.Model`, dims `store`, `coef` (and `coef_` for Sigma's columns),
    `week`.

    Free variables beta (store, coef), m (coef), Sigma (coef, coef_), lam, on their natural
    scales; sigma = lam^(-1/2) a deterministic. The design and the hyperparameters are
    `pm.Data`; the likelihood is one term per store-week.

    Parameters
    ----------
    data : CheeseData
        The sales.
    priors : CheesePriors, optional
        The priors; `data.default_priors` when omitted.

    Returns
    -------
    pymc.Model
        The model, observed variable "y".
    """
    import pymc as pm

    from .inverse_wishart import inverse_wishart

    values = model_data(data, priors)
    coords = {"store": data.labels, "coef": list(COEFFICIENTS), "coef_": list(COEFFICIENTS),
              "week": np.arange(data.N)}
    with pm.Model(coords=coords) as model:
        store = pm.Data("store", values["store"], dims="week")
        design = pm.Data("X", values["X"], dims=("week", "coef"))
        a, b, df = (pm.Data(name, values[name]) for name in ("a", "b", "df"))
        nu = pm.Data("nu", values["nu"], dims="coef")
        Phi = pm.Data("Phi", values["Phi"], dims=("coef", "coef_"))
        Psi = pm.Data("Psi", values["Psi"], dims=("coef", "coef_"))

        lam = pm.Gamma("lam", alpha=a, beta=b)
        m = pm.MvNormal("m", mu=nu, tau=Phi, dims="coef")
        Sigma = inverse_wishart("Sigma", df, Psi, p=P, dims=("coef", "coef_"))
        beta = pm.MvNormal("beta", mu=m, cov=Sigma, dims=("store", "coef"))
        mean = pm.math.sum(design * beta[store], axis=-1)
        pm.Normal("y", mu=mean, tau=lam, observed=values["y"], dims="week")
        pm.Deterministic("sigma", lam ** -0.5)
    return model
