"""The PyMC reference model: its structure, its joint density against scipy's densities term by
term, and NUTS on the math-test data (no divergences, r_hat <= 1.01, the engine interface)."""


import arviz as az
import numpy as np
import pytest
from scipy import stats as st

from hiercheck.errors import SettingsError
from hiercheck.models import GroupedData, Priors
from hiercheck.models import reference
from hiercheck.models.engine import POSTERIOR_VARIABLES, engine_settings


@pytest.fixture(scope="module")
def small():
    """Three schools, one of them a single student."""
    return GroupedData.from_arrays(["x", "x", "x", "y", "y", "z"], [1.0, 2.5, 0.5, 4.0, 3.0, 2.0])


def test_the_model_reads_like_the_math(small):
    priors = Priors(a=2, b=3, c=1.5, d=0.5, nu=1, phi=0.25)
    model = reference.build_model(small, priors, "centered")
    assert {rv.name for rv in model.free_RVs} == {"lam", "omega", "mu", "theta"}
    assert [rv.name for rv in model.observed_RVs] == ["y"]
    assert {d.name for d in model.deterministics} == {"sigma", "tau"}
    assert model.named_vars_to_dims["theta"] == ("school",)
    assert list(model.coords["school"]) == ["x", "y", "z"]
    assert {v.name for v in model.data_vars} == {"scores", "school_of_student"}


def test_the_noncentered_model_keeps_theta_as_a_deterministic(small):
    model = reference.build_model(small, Priors(), "noncentered")
    assert {rv.name for rv in model.free_RVs} == {"lam", "omega", "mu", "z"}
    assert "theta" in {d.name for d in model.deterministics}
    assert model.named_vars_to_dims["theta"] == ("school",)


def scipy_joint_logp(data, priors, theta, mu, lam, omega):
    """log p(y, theta, mu, lam, omega) from scipy's densities, one term per factor."""
    return (st.norm.logpdf(data.values, theta[data.codes], lam ** -0.5).sum()
            + st.norm.logpdf(theta, mu, (omega * lam) ** -0.5).sum()
            + st.norm.logpdf(mu, priors.nu, priors.phi ** -0.5)
            + st.gamma.logpdf(lam, priors.a, scale=1 / priors.b)
            + st.gamma.logpdf(omega, priors.c, scale=1 / priors.d))


@pytest.mark.slow
def test_the_joint_density_matches_scipy_term_by_term(small):
    priors = Priors(a=2, b=3, c=1.5, d=0.5, nu=1, phi=0.25)
    logp = reference.joint_logp_function(small, priors)
    rng = np.random.default_rng(3)
    for _ in range(5):
        theta, mu = rng.normal(2, 1, 3), rng.normal(1, 1)
        lam, omega = rng.gamma(2, 1), rng.gamma(2, 1)
        assert logp(theta, mu, lam, omega) == pytest.approx(
            scipy_joint_logp(small, priors, theta, mu, lam, omega), rel=1e-10, abs=1e-10)


@pytest.mark.slow
def test_the_unsummed_density_matches_scipy_term_by_term_at_many_points(small):
    """The terms at K = 4 points in one call: each its own scipy density, and their total the
    joint density."""
    priors = Priors(a=2, b=3, c=1.5, d=0.5, nu=1, phi=0.25)
    terms = reference.log_density_terms_function(small, priors)
    rng = np.random.default_rng(4)
    theta, mu = rng.normal(2, 1, (4, 3)), rng.normal(1, 1, 4)
    lam, omega = rng.gamma(2, 1, 4), rng.gamma(2, 1, 4)
    values = terms(theta, mu, lam, omega)
    expected = {
        "y": st.norm.logpdf(small.values, theta[:, small.codes], lam[:, None] ** -0.5),
        "theta": st.norm.logpdf(theta, mu[:, None], (omega * lam)[:, None] ** -0.5),
        "mu": st.norm.logpdf(mu, priors.nu, priors.phi ** -0.5),
        "lam": st.gamma.logpdf(lam, priors.a, scale=1 / priors.b),
        "omega": st.gamma.logpdf(omega, priors.c, scale=1 / priors.d),
    }
    assert set(values) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(values[name], value, rtol=1e-10, atol=1e-12, err_msg=name)
    totals = sum(value.reshape(4, -1).sum(axis=1) for value in values.values())
    for k in range(4):
        assert totals[k] == pytest.approx(
            scipy_joint_logp(small, priors, theta[k], mu[k], lam[k], omega[k]), rel=1e-10)


@pytest.mark.slow
def test_compiled_functions_read_back_from_the_cache_match_scipy(small, tmp_path, monkeypatch):
    """Each compiled function of the reference model, the second time read (unpickled) from the
    cache: the joint density and its terms against scipy, and the collapsed density against the
    joint integrated over each theta_i by quadrature (schools are independent given the rest)."""
    from scipy import integrate

    monkeypatch.setenv("HIERCHECK_CACHE", str(tmp_path))
    priors = Priors(a=2, b=3, c=1.5, d=0.5, nu=1, phi=0.25)
    for _ in range(2):  # the second pass reads all three back
        joint = reference.joint_logp_function(small, priors)
        terms = reference.log_density_terms_function(small, priors)
        collapsed = reference.collapsed_logp_function(small, priors)
    assert len(list((tmp_path / "compiled").glob("*.pkl"))) == 3
    theta, mu, lam, omega = np.array([1.5, 3.0, 2.2]), 1.2, 0.8, 1.7
    expected = scipy_joint_logp(small, priors, theta, mu, lam, omega)
    assert joint(theta, mu, lam, omega) == pytest.approx(expected, rel=1e-10)
    values = terms(theta[None], np.array([mu]), np.array([lam]), np.array([omega]))
    assert sum(value.sum() for value in values.values()) == pytest.approx(expected, rel=1e-10)
    school_integrals = [integrate.quad(lambda t, i=i: np.exp(
        st.norm.logpdf(small.values[small.codes == i], t, lam ** -0.5).sum()
        + st.norm.logpdf(t, mu, (omega * lam) ** -0.5)), -30, 30, epsabs=0, epsrel=1e-12)[0]
        for i in range(small.m)]
    priors_part = (st.norm.logpdf(mu, priors.nu, priors.phi ** -0.5)
                   + st.gamma.logpdf(lam, priors.a, scale=1 / priors.b)
                   + st.gamma.logpdf(omega, priors.c, scale=1 / priors.d))
    assert collapsed(mu, lam, omega) == pytest.approx(
        priors_part + np.log(school_integrals).sum(), rel=1e-9)


def test_bad_settings_are_named(small):
    with pytest.raises(SettingsError, match="parametrization 'sideways'"):
        reference.build_model(small, Priors(), "sideways")
    with pytest.raises(SettingsError, match="backend 'stan'"):
        reference.sample_nuts(small, Priors(), draws=10, chains=1, backend="stan")
    with pytest.raises(SettingsError, match="tune"):
        reference.sample_nuts(small, Priors(), draws=10, chains=1, tune=-1)
    with pytest.raises(ValueError, match="draws"):
        reference.sample_nuts(small, Priors(), draws=0, chains=1)


# -- NUTS on the math-test data ------------------------------------------------------------------

@pytest.mark.slow
def test_nuts_on_mathtest_is_clean(mathtest, mathtest_nuts):
    idata = mathtest_nuts
    assert idata.posterior.attrs["divergences"] == 0
    assert idata.posterior.attrs["max_r_hat"] <= 1.01
    assert set(idata.posterior.data_vars) == set(POSTERIOR_VARIABLES)
    assert idata.posterior.theta.dims == ("chain", "draw", "school")
    assert idata.posterior.sizes["school"] == 100
    assert list(idata.posterior.school.values) == list(mathtest.labels)
    assert not idata.sample_stats.diverging.values.any()


@pytest.mark.slow
def test_nuts_follows_the_engine_interface(mathtest, mathtest_nuts):
    idata = mathtest_nuts
    np.testing.assert_array_equal(idata.constant_data.n.values, mathtest.n)
    np.testing.assert_allclose(idata.constant_data.ybar.values, mathtest.ybar)
    assert idata.posterior.attrs["engine"] == "nuts-pymc"
    assert engine_settings(idata)["parametrization"] == "centered"
    assert idata.posterior.attrs["sampling_time"] > 0
    np.testing.assert_allclose(idata.posterior.sigma.values, idata.posterior.lam.values ** -0.5)
    np.testing.assert_allclose(idata.posterior.tau.values, idata.posterior.omega.values ** -0.5)


@pytest.mark.slow
def test_nutpie_compiles_once_and_takes_new_scores(mathtest):
    """A second data set of the same design reuses the compiled model; shifting every score by
    s shifts mu's posterior by s (up to Monte Carlo error: 6 MCSE, false alarm < 1e-8)."""
    priors = Priors.weakly_informative(mathtest)
    first = reference.sample_nutpie(mathtest, priors, draws=500, chains=2, seed=5)
    compiled = dict(reference._nutpie_models)
    shift = 25.0
    shifted = reference.sample_nutpie(mathtest.with_values(mathtest.values + shift), priors,
                                      draws=500, chains=2, seed=5)
    assert reference._nutpie_models == compiled
    mcse = np.hypot(float(az.mcse(first, var_names=["mu"]).mu),
                    float(az.mcse(shifted, var_names=["mu"]).mu))
    # mu's prior (SD ten data SDs) pulls the shifted fit back by about 0.01 of the shift
    difference = float(shifted.posterior.mu.mean() - first.posterior.mu.mean())
    assert abs(difference - shift) < 6 * mcse


@pytest.mark.slow
def test_the_same_seed_gives_the_same_draws_whatever_the_cores(small):
    priors = Priors.weakly_informative(small)
    runs = [reference.sample_nuts(small, priors, draws=50, chains=2, tune=50, seed=11, cores=k)
            for k in (1, 2)]
    np.testing.assert_array_equal(runs[0].posterior.theta.values, runs[1].posterior.theta.values)


@pytest.mark.slow
def test_divergences_are_warned_and_recorded():
    """Ten schools whose means are all equal put tau's posterior against zero: the centered
    parametrization, briefly tuned, diverges (a warning, not a failure)."""
    rng = np.random.default_rng(0)
    values = rng.normal(0, 1, 50)
    values -= np.repeat([values[k::10].mean() for k in range(10)], 1)[np.arange(50) % 10]
    data = GroupedData.from_arrays(np.arange(50) % 10, values)
    with pytest.warns(reference.NutsWarning, match="divergent"):
        idata = reference.sample_nuts(data, Priors(c=0.5, d=0.05), draws=200, chains=2, tune=50,
                                      seed=1, backend="nutpie", target_accept=0.6)
    assert idata.posterior.attrs["divergences"] > 0
