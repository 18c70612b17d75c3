"""Conjugate priors of the hierarchy, in the design's notation.

    lam   = 1/sigma^2 ~ Gamma(a, b)      shape a, rate b
    omega = 1/tau^2   ~ Gamma(c, d)      shape c, rate d
    mu                ~ N(nu, 1/phi)     phi a precision

independent a priori; `Priors` holds (a, b, c, d, nu, phi) and evaluates and samples them. A
Gamma(shape, rate) with a shape or rate that is not positive stands for its kernel,
x^(shape-1) e^(-rate x): an improper prior, written without a normalizing constant.

Which improper limits keep the posterior proper. The data set has m schools (at least two), N
scores and some within-school variation, SS = sum_i ss_i > 0. Integrate theta, mu and lam out
(docs/derivation.md, sections 5.1 and 5.8). With w_i = n_i omega / (n_i + omega), the precision
of ybar_i about mu in units of lam, and a flat mu (phi = 0),

    p(y | omega) = C (prod_i w_i)^(1/2) (sum_i w_i)^(-1/2) (b + (SS + Q(omega))/2)^(-(a + (N-1)/2))

where Q(omega) = sum_i w_i (ybar_i - ybar_w)^2 about the w-weighted mean ybar_w, and C does not
depend on omega. lam's integral is finite for every a, b >= 0 because SS > 0: lam enters as
lam^(a + (N-1)/2 - 1) e^(-(b + (SS + Q)/2) lam), a Gamma kernel with positive shape and rate. So
everything turns on omega, whose posterior is p(y | omega) omega^(c-1) e^(-d omega) on
(0, inf), proper when it is integrable at both ends:

    omega -> inf (tau -> 0): w_i -> n_i, so p(y | omega) tends to p(y | tau = 0), a positive
        constant. The prior must be integrable there itself: d > 0 (any c), or d = 0 and c < 0.
    omega -> 0 (tau -> inf): w_i = omega (1 + O(omega)), Q(omega) -> 0, so p(y | omega) is
        const x omega^(m/2) / omega^(1/2) = const x omega^((m-1)/2): each school's mean
        contributes omega^(1/2), and locating mu under its flat prior takes one back. The
        posterior density behaves as omega^(c - 1 + (m-1)/2), integrable at 0 iff
        c > -(m - 1)/2. A proper mu (phi > 0) leaves the m-th power: the school means'
        density is (2 pi)^(-m/2) |C|^(-1/2) e^(-...), C = diag(1/p_i) + 11'/phi with
        p_i = lam w_i, and |C|^(-1/2) = (prod_i p_i)^(1/2) (1 + sum_i p_i / phi)^(-1/2)
        = const x omega^(m/2) (1 + O(omega)) at each lam, the exponent tending to 0, and so
        after lam's integral too; so c > -m/2.

The rule, with m' = m - 1 under a flat mu (phi = 0) and m' = m under a proper one:

    the posterior is proper  iff  c > -m'/2,  and c < 0 when d = 0.

The condition at infinity holds or fails whatever the data, so `Priors` refuses d = 0 with
c >= 0 (p(omega) proportional to 1/omega, say) when it is built; the one at 0 depends on m, and
the engines check it against their data
(`Priors.require_proper_posterior`). The flat prior on tau^2, p(tau^2) proportional to 1, is
p(omega) proportional to omega^(-2): c = -1, d = 0, proper for m >= 4 schools under a flat mu,
m >= 3 under a proper one. A flat prior on tau is c = -1/2, d = 0 (m >= 3, flat mu).

The same two ends decide which posterior moments exist: E[omega^k | y] is finite iff
c + k > -m'/2, and c + k < 0 when d = 0 (`Priors.omega_moment_exists`). Under the flat prior on
tau^2, E[omega | y] is infinite for every data set, E[tau | y] = E[omega^(-1/2) | y] needs
m' >= 4 and E[tau^2 | y] needs m' >= 5. tests/test_flat_tau2.py checks both exponents against
the slopes of the posterior density of log omega, integrated numerically over lam.

lam's limits a = b = 0 (Jeffreys' prior on sigma^2, p(lam) proportional to 1/lam) and phi = 0 (a
flat prior on mu) are always allowed: lam's integral above is finite for every a, b >= 0. An
improper prior cannot be simulated (SBC and Geweke need proper priors). The exercise sheet's
choice, a flat mu, Jeffreys' sigma^2 and tau^2 ~ inverse-Gamma(1/2, 1/2), is `Priors.course()`.
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

    Improper limits are allowed wherever the posterior stays proper (the module docstring
    derives the rule): a = b = 0 (Jeffreys' prior on sigma^2), phi = 0 (a flat mu), and omega's
    prior omega^(c-1) e^(-d omega) whenever, for data of m schools,

        c > -m'/2  and  (d > 0 or c < 0),    m' = m - 1 if phi = 0, else m.

    c = -1, d = 0 is the flat prior on tau^2 (proper for m >= 4 under a flat mu). The half of
    the rule that holds for every data set is checked here; the half that needs m is checked by
    `require_proper_posterior`, which every engine calls on its data.

    Parameters
    ----------
    a : float, default 1.0
        Shape of lam's Gamma prior; >= 0 (0 with b = 0: Jeffreys' prior).
    b : float, default 1.0
        Rate of lam's Gamma prior; >= 0.
    c : float, default 1.0
        Shape of omega's Gamma prior; any number (<= 0: an improper prior), negative when
        d = 0, and above -m'/2 for the data (above).
    d : float, default 0.25
        Rate of omega's Gamma prior; >= 0.
    nu : float, default 0.0
        Mean of mu's normal prior.
    phi : float, default 1e-4
        Precision of mu's normal prior; >= 0 (0: a flat prior on mu).

    Raises
    ------
    PriorError
        If a parameter is not a finite number, a, b, d or phi is negative, or d = 0 with
        c >= 0 (the posterior would be improper for every data set; see the module docstring).
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
            role = {"a": "shape of lam", "b": "rate of lam", "d": "rate of omega",
                    "phi": "precision of mu"}.get(name)
            if name in ("a", "b", "d", "phi") and value < 0:
                raise PriorError(f"prior {name} (the {role}) must be >= 0 (0 is the improper "
                                 f"limit), got {value}")
            object.__setattr__(self, name, float(value))
        if self.d == 0 and self.c >= 0:
            # the likelihood tends to a positive constant as omega -> inf (module docstring)
            raise PriorError(f"the posterior is improper: with d = 0, omega's prior "
                             f"omega^(c-1) needs c < 0 (the likelihood tends to a positive "
                             f"constant as omega = 1/tau^2 -> inf); got c = {self.c:g}")

    @property
    def is_proper(self) -> bool:
        """True when every prior integrates to one (a, b, c, d and phi positive).

        Returns
        -------
        bool
            Whether the priors can be simulated.
        """
        return all(value > 0 for value in (self.a, self.b, self.c, self.d, self.phi))

    def _omega_degrees(self, m: int) -> int:
        """m' = m - 1 under a flat mu (phi = 0), which spends one school mean on locating mu,
        else m: p(y | omega) behaves as omega^(m'/2) as omega -> 0 (module docstring).
        """
        return m - 1 if self.phi == 0 else m

    def omega_moment_exists(self, k: float, m: int) -> bool:
        """Whether E[omega^k | y] is finite for data of m schools: c + k > -m'/2, and c + k < 0
        when d = 0 (m' = m - 1 when phi = 0, else m; the module docstring derives both ends).

        Parameters
        ----------
        k : float
            The power: 1 for omega's mean, 2 for its second moment, -1/2 and -1 for tau's.
        m : int
            The number of schools.

        Returns
        -------
        bool
            Whether the moment exists (for priors under which the posterior is proper).

        Examples
        --------
        >>> from hiercheck import Priors
        >>> flat_tau2 = Priors(a=0, b=0, c=-1, d=0, phi=0)
        >>> flat_tau2.omega_moment_exists(1, 100), flat_tau2.omega_moment_exists(-0.5, 100)
        (False, True)
        """
        return self.c + k > -self._omega_degrees(m) / 2 and (self.d > 0 or self.c + k < 0)

    def require_proper_posterior(self, m: int) -> None:
        """Refuse priors under which the posterior of data of m schools is improper: omega's
        prior omega^(c-1) e^(-d omega) needs c > -m'/2, with m' = m - 1 under a flat mu
        (phi = 0) and m' = m under a proper one (the module docstring derives it; c < 0 when
        d = 0 is checked on construction).

        Parameters
        ----------
        m : int
            The number of schools of the data.

        Raises
        ------
        PriorError
            If c <= -m'/2; the message states the rule.
        """
        degrees = self._omega_degrees(m)
        if self.c > -degrees / 2:
            return
        bound = "-(m - 1)/2" if self.phi == 0 else "-m/2"
        needs = f"{bound} < c < 0" if self.d == 0 else f"c > {bound}"
        given = [part for part, holds in (("d = 0", self.d == 0),
                                          ("a flat mu (phi = 0)", self.phi == 0)) if holds]
        under = f"with {' and '.join(given)}, " if given else ""
        raise PriorError(f"the posterior is improper: {under}omega's prior needs {needs} for m "
                         f"schools; got c = {self.c:g}, m = {m}")

    def require_proper(self, purpose: str) -> None:
        """Refuse improper priors for a computation that simulates from them.

        Parameters
        ----------
        purpose : str
            What needs the proper prior, for the message ("SBC", "Geweke's test").

        Raises
        ------
        PriorError
            If a, b, c, d or phi is not positive.
        """
        if not self.is_proper:
            improper = [f"{name} = {value:g}" for name, value in self.as_dict().items()
                        if name != "nu" and value <= 0]
            raise PriorError(f"{purpose} needs proper priors, and these are improper "
                             f"({', '.join(improper)}): give a, b, c, d and phi positive values")

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
            If a setting is not NAME=NUMBER with a known NAME, or `Priors` refuses the result.
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
        """log Gamma(omega; c, d) = c log d - lgamma(c) + (c - 1) log omega - d omega (without
        the constant c log d - lgamma(c) when c or d is not positive: the improper limit)

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
