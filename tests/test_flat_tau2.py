"""The course's flat prior on tau^2 (p(tau^2) proportional to 1: omega^(c-1) with c = -1, d = 0)
and the other improper priors on omega: the propriety rule of hiercheck.models.priors checked
against the posterior density's own tails, refused where it fails with the rule in the message,
and every engine that integrates over omega checked under it against a quadrature written here
from first principles."""

import math

import numpy as np
import pytest
from scipy import integrate, optimize

from hiercheck.errors import PriorError
from hiercheck.models import GroupedData, Priors, load_dataset
from hiercheck.models.engine import az
from hiercheck.samplers import exact, gibbs, marginal

FLAT_TAU2 = Priors(a=0.0, b=0.0, c=-1.0, d=0.0, phi=0.0)


def simulated(schools: int, size: int = 4, seed: int = 0) -> GroupedData:
    """`schools` schools of `size` scores, school means N(0, 1), scores N(mean, 1)."""
    rng = np.random.default_rng(seed)
    means = np.repeat(rng.normal(0.0, 1.0, schools), size)
    return GroupedData.from_arrays(np.repeat(np.arange(schools), size),
                                   rng.normal(means, 1.0), name=f"{schools} schools")


# -- the rule: the tails of the posterior density of log omega -----------------------------------

def log_density_of_log_omega(data: GroupedData, priors: Priors, v: float) -> float:
    """log p(v | y) + const, v = log omega: the shared closed form p(y | lam, omega)
    (`marginal.log_evidence_given_variances`, mu integrated out) times the priors, integrated
    over u = log lam by adaptive quadrature around its maximum; omega's prior and Jacobian,
    constant in u, are added after (inside they would swamp the integrand's digits when d > 0)."""
    omega = math.exp(v)

    def log_integrand(u):
        lam = math.exp(u)
        return float(marginal.log_evidence_given_variances(data.stats, priors, lam, omega)
                     + priors.logpdf_lam(lam) + u)

    peak = optimize.minimize_scalar(lambda u: -log_integrand(u), bounds=(-60.0, 60.0),
                                    method="bounded", options={"xatol": 1e-10}).x
    top = log_integrand(peak)
    mass, _ = integrate.quad(lambda u: math.exp(log_integrand(u) - top), peak - 30.0,
                             peak + 30.0, points=[peak], limit=200, epsabs=0.0, epsrel=1e-13)
    return top + math.log(mass) + float(priors.logpdf_omega(omega)) + v


@pytest.mark.parametrize("data", [load_dataset("mathtest"), simulated(5)], ids=["m100", "m5"])
@pytest.mark.parametrize("priors", [
    FLAT_TAU2,
    Priors(a=0.0, b=0.0, c=-1.0, d=0.0, nu=3.0, phi=0.01),
    Priors(a=2.0, b=1.0, c=-0.7, d=2.0, phi=0.0),
], ids=["flat-mu", "proper-mu", "d-positive"])
def test_the_tails_of_log_omega_have_the_derived_slopes(data, priors):
    """The derivation: in v = log omega the posterior density falls as e^((c + m'/2) v) as
    v -> -inf (m' = m - 1 under a flat mu, m under a proper one) and as e^(c v - d e^v) as
    v -> inf. The slopes between v = -40 and -38 and between 40 and 42, where w_i differs from
    its limit by e^-38 relative, match the exponents to rounding."""
    degrees = data.m - 1 if priors.phi == 0 else data.m
    low = (log_density_of_log_omega(data, priors, -38.0)
           - log_density_of_log_omega(data, priors, -40.0)) / 2.0
    assert low == pytest.approx(priors.c + degrees / 2.0, abs=1e-6)
    high = (log_density_of_log_omega(data, priors, 42.0)
            - log_density_of_log_omega(data, priors, 40.0)) / 2.0
    expected = priors.c - priors.d * (math.exp(42.0) - math.exp(40.0)) / 2.0
    assert high == pytest.approx(expected, rel=1e-9, abs=1e-6)


def test_the_flat_prior_on_tau2_is_improper_and_constructible():
    assert not FLAT_TAU2.is_proper
    assert Priors.from_string("a=0,b=0,c=-1,d=0,phi=0") == FLAT_TAU2
    with pytest.raises(PriorError, match=r"needs proper priors, and these are improper "
                                         r"\(a = 0, b = 0, c = -1, d = 0, phi = 0\)"):
        FLAT_TAU2.sample(np.random.default_rng(0), 3)


@pytest.mark.parametrize("c", [0.0, 0.5])
def test_d_zero_needs_a_negative_shape_for_every_data_set(c):
    with pytest.raises(PriorError, match="with d = 0, omega's prior omega\\^\\(c-1\\) needs c < 0"):
        Priors(c=c, d=0.0)


def engines():
    """What meets the data first in each engine: Gibbs's runner, the quadrature's grid and the
    PyMC reference model (built, not compiled)."""
    from hiercheck.models.reference import build_model

    return {
        "gibbs": lambda data, priors: gibbs.sample(data, priors, draws=5, chains=1, seed=0),
        "exact": lambda data, priors: exact.posterior(data, priors),
        "pymc": build_model,
    }


@pytest.mark.parametrize("engine", ["gibbs", "exact", "pymc"])
@pytest.mark.parametrize("priors, schools, rule", [
    (FLAT_TAU2, 3, "with d = 0 and a flat mu (phi = 0), omega's prior needs -(m - 1)/2 < c < 0 "
                   "for m schools; got c = -1, m = 3"),
    (Priors(c=-1.5, d=0.0, phi=1.0), 3, "with d = 0, omega's prior needs -m/2 < c < 0 for m "
                                        "schools; got c = -1.5, m = 3"),
    (Priors(c=-2.0, d=1.0, phi=0.0), 5, "with a flat mu (phi = 0), omega's prior needs "
                                        "c > -(m - 1)/2 for m schools; got c = -2, m = 5"),
])
def test_an_improper_posterior_is_refused_with_the_rule(engine, priors, schools, rule):
    """On the boundary c = -m'/2 the density of log omega is flat as v -> -inf: improper."""
    with pytest.raises(PriorError) as caught:
        engines()[engine](simulated(schools), priors)
    assert str(caught.value) == f"the posterior is improper: {rule}"


@pytest.mark.parametrize("engine", ["gibbs", "exact", "pymc"])
def test_one_school_more_makes_it_proper(engine):
    engines()[engine](simulated(4), FLAT_TAU2)


# -- the engines under the flat prior on tau^2 ---------------------------------------------------

class FirstPrinciples:
    """The posterior of v = log omega under a = b = phi = 0 and omega^(c-1), d = 0, from the raw
    scores: theta integrated out, then mu (flat) and lam (p(lam) proportional to 1/lam),

        p(v | y) proportional to omega^c (prod_i w_i)^(1/2) (sum_i w_i)^(-1/2)
                                 ((SS + Q(omega)) / 2)^(-(N - 1)/2),

    w_i = n_i omega / (n_i + omega), Q the w-weighted spread of the school means, SS the
    within-school sum of squares (omega^(c-1) times the Jacobian omega). Integrals by adaptive
    quadrature over v in [-700, 700], split at the mode."""

    def __init__(self, data: GroupedData, c: float):
        self.n = np.bincount(data.codes).astype(float)
        self.ybar = np.bincount(data.codes, data.values) / self.n
        self.within = float(((data.values - self.ybar[data.codes]) ** 2).sum())
        self.N, self.c = data.values.size, c
        self.mode = optimize.minimize_scalar(lambda v: -self.log_density(v), bounds=(-50, 50),
                                             method="bounded", options={"xatol": 1e-10}).x
        self.top = self.log_density(self.mode)
        self.total = self.integral(lambda v: 1.0)

    def log_density(self, v: float) -> float:
        w = self.n / (1.0 + self.n * math.exp(-v))
        pooled = (w * self.ybar).sum() / w.sum()
        spread = (w * (self.ybar - pooled) ** 2).sum()
        return (self.c * v + 0.5 * np.log(w).sum() - 0.5 * math.log(w.sum())
                - 0.5 * (self.N - 1) * math.log((self.within + spread) / 2.0))

    def integral(self, g, upper: float = 700.0) -> float:
        cuts = [-700.0, self.mode - 20.0, self.mode, self.mode + 20.0, 700.0]
        total = 0.0
        for low, high in zip(cuts, cuts[1:]):
            high = min(high, upper)
            if low < high:
                total += integrate.quad(lambda v: g(v) * math.exp(self.log_density(v) - self.top),
                                        low, high, limit=500, epsabs=0.0, epsrel=1e-12)[0]
        return total

    def expectation(self, g, upper: float = 700.0) -> float:
        return self.integral(g, upper) / self.total


@pytest.mark.parametrize("name, c", [("mathtest", -1.0), ("rail", -1.0), ("dyestuff", -1.0),
                                     ("dyestuff", -1.8)])
def test_the_exact_posterior_of_omega_is_the_first_principles_quadrature(name, c):
    """Quantiles of omega, the mean and SD of tau, and E[omega | y], where each exists
    (`Priors.omega_moment_exists`), against the quadrature above; inf where the moment does
    not exist: E[omega | y] for c = -1 (density omega^-2 at infinity), tau's SD for c = -1.8 on
    six schools (c - 1 <= -(m - 1)/2), and then mu's SD too."""
    data = load_dataset(name)
    priors = Priors(a=0.0, b=0.0, c=c, d=0.0, phi=0.0)
    posterior = exact.posterior(data, priors)
    truth = FirstPrinciples(data, c)
    levels = np.array([0.05, 0.5, 0.95])
    for level, x in zip(levels, posterior.quantile("omega", levels)):
        assert truth.expectation(lambda v: 1.0, upper=math.log(x)) == pytest.approx(level,
                                                                                     abs=1e-9)
    tau = truth.expectation(lambda v: math.exp(-v / 2))
    assert posterior.mean("tau") == pytest.approx(tau, rel=1e-9)
    if priors.omega_moment_exists(-1.0, data.m):
        tau_sd = math.sqrt(truth.expectation(lambda v: math.exp(-v)) - tau * tau)
        assert posterior.sd("tau") == pytest.approx(tau_sd, rel=1e-8)
    else:
        assert posterior.sd("tau") == math.inf and posterior.sd("mu") == math.inf
    if priors.omega_moment_exists(1.0, data.m):
        assert posterior.mean("omega") == pytest.approx(truth.expectation(math.exp), rel=1e-9)
    else:
        assert posterior.mean("omega") == math.inf
    assert posterior.sd("omega") == math.inf  # c + 2 >= 0: no second moment at infinity


def test_gibbs_agrees_with_the_quadrature_under_the_flat_prior_on_tau2(mathtest):
    """Four Gibbs chains of 20,000 draws on the math-test data under a = b = phi = 0,
    c = -1, d = 0: the posterior means of omega, tau, sigma and mu within 4 Monte Carlo
    standard errors (ArviZ's, from the ESS) of the quadrature; seeded.

    E[omega | y] itself is infinite (the density falls as omega^-2 once p(y | omega) has
    levelled off at p(y | tau = 0)), so the mean compared is E[omega; omega <= 1000], 3.5805:
    at omega = 1000 the density of log omega is e^-124 of its peak, so no run will ever draw
    beyond it (none did), and each unit of log omega beyond adds less than e^-116 to the mean
    (omega p(log omega | y) falls from there to its limit)."""
    truth = FirstPrinciples(mathtest, -1.0)
    limit = math.log(1000.0)
    assert truth.log_density(limit) - truth.top < -124
    beyond = [truth.log_density(v) + v for v in np.linspace(limit, 40.0, 60)]
    assert max(beyond) - truth.top - math.log(truth.total) < -116
    omega_bulk = truth.expectation(math.exp, upper=limit)
    assert omega_bulk == pytest.approx(3.5805, abs=1e-4)
    exact_posterior = exact.posterior(mathtest, FLAT_TAU2)
    expected = {"omega": omega_bulk, "tau": truth.expectation(lambda v: math.exp(-v / 2)),
                "sigma": exact_posterior.mean("sigma"), "mu": exact_posterior.mean("mu")}
    draws = gibbs.sample(mathtest, FLAT_TAU2, draws=20_000, chains=4, seed=11)
    assert float(draws.posterior["omega"].max()) < 1000.0
    mcse = az.mcse(draws, var_names=list(expected))
    for name, value in expected.items():
        z = (float(draws.posterior[name].mean()) - value) / float(mcse[name])
        assert abs(z) < 4, (name, z)


@pytest.mark.slow
def test_the_reference_model_writes_the_flat_prior_on_tau2(mathtest):
    """The PyMC joint density under c = -1, d = 0 differs from its value under a proper
    omega ~ Gamma(1, 1) by exactly -2 log omega - (-omega), up to a constant."""
    from hiercheck.models.reference import joint_logp_function

    flat, proper = (joint_logp_function(mathtest, Priors(a=0.0, b=0.0, c=c, d=d, phi=0.0))
                    for c, d in ((-1.0, 0.0), (1.0, 1.0)))
    rng = np.random.default_rng(4)
    differences = []
    for _ in range(4):
        theta, mu = rng.normal(48, 3, mathtest.m), rng.normal(48, 1)
        lam, omega = rng.gamma(5, 0.01), rng.gamma(5, 0.5)
        expected = -2.0 * math.log(omega) - (-omega)
        differences.append(flat(theta, mu, lam, omega) - proper(theta, mu, lam, omega) - expected)
    np.testing.assert_allclose(differences, differences[0], atol=1e-8)
