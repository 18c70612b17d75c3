"""The cheese model: its packaged data, its PyMC model (the inverse Wishart and its transform), its
Gibbs conditionals and mutants.

Every conditional is checked against the joint density written here from the model's statement
with scipy (one normal term per store-week, scipy's multivariate normal and inverse Wishart),
read off numerically: the beta_i and m blocks from the joint's gradient and Hessian, lam by
quadrature, Sigma by density ratios that pin down an inverse Wishart's degrees of freedom and
scale. A slow test checks that this joint is the PyMC model's own.

False alarms: each KS-type test runs once on a fixed seed at level ALPHA = 1e-3; deterministic
comparisons carry tolerances of rounding (set at 1e-6 relative).
"""

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hiercheck.errors import DataError, PriorError
from hiercheck.models import cheese as model_module
from hiercheck.models.cheese import CheeseData, CheesePriors, load, model_data
from hiercheck.samplers import cheese as gibbs
from hiercheck.samplers.sweeps import sweep

from .builtin_checks import (Grid, assert_each_state_alone, draws_of, gaussian_by_differences,
                             mahalanobis_pvalue, model_values, natural_log_density,
                             quantile_gaps)

ALPHA = 1e-3
RTOL = 1e-6
P = 4


@pytest.fixture(scope="module")
def data() -> CheeseData:
    return load()


@pytest.fixture(scope="module")
def values(data) -> dict:
    return model_data(data)


def log_joint(state, values) -> float:
    """log p(y, beta, m, Sigma, lam), term by term from the model's statement."""
    beta, m, Sigma, lam = (np.asarray(state[name], dtype=float)
                           for name in ("beta", "m", "Sigma", "lam"))
    if lam <= 0 or np.any(np.linalg.eigvalsh(Sigma) <= 0):
        return -np.inf
    X, store, y = values["X"], values["store"], values["y"]
    fitted = np.sum(X * beta[store], axis=1)  # x_ij' beta_i, row by row
    return float(
        stats.norm.logpdf(y, fitted, 1 / np.sqrt(lam)).sum()
        + stats.multivariate_normal(m, Sigma).logpdf(beta).sum()
        + stats.gamma.logpdf(lam, values["a"], scale=1 / values["b"])
        + stats.multivariate_normal(values["nu"], np.linalg.inv(values["Phi"])).logpdf(m)
        + stats.invwishart(df=float(values["df"]), scale=values["Psi"]).logpdf(Sigma))


@pytest.fixture(scope="module")
def states(data, values) -> dict:
    """A state near the posterior (after 200 Gibbs sweeps) and one far from it: m at the prior
    mean, Sigma three times the prior guess, lam a fifteenth of the posterior's."""
    rng = np.random.default_rng(5)
    near = gibbs.initial_state(rng, values)
    for _ in range(200):
        near = sweep(rng, gibbs.conditionals(), near, values)
    far = {"beta": near["beta"] + 0.2 * rng.standard_normal(near["beta"].shape),
           "m": np.asarray(values["nu"]).copy(), "Sigma": 3.0 * values["Psi"], "lam": 1.0}
    return {"near": near, "far": far}


STATES = ("near", "far")


def checked_stores(data) -> list[int]:
    """Stores whose beta_i block is checked against the joint: every store whose display never
    or always happened (a design of rank 2: the population fills in two coefficients), the three
    with the least price variation, and four more."""
    frame = pd.DataFrame({"store": data.codes, "disp": data.display,
                          "lp": np.log(data.price)}).groupby("store")
    degenerate = frame["disp"].nunique().to_numpy() == 1
    flattest = np.argsort(frame["lp"].std().to_numpy())[:3]
    return sorted(set(np.flatnonzero(degenerate)) | set(flattest) | {0, 17, 42, 87})


# -- data and priors ----------------------------------------------------------------------------

def test_the_data_are_as_sources_md_describes_them(data):
    assert (data.N, data.S) == (5555, 88)
    sizes = np.bincount(data.codes)
    assert sizes.min() == 52 and sizes.max() == 68
    assert round(data.display.mean(), 3) == 0.646
    assert abs(data.design[:, 1].mean()) < 1e-12  # log price centred
    assert set(np.unique(data.display)) == {0.0, 1.0}


def frame_of(data):
    return pd.DataFrame({"store": data.labels[data.codes], "price": data.price,
                         "vol": data.volume, "disp": data.display})


@pytest.mark.parametrize("change, message", [
    (lambda f: f.drop(columns="disp"), "no column 'disp'"),
    (lambda f: f.assign(price=np.where(f.index == 4, -1.0, f.price)),
     "'price', row 4: -1.0 is not positive"),
    (lambda f: f.assign(disp=np.where(f.index == 3, 0.5, f.disp)), "'disp', row 3: 0.5 is neither"),
    (lambda f: f.assign(vol=np.where(f.index == 9, np.nan, f.vol)), "row 9: missing value"),
])
def test_bad_data_raise_one_line_naming_the_place(data, change, message):
    with pytest.raises(DataError, match=message):
        CheeseData.from_frame(change(frame_of(data)))


@pytest.mark.parametrize("change, message", [
    ({"df": 3.0}, "df must be finite and > 3"),
    ({"Psi": -np.eye(P)}, "Psi must be positive definite"),
    ({"Phi": np.ones((P, P + 1))}, "Phi must be a finite 4 x 4"),
    ({"nu": [0.0, 1.0]}, "nu must be 4 finite numbers"),
    ({"b": 0.0}, "b must be finite and > 0"),
])
def test_bad_priors_raise_prior_error(data, change, message):
    with pytest.raises(PriorError, match=message):
        CheesePriors(**{**data.default_priors.as_dict(), **change})


@pytest.mark.filterwarnings("ignore:The design matrix is rank-deficient")
def test_the_default_priors_are_scaled_to_the_data(data):
    """b is the pooled residual variance of the stores' own fits: recomputed here with statsmodels
    OLS per store (a store of rank 2 loses two degrees of freedom, not four)."""
    import statsmodels.api as sm

    residual_ss, dof = 0.0, 0
    for store in range(data.S):
        rows = data.codes == store
        fit = sm.OLS(data.log_volume[rows], data.design[rows]).fit()
        residual_ss += fit.ssr
        dof += int(fit.df_resid)
    priors = data.default_priors
    assert priors.b == pytest.approx(residual_ss / dof, rel=1e-10)
    np.testing.assert_allclose(np.diag(priors.Psi)[1:] * np.var(data.design[:, 1:], axis=0),
                               priors.b, rtol=1e-12)
    assert priors.df == P + 2


# -- the conditionals against the joint density -------------------------------------------------

def test_store_moments_are_the_sums_over_each_stores_weeks(data, values):
    cross, linear = gibbs.store_moments(values, data.S)
    for store in (0, 30, 87):
        rows = data.codes == store
        X, y = data.design[rows], data.log_volume[rows]
        np.testing.assert_allclose(cross[store], X.T @ X, rtol=1e-12)
        np.testing.assert_allclose(linear[store], X.T @ y, rtol=1e-12)
    # a response changed in place is seen, not served from the last call
    changed = dict(values, y=values["y"].copy())
    changed["y"][data.codes == 30] += 1.0
    _, again = gibbs.store_moments(changed, data.S)
    np.testing.assert_allclose(again[30] - linear[30], data.design[data.codes == 30].sum(0),
                               rtol=1e-9)
    changed["y"][data.codes == 30] -= 1.0
    np.testing.assert_allclose(gibbs.store_moments(changed, data.S)[1], linear, rtol=1e-12)


@pytest.mark.parametrize("where", STATES)
def test_beta_conditional_is_the_joint_read_off(data, values, states, where):
    state = states[where]
    mean, covariance = gibbs.beta_conditional(state, values)
    for store in checked_stores(data):
        def density(point, store=store):
            beta = state["beta"].copy()
            beta[store] = point
            return log_joint({**state, "beta": beta}, values)

        want_mean, want_covariance = gaussian_by_differences(density, state["beta"][store], 0.1)
        np.testing.assert_allclose(mean[store], want_mean, rtol=RTOL, atol=RTOL)
        np.testing.assert_allclose(covariance[store], want_covariance, rtol=RTOL,
                                   atol=RTOL * np.abs(want_covariance).max())


def test_the_stores_blocks_are_independent_given_the_rest(values, states):
    """The joint's mixed second difference in beta_0k and beta_1l vanishes: one block per store."""
    state = states["near"]
    h = 0.1

    def at(d0, d1):
        beta = state["beta"].copy()
        beta[0, 1] += d0
        beta[1, 0] += d1
        return log_joint({**state, "beta": beta}, values)

    mixed = (at(h, h) - at(h, -h) - at(-h, h) + at(-h, -h)) / (4 * h * h)
    assert abs(mixed) < 1e-6


@pytest.mark.parametrize("where", STATES)
def test_m_conditional_is_the_joint_read_off(values, states, where):
    state = states[where]
    want = gaussian_by_differences(lambda m: log_joint({**state, "m": m}, values), state["m"], 0.1)
    for got, expected in zip(gibbs.m_conditional(state, values), want):
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=RTOL * np.abs(expected).max())


@pytest.mark.parametrize("where", STATES)
def test_lam_conditional_is_the_joint_normalized_numerically(values, states, where):
    state = states[where]
    grid = Grid(lambda v: log_joint({**state, "lam": v}, values), positive=True)
    shape, rate = gibbs.lam_conditional(state, values)
    assert shape / rate == pytest.approx(grid.mean, rel=RTOL)
    assert shape / rate**2 == pytest.approx(grid.var, rel=RTOL)


@pytest.mark.parametrize("where", STATES)
def test_Sigma_conditional_has_the_joints_density_ratios(values, states, where):
    """log p(Sigma_1 | rest) - log p(Sigma_2 | rest) = the joint's difference, for ten pairs
    spread around the conditional: that fixes the inverse Wishart's df and scale."""
    state = states[where]
    df, scale = gibbs.Sigma_conditional(state, values)
    claimed = stats.invwishart(df=df, scale=scale)
    candidates = stats.invwishart(df=df / 3, scale=scale / 3).rvs(size=11, random_state=1)
    joint = np.array([log_joint({**state, "Sigma": S}, values) for S in candidates])
    conditional = claimed.logpdf(np.moveaxis(candidates, 0, -1))
    np.testing.assert_allclose(np.diff(joint), np.diff(conditional), rtol=1e-8, atol=1e-8)


# -- the draws follow the conditionals; every mutant's replaced draw does not -------------------

DRAWS = 2000


@pytest.mark.parametrize("shared", [False, True])
def test_a_batch_of_states_gets_each_states_own_conditional(values, states, shared):
    """The near and far states as one batch, each with its own log volumes (the far state's
    shifted by 0.5) or both with the data's own broadcast (as the checks hand a batch the
    model's data): every conditional's parameters are those of each state alone (checked
    against the joint above), and every draw, of the sampler and of the mutants, has the
    batch's shape."""
    near, far = states["near"], states["far"]
    shift = 0.0 if shared else 0.5
    y = (np.broadcast_to(values["y"], (2, values["y"].size)) if shared
         else np.stack([values["y"], values["y"] + shift]))
    data = {**values, "y": y}
    alone = [values, {**values, "y": values["y"] + shift}]
    batch = assert_each_state_alone((gibbs.beta_conditional, gibbs.m_conditional,
                                     gibbs.Sigma_conditional, gibbs.lam_conditional),
                                    [near, far], data, alone, rtol=1e-10)
    for sampler in [gibbs.conditionals()] + [mutant for _, mutant in gibbs.MUTANTS.values()]:
        for name, draw in sampler.items():
            drawn = draw(np.random.default_rng(0), batch, data)
            assert np.shape(drawn) == (2, *np.shape(near[name])), (draw.__name__, name)


def Sigma_pvalues(sample, df, scale) -> list[float]:
    """Sigma ~ IW(df, scale) implies u'Sigma^{-1}u / u'scale^{-1}u ~ chi^2(df) for any fixed u
    (Sigma^{-1} is Wishart(df, scale^{-1})) and Sigma_kk ~ InvGamma((df - p + 1)/2, scale_kk/2)."""
    inverse_scale = np.linalg.inv(scale)
    pvalues = []
    for u in (np.eye(P)[1], np.array([1.0, -2.0, 0.5, 1.5])):
        ratio = np.einsum("i,nij,j->n", u, np.linalg.inv(sample), u) / (u @ inverse_scale @ u)
        pvalues.append(stats.kstest(ratio, stats.chi2(df).cdf).pvalue)
    for k in (0, 3):
        marginal = stats.invgamma((df - P + 1) / 2, scale=scale[k, k] / 2)
        pvalues.append(stats.kstest(sample[:, k, k], marginal.cdf).pvalue)
    return pvalues


def conditional_pvalue(key, draw, state, values, seed=0, batched=False) -> float:
    """DRAWS draws of `draw` at `state` against the conditional of `key`: lam by KS against the
    joint normalized numerically; beta (each store's Mahalanobis distance, pooled over the
    stores) and m against chi^2_4 with the mean and covariance checked above; Sigma by the
    smallest of `Sigma_pvalues`, Bonferroni-corrected."""
    sample = draws_of(draw, state, values, DRAWS, seed, batched)
    if key == "lam":
        grid = Grid(lambda v: log_joint({**state, "lam": v}, values), positive=True)
        return grid.ks_pvalue(sample)
    if key == "Sigma":
        pvalues = Sigma_pvalues(sample, *gibbs.Sigma_conditional(state, values))
        return min(1.0, len(pvalues) * min(pvalues))
    if key == "m":
        return mahalanobis_pvalue(sample, *gibbs.m_conditional(state, values))
    mean, covariance = gibbs.beta_conditional(state, values)
    deviation = sample - mean
    distance = np.einsum("nsi,sij,nsj->ns", deviation, np.linalg.inv(covariance), deviation)
    return stats.kstest(distance.ravel(), stats.chi2(df=P).cdf).pvalue


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("where", STATES)
def test_the_draws_follow_the_conditionals(values, states, where, batched):
    sampler = gibbs.conditionals()
    assert list(sampler) == ["beta", "m", "Sigma", "lam"]
    for key, draw in sampler.items():
        assert conditional_pvalue(key, draw, states[where], values, batched=batched) > ALPHA, key


@pytest.mark.parametrize("mutant", sorted(gibbs.MUTANTS))
def test_every_mutant_replaces_one_conditional_and_its_check_sees_it(values, states, mutant):
    description, sampler = gibbs.MUTANTS[mutant]
    correct = gibbs.conditionals()
    assert list(sampler) == list(correct) and description
    replaced = [key for key in correct if sampler[key] is not correct[key]]
    assert len(replaced) == 1
    assert conditional_pvalue(replaced[0], sampler[replaced[0]], states["near"], values,
                              seed=1) < ALPHA


def test_the_diagonal_beta_mutant_has_the_right_marginals(values, states):
    """It differs from the truth only in the correlations within a store's block."""
    state = states["near"]
    sample = draws_of(gibbs.MUTANTS["beta-diagonal-covariance"][1]["beta"], state, values, DRAWS)
    mean, covariance = gibbs.beta_conditional(state, values)
    z = (sample - mean) / np.sqrt(np.diagonal(covariance, axis1=-2, axis2=-1))
    assert stats.kstest(z.ravel(), stats.norm.cdf).pvalue > ALPHA
    correlation = covariance[..., 0, 2] / np.sqrt(covariance[..., 0, 0] * covariance[..., 2, 2])
    assert np.abs(correlation).max() > 0.5  # what the mutant loses is not small


# -- the engine and the PyMC model --------------------------------------------------------------

def test_sampling_is_reproducible_and_needs_no_pymc(data):
    first = gibbs.sample(data, draws=3, chains=2, seed=3, tune=5)
    second = gibbs.sample(data, draws=3, chains=2, seed=3, tune=5)
    np.testing.assert_array_equal(first.posterior["beta"], second.posterior["beta"])
    assert first.posterior["Sigma"].dims == ("chain", "draw", "coef", "coef_")
    code = "import sys, hiercheck.samplers.cheese; print('pymc' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.stdout.strip() == "False", done.stderr


def test_model_data_is_what_the_pymc_model_holds(data, values):
    held = model_values(model_module.build_model(data))
    assert set(held) == set(values)
    for name, value in values.items():
        np.testing.assert_array_equal(held[name], value, err_msg=name)


@pytest.mark.slow
def test_the_joint_of_these_tests_is_the_pymc_models(data, values, states):
    pymc_log_joint = natural_log_density(model_module.build_model(data))
    for state in states.values():
        assert pymc_log_joint(state) == pytest.approx(log_joint(state, values), rel=1e-10)


@pytest.mark.slow
def test_the_log_cholesky_transform_round_trips_with_its_jacobian():
    """backward(forward(Sigma)) = Sigma, and log_jac_det is log |det d vech(Sigma) / d u| from
    PyTensor's own Jacobian of the backward map (vech: the lower triangle)."""
    import pytensor
    import pytensor.tensor as pt

    from hiercheck.models.inverse_wishart import LogCholesky

    transform = LogCholesky(P)
    u = pt.vector("u")
    sigma = transform.backward(u)
    rows, cols = np.tril_indices(P)
    jacobian = pytensor.gradient.jacobian(sigma[rows, cols], u)
    compute = pytensor.function([u], [sigma, pt.log(pt.abs(pt.linalg.det(jacobian))),
                                      transform.log_jac_det(u)])
    matrix = pt.matrix("Sigma")
    forward = pytensor.function([matrix], transform.forward(matrix))
    rng = np.random.default_rng(0)
    for _ in range(5):
        point = rng.normal(size=P * (P + 1) // 2)
        value, numeric, claimed = compute(point)
        assert claimed == pytest.approx(numeric, abs=1e-9)
        np.testing.assert_allclose(forward(value), point, atol=1e-10)


@pytest.mark.slow
def test_the_inverse_wishart_density_is_double_precision_with_plain_numbers():
    """df and Psi given as Python numbers (which PyTensor would make float32 constants): the
    log density equals scipy's to double precision."""
    import pymc as pm

    from hiercheck.models.inverse_wishart import inverse_wishart

    rng = np.random.default_rng(1)
    root = rng.normal(size=(3, 3))
    value = root @ root.T + 3 * np.eye(3)
    with pm.Model():
        sigma = inverse_wishart("Sigma", 5.0, np.eye(3).tolist(), p=3)
    logp = pm.logp(sigma, value).eval()
    assert logp == pytest.approx(stats.invwishart.logpdf(value, df=5.0, scale=np.eye(3)),
                                 rel=1e-13)


@pytest.mark.slow
def test_the_prior_draws_of_Sigma_are_the_inverse_wishart(data):
    """The model's random Sigma (scipy's draws, used by prior-predictive checks) against the
    inverse Wishart through the same functionals as the Gibbs draw."""
    import pymc as pm

    priors = data.default_priors
    model = model_module.build_model(data)
    sample = pm.draw(model["Sigma"], draws=DRAWS, random_seed=4)
    assert min(Sigma_pvalues(sample, priors.df, priors.Psi)) > ALPHA / 4


@pytest.mark.slow
@pytest.mark.long  # PyMC's NUTS on 88 stores' 4-vectors and an inverse Wishart: many minutes
def test_the_gibbs_posterior_matches_nuts(data):
    """Quantiles 5%, 50%, 95% of m, lam, Sigma's ten distinct entries and the elasticity
    beta_i1 of the checked stores: Gibbs against NUTS on the PyMC model, in units of their
    combined MCSE; Bonferroni over all comparisons at 1% overall."""
    import pymc as pm
    from threadpoolctl import threadpool_limits

    posterior = gibbs.sample(data, draws=2500, chains=4, seed=8).posterior
    with model_module.build_model(data), threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nuts = pm.sample(draws=600, tune=600, chains=2, cores=1, random_seed=9,
                         progressbar=False, compute_convergence_checks=False,
                         var_names=["m", "Sigma", "lam", "beta"])
    assert int(nuts.sample_stats["diverging"].sum()) == 0
    pairs = {"lam": (posterior["lam"].values, nuts.posterior["lam"].values)}
    for k in range(P):
        pairs[f"m[{k}]"] = (posterior["m"].values[..., k], nuts.posterior["m"].values[..., k])
    for j, k in zip(*np.tril_indices(P)):
        pairs[f"Sigma[{j},{k}]"] = (posterior["Sigma"].values[..., j, k],
                                    nuts.posterior["Sigma"].values[..., j, k])
    for store in checked_stores(data):
        pairs[f"beta[{store},1]"] = (posterior["beta"].values[..., store, 1],
                                     nuts.posterior["beta"].values[..., store, 1])
    limit = stats.norm.isf(0.01 / (2 * 3 * len(pairs)))
    gaps = {name: quantile_gaps(*pair) for name, pair in pairs.items()}
    worst = max(gaps, key=lambda name: np.abs(gaps[name]).max())
    assert np.abs(gaps[worst]).max() < limit, (worst, gaps[worst])
