"""check_gibbs's consistency check on a variable whose PyMC transform changes its number of values:
a covariance matrix Sigma (p x p) sampled through its log-Cholesky factor (p(p+1)/2 values).

The model, as a user writes it: n = 40 observations y_j ~ N_3(m, Sigma), m_k ~ N(0, 10^2),
Sigma ~ IW(df, Psi) with df = 5, Psi = I (`hiercheck.models.inverse_wishart`). Its conditionals,
derived here independently of the package:

    m | Sigma, y   ~ N(A^{-1} Sigma^{-1} sum_j y_j, A^{-1}),   A = n Sigma^{-1} + I / 100
    Sigma | m, y   ~ IW(df + n, Psi + sum_j (y_j - m)(y_j - m)')

(the IW kernel |Sigma|^{-(df + p + 1)/2} exp(-tr(Psi Sigma^{-1})/2) times n normal densities,
each |Sigma|^{-1/2} exp(-(y_j - m)' Sigma^{-1} (y_j - m)/2): one degree of freedom per
observation). Two slips: the Gamma habit of n/2 degrees of freedom, and IW(df + n, diag(Psi'))
with Psi' the right scale, whose diagonal entries Sigma_kk have the right marginals
(InvGamma((df' - p + 1)/2, Psi'_kk/2) depends on Psi'_kk alone) but whose correlations are lost.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import linalg
from scipy import stats as st

from hiercheck.errors import UserFunctionError
from hiercheck.validation import generic
from hiercheck.validation.pymc_model import _cholesky_lower, _solve, _solve_lower
from hiercheck.validation.result import ALPHA

P, N, DF = 3, 40, 5.0
PSI = np.eye(P)
TRUE_SIGMA = np.array([[1.0, 0.7, 0.3], [0.7, 1.0, 0.5], [0.3, 0.5, 1.0]])
Y = np.random.default_rng(3).multivariate_normal([1.0, -1.0, 0.5], TRUE_SIGMA, size=N)


def covariance_model():
    import pymc as pm

    from hiercheck.models.inverse_wishart import inverse_wishart

    # 0-d arrays: PyTensor makes a Python float such as 10.0 a float32 constant, and log(10)
    # or log Gamma_p(df/2) in float32 is off by 1e-7
    with pm.Model() as model:
        m = pm.Normal("m", 0.0, np.array(10.0), shape=P)
        Sigma = inverse_wishart("Sigma", np.array(DF), PSI, p=P)
        pm.MvNormal("y", m, Sigma, observed=Y)
    return model


def draw_m(rng, state, data):
    precision = np.linalg.inv(state["Sigma"])
    covariance = np.linalg.inv(len(data["y"]) * precision + np.eye(P) / 100)
    return rng.multivariate_normal(covariance @ precision @ data["y"].sum(axis=0), covariance)


def _scale(state, data):
    residuals = data["y"] - state["m"]
    return PSI + residuals.T @ residuals


def draw_Sigma(rng, state, data):
    return st.invwishart.rvs(DF + len(data["y"]), _scale(state, data), random_state=rng)


def draw_Sigma_half_df(rng, state, data):
    """IW(df + n/2, Psi + S)  [wrong: each observation adds one degree of freedom]"""
    return st.invwishart.rvs(DF + len(data["y"]) / 2, _scale(state, data), random_state=rng)


def draw_Sigma_scale_too_large(rng, state, data):
    """IW(df + n, 1.05 (Psi + S))  [wrong: the scale matrix 5% too large]"""
    return st.invwishart.rvs(DF + len(data["y"]), 1.05 * _scale(state, data), random_state=rng)


def draw_Sigma_without_correlation(rng, state, data):
    """IW(df + n, diag(Psi + S))  [wrong: the right Sigma_kk marginals, no correlation]"""
    return st.invwishart.rvs(DF + len(data["y"]), np.diag(np.diag(_scale(state, data))),
                             random_state=rng)


def draw_Sigma_not_symmetric(rng, state, data):
    return np.triu(draw_Sigma(rng, state, data))


def draw_Sigma_not_positive_definite(rng, state, data):
    return draw_Sigma(rng, state, data) - 10.0 * np.eye(P)


CONDITIONALS = {"m": draw_m, "Sigma": draw_Sigma}


# -- the batched linear algebra of the compiled density, against scipy (fast) ---------------------

def test_batched_cholesky_and_solves_match_scipy_and_give_nan_where_scipy_fails():
    rng = np.random.default_rng(0)
    matrices = st.invwishart.rvs(6, np.eye(3), size=(4, 5), random_state=rng)   # (4, 5, 3, 3)
    matrices[1, 2] = -np.eye(3)                                                  # not PD
    right = rng.normal(size=(5, 3, 7))                                           # broadcast
    factors = _cholesky_lower(matrices)
    assert np.isnan(factors[1, 2]).all() and np.isfinite(np.delete(factors.reshape(20, 3, 3),
                                                                    7, axis=0)).all()
    for i, j in np.ndindex(4, 5):
        if (i, j) == (1, 2):
            continue
        factor = linalg.cholesky(matrices[i, j], lower=True)
        np.testing.assert_allclose(factors[i, j], factor, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(_solve_lower(factors, right)[i, j],
                                   linalg.solve_triangular(factor, right[j], lower=True),
                                   rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(_solve(matrices, right)[i, j],
                                   linalg.solve(matrices[i, j], right[j], assume_a="pos"),
                                   rtol=1e-10, atol=1e-12)
    singular = np.stack([np.eye(3), np.zeros((3, 3))])
    solved = _solve(singular, np.ones((2, 3, 1)))
    assert np.isfinite(solved[0]).all() and np.isnan(solved[1]).all()


def test_a_resized_variable_is_one_component_whatever_its_terms():
    """Elements 2..4 (a resized variable's values) share no term here, yet form one component."""
    dependencies = np.zeros((5, 4), dtype=bool)
    dependencies[[0, 1], 0] = True
    components = generic._components(dependencies, [np.arange(2, 5)])
    assert sorted(map(list, components)) == [[0, 1], [2, 3, 4]]


# -- the compiled model (compiles PyMC: slow) -----------------------------------------------------

def covariance_references(settings=replace(generic.GENERIC_QUICK, posterior_points=2,
                                           prior_points=1)):
    """The model's references with its posterior states taken from 400 sweeps of the exact
    conjugate conditionals (any states serve an invariance test; this spares NUTS), its prior
    states simulated by the model."""
    references = generic.ModelReferences(covariance_model(), settings, 0, "covariance")
    rng, state, data = np.random.default_rng(1), {"m": Y.mean(axis=0), "Sigma": np.cov(Y.T)}, {"y": Y}
    draws = {"m": [], "Sigma": []}
    for _ in range(400):
        state = state | {"m": draw_m(rng, state, data)}
        state["Sigma"] = draw_Sigma(rng, state, data)
        for name in draws:
            draws[name].append(state[name])
    references.__dict__["nuts"] = {name: np.reshape(values, (4, 100, *np.shape(values[0])))
                                   for name, values in draws.items()}
    return references


@pytest.fixture(scope="module")
def references():
    """Two posterior states and one prior state (`covariance_references`)."""
    return covariance_references()


def _log_cholesky(matrices):
    """The lower triangle of chol(Sigma), row by row, diagonal logged: numpy, per matrix."""
    rows, cols = np.tril_indices(P)
    factors = np.linalg.cholesky(matrices)
    u = factors[:, rows, cols]
    u[:, rows == cols] = np.log(u[:, rows == cols])
    return u


@pytest.mark.slow
def test_the_compiled_transforms_are_the_log_cholesky_map(references):
    compiled = references.compiled
    sigma = compiled.variables["Sigma"]
    assert (sigma.shape, sigma.unconstrained_shape, sigma.resized, sigma.transform) == \
        ((P, P), (P * (P + 1) // 2,), True, "log-cholesky")
    assert not compiled.variables["m"].resized
    assert compiled.variables["m"].unconstrained_names() == ["m[0]", "m[1]", "m[2]"]
    rng = np.random.default_rng(2)
    matrices = st.invwishart.rvs(8, TRUE_SIGMA, size=50, random_state=rng)
    u = compiled.to_unconstrained({"m": rng.normal(size=(50, P)), "Sigma": matrices})
    np.testing.assert_allclose(u["Sigma"], _log_cholesky(matrices), rtol=1e-10, atol=1e-12)
    free = rng.normal(size=(50, P * (P + 1) // 2))
    back = compiled.to_natural({"m": u["m"], "Sigma": free})["Sigma"]
    np.testing.assert_allclose(_log_cholesky(back), free, rtol=1e-9, atol=1e-11)


@pytest.mark.slow
def test_the_compiled_log_density_is_scipys_with_the_jacobian(references):
    """Term sums against scipy's normal, multivariate normal and inverse Wishart densities plus
    log |d vech Sigma / d u| = p log 2 + sum_k (p - k + 2) log L_kk (k = 1..p), at 200 points:
    this runs the batched solves and factors of the compiled density."""
    compiled, rng = references.compiled, np.random.default_rng(5)
    matrices = st.invwishart.rvs(8, TRUE_SIGMA, size=200, random_state=rng)
    means = rng.normal(size=(200, P))
    terms, _ = compiled.evaluate(compiled.to_unconstrained({"m": means, "Sigma": matrices}))
    diagonal = np.diagonal(np.linalg.cholesky(matrices), axis1=1, axis2=2)
    jacobian = P * np.log(2) + np.log(diagonal) @ (P + 1 - np.arange(P))
    expected = np.array([st.norm(0, 10).logpdf(m).sum() + st.invwishart(DF, PSI).logpdf(S)
                         + st.multivariate_normal(m, S).logpdf(Y).sum()
                         for m, S in zip(means, matrices)]) + jacobian
    np.testing.assert_allclose(terms.sum(axis=1), expected, rtol=1e-10)


def _consistency(references, conditionals):
    [outcome] = generic.check_gibbs(references.model, conditionals, references=references,
                                    checks=("consistency",), seed=0).outcomes
    return outcome


@pytest.mark.slow
def test_the_conjugate_sweep_passes_consistency(references):
    outcome = _consistency(references, CONDITIONALS)
    assert outcome.passed and outcome.value > ALPHA, str(outcome.table)
    sigma = outcome.table[(outcome.table.block == "Sigma") & (outcome.table.stage == 0)]
    per_state = sigma[(sigma.origin != "pooled") & (sigma.test != "repeatable")]
    assert set(per_state.coordinate) == {"(Sigma:u[0], ..., Sigma:u[5]: 6 coupled)"}
    assert len(per_state) == 3 * (6 + 15 + 1)  # 3 states x (KS per coordinate, pairs, |z|^2)
    assert (per_state.moved == 1).all()
    # Sigma's conditional is an exact inverse Wishart: over the states, |z|^2 and each z[j];
    # and the function called twice alike
    assert (sigma.origin == "pooled").sum() == 1 + 6 and (sigma.test == "repeatable").sum() == 1


@pytest.mark.slow
@pytest.mark.parametrize("slip", [draw_Sigma_half_df, draw_Sigma_without_correlation])
def test_a_wrong_Sigma_conditional_fails_consistency(references, slip):
    outcome = _consistency(references, CONDITIONALS | {"Sigma": slip})
    sigma = outcome.table[outcome.table.block == "Sigma"]
    assert not outcome.passed
    assert sigma.p_holm.min() < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize(("slip", "problem"), [(draw_Sigma_not_symmetric, "not_symmetric"),
                                               (draw_Sigma_not_positive_definite,
                                                "not_positive_definite")])
def test_a_matrix_outside_the_support_is_named(references, slip, problem):
    with pytest.raises(UserFunctionError, match=rf"^draw_Sigma_{problem} returned a value of "
                       r"'Sigma' outside its support at call 1 of 1000: PyMC's 'log-cholesky' "
                       r"transform does not map it back to itself \(a covariance matrix must "
                       r"be symmetric positive definite\): \[\["):
        _consistency(references, CONDITIONALS | {"Sigma": slip})
