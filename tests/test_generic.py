"""check_gibbs on models it has never seen, written as a user would write them; and its parts
(the user's mapping and functions, the grids, the reference chains, the multivariate tests)
against independent computations.

The models here (counts with a gamma rate per group, a linear regression whose coefficients are
drawn as one block, a variance-components model with (mu, a) drawn jointly, a change point) and
their conditionals are derived in the docstrings, independently of the package.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special
from scipy import stats as st

from hiercheck.errors import SettingsError, UserFunctionError
from hiercheck.validation import generic
from hiercheck.validation.agreement import holm_adjust
from hiercheck.validation.generic import Block, call_block, parse_conditionals
from hiercheck.validation.pymc_model import Variable
from hiercheck.validation.two_sample import two_sample_tests, whiten


# -- the models, as a user writes them ------------------------------------------------------------

def poisson_gamma_model(seed=1, groups=20):
    """y_ij ~ Poisson(theta_i), theta_i ~ Gamma(alpha, beta), alpha ~ Exp(1), beta ~ Gamma(2, 1):
    20 groups of 10 to 29 counts."""
    import pymc as pm

    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(groups), rng.integers(10, 30, groups))
    counts = rng.poisson(rng.gamma(3.0, 1.0, groups)[group])
    with pm.Model() as model:
        g = pm.Data("group", group)
        alpha = pm.Exponential("alpha", 1.0)
        beta = pm.Gamma("beta", 2.0, 1.0)
        theta = pm.Gamma("theta", alpha, beta, shape=groups)
        pm.Poisson("y", theta[g], observed=counts)
    return model


def _group_sums(state, data):
    m = state["theta"].size
    return (np.bincount(data["group"], weights=data["y"], minlength=m),
            np.bincount(data["group"], minlength=m))


def draw_theta(rng, state, data):
    """theta_i | . ~ Gamma(alpha + sum_j y_ij, beta + n_i)  (shape, rate)"""
    totals, counts = _group_sums(state, data)
    return rng.gamma(state["alpha"] + totals, 1.0 / (state["beta"] + counts))


def draw_theta_rate_off_by_one(rng, state, data):
    """theta_i | . ~ Gamma(alpha + sum_j y_ij, beta + n_i - 1)  [wrong]"""
    totals, counts = _group_sums(state, data)
    return rng.gamma(state["alpha"] + totals, 1.0 / (state["beta"] + counts - 1))


def draw_beta(rng, state, data):
    """beta | . ~ Gamma(2 + m alpha, 1 + sum_i theta_i)"""
    return rng.gamma(2.0 + state["theta"].size * state["alpha"], 1.0 / (1.0 + state["theta"].sum()))


def _log_alpha_density(alpha, state):
    """log p(alpha | .) = -alpha + m alpha log beta + (alpha - 1) sum log theta_i - m log Gamma(alpha)"""
    m = state["theta"].size
    return (-alpha + m * alpha * np.log(state["beta"])
            + (alpha - 1) * np.log(state["theta"]).sum() - m * special.gammaln(alpha))


def draw_alpha(rng, state, data, jacobian=True):
    """Five random-walk Metropolis steps on log alpha: a kernel, not a direct draw. The proposal is
    symmetric in log alpha, so the acceptance ratio carries the Jacobian alpha'/alpha."""
    alpha = float(state["alpha"])
    for _ in range(5):
        proposal = alpha * np.exp(0.3 * rng.standard_normal())
        log_ratio = _log_alpha_density(proposal, state) - _log_alpha_density(alpha, state)
        if jacobian:
            log_ratio += np.log(proposal / alpha)
        if np.log(rng.uniform()) < log_ratio:
            alpha = proposal
    return alpha


def draw_alpha_without_jacobian(rng, state, data):
    """The same kernel without the Jacobian: it leaves p(log alpha | .) / alpha invariant  [wrong]"""
    return draw_alpha(rng, state, data, jacobian=False)


POISSON_GAMMA = {"theta": draw_theta, "beta": draw_beta, "alpha": draw_alpha}


def regression_model(seed=2, n=100, flat=False):
    """y = X beta + e, e ~ N(0, 1/tau), beta ~ N(0, 10^2 I) (or flat), tau ~ Gamma(2, 1); the
    columns of X correlated (0.8, 0.5, 0.6), so beta's conditional is strongly correlated."""
    import pymc as pm

    rng = np.random.default_rng(seed)
    correlation = np.array([[1, .8, .5], [.8, 1, .6], [.5, .6, 1]])
    x = rng.standard_normal((n, 3)) @ np.linalg.cholesky(correlation).T
    y = x @ np.array([1.0, -0.5, 2.0]) + rng.standard_normal(n) / 2
    with pm.Model() as model:
        design = pm.Data("X", x)
        beta = pm.Flat("beta", shape=3) if flat else pm.Normal("beta", 0.0, 10.0, shape=3)
        tau = pm.Gamma("tau", 2.0, 1.0)
        pm.Normal("y", design @ beta, tau=tau, observed=y)
    return model


def _beta_conditional(state, data, prior_precision):
    """beta | tau, y ~ N(V tau X'y, V), V = (tau X'X + P)^-1"""
    x, y, tau = data["X"], data["y"], state["tau"]
    covariance = np.linalg.inv(tau * x.T @ x + prior_precision * np.eye(x.shape[1]))
    return covariance @ (tau * x.T @ y), covariance


def draw_beta_block(rng, state, data, prior_precision=0.01):
    """beta as one block, from its multivariate normal conditional."""
    mean, covariance = _beta_conditional(state, data, prior_precision)
    return rng.multivariate_normal(mean, covariance)


def draw_beta_flat(rng, state, data):
    return draw_beta_block(rng, state, data, prior_precision=0.0)


def draw_beta_independent(rng, state, data):
    """Each beta_k from its marginal conditional, independently: the right marginals and the
    wrong (zero) correlation  [wrong]"""
    mean, covariance = _beta_conditional(state, data, 0.01)
    return mean + np.sqrt(np.diag(covariance)) * rng.standard_normal(mean.size)


def draw_tau(rng, state, data):
    """tau | beta, y ~ Gamma(2 + n/2, 1 + |y - X beta|^2 / 2)"""
    residual = data["y"] - data["X"] @ state["beta"]
    return rng.gamma(2.0 + residual.size / 2, 1.0 / (1.0 + residual @ residual / 2))


def draw_tau_shape_without_half(rng, state, data):
    """tau | beta, y ~ Gamma(2 + n, ...)  [the 1/2 of the shape left out]"""
    residual = data["y"] - data["X"] @ state["beta"]
    return rng.gamma(2.0 + residual.size, 1.0 / (1.0 + residual @ residual / 2))


REGRESSION = {"beta": draw_beta_block, "tau": draw_tau}


def components_model(seed=3, groups=20):
    """y_ij = mu + a_i + e_ij: a_i ~ N(0, 1/tau_a), e_ij ~ N(0, 1/tau_e), mu ~ N(0, 100^2),
    tau_e, tau_a ~ Gamma(2, 1); 20 groups of 12 to 29 (the size of the blood-pressure data)."""
    import pymc as pm

    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(groups), rng.integers(12, 30, groups))
    y = 5 + rng.normal(0, 1, groups)[group] + rng.normal(0, 2, group.size)
    with pm.Model() as model:
        g = pm.Data("group", group)
        mu = pm.Normal("mu", 0.0, 100.0)
        tau_e = pm.Gamma("tau_e", 2.0, 1.0)
        tau_a = pm.Gamma("tau_a", 2.0, 1.0)
        a = pm.Normal("a", 0.0, tau=tau_a, shape=groups)
        pm.Normal("y", mu + a[g], tau=tau_e, observed=y)
    return model


def _mu_a_conditional(state, data):
    """(mu, a) | tau_e, tau_a, y ~ N(Q^-1 b, Q^-1) with
    Q = [[1e-4 + tau_e N, tau_e n'], [tau_e n, diag(tau_e n_i + tau_a)]], b = tau_e [sum y, s_i]"""
    group, y = data["group"], data["y"]
    m = state["a"].size
    n, s = np.bincount(group, minlength=m), np.bincount(group, weights=y, minlength=m)
    precision = np.diag(np.r_[1e-4 + state["tau_e"] * n.sum(), state["tau_e"] * n + state["tau_a"]])
    precision[0, 1:] = precision[1:, 0] = state["tau_e"] * n
    covariance = np.linalg.inv(precision)
    return covariance @ (state["tau_e"] * np.r_[y.sum(), s]), covariance


def draw_mu_a(rng, state, data):
    mean, covariance = _mu_a_conditional(state, data)
    draw = rng.multivariate_normal(mean, covariance)
    return draw[0], draw[1:]


def draw_mu_a_independent(rng, state, data):
    """mu and each a_i from their marginal conditionals, independently  [wrong correlation]"""
    mean, covariance = _mu_a_conditional(state, data)
    draw = mean + np.sqrt(np.diag(covariance)) * rng.standard_normal(mean.size)
    return {"mu": draw[0], "a": draw[1:]}


def draw_precisions(rng, state, data):
    """tau_e ~ Gamma(2 + N/2, 1 + sum (y - mu - a)^2 / 2), tau_a ~ Gamma(2 + m/2, 1 + sum a^2 / 2),
    independent given (mu, a): a joint block whose elements are separable."""
    residual = data["y"] - state["mu"] - state["a"][data["group"]]
    tau_e = rng.gamma(2.0 + residual.size / 2, 1.0 / (1.0 + residual @ residual / 2))
    tau_a = rng.gamma(2.0 + state["a"].size / 2, 1.0 / (1.0 + state["a"] @ state["a"] / 2))
    return tau_e, tau_a


def draw_precisions_rate_without_half(rng, state, data):
    """tau_a's rate 1 + sum a^2 (the 1/2 left out)  [wrong]"""
    residual = data["y"] - state["mu"] - state["a"][data["group"]]
    tau_e = rng.gamma(2.0 + residual.size / 2, 1.0 / (1.0 + residual @ residual / 2))
    tau_a = rng.gamma(2.0 + state["a"].size / 2, 1.0 / (1.0 + state["a"] @ state["a"]))
    return tau_e, tau_a


COMPONENTS = {("mu", "a"): draw_mu_a, ("tau_e", "tau_a"): draw_precisions}


# -- the user's mapping and functions (no PyMC) ---------------------------------------------------

VARIABLES = {"mu": Variable("mu", (), False, False), "a": Variable("a", (3,), False, False),
             "k": Variable("k", (), True, False)}


@pytest.mark.parametrize("mapping, message", [
    ({"mu": len, "a": len, "kk": len}, "'kk' is no free variable of the model; its free "
                                       "variables are mu, a, k"),
    ({"mu": len, "a": len, "y": len, "k": len}, "'y' is an observed variable of the model"),
    ({"mu": len, "a": len}, "no function draws the free variable 'k'"),
    ({"mu": len}, "no function draws the free variables 'a', 'k'"),
    ({"mu": len, "a": len, "k": 3}, "conditionals['k'] is int, not a function"),
    ({("mu", "mu"): len, "a": len, "k": len}, "names a variable twice"),
    ({("mu", 2): len, "a": len, "k": len}, "must be a variable name or a tuple of names"),
    ([("mu", len)], "must be a non-empty mapping"),
])
def test_a_mapping_that_does_not_fit_the_model_is_refused(mapping, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        parse_conditionals(mapping, VARIABLES, observed=("y",))


def test_the_mapping_order_is_the_sweep_and_tuples_are_joint():
    blocks = parse_conditionals({"k": len, ("a", "mu"): abs}, VARIABLES)
    assert [(b.names, b.joint) for b in blocks] == [(("k",), False), (("a", "mu"), True)]


def _returning(value, name="draw_it"):
    def function(rng, state, data):
        return value
    function.__name__ = name
    return function


@pytest.mark.parametrize("names, returned, message", [
    (("a",), np.zeros((3, 1)), "draw_it returned shape (3, 1) for 'a'; the model's 'a' has shape (3,)"),
    (("mu",), np.zeros(1), "draw_it returned shape (1,) for 'mu'; the model's 'mu' has shape ()"),
    (("a",), np.array([0.0, np.nan, 1.0]), "draw_it returned nan for 'a': every value must be finite"),
    (("mu",), np.inf, "draw_it returned inf for 'mu'"),
    (("mu",), "0.5x", "draw_it returned str for 'mu', not numbers"),
    (("k",), 1.5, "draw_it returned a non-integer for the discrete variable 'k'"),
    (("mu", "a"), (1.0,), "draw_it must return a tuple of 2 values (or a dict) for the block "
                          "(mu, a); it returned tuple of length 1"),
    (("mu", "a"), {"mu": 1.0, "b": np.zeros(3)}, "draw_it returned a dict with keys ['b', 'mu']"),
    (("mu", "a"), (1.0, np.zeros(2)), "draw_it returned shape (2,) for 'a'"),
])
def test_a_function_returning_the_wrong_thing_is_named_with_its_variable(names, returned, message):
    block = Block(names, _returning(returned), joint=len(names) > 1)
    with pytest.raises(UserFunctionError) as error:
        call_block(block, np.random.default_rng(0), {}, {}, VARIABLES)
    assert message in str(error.value)


def test_a_joint_block_may_return_a_tuple_or_a_dict_and_integers_stay_integers():
    rng = np.random.default_rng(0)
    for returned in ((2.0, [1, 2, 3]), {"a": [1, 2, 3], "mu": 2.0}):
        values = call_block(Block(("mu", "a"), _returning(returned), True), rng, {}, {}, VARIABLES)
        assert values["mu"] == 2.0 and values["a"].tolist() == [1.0, 2.0, 3.0]
    assert call_block(Block(("k",), _returning(3.0), False), rng, {}, {}, VARIABLES)["k"].dtype \
        == np.int64


def test_a_function_gets_a_copy_of_the_state_dict():
    def meddle(rng, state, data):
        state["mu"] = 99.0
        return 1.0
    state = {"mu": 0.0, "a": np.zeros(3), "k": 0}
    new = generic.sweep(np.random.default_rng(0), state,
                        {}, (Block(("k",), meddle, False),), VARIABLES)
    assert state["mu"] == 0.0 and new["mu"] == 0.0 and new["k"] == 1


# -- conditionals on grids, by enumeration, and by reference chains -------------------------------

def test_separable_gamma_conditionals_on_the_log_grid_match_scipy():
    """Gamma(k_j, r_j) on u = log x has log density k u - r e^u: mode log(k/r), Laplace scale
    1/sqrt(k); its grid CDF must match scipy's gamma CDF, for three elements at once, to 1e-4
    (the trapezoidal rule's error on the grid: fifty times below the KS distance that 2000 draws
    can resolve)."""
    shape, rate = np.array([2.0, 30.0, 500.0]), np.array([0.5, 3.0, 1e4])
    log_densities = lambda u: shape * u - rate * np.exp(u)  # noqa: E731
    mode, scale = generic._modes_and_scales(log_densities, np.array([3.0, -2.0, 0.0]))
    np.testing.assert_allclose(mode, np.log(shape / rate), rtol=0, atol=1e-6)
    np.testing.assert_allclose(scale, 1 / np.sqrt(shape), rtol=1e-3)
    for k, grid in enumerate(generic._grid_conditionals(log_densities, np.zeros(3))):
        reference = st.gamma.cdf(np.exp(grid.u), shape[k], scale=1 / rate[k])
        assert np.abs(grid.cdf - reference).max() < 1e-4


def test_poisson_conditional_by_enumeration_matches_scipy():
    """Poisson(lambda) has log pmf x log lambda - lambda - log x! on x >= 0, -inf below."""
    lam = np.array([0.3, 40.0])

    def log_densities(x):
        with np.errstate(invalid="ignore", divide="ignore"):
            values = x * np.log(lam) - lam - special.gammaln(x + 1)
        return np.where(x >= 0, values, -np.inf)
    for k, conditional in enumerate(generic._discrete_conditionals(log_densities,
                                                                   np.array([0, 45]))):
        reference = st.poisson.pmf(conditional.support, lam[k])
        assert np.abs(conditional.pmf - reference).max() < 1e-12
        assert st.poisson.cdf(conditional.support[0] - 1, lam[k]) < 1e-15
        assert st.poisson.sf(conditional.support[-1], lam[k]) < 1e-14


def test_discrete_tests_pass_poisson_draws_and_fail_shifted_ones():
    conditional = generic._DiscreteConditional(np.arange(0, 60), st.poisson.pmf(np.arange(60), 12.0))
    rng = np.random.default_rng(4)
    right = generic._discrete_tests(rng.poisson(12.0, 2000).astype(float), conditional)
    wrong = generic._discrete_tests(rng.poisson(12.6, 2000).astype(float), conditional)
    assert min(p for *_, p in right) > 0.01
    assert min(p for *_, p in wrong) < 1e-6


def _log_gamma_pair(u):
    """(u1, u2) = (log G1, log G1 + log G2), G1 ~ Gamma(2), G2 ~ Gamma(5): skewed and correlated;
    log density 2 u1 - e^u1 + 5 (u2 - u1) - e^(u2 - u1)."""
    u1, u2 = u[:, 0], u[:, 1]
    return 2 * u1 - np.exp(u1) + 5 * (u2 - u1) - np.exp(u2 - u1)


def test_joint_reference_draws_match_exact_draws_of_a_skewed_correlated_target():
    rng = np.random.default_rng(5)
    reference = generic._joint_reference(_log_gamma_pair, np.array([1.0, 2.0]), 4000, rng)
    g1, g2 = rng.gamma(2.0, size=4000), rng.gamma(5.0, size=4000)
    exact = np.column_stack([np.log(g1), np.log(g1 * g2)])
    tests = two_sample_tests(whiten(reference.draws, reference.center, reference.cholesky),
                             whiten(exact, reference.center, reference.cholesky))
    assert holm_adjust(np.array([p for *_, p in tests])).min() > 0.01
    assert reference.acceptance > 0.5


def test_joint_mode_and_hessian_of_a_gaussian_are_exact():
    precision = np.array([[2.0, 1.9, 0.0], [1.9, 2.0, 0.3], [0.0, 0.3, 1.0]])  # condition 75
    center = np.array([1.0, -2.0, 30.0])
    log_density = lambda u: -0.5 * np.einsum("ki,ij,kj->k", u - center, precision, u - center)  # noqa: E731
    mode, negative_hessian = generic._joint_mode(log_density, np.zeros(3))
    np.testing.assert_allclose(mode, center, atol=1e-5)
    np.testing.assert_allclose(negative_hessian, precision, atol=1e-5)


# -- the multivariate two-sample tests ---------------------------------------------------------

def test_two_sample_tests_hold_their_level_on_equal_distributions():
    """400 pairs of samples (500 each) of one correlated 3-d normal: the family (3 coordinate KS,
    3 product z-tests, the norm's KS) rejects at Holm-adjusted 0.05 in at most 5% of pairs plus
    three binomial standard errors; each product z-test's p-values are uniform."""
    rng = np.random.default_rng(6)
    cholesky = np.linalg.cholesky(np.array([[1, .9, .3], [.9, 1, .2], [.3, .2, 1]]))
    rejections, product_p = 0, []
    for _ in range(400):
        a, b = (rng.standard_normal((500, 3)) @ cholesky.T for _ in range(2))
        tests = two_sample_tests(whiten(a, 0, cholesky), whiten(b, 0, cholesky))
        p = np.array([p for *_, p in tests])
        rejections += holm_adjust(p).min() <= 0.05
        product_p += [p for name, _, p in tests if " " in name]
    assert rejections <= 400 * 0.05 + 3 * np.sqrt(400 * 0.05 * 0.95)
    assert st.kstest(product_p, "uniform").pvalue > 0.01


def test_two_sample_tests_see_a_wrong_correlation_with_the_right_marginals():
    rng = np.random.default_rng(7)
    right = np.linalg.cholesky(np.array([[1, .7], [.7, 1]]))
    a = rng.standard_normal((1000, 2)) @ right.T
    b = rng.standard_normal((1000, 2))  # the same N(0, 1) marginals, no correlation
    tests = dict((name, p) for name, _, p in two_sample_tests(whiten(a, 0, right),
                                                              whiten(b, 0, right)))
    assert tests["z[0] z[1]"] < 1e-20
    assert tests["z[0]"] > 1e-3  # the first whitened coordinate is a marginal: the same
