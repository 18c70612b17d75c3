"""Conjugate priors of the hierarchy, in the design's notation.

    lam   = 1/sigma^2 ~ Gamma(a, b)      shape a, rate b
    omega = 1/tau^2   ~ Gamma(c, d)      shape c, rate d
    mu                ~ N(nu, 1/phi)     phi a precision

independent a priori; `Priors` holds (a, b, c, d, nu, phi) and evaluates and samples them.

The limits a = b = 0 (Jeffreys' prior on sigma^2, p(lam) proportional to 1/lam; any a, b >= 0
gives p(lam) proportional to lam^(a-1) e^(-b lam)) and phi = 0 (a flat prior on mu) are allowed:
the posterior stays proper for every data set the package accepts (at least two schools, some
within-school variation), because with theta and mu integrated out lam's density is proportional
to lam^(a + (N - 1)/2 - 1) e^(-(b + Q/2) lam) with Q > 0, and omega's prior stays proper. c and d
must be positive: with d = 0 the prior on omega does not vanish as omega -> inf (tau -> 0), where
the likelihood tends to that of tau = 0, a positive constant, so the posterior is improper. An
improper prior has no normalizing constant: its log density is written up to one, and it cannot
be simulated (SBC and Geweke need proper priors). The exercise sheet's choice, a flat mu,
Jeffreys' sigma^2 and tau^2 ~ inverse-Gamma(1/2, 1/2), is `Priors.course()`.
"""

from __future__ import annotations

__all__ = ["Hyperparameters", "Priors"]

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from hiercheck.errors import PriorError

if TYPE_CHECKING:
    from .data import GroupedData


class Hyperparameters(NamedTuple):
    """(mu, lam, omega); each entry a scalar or an array of one batch shape.

    Attributes
    ----------
    mu : np.ndarray
        The grand mean.
    lam : np.ndarray
        lam = 1/sigma^2, the within-school precision.
    omega : np.ndarray
        omega = 1/tau^2, the ratio of within- to between-school variance.
    """

    mu: np.ndarray
    lam: np.ndarray
    omega: np.ndarray


@dataclass(frozen=True)
class Priors:
    """lam ~ Gamma(a, b), omega ~ Gamma(c, d), mu ~ N(nu, 1/phi): the prior parameters.

    The defaults suit scores of order one (for example standardized scores): lam ~ Gamma(1, 1)
    puts the within-school SD near 1; omega ~ Gamma(1, 1/4) puts the ratio
    tau = between-SD / within-SD mostly between 0.3 and 2 (88% prior mass); mu ~ N(0, 100^2).
    For scores on other scales use `Priors.weakly_informative(data)`, which the CLI does.

    Parameters
    ----------
    a : float, default 1.0
        Shape of lam's Gamma prior; >= 0 (0 with b = 0: Jeffreys' prior).
    b : float, default 1.0
        Rate of lam's Gamma prior; >= 0.
    c : float, default 1.0
        Shape of omega's Gamma prior; positive.
    d : float, default 0.25
        Rate of omega's Gamma prior; positive.
    nu : float, default 0.0
        Mean of mu's normal prior.
    phi : float, default 1e-4
        Precision of mu's normal prior; >= 0 (0: a flat prior on mu).

    Raises
    ------
    PriorError
        If a parameter is not a finite number, a, b or phi is negative, or c or d is not
        positive (the posterior would be improper; see the module docstring).
    """

    a: float = 1.0
    b: float = 1.0
    c: float = 1.0
    d: float = 0.25
    nu: float = 0.0
    phi: float = 1e-4

    def __post_init__(self):
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise PriorError(f"prior {name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise PriorError(f"prior {name} must be finite, got {value}")
            role = {"a": "shape of lam", "b": "rate of lam", "c": "shape of omega",
                    "d": "rate of omega", "phi": "precision of mu"}.get(name)
            if name in ("c", "d") and value <= 0:
                raise PriorError(f"prior {name} (the {role}) must be positive: an improper prior "
                                 f"on omega = 1/tau^2 makes the posterior improper, got {value}")
            if name in ("a", "b", "phi") and value < 0:
                raise PriorError(f"prior {name} (the {role}) must be >= 0 (0 is the improper "
                                 f"limit), got {value}")
            object.__setattr__(self, name, float(value))

    @property
    def is_proper(self) -> bool:
        """True when every prior integrates to one (a, b and phi positive).

        Returns
        -------
        bool
            Whether the priors can be simulated.
        """
        return self.a > 0 and self.b > 0 and self.phi > 0

    def require_proper(self, purpose: str) -> None:
        """Refuse improper priors for a computation that simulates from them.

        Parameters
        ----------
        purpose : str
            What needs the proper prior, for the message ("SBC", "Geweke's test").

        Raises
        ------
        PriorError
            If a, b or phi is 0.
        """
        if not self.is_proper:
            improper = [name for name in ("a", "b", "phi") if getattr(self, name) == 0]
            raise PriorError(f"{purpose} needs proper priors, and these are improper "
                             f"({', '.join(f'{n} = 0' for n in improper)}): give a, b and phi "
                             "positive values")

    @classmethod
    def course(cls) -> Priors:
        """The exercise sheet's priors, part (C): a flat prior on mu (phi = 0), Jeffreys' prior
        on sigma^2 (p(lam) proportional to 1/lam: a = b = 0) and tau^2 ~ inverse-Gamma(1/2, 1/2),
        that is omega ~ Gamma(1/2, 1/2).

        Returns
        -------
        Priors
            a = b = 0, c = d = 1/2, nu = 0, phi = 0.

        Examples
        --------
        >>> from hiercheck import Priors
        >>> Priors.course().is_proper
        False
        """
        return cls(a=0.0, b=0.0, c=0.5, d=0.5, nu=0.0, phi=0.0)

    @classmethod
    def weakly_informative(cls, data: GroupedData) -> Priors:
        """Priors scaled to the data: the same shapes as the defaults, with

        b   = s_w^2           (s_w^2 the pooled within-school variance, so E[lam] = 1/s_w^2)
        nu  = grand mean of the scores
        phi = 1 / (100 s_y^2) (s_y^2 the total variance: mu's prior SD is ten data SDs)

        Each prior carries the weight of about one or two observations, so the posterior is the
        data's; omega's prior is scale-free (tau is a ratio) and stays as in the defaults.

        Parameters
        ----------
        data : GroupedData
            The data the priors are scaled to.

        Returns
        -------
        Priors
            a = 1, b = s_w^2, c = 1, d = 1/4, nu = the grand mean, phi = 1 / (100 s_y^2).

        Examples
        --------
        >>> from hiercheck import Priors, load_dataset
        >>> priors = Priors.weakly_informative(load_dataset("rail"))
        >>> round(priors.nu, 2)  # the mean travel time
        66.5
        """
        within = float(data.stats.pooled_variance)
        total = float(np.var(data.values)) or within
        return cls(a=1.0, b=within, c=1.0, d=0.25, nu=float(np.mean(data.values)),
                   phi=1.0 / (100.0 * total))

    @classmethod
    def from_string(cls, text: str, base: Priors | None = None) -> Priors:
        """Parse 'a=2,b=0.5' (unnamed fields keep `base`'s values).

        Parameters
        ----------
        text : str
            Comma-separated NAME=NUMBER settings, NAME one of a, b, c, d, nu, phi; may be empty.
        base : Priors, optional
            The values of the parameters `text` does not name (default: `Priors()`).

        Returns
        -------
        Priors
            `base` with the named parameters replaced.

        Raises
        ------
        PriorError
            If a setting is not NAME=NUMBER with a known NAME, or the result is not a proper
            prior.
        """
        values = asdict(base or cls())
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, number = item.partition("=")
            key = key.strip()
            if not sep or key not in values:
                raise PriorError(f"bad prior setting {item!r}: expected NAME=NUMBER with NAME "
                                 f"one of {', '.join(values)}")
            try:
                values[key] = float(number)
            except ValueError:
                raise PriorError(f"bad prior setting {item!r}: {number.strip()!r} is not a number")
        return cls(**values)

    def as_dict(self) -> dict[str, float]:
        """The parameters by name, in the order a, b, c, d, nu, phi.

        Returns
        -------
        dict[str, float]
            {"a": a, "b": b, "c": c, "d": d, "nu": nu, "phi": phi}.
        """
        return asdict(self)

    # -- log densities ------------------------------------------------------------------------

    def logpdf_lam(self, lam: ArrayLike) -> np.ndarray:
        """log Gamma(lam; a, b) = a log b - lgamma(a) + (a - 1) log lam - b lam (without the
        constant a log b - lgamma(a) when a or b is 0: the improper limit)

        Parameters
        ----------
        lam : ArrayLike
            Values of lam, any shape.

        Returns
        -------
        np.ndarray
            The log density, of lam's shape; -inf where lam <= 0.
        """
        return _gamma_logpdf(lam, self.a, self.b)

    def logpdf_omega(self, omega: ArrayLike) -> np.ndarray:
        """log Gamma(omega; c, d) = c log d - lgamma(c) + (c - 1) log omega - d omega

        Parameters
        ----------
        omega : ArrayLike
            Values of omega, any shape.

        Returns
        -------
        np.ndarray
            The log density, of omega's shape; -inf where omega <= 0.
        """
        return _gamma_logpdf(omega, self.c, self.d)

    def logpdf_mu(self, mu: ArrayLike) -> np.ndarray:
        """log N(mu; nu, 1/phi) = (log phi - log 2 pi)/2 - phi (mu - nu)^2 / 2 (0 for phi = 0,
        the flat prior)

        Parameters
        ----------
        mu : ArrayLike
            Values of mu, any shape.

        Returns
        -------
        np.ndarray
            The log density, of mu's shape.
        """
        mu = np.asarray(mu, dtype=float)
        if self.phi == 0:  # the flat prior, density 1
            return np.zeros_like(mu)
        return 0.5 * (math.log(self.phi) - math.log(2 * math.pi)) - 0.5 * self.phi * (mu - self.nu) ** 2

    def logpdf(self, mu: ArrayLike, lam: ArrayLike, omega: ArrayLike) -> np.ndarray:
        """log p(mu, lam, omega) = log N(mu; nu, 1/phi) + log Gamma(lam; a, b)
        + log Gamma(omega; c, d): they are independent a priori.

        Parameters
        ----------
        mu : ArrayLike
            Values of mu.
        lam : ArrayLike
            Values of lam, broadcasting with `mu`.
        omega : ArrayLike
            Values of omega, broadcasting with `mu`.

        Returns
        -------
        np.ndarray
            The joint log density, of the broadcast shape.
        """
        return self.logpdf_mu(mu) + self.logpdf_lam(lam) + self.logpdf_omega(omega)

    def sample(self, rng: np.random.Generator,
               size: int | tuple[int, ...] = ()) -> Hyperparameters:
        """Independent draws of (mu, lam, omega) from the prior, each of shape `size`.

        Parameters
        ----------
        rng : numpy.random.Generator
            The source of randomness.
        size : int or tuple of int, default ()
            The batch shape; () draws one of each.

        Returns
        -------
        Hyperparameters
            mu ~ N(nu, 1/phi), lam ~ Gamma(a, b), omega ~ Gamma(c, d).

        Raises
        ------
        PriorError
            If the priors are improper (`is_proper` False).
        """
        self.require_proper("drawing from the prior")
        return Hyperparameters(
            mu=rng.normal(self.nu, 1.0 / math.sqrt(self.phi), size),
            lam=rng.gamma(self.a, 1.0 / self.b, size),
            omega=rng.gamma(self.c, 1.0 / self.d, size),
        )


def _gamma_logpdf(x, shape, rate):
    x = np.asarray(x, dtype=float)
    # the normalizing constant exists only for a proper Gamma; the improper limit goes without
    constant = shape * math.log(rate) - special.gammaln(shape) if shape > 0 and rate > 0 else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        value = constant + (shape - 1) * np.log(x) - rate * x
    return np.where(x > 0, value, -np.inf)
