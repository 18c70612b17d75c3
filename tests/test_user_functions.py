"""A user's function that returns what cannot be draws (or a log-likelihood) is refused with a
UserFunctionError naming the field, the function and what was wrong, wherever the package calls
it: the sweeps (so `gibbs.sample`, Geweke and SBC), the empirical-Bayes search, the
marginal-likelihood check, and `check_sampler`, which must let the error through rather than
report a failed check. (The consistency check, which compiles PyMC, is in test_consistency.py.)
"""

import numpy as np
import pytest

from hiercheck.errors import UserFunctionError
from hiercheck.samplers import empirical_bayes, gibbs
from hiercheck.samplers.gibbs import Conditionals
from hiercheck.validation import consistency, geweke, likelihood, sbc, suite

PRIORS = suite.SMALL_PRIORS


@pytest.fixture(scope="module")
def data():
    return consistency.simulated_data(suite.SMALL_DESIGN, PRIORS, seed=0)


def batch_of(state):
    return np.shape(state.mu)


def theta_scalar(rng, state, stats, priors):
    return 0.0


def theta_one_school_short(rng, state, stats, priors):
    return np.zeros(batch_of(state) + (stats.m - 1,))


def omega_one_value(rng, state, stats, priors):
    return np.float64(2.0)


def mu_nan(rng, state, stats, priors):
    return np.full(batch_of(state), np.nan)


def theta_inf(rng, state, stats, priors):
    theta = np.zeros(np.shape(state.theta))
    theta[..., 0] = np.inf
    return theta


def lam_negative(rng, state, stats, priors):
    return -np.ones(batch_of(state))


def omega_zero(rng, state, stats, priors):
    return np.zeros(batch_of(state))


def mu_complex(rng, state, stats, priors):
    return np.zeros(batch_of(state), dtype=complex)


def lam_none(rng, state, stats, priors):
    return None


def omega_bool(rng, state, stats, priors):
    return np.ones(batch_of(state), dtype=bool)


CASES = [  # field, function, what the message must say after "field (function) returned"
    ("draw_theta", theta_scalar,
     r"shape \(\), expected \(2, 8\) \(one value per chain and school\)"),
    ("draw_theta", theta_one_school_short, r"shape \(2, 7\), expected \(2, 8\)"),
    ("draw_omega", omega_one_value, r"shape \(\), expected \(2,\) \(one value per chain\)"),
    ("draw_mu", mu_nan, r"NaN \(2 of 2 values\)"),
    ("draw_theta", theta_inf, r"infinity \(2 of 16 values\)"),
    ("draw_lam", lam_negative, r"a non-positive precision lam \(smallest value -1\)"),
    ("draw_omega", omega_zero, r"a non-positive precision omega \(smallest value 0\)"),
    ("draw_mu", mu_complex, r"dtype complex128, expected real numbers"),
    ("draw_lam", lam_none, r"None, expected shape \(2,\)"),
    ("draw_omega", omega_bool, r"dtype bool, expected real numbers"),
]


def message(field, function, what):
    return rf"^{field} \({function.__name__}\) returned {what}"


@pytest.mark.parametrize("field, function, what", CASES, ids=[c[1].__name__ for c in CASES])
def test_gibbs_sample_refuses_what_cannot_be_draws(data, field, function, what):
    with pytest.raises(UserFunctionError, match=message(field, function, what)):
        gibbs.sample(data, PRIORS, draws=5, chains=2, seed=0,
                     conditionals=Conditionals(**{field: function}))


@pytest.mark.parametrize("field, function, what",
                         [case for case in CASES if case[0] in ("draw_theta", "draw_omega")])
def test_the_blocked_sweep_checks_what_it_may_replace(data, field, function, what):
    with pytest.raises(UserFunctionError, match=message(field, function, what)):
        gibbs.sample(data, PRIORS, draws=5, chains=2, seed=0, scheme="blocked",
                     conditionals=Conditionals(**{field: function}))


def mu_rounded(rng, state, stats, priors):
    """mu's draw rounded to an integer array: real numbers, so accepted."""
    return np.rint(gibbs.draw_mu(rng, state, stats, priors)).astype(np.int64)


def test_integer_draws_are_real_numbers(data):
    idata = gibbs.sample(data, PRIORS, draws=20, chains=2, seed=0, tune=50,
                         conditionals=Conditionals(draw_mu=mu_rounded))
    mu = idata.posterior.mu.values
    assert mu.dtype == float and np.all(mu == np.rint(mu))


def test_geweke_and_sbc_check_the_sweeps_they_run():
    bad = Conditionals(draw_lam=lam_negative)
    with pytest.raises(UserFunctionError, match=r"^draw_lam \(lam_negative\)"):
        geweke.geweke_test(PRIORS, suite.SMALL_DESIGN, conditionals=bad, chains=4, steps=2)
    with pytest.raises(UserFunctionError, match=r"^draw_lam \(lam_negative\)"):
        sbc.run_gibbs_sbc(suite.SMALL_DESIGN, PRIORS, replications=2, draws=2, thin=1, tune=1,
                          conditionals=bad)


def test_check_sampler_raises_rather_than_failing_a_check(data):
    with pytest.raises(UserFunctionError, match=r"^draw_mu \(mu_nan\) returned NaN"):
        suite.check_sampler(Conditionals(draw_mu=mu_nan), data=data, priors=PRIORS,
                            checks=("geweke",))


def likelihood_vector(stats, mu, lam, omega):
    return np.zeros(2)


def likelihood_nan(stats, mu, lam, omega):
    return float("nan")


def likelihood_minus_inf(stats, mu, lam, omega):
    return -np.inf


def likelihood_none(stats, mu, lam, omega):
    return None


def likelihood_complex(stats, mu, lam, omega):
    return 1.0 + 0.0j


LIKELIHOOD_CASES = [
    (likelihood_vector, r"shape \(2,\), expected a single number"),
    (likelihood_nan, r"NaN at mu="),
    (likelihood_minus_inf, r"-infinity at mu="),
    (likelihood_none, r"None, expected a single number"),
    (likelihood_complex, r"dtype complex128"),
]


@pytest.mark.parametrize("function, what", LIKELIHOOD_CASES,
                         ids=[c[0].__name__ for c in LIKELIHOOD_CASES])
def test_a_marginal_likelihood_must_return_one_finite_number(data, function, what):
    expected = message("log_marginal_likelihood", function, what)
    with pytest.raises(UserFunctionError, match=expected):
        likelihood.check_marginal_likelihood(function, data, PRIORS, points=1)
    with pytest.raises(UserFunctionError, match=expected):
        empirical_bayes.fit(data, method="nelder-mead", objective=function)
    with pytest.raises(UserFunctionError, match=expected):
        suite.check_sampler(log_marginal_likelihood=function, data=data, priors=PRIORS,
                            checks=("marginal likelihood",))


def test_an_integer_log_likelihood_is_a_number(data):
    result = likelihood.check_marginal_likelihood(lambda *args: -7, data, PRIORS, points=1)
    assert result.table.value.tolist() == [-7.0]


def omega_singular(rng, state, stats, priors):
    return np.linalg.cholesky(-np.eye(2))  # raises LinAlgError


def likelihood_raising(stats, mu, lam, omega):
    raise ZeroDivisionError("a slip in the user's algebra")


def test_an_exception_inside_a_users_function_is_theirs_and_names_it(data):
    """Raised inside the user's code, it comes back as a UserFunctionError naming the function,
    which the command line reports in one line, not as the package's internal error."""
    with pytest.raises(UserFunctionError, match=r"^draw_omega \(omega_singular\) raised "
                                                r"LinAlgError: Matrix is not positive definite"):
        gibbs.sample(data, PRIORS, draws=5, chains=2, seed=0,
                     conditionals=Conditionals(draw_omega=omega_singular))
    with pytest.raises(UserFunctionError, match=r"^log_marginal_likelihood \(likelihood_raising\) "
                                                r"raised ZeroDivisionError: a slip"):
        likelihood.check_marginal_likelihood(likelihood_raising, data, PRIORS, points=1)
