"""Blood pressure: the math-test hierarchy with a subject-level covariate (the course's exercise).

Systolic blood pressure y_ij of subject i = 1..m on occasion j = 1..n_i; subject i took the
control medication (treatment 1, x_i = 0) or the experimental one (treatment 2, x_i = 1):

    y_ij | theta_i               ~ N(theta_i, 1/lam)
    theta_i | mu, beta, lam, omega ~ N(mu + beta x_i, 1/(omega lam))     (variance tau^2 sigma^2)
    lam   = 1/sigma^2 ~ Gamma(a, b)        (shape, rate)
    omega = 1/tau^2   ~ Gamma(c, d)
    mu                ~ N(nu, 1/phi)
    beta              ~ N(0, 1/phi_beta)

beta is the treatment effect: the difference between the two arms' mean subject levels.

`load()` reads the packaged copy of the course's file; `build_model` writes the model in PyMC
(imported only there), its likelihood on the individual measurements. `model_data` is the `data`
mapping of the generic interface: the observed values and every `pm.Data` of the model by name,
the priors' hyperparameters among them, so a conditional reads everything it needs from it.
"""

from __future__ import annotations

__all__ = [
    "BloodPressureData", "BloodPressurePriors", "PRIOR_NAMES", "build_model", "load", "model_data",
]

import math
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hiercheck.errors import DataError, PriorError

from .data import GroupedData
from .packaged import read_packaged_csv
from .priors import Priors

if TYPE_CHECKING:
    import pymc as pm

PRIOR_NAMES = ("a", "b", "c", "d", "nu", "phi", "phi_beta")
TREATED = 2  # the code of the experimental medication in the column `treatment`


@dataclass(frozen=True)
class BloodPressurePriors:
    """Prior parameters: those of `hiercheck.models.Priors` (a, b, c, d, nu, phi) and phi_beta,
    the precision of beta ~ N(0, 1/phi_beta). All are checked as `Priors` checks its own.

    Parameters
    ----------
    a : float, default 1.0
        Shape of lam's Gamma prior; >= 0.
    b : float, default 1.0
        Rate of lam's Gamma prior; >= 0.
    c : float, default 1.0
        Shape of omega's Gamma prior; positive.
    d : float, default 0.25
        Rate of omega's Gamma prior; positive.
    nu : float, default 0.0
        Mean of mu's normal prior.
    phi : float, default 1e-4
        Precision of mu's normal prior; >= 0.
    phi_beta : float, default 1e-4
        Precision of beta's normal prior; positive.

    Raises
    ------
    PriorError
        If a parameter is not a finite number or `Priors` refuses it, c or d is not positive
        (this model writes omega's prior as a proper Gamma), or phi_beta is not positive.
    """

    a: float = 1.0
    b: float = 1.0
    c: float = 1.0
    d: float = 0.25
    nu: float = 0.0
    phi: float = 1e-4
    phi_beta: float = 1e-4

    def __post_init__(self):
        shared = Priors(**{f.name: getattr(self, f.name) for f in fields(Priors)})
        for name, value in asdict(shared).items():
            object.__setattr__(self, name, value)
        if not (self.c > 0 and self.d > 0):
            raise PriorError(f"priors c and d (omega's Gamma prior) must be positive for the "
                             f"blood-pressure model, got c = {self.c:g}, d = {self.d:g}")
        phi_beta = self.phi_beta
        if isinstance(phi_beta, bool) or not isinstance(phi_beta, (int, float, np.integer,
                                                                   np.floating)):
            raise PriorError(f"prior phi_beta must be a number, got {phi_beta!r}")
        if not (math.isfinite(phi_beta) and phi_beta > 0):
            raise PriorError(f"prior phi_beta (the precision of beta) must be positive and finite "
                             f"for a proper prior, got {phi_beta}")
        object.__setattr__(self, "phi_beta", float(phi_beta))

    @classmethod
    def weakly_informative(cls, data: BloodPressureData) -> BloodPressurePriors:
        """`Priors.weakly_informative` of the measurements (b = s_w^2, nu = grand mean,
        phi = 1/(100 s_y^2)), and phi_beta = phi: beta's prior SD is ten data SDs.

        Parameters
        ----------
        data : BloodPressureData
            The measurements the priors are scaled to.

        Returns
        -------
        BloodPressurePriors
            Priors that carry the weight of about one measurement.
        """
        shared = Priors.weakly_informative(data.grouped)
        return cls(**shared.as_dict(), phi_beta=shared.phi)

    def as_dict(self) -> dict[str, float]:
        """The parameters by name, in the order a, b, c, d, nu, phi, phi_beta (`PRIOR_NAMES`).

        Returns
        -------
        dict[str, float]
            {"a": a, "b": b, "c": c, "d": d, "nu": nu, "phi": phi, "phi_beta": phi_beta}.
        """
        return asdict(self)


@dataclass(frozen=True, eq=False)
class BloodPressureData:
    """The measurements, grouped by subject (`grouped`: values y, subject codes, labels), the
    treatment indicator x_i per subject (ordered as `labels`) and the date of each measurement.

    Parameters
    ----------
    grouped : GroupedData
        The systolic pressures y grouped by subject: values, subject codes, labels.
    x : numpy.ndarray
        The treatment indicator per subject, shape (m,), ordered as `labels`: 1.0 for the
        experimental medication (treatment 2), 0.0 for the control (treatment 1).
    dates : numpy.ndarray
        The date of each measurement, datetime64[D], in the file's order.
    """

    grouped: GroupedData
    x: np.ndarray
    dates: np.ndarray

    @property
    def values(self) -> np.ndarray:
        """y, the systolic pressures (mmHg), in the file's order."""
        return self.grouped.values

    @property
    def codes(self) -> np.ndarray:
        """The subject index (0..m-1) of each measurement."""
        return self.grouped.codes

    @property
    def labels(self) -> np.ndarray:
        """The subjects' labels in the file; `labels[i]` names subject i."""
        return self.grouped.labels

    @property
    def name(self) -> str:
        """What messages and results call the data."""
        return self.grouped.name

    @property
    def default_priors(self) -> BloodPressurePriors:
        """The weakly informative priors scaled to these data."""
        return BloodPressurePriors.weakly_informative(self)

    def __repr__(self):
        treated = int(self.x.sum())
        return (f"BloodPressureData({self.name!r}: {self.grouped.N} measurements of "
                f"{self.grouped.m} subjects, {treated} on treatment {TREATED})")

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, name: str = "bloodpressure") -> BloodPressureData:
        """From a frame with the course file's columns date, systolic, subject, treatment.

        Parameters
        ----------
        frame : pandas.DataFrame
            One row per measurement.
        name : str, default "bloodpressure"
            What messages and results call the data.

        Returns
        -------
        BloodPressureData
            The checked data.

        Raises
        ------
        DataError
            If a column is missing, a value is not a number or a date, or a subject's
            treatment is not one of 1 and 2 or changes between its measurements.
        """
        grouped = GroupedData.from_frame(frame, "subject", "systolic", name=name)
        for column in ("treatment", "date"):
            if column not in frame.columns:
                raise DataError(f"{name}: no column {column!r}; columns are "
                                f"{', '.join(map(str, frame.columns))}")
        treatment = pd.to_numeric(frame["treatment"], errors="coerce").to_numpy()
        unknown = ~np.isin(treatment, (1, TREATED))
        if unknown.any():
            row = int(np.argmax(unknown))
            raise DataError(f"{name}: column 'treatment', row {row}: "
                            f"{_plain(frame['treatment'].iloc[row])!r} is neither 1 nor {TREATED}")
        per_subject = pd.Series(treatment).groupby(grouped.codes)
        mixed = np.flatnonzero(per_subject.nunique().to_numpy() > 1)
        if mixed.size:
            raise DataError(f"{name}: subject {grouped.labels[mixed[0]]!r} has measurements under "
                            "both treatments; the model needs one treatment per subject")
        x = (per_subject.first().to_numpy() == TREATED).astype(float)
        dates = pd.to_datetime(frame["date"], errors="coerce")
        if dates.isna().any():
            row = int(np.argmax(dates.isna().to_numpy()))
            raise DataError(f"{name}: column 'date', row {row}: "
                            f"{_plain(frame['date'].iloc[row])!r} is not a date")
        return cls(grouped=grouped, x=x, dates=dates.to_numpy().astype("datetime64[D]"))


def _plain(value):
    """A cell as the user wrote it: numpy scalars as Python ones, so messages read 3, not
    np.int64(3).
    """
    return value.item() if isinstance(value, np.generic) else value


def load() -> BloodPressureData:
    """The course's blood-pressure data, from the copy packaged with hiercheck.

    Returns
    -------
    BloodPressureData
        426 measurements of 20 subjects, 10 on each treatment.
    """
    return BloodPressureData.from_frame(read_packaged_csv("bloodpressure.csv"))


def model_data(data: BloodPressureData, priors: BloodPressurePriors | None = None
               ) -> dict[str, np.ndarray]:
    """The `data` mapping of the generic interface, named as in `build_model`.

    Parameters
    ----------
    data : BloodPressureData
        The measurements.
    priors : BloodPressurePriors, optional
        The priors; `data.default_priors` when omitted.

    Returns
    -------
    dict
        "y" (the observed pressures), "subject" (each measurement's subject index), "x" (the
        treatment indicator per subject) and the hyperparameters a, b, c, d, nu, phi, phi_beta
        as 0-d float arrays.
    """
    priors = data.default_priors if priors is None else priors
    values = {"y": data.values, "subject": data.codes, "x": data.x}
    values.update({name: np.asarray(value, dtype=float)
                   for name, value in priors.as_dict().items()})
    return values


def build_model(data: BloodPressureData, priors: BloodPressurePriors | None = None) -> pm.Model:
    """The model as a `pm.Model`, dims `subject` (labels) and `measurement`.

    Free variables theta (dim subject), mu, beta, lam, omega on their natural scales; sigma and
    tau as deterministics. The design (subject of each measurement, x) and the hyperparameters
    are `pm.Data`; the likelihood is one term per measurement.

    Parameters
    ----------
    data : BloodPressureData
        The measurements.
    priors : BloodPressurePriors, optional
        The priors; `data.default_priors` when omitted.

    Returns
    -------
    pymc.Model
        The model, observed variable "y".
    """
    import pymc as pm

    values = model_data(data, priors)
    coords = {"subject": data.labels, "measurement": np.arange(data.grouped.N)}
    with pm.Model(coords=coords) as model:
        subject = pm.Data("subject", values["subject"], dims="measurement")
        x = pm.Data("x", values["x"], dims="subject")
        a, b, c, d, nu, phi, phi_beta = (pm.Data(name, values[name]) for name in PRIOR_NAMES)

        lam = pm.Gamma("lam", alpha=a, beta=b)
        omega = pm.Gamma("omega", alpha=c, beta=d)
        mu = pm.Normal("mu", mu=nu, tau=phi)
        beta = pm.Normal("beta", mu=0.0, tau=phi_beta)
        theta = pm.Normal("theta", mu=mu + beta * x, tau=omega * lam, dims="subject")
        pm.Normal("y", mu=theta[subject], tau=lam, observed=values["y"], dims="measurement")
        pm.Deterministic("sigma", lam ** -0.5)
        pm.Deterministic("tau", omega ** -0.5)
    return model
