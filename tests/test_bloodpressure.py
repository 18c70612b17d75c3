"""The blood-pressure model: its packaged data, its PyMC model, its Gibbs conditionals and mutants.

Every conditional is checked against the joint density written here from the model's statement
(scipy, one term per measurement: no sufficient statistics, no completed squares), read off
numerically; a slow test checks that this joint is the PyMC model's own. The posterior of beta is
checked against the published REML fit, and the Gibbs posterior against NUTS.

False alarms: each KS-type test below runs once on a fixed seed at level ALPHA = 1e-3; the
deterministic comparisons have tolerances of rounding, about 1e-9 relative, set at 1e-6.
"""

import hashlib
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hiercheck.errors import DataError, PriorError
from hiercheck.models import bloodpressure as model_module
from hiercheck.models.bloodpressure import BloodPressureData, BloodPressurePriors, load, model_data
from hiercheck.samplers import bloodpressure as gibbs

from .builtin_checks import (Grid, assert_each_state_alone, draws_of, gaussian_by_differences,
                             mahalanobis_pvalue, model_values, natural_log_density,
                             quantile_gaps)

ALPHA = 1e-3
RTOL = 1e-6
# models/builtin/README.md: statsmodels MixedLM, REML
REML = {"Intercept": (141.55, 3.19), "x": (-7.43, 4.51)}


@pytest.fixture(scope="module")
def data() -> BloodPressureData:
    return load()


@pytest.fixture(scope="module")
def values(data) -> dict:
    return model_data(data)


def log_joint(state, values) -> float:
    """log p(y, theta, mu, beta, lam, omega), term by term from the model's statement."""
    theta, mu, beta = np.asarray(state["theta"]), state["mu"], state["beta"]
    lam, omega = state["lam"], state["omega"]
    if lam <= 0 or omega <= 0:
        return -np.inf
    y, subject, x = values["y"], values["subject"], values["x"]
    return float(
        stats.norm.logpdf(y, theta[subject], 1 / np.sqrt(lam)).sum()
        + stats.norm.logpdf(theta, mu + beta * x, 1 / np.sqrt(omega * lam)).sum()
        + stats.gamma.logpdf(lam, values["a"], scale=1 / values["b"])
        + stats.gamma.logpdf(omega, values["c"], scale=1 / values["d"])
        + stats.norm.logpdf(mu, values["nu"], 1 / np.sqrt(values["phi"]))
        + stats.norm.logpdf(beta, 0.0, 1 / np.sqrt(values["phi_beta"])))


def states(values):
    """Two states to condition on: one near the posterior (subject means, REML-like
    hyperparameters) and one far from it, where terms that vanish near the posterior show."""
    n = np.bincount(values["subject"])
    ybar = np.bincount(values["subject"], weights=values["y"]) / n
    near = {"theta": ybar + 0.3, "mu": 141.0, "beta": -6.0, "lam": 1 / 11.8, "omega": 0.12}
    rng = np.random.default_rng(7)
    far = {"theta": 130 + 15 * rng.standard_normal(n.size), "mu": 120.0, "beta": 12.0,
           "lam": 0.02, "omega": 3.0}
    return {"near": near, "far": far}


STATES = ("near", "far")


# -- the packaged data --------------------------------------------------------------------------

PACKAGED_SHA256 = {  # models/builtin/README.md
    "bloodpressure.csv": "ac85d40f03e72edb75bb32f03450cfb4556f95c1cfe05d44be6a582eb14b3510",
    "cheese.csv": "bf1443f0e9de02b5374bc95741e55ba30b4b78a0089899d511849ac14f0539ff",
    "mathtest.csv": "3c89b2083e63ff0e58a2cfec871c17d81d4042b1a64fc08f7acfd289baf67dec",
}


@pytest.mark.parametrize("filename", sorted(PACKAGED_SHA256))
def test_the_packaged_files_are_the_documented_copies(filename):
    from importlib import resources

    packaged = resources.files("hiercheck.models").joinpath("builtin", filename).read_bytes()
    assert hashlib.sha256(packaged).hexdigest() == PACKAGED_SHA256[filename]
    notice = resources.files("hiercheck.models").joinpath("builtin", "README.md").read_text()
    assert "Copyright (c) 2017 James Scott" in notice and "jgscott/SDS383D" in notice


LOAD_LISTING_CSV_OPENED = """
import sys
opened = []
sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" else None)
from hiercheck.models import {module}
data = {module}.load()
print(repr(data))
print([path for path in opened if path.endswith(".csv")])
"""


@pytest.mark.parametrize("module", ["bloodpressure", "cheese"])
def test_load_reads_the_packaged_copy_and_no_other_csv(module, tmp_path):
    done = subprocess.run([sys.executable, "-c", LOAD_LISTING_CSV_OPENED.format(module=module)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.strip().splitlines()
    opened = eval(second)
    assert len(opened) == 1 and "/builtin/" in opened[0].replace("\\", "/"), opened


def test_the_data_are_as_their_readme_describes_them(data):
    assert data.grouped.N == 426 and data.grouped.m == 20
    assert data.grouped.n.min() == 8 and data.grouped.n.max() == 31
    assert data.x.sum() == 10
    assert int(data.x[data.codes].sum()) == 215  # measurements under treatment 2
    assert data.values.min() == 112 and data.values.max() == 171
    assert data.dates.dtype == np.dtype("datetime64[D]")
    # in date order within each subject, as models/builtin/README.md says
    for subject in range(data.grouped.m):
        assert np.all(np.diff(data.dates[data.codes == subject]) > np.timedelta64(0, "D"))


def test_statsmodels_reml_gives_the_published_treatment_effect(data):
    """models/builtin/README.md: systolic ~ 1 + x + (1 | subject), REML: intercept 141.55
    (SE 3.19), treatment effect -7.43 (SE 4.51), between-subject variance 101.2, residual
    variance 11.76."""
    import statsmodels.formula.api as smf

    frame = pd.DataFrame({"systolic": data.values, "subject": data.codes,
                          "x": data.x[data.codes]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.mixedlm("systolic ~ x", frame, groups=frame["subject"]).fit(reml=True)
    assert fit.converged
    for name, (estimate, se) in REML.items():
        assert round(fit.params[name], 2) == estimate and round(fit.bse[name], 2) == se
    assert round(float(fit.cov_re.iloc[0, 0]), 1) == 101.2
    assert round(fit.scale, 2) == 11.76


# -- bad input ----------------------------------------------------------------------------------

def frame_of(data):
    return pd.DataFrame({"date": data.dates.astype(str), "systolic": data.values,
                         "subject": data.labels[data.codes],
                         "treatment": np.where(data.x[data.codes] == 1, 2, 1)})


def test_from_frame_rebuilds_the_data(data):
    again = BloodPressureData.from_frame(frame_of(data))
    np.testing.assert_array_equal(again.values, data.values)
    np.testing.assert_array_equal(again.x, data.x)


@pytest.mark.parametrize("change, message", [
    (lambda f: f.drop(columns="treatment"), "no column 'treatment'"),
    (lambda f: f.assign(treatment=np.where(f.index == 5, 3, f.treatment)), "row 5: 3 is neither"),
    (lambda f: f.assign(treatment=np.where(f.index == 0, 2, f.treatment)), "both treatments"),
    (lambda f: f.assign(date=np.where(f.index == 2, "soon", f.date)),
     "row 2: 'soon' is not a date"),
    (lambda f: f.assign(systolic=np.where(f.index == 1, "high", f.systolic)),
     "'high' is not a number"),
])
def test_bad_data_raise_one_line_naming_the_place(data, change, message):
    with pytest.raises(DataError, match=message):
        BloodPressureData.from_frame(change(frame_of(data)))


@pytest.mark.parametrize("settings, message", [
    ({"phi_beta": 0.0}, "phi_beta"), ({"phi_beta": "x"}, "phi_beta must be a number"),
    ({"a": -1.0}, "prior a"), ({"nu": float("nan")}, "prior nu must be finite"),
    ({"c": -1.0}, "must be positive for the blood-pressure model"),
])
def test_bad_priors_raise_prior_error(settings, message):
    with pytest.raises(PriorError, match=message):
        BloodPressurePriors(**settings)


def test_the_default_priors_are_the_flagships_scaled_to_the_data(data):
    priors = data.default_priors
    assert priors.b == pytest.approx(11.7648, abs=1e-4)  # pooled within-subject variance
    assert priors.nu == pytest.approx(data.values.mean())
    assert priors.phi_beta == priors.phi == pytest.approx(1 / (100 * data.values.var()))


# -- the conditionals against the joint density -------------------------------------------------

@pytest.mark.parametrize("where", STATES)
def test_theta_conditional_is_the_joint_read_off(values, where):
    state = states(values)[where]

    def density(theta):
        return log_joint({**state, "theta": theta}, values)

    mean, covariance = gaussian_by_differences(density, state["theta"], 0.5)
    got_mean, got_precision = gibbs.theta_conditional(state, values)
    np.testing.assert_allclose(got_mean, mean, rtol=RTOL)
    np.testing.assert_allclose(np.diag(1 / got_precision), covariance, rtol=RTOL,
                               atol=RTOL * covariance.diagonal().min())


@pytest.mark.parametrize("where", STATES)
def test_mu_beta_conditional_is_the_joint_read_off(values, where):
    state = states(values)[where]

    def density(point):
        return log_joint({**state, "mu": point[0], "beta": point[1]}, values)

    mean, covariance = gaussian_by_differences(density, [state["mu"], state["beta"]], 1.0)
    got_mean, got_covariance = gibbs.mu_beta_conditional(state, values)
    np.testing.assert_allclose(got_mean, mean, rtol=RTOL)
    np.testing.assert_allclose(got_covariance, covariance, rtol=RTOL)
    assert covariance[0, 1] / np.sqrt(covariance[0, 0] * covariance[1, 1]) < -0.5


@pytest.mark.parametrize("where", STATES)
@pytest.mark.parametrize("name", ["lam", "omega"])
def test_precision_conditionals_are_the_joint_normalized_numerically(values, where, name):
    state = states(values)[where]
    grid = Grid(lambda v: log_joint({**state, name: v}, values), positive=True)
    shape, rate = getattr(gibbs, f"{name}_conditional")(state, values)
    assert shape / rate == pytest.approx(grid.mean, rel=RTOL)
    assert shape / rate**2 == pytest.approx(grid.var, rel=RTOL)


def test_a_batch_of_states_gets_each_states_own_conditional(values):
    """The near and far states, each with its own measurements (the far state's shifted by 40),
    as one batch: every conditional's parameters are those of each state alone (checked against
    the joint above), and every draw, of the sampler and of the mutants, has the batch's shape."""
    near, far = states(values).values()
    data = {**values, "y": np.stack([values["y"], values["y"] + 40.0])}
    alone = [values, {**values, "y": values["y"] + 40.0}]
    batch = assert_each_state_alone((gibbs.theta_conditional, gibbs.mu_beta_conditional,
                                     gibbs.lam_conditional, gibbs.omega_conditional),
                                    [near, far], data, alone, rtol=1e-12)
    shapes = {"theta": (2, near["theta"].size), "mu": (2,), "beta": (2,), "lam": (2,),
              "omega": (2,)}
    for _, sampler in [(None, gibbs.conditionals()), *gibbs.MUTANTS.values()]:
        for key, draw in sampler.items():
            drawn = draw(np.random.default_rng(0), batch, data)
            for name, value in zip(key if isinstance(key, tuple) else (key,),
                                   drawn if isinstance(key, tuple) else (drawn,)):
                assert np.shape(value) == shapes[name], (draw.__name__, name)


# -- the draws follow the conditionals; every mutant's replaced draw does not -------------------

DRAWS = 4000


def conditional_pvalue(key, draw, state, values, seed=0, batched=False) -> float:
    """DRAWS draws of `draw` at `state` against the conditional of `key` read off the joint:
    KS against the numerically normalized density for lam and omega; for the Gaussian blocks, the
    Mahalanobis distances against chi^2 with the mean and covariance of the tests above."""
    sample = draws_of(draw, state, values, DRAWS, seed, batched)
    if key in ("lam", "omega"):
        return Grid(lambda v: log_joint({**state, key: v}, values), positive=True).ks_pvalue(sample)
    if key == "theta":
        mean, precision = gibbs.theta_conditional(state, values)
        return mahalanobis_pvalue(sample, mean, np.diag(1 / precision))
    return mahalanobis_pvalue(sample, *gibbs.mu_beta_conditional(state, values))


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("where", STATES)
def test_the_draws_follow_the_conditionals(values, where, batched):
    sampler = gibbs.conditionals()
    assert list(sampler) == ["theta", ("mu", "beta"), "lam", "omega"]
    for key, draw in sampler.items():
        pvalue = conditional_pvalue(key, draw, states(values)[where], values, batched=batched)
        assert pvalue > ALPHA, key


@pytest.mark.parametrize("mutant", sorted(gibbs.MUTANTS))
def test_every_mutant_replaces_one_conditional_and_its_check_sees_it(values, mutant):
    description, sampler = gibbs.MUTANTS[mutant]
    correct = gibbs.conditionals()
    assert list(sampler) == list(correct) and description
    replaced = [key for key in correct if sampler[key] is not correct[key]]
    assert len(replaced) == 1
    key = replaced[0]
    state = states(values)["far"]  # omega large: theta's prior, and so every slip, weighs most
    assert conditional_pvalue(key, sampler[key], state, values, seed=1) < ALPHA


def test_the_independent_mu_beta_mutant_has_the_right_marginals(values):
    """It differs from the truth in the correlation only: each marginal passes its KS test."""
    state = states(values)["near"]
    pairs = draws_of(gibbs.MUTANTS["mu-beta-independent"][1][("mu", "beta")], state, values,
                     DRAWS)
    mean, covariance = gibbs.mu_beta_conditional(state, values)
    for k in range(2):
        marginal = stats.norm(mean[k], np.sqrt(covariance[k, k]))
        assert stats.kstest(pairs[:, k], marginal.cdf).pvalue > ALPHA


# -- the posterior ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gibbs_posterior(data):
    return gibbs.sample(data, draws=2000, chains=4, seed=20240611)


def test_the_gibbs_posterior_of_beta_agrees_with_reml(gibbs_posterior):
    """Under the weak priors the posterior of beta is the REML fit's: mean within half a standard
    error of -7.43, SD within 10% (the posterior also carries the uncertainty of the variances)."""
    import arviz as az

    beta = gibbs_posterior.posterior["beta"].values
    assert float(az.rhat(gibbs_posterior, var_names=["beta"])["beta"]) < 1.01
    estimate, se = REML["x"]
    assert abs(beta.mean() - estimate) < 0.5 * se
    assert 0.9 < beta.std() / se < 1.1


def test_sampling_is_reproducible_and_needs_no_pymc(data):
    first = gibbs.sample(data, draws=5, chains=2, seed=3)
    second = gibbs.sample(data, draws=5, chains=2, seed=3)
    np.testing.assert_array_equal(first.posterior["theta"], second.posterior["theta"])
    code = "import sys, hiercheck.samplers.bloodpressure; print('pymc' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.stdout.strip() == "False", done.stderr


def test_model_data_is_what_the_pymc_model_holds(data, values):
    """The `data` the conditionals read is the model's own (observed values and pm.Data), as the
    generic harness will hand it over. Building a model compiles nothing."""
    held = model_values(model_module.build_model(data))
    assert set(held) == set(values)
    for name, value in values.items():
        np.testing.assert_array_equal(held[name], value, err_msg=name)


@pytest.mark.slow
def test_the_joint_of_these_tests_is_the_pymc_models(data, values):
    """The reference every conditional above is checked against is the PyMC model's log density
    on the natural scale, to rounding, at states near and far from the posterior."""
    pymc_log_joint = natural_log_density(model_module.build_model(data))
    for state in states(values).values():
        assert pymc_log_joint(state) == pytest.approx(log_joint(state, values), rel=1e-10)


@pytest.mark.slow
def test_the_gibbs_posterior_matches_nuts(data, gibbs_posterior):
    """Quantiles 5%, 50%, 95% of mu, beta, lam, omega and every theta_i: Gibbs against NUTS on
    the PyMC model, in units of their combined MCSE. 72 comparisons, Bonferroni at 1% overall."""
    import pymc as pm
    from threadpoolctl import threadpool_limits

    with model_module.build_model(data), threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nuts = pm.sample(draws=2000, tune=1000, chains=4, cores=1, random_seed=11,
                         progressbar=False, compute_convergence_checks=False)
    assert int(nuts.sample_stats["diverging"].sum()) == 0
    scalars = {name: (gibbs_posterior.posterior[name].values, nuts.posterior[name].values)
               for name in ("mu", "beta", "lam", "omega")}
    for i in range(data.grouped.m):
        scalars[f"theta[{i}]"] = (gibbs_posterior.posterior["theta"].values[..., i],
                                  nuts.posterior["theta"].values[..., i])
    limit = stats.norm.isf(0.01 / (2 * 3 * len(scalars)))
    gaps = {name: quantile_gaps(*pair) for name, pair in scalars.items()}
    worst = max(gaps, key=lambda name: np.abs(gaps[name]).max())
    assert np.abs(gaps[worst]).max() < limit, (worst, gaps[worst])
    beta = nuts.posterior["beta"].values
    assert abs(beta.mean() - REML["x"][0]) < 0.5 * REML["x"][1]
