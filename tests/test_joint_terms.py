"""Every term of the joint in the reference, potentials included.

The terms both harnesses evaluate (`hiercheck.models.joint.joint_terms`: the flagship's
`log_density_terms_function`, the generic `CompiledModel.evaluate`) sum to PyMC's own compiled
joint log density (`model.compile_logp`) on every built-in model and on models whose prior is a
`pm.Potential`. Under the course's priors lam's prior 1/lam is such a potential: the package's own
conditionals pass the flagship's consistency check there, and a lam drawn without that factor
fails it; the generic check tells a draw with a model's Jeffreys potential from one without.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from hiercheck.models import Priors, load_dataset

POTENTIAL_MODELS = ("mathtest under the course priors", "jeffreys normal", "coupled normals")


def jeffreys_normal_model(seed=5, n=30):
    """y_i ~ N(mu, sigma2), i = 1..n, under a flat mu and Jeffreys' p(sigma2) = 1/sigma2, the
    latter a pm.Potential -log sigma2 on a HalfFlat sigma2."""
    import pymc as pm

    y = np.random.default_rng(seed).normal(3.0, 2.0, n)
    with pm.Model() as model:
        mu = pm.Flat("mu")
        sigma2 = pm.HalfFlat("sigma2")
        pm.Potential("jeffreys", -pm.math.log(sigma2))
        pm.Normal("y", mu, sigma=pm.math.sqrt(sigma2), observed=y)
    return model


def draw_mu(rng, state, data):
    """mu | sigma2, y ~ N(ybar, sigma2 / n)"""
    y = data["y"]
    return rng.normal(y.mean(), np.sqrt(state["sigma2"] / y.size))


def draw_sigma2(rng, state, data, shape_shift=0.0):
    """sigma2 | mu, y ~ inverse-Gamma(n/2, S/2), S = sum_i (y_i - mu)^2: the likelihood's
    sigma2^(-n/2) exp(-S / (2 sigma2)) times Jeffreys' 1/sigma2."""
    y = data["y"]
    return ((y - state["mu"]) ** 2).sum() / 2 / rng.gamma(y.size / 2 + shape_shift)


def draw_sigma2_without_jeffreys(rng, state, data):
    """The likelihood alone, as if the potential were not there: inverse-Gamma(n/2 - 1, S/2)."""
    return draw_sigma2(rng, state, data, shape_shift=-1.0)


def coupled_model(seed=6):
    """a ~ N(0, 1), b_k ~ N(0, 1) (k = 1..3), y_j ~ N(a, 1) observed (j = 1..10), and the
    potential -2 (a - b_k)^2, one value per k: it couples a with each b_k, and the b_k with each
    other only through a."""
    import pymc as pm

    y = np.random.default_rng(seed).normal(1.0, 1.0, 10)
    with pm.Model() as model:
        a = pm.Normal("a")
        b = pm.Normal("b", shape=3)
        pm.Potential("coupling", -2.0 * (a - b) ** 2)
        pm.Normal("y", a, 1.0, observed=y)
    return model


def build(name):
    from hiercheck.validation.builtin_models import BUILTIN_MODELS

    if name in BUILTIN_MODELS:
        builtin = BUILTIN_MODELS[name]
        return builtin.build_model(builtin.load())
    if name == "mathtest under the course priors":
        from hiercheck.models.reference import build_model

        return build_model(load_dataset("mathtest"), Priors.course())
    return {"jeffreys normal": jeffreys_normal_model, "coupled normals": coupled_model}[name]()


def builtin_names():
    from hiercheck.validation.builtin_models import BUILTIN_MODELS

    return list(BUILTIN_MODELS)


# -- the terms against PyMC's compiled joint ----------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", builtin_names() + list(POTENTIAL_MODELS))
def test_the_generic_terms_sum_to_the_compiled_joint(name):
    """At random points about the initial point on PyMC's unconstrained scale (two on the large
    cheese model), Jacobian included on both sides; every potential owns a term."""
    from hiercheck.validation.pymc_model import CompiledModel

    model = build(name)
    compiled = CompiledModel(model)
    points = 2 if name == "cheese" else 4
    rng = np.random.default_rng(7)
    u = {value: start + rng.normal(0.0, 0.3, (points, *np.shape(start)))
         for value, start in model.initial_point().items()}
    terms, _ = compiled.evaluate({rv.name: u[model.rvs_to_values[rv].name]
                                  for rv in model.free_RVs})
    joint = model.compile_logp(jacobian=True)
    expected = [joint({value: point[k] for value, point in u.items()}) for k in range(points)]
    np.testing.assert_allclose(terms.sum(axis=1), expected, rtol=1e-10)
    assert {potential.name for potential in model.potentials} <= set(compiled.term_owners)


@pytest.mark.slow
@pytest.mark.parametrize("course", [True, False], ids=["course priors", "weakly informative"])
def test_the_flagship_terms_sum_to_its_joint(course):
    """At exact posterior states of mathtest: the terms (K points in one call) total the joint
    log density, point by point; the potential "lam_prior" is among them exactly when lam's prior
    is improper. The densities the consistency check tabulates, theta's block and lam, differ
    from the joint by a constant along their coordinate, so they hold every term that moves
    with it, the potential included."""
    from hiercheck.models.reference import joint_logp_function, log_density_terms_function
    from hiercheck.validation import consistency

    data = load_dataset("mathtest")
    priors = Priors.course() if course else Priors.weakly_informative(data)
    terms, joint = log_density_terms_function(data, priors), joint_logp_function(data, priors)
    states = consistency.states_from_exact_posterior(data, priors, 4, seed=8)
    values = terms(*(np.array([getattr(s, name) for s in states])
                     for name in ("theta", "mu", "lam", "omega")))
    potential = {"lam_prior"} if course else set()
    assert set(values) == {"lam", "omega", "mu", "theta", "y"} | potential
    totals = sum(value.reshape(len(states), -1).sum(axis=1) for value in values.values())
    expected = [joint(s.theta, s.mu, s.lam, s.omega) for s in states]
    np.testing.assert_allclose(totals, expected, rtol=1e-10)

    state, rng = states[0], np.random.default_rng(9)
    thetas = state.theta + rng.normal(0.0, 1.0, (5, data.m))
    schools = consistency.school_log_densities(terms, state, data)(thetas).sum(axis=1)
    offsets = schools - [joint(theta, state.mu, state.lam, state.omega) for theta in thetas]
    np.testing.assert_allclose(offsets, offsets[0], rtol=0, atol=1e-8)
    lams = state.lam * np.exp(rng.normal(0.0, 0.1, 5))
    lam = consistency.scalar_log_density(terms, state, "lam", data)(lams[:, None])[:, 0]
    expected = [joint(state.theta, state.mu, value, state.omega) for value in lams]
    np.testing.assert_allclose(lam, expected, rtol=1e-10)


@pytest.mark.slow
def test_a_potential_couples_the_elements_it_reads():
    """The generic consistency check finds a block's structure from the terms that move with each
    element: the coupling potential's value k moves with a and with b_k alone, so the four
    elements form one component, drawn jointly."""
    from hiercheck.validation import generic
    from hiercheck.validation.pymc_model import CompiledModel

    model = coupled_model()
    compiled = CompiledModel(model)
    layout = generic._Layout(("a", "b"), compiled.variables)
    start = model.initial_point()
    u = {rv.name: np.asarray(start[model.rvs_to_values[rv].name])[None] for rv in model.free_RVs}
    dependencies = generic._dependencies(compiled, layout, u)
    coupling = dependencies[:, compiled.term_owners == "coupling"]
    np.testing.assert_array_equal(coupling, [[True, True, True], *np.eye(3, dtype=bool)])
    [component] = generic._components(dependencies)
    assert list(component) == [0, 1, 2, 3]


# -- consistency under a potential prior -----------------------------------------------------------

@pytest.mark.slow
def test_the_packages_conditionals_pass_consistency_under_the_course_priors():
    """Jeffreys' 1/lam is a pm.Potential of the reference model. The package's own conditionals
    pass the consistency check on mathtest (a reference without the potential failed them, min
    Holm-adjusted p 3.1e-8 at lam); a draw of lam without the factor 1/lam (a flat prior on lam,
    shape one more) fails, at lam alone."""
    from hiercheck.samplers import gibbs
    from hiercheck.validation.suite import QUICK, References, check_sampler

    def draw_lam_without_jeffreys(rng, state, stats, priors):
        return gibbs.draw_lam(rng, state, stats, replace(priors, a=1.0))

    references = References(load_dataset("mathtest"), Priors.course(), QUICK, seed=0)
    correct = check_sampler(references=references, checks=("consistency",), seed=0)
    assert correct["consistency"].passed, str(correct)
    slip = check_sampler(gibbs.Conditionals(draw_lam=draw_lam_without_jeffreys),
                         references=references, checks=("consistency",), seed=0)
    outcome = slip["consistency"]
    assert not outcome.passed, str(slip)
    failing = outcome.table[~outcome.table.agree]
    assert set(failing.coordinate) == {"lam"}


@pytest.fixture(scope="module")
def jeffreys_normal():
    from hiercheck.validation.generic import GENERIC_QUICK, ModelReferences

    return ModelReferences(jeffreys_normal_model(), GENERIC_QUICK, 0, "jeffreys normal")


def _consistency(references, conditionals):
    from hiercheck.validation import generic

    verdict = generic.check_gibbs(references.model, conditionals, references=references,
                                  checks=("consistency",), seed=0)
    [outcome] = verdict.outcomes
    return outcome


@pytest.mark.slow
def test_the_exact_conditionals_of_a_jeffreys_potential_pass_consistency(jeffreys_normal):
    outcome = _consistency(jeffreys_normal, {"mu": draw_mu, "sigma2": draw_sigma2})
    assert outcome.passed, outcome.table.sort_values("p").head()
    assert set(outcome.table.block) == {"mu", "sigma2"}


@pytest.mark.slow
def test_a_conditional_that_ignores_the_potential_fails_consistency(jeffreys_normal):
    outcome = _consistency(jeffreys_normal, {"mu": draw_mu, "sigma2": draw_sigma2_without_jeffreys})
    assert not outcome.passed
    assert set(outcome.table[~outcome.table.agree].block) == {"sigma2"}
