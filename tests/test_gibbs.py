"""The Gibbs sampler, checked against computations that share none of its code.

Each conditional's draws are compared with the conditional implied by a density written here
with scipy.stats (the joint density on the raw scores, or, for the collapsed draws of the blocked
sweep, the multivariate normal density of the scores with theta integrated out), normalized
numerically along that coordinate. The runner is checked for its bookkeeping (shapes, sweep
counts, thinning, seeds, InferenceData) by deterministic comparisons, and the two sweeps for a
common stationary distribution by long runs.
"""

import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, optimize
from scipy import stats as st

from hiercheck.models import GroupedData, Priors, load_dataset, school_stats
from hiercheck.models.engine import POSTERIOR_VARIABLES, SCALARS, az
from hiercheck.samplers import gibbs
from hiercheck.errors import SettingsError
from hiercheck.samplers.gibbs import Conditionals, GibbsState

DATASETS = ("rail", "radon", "mathtest")  # radon: counties with one home
DOC = Path(__file__).resolve().parents[1] / "docs" / "derivation.md"

DRAWS = 20_000          # draws of a conditional, in one batched call
GRID_POINTS = 4001
HALF_WIDTH = 20.0       # grid half-width in Laplace SDs: a normal's density there is e^-200
# Each comparison below asserts KS p > 1e-6 (false alarm 1e-6) and |z| < 5 for the mean and the
# variance (false alarm 5.7e-7 each, the z-scores being normal at 20,000 draws): about 2e-6 per
# coordinate, under 1e-4 for the whole module.
KS_P = 1e-6
Z_LIMIT = 5.0


@pytest.fixture(scope="module")
def datasets():
    return {name: load_dataset(name) for name in DATASETS}


def strong_priors(data: GroupedData) -> Priors:
    """Priors worth tens of observations and at odds with the data (lam's prior mean a third of
    1/within, omega's a tenth of within/spread^2, mu's three spreads off), so every prior term
    of a conditional shows in its draws."""
    within = data.ss.sum() / (data.N - data.m)
    spread = data.ybar.std()
    return Priors(a=20.0, b=60.0 * within, c=10.0, d=100.0 * spread**2 / within,
                  nu=data.ybar.mean() + 3 * spread, phi=1.0 / spread**2)


CASES = [*DATASETS, "rail, strong priors"]


@pytest.fixture(scope="module")
def cases(datasets):
    """name -> (data, priors): each data set under its default priors; rail under strong ones."""
    table = {name: (data, Priors.weakly_informative(data)) for name, data in datasets.items()}
    table["rail, strong priors"] = (datasets["rail"], strong_priors(datasets["rail"]))
    return table


# -- independent densities ----------------------------------------------------------------------

def joint_log_density(data: GroupedData, priors: Priors):
    """(theta, mu, lam, omega) -> log p(y, theta, mu, lam, omega), written on the scores; theta
    is (G, m) and the others (G,) for G points at once."""
    def log_density(theta, mu, lam, omega):
        sigma = 1.0 / np.sqrt(lam)
        return (st.norm.logpdf(data.values, theta[:, data.codes], sigma[:, None]).sum(-1)
                + st.norm.logpdf(theta, mu[:, None], (sigma / np.sqrt(omega))[:, None]).sum(-1)
                + st.norm.logpdf(mu, priors.nu, 1.0 / np.sqrt(priors.phi))
                + st.gamma.logpdf(lam, priors.a, scale=1.0 / priors.b)
                + st.gamma.logpdf(omega, priors.c, scale=1.0 / priors.d))
    return log_density


def collapsed_log_density(data: GroupedData, priors: Priors, omega: float):
    """(mu, lam) -> log p(y | mu, lam, omega) + log p(mu) + log p(lam) at this omega, theta
    integrated out: y ~ N(mu 1, S/lam) with S = I + (same school)/omega, the scores' multivariate
    normal density. Uses sqrt(lam) (y - mu) ~ N(0, S), whose Jacobian is lam^(N/2); mu and lam
    are (G,)."""
    same_school = data.codes[:, None] == data.codes[None, :]
    scores = st.multivariate_normal(np.zeros(data.N), np.eye(data.N) + same_school / omega)

    def log_density(mu, lam):
        white = np.sqrt(lam)[:, None] * (data.values[None, :] - mu[:, None])
        return (scores.logpdf(white) + 0.5 * data.N * np.log(lam)
                + st.norm.logpdf(mu, priors.nu, 1.0 / np.sqrt(priors.phi))
                + st.gamma.logpdf(lam, priors.a, scale=1.0 / priors.b))
    return log_density


@dataclass(frozen=True)
class Tabulated:
    """A one-dimensional density on a grid in u (u = x, or u = log x for positive x)."""

    u: np.ndarray
    density: np.ndarray  # normalized, in u
    cdf: np.ndarray
    positive: bool

    def moments(self):
        """Mean, variance and fourth central moment of x."""
        x = np.exp(self.u) if self.positive else self.u
        mean = integrate.trapezoid(x * self.density, self.u)
        central = x - mean
        return (mean, integrate.trapezoid(central**2 * self.density, self.u),
                integrate.trapezoid(central**4 * self.density, self.u))


def tabulate(log_density, start: float, positive: bool) -> Tabulated:
    """Normalize a 1-D log density (vectorized in x) on a grid around its mode, HALF_WIDTH
    Laplace SDs either side; positive coordinates are gridded in log x with the Jacobian x."""
    in_u = (lambda u: log_density(np.exp(u)) + u) if positive else log_density

    def scalar(u):  # the negative log density at one point, for the optimizer
        return -float(in_u(np.array([u]))[0])

    u0 = np.log(start) if positive else start
    step = 1e-2 * max(1.0, abs(u0))
    mode = optimize.minimize_scalar(scalar, bracket=(u0 - step, u0)).x
    h = 1e-4 * max(1.0, abs(mode))
    curvature = (scalar(mode + h) - 2 * scalar(mode) + scalar(mode - h)) / h**2
    u = mode + np.linspace(-HALF_WIDTH, HALF_WIDTH, GRID_POINTS) / np.sqrt(curvature)
    log_values = np.concatenate([in_u(chunk) for chunk in np.array_split(u, 16)])
    density = np.exp(log_values - log_values.max())
    assert max(density[0], density[-1]) < 1e-12, "the grid does not hold the conditional"
    density /= integrate.trapezoid(density, u)
    cdf = integrate.cumulative_trapezoid(density, u, initial=0.0)
    return Tabulated(u, density, cdf / cdf[-1], positive)


def assert_draws_follow(draws: np.ndarray, reference: Tabulated, label: str):
    """KS test against the tabulated CDF, and z-scores of the draws' mean and variance."""
    assert np.all(np.isfinite(draws)), f"{label}: draws are not finite"
    if reference.positive:
        assert np.all(draws > 0), f"{label}: draws of a precision are not positive"
    values = np.log(draws) if reference.positive else draws
    ks = st.kstest(values, lambda v: np.interp(v, reference.u, reference.cdf))
    mean, variance, fourth = reference.moments()
    mean_z = (draws.mean() - mean) / np.sqrt(variance / draws.size)
    var_z = (draws.var() - variance) / np.sqrt((fourth - variance**2) / draws.size)
    assert ks.pvalue > KS_P, f"{label}: KS p = {ks.pvalue:.2g}"
    assert abs(mean_z) < Z_LIMIT, f"{label}: mean {draws.mean():.6g}, expected {mean:.6g}"
    assert abs(var_z) < Z_LIMIT, f"{label}: variance {draws.var():.6g}, expected {variance:.6g}"


# -- a state to condition on, and drawing many values there ------------------------------------

def probe_state(data: GroupedData) -> GibbsState:
    """A plausible state at no special point: schools partly shrunk, mu off the grand mean,
    lam and omega near moment estimates."""
    within = data.ss.sum() / (data.N - data.m)
    grand = data.ybar.mean()
    spread = data.ybar.std()
    return GibbsState(theta=data.ybar + 0.3 * (grand - data.ybar), mu=grand + 0.2 * spread,
                      lam=1.2 / within, omega=0.8 * within / spread**2)


def replicated(state: GibbsState, size: int) -> GibbsState:
    """`size` copies of a state as one batch."""
    return GibbsState(theta=np.broadcast_to(state.theta, (size,) + np.shape(state.theta)),
                      mu=np.full(size, state.mu), lam=np.full(size, state.lam),
                      omega=np.full(size, state.omega))


def coordinate(log_density, state: GibbsState, name: str, school=None):
    """x (G,) -> the joint log density with coordinate `name` (theta_school) set to x and every
    other coordinate at `state`."""
    def along(x):
        point = replicated(state, x.size)
        if name == "theta":
            theta = np.array(point.theta)
            theta[:, school] = x
            point = point._replace(theta=theta)
        else:
            point = point._replace(**{name: x})
        return log_density(*point)
    return along


def collapsed_coordinate(log_density, state: GibbsState, name: str):
    """x (G,) -> the theta-integrated log density with `name` (mu or lam) set to x."""
    def along(x):
        point = replicated(state, x.size)._replace(**{name: x})
        return log_density(point.mu, point.lam)
    return along


def checked_schools(data: GroupedData) -> list[int]:
    """The smallest, a middle-sized and the largest school."""
    order = np.argsort(data.n, kind="stable")
    return [int(order[0]), int(order[data.m // 2]), int(order[-1])]


# -- each conditional against the joint density -------------------------------------------------

@pytest.mark.parametrize("name", CASES)
def test_theta_follows_its_full_conditional(cases, name):
    data, priors = cases[name]
    state = probe_state(data)
    draws = gibbs.draw_theta(np.random.default_rng(1), replicated(state, DRAWS), data.stats, priors)
    assert draws.shape == (DRAWS, data.m)
    log_density = joint_log_density(data, priors)
    for school in checked_schools(data):
        reference = tabulate(coordinate(log_density, state, "theta", school),
                             float(state.theta[school]), positive=False)
        assert_draws_follow(draws[:, school], reference,
                            f"{name} theta[{school}] (n = {data.n[school]})")


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("variable", ["mu", "lam", "omega"])
def test_scalar_follows_its_full_conditional(cases, name, variable):
    data, priors = cases[name]
    state = probe_state(data)
    draw = getattr(gibbs, f"draw_{variable}")
    draws = draw(np.random.default_rng(2), replicated(state, DRAWS), data.stats, priors)
    assert draws.shape == (DRAWS,)
    reference = tabulate(coordinate(joint_log_density(data, priors), state, variable),
                         float(getattr(state, variable)), positive=variable != "mu")
    assert_draws_follow(draws, reference, f"{name} {variable}")


@pytest.mark.parametrize("name", ["rail", "radon", "rail, strong priors"])
@pytest.mark.parametrize("variable", ["mu", "lam"])
def test_collapsed_draw_follows_the_theta_integrated_conditional(cases, name, variable):
    data, priors = cases[name]
    state = probe_state(data)
    draw = getattr(gibbs, f"draw_{variable}_collapsed")
    draws = draw(np.random.default_rng(3), replicated(state, DRAWS), data.stats, priors)
    assert draws.shape == (DRAWS,)
    log_density = collapsed_log_density(data, priors, float(state.omega))
    reference = tabulate(collapsed_coordinate(log_density, state, variable),
                         float(getattr(state, variable)), positive=variable == "lam")
    assert_draws_follow(draws, reference, f"{name} {variable} (theta integrated out)")


def catalogued_slips():
    """(mutant name, variable, wrong draw) for every Gibbs mutant of hiercheck.validation.mutants."""
    from hiercheck.validation.mutants import CATALOGUE
    return [(mutant.name, field.removeprefix("draw_"), draw)
            for mutant in CATALOGUE if mutant.conditionals is not None
            for field, draw in mutant.conditionals._asdict().items()
            if draw is not getattr(gibbs, field)]


SLIP_CASES = {  # mutant -> case, where rail under strong priors cannot show it
    "theta-mean-school-size": "mathtest",  # rail's rails all have 3 scores: no slip there
}


@pytest.mark.parametrize("mutant, variable, wrong_draw", catalogued_slips())
def test_the_comparison_rejects_every_catalogued_slip(cases, mutant, variable, wrong_draw):
    """The comparison has power: each wrong derivation of the catalogue fails it on rail under
    strong priors (measured: every one with KS p < 1e-50), the collapsed ones against the density
    with theta integrated out, and the one that confuses school sizes on the math test's
    unequal sizes, at its smallest school."""
    data, priors = cases[SLIP_CASES.get(mutant, "rail, strong priors")]
    state = probe_state(data)
    draws = wrong_draw(np.random.default_rng(4), replicated(state, DRAWS), data.stats, priors)
    name = variable.removesuffix("_collapsed")
    school = int(np.argmin(data.n)) if name == "theta" else None
    start = state.theta[school] if name == "theta" else getattr(state, name)
    if variable.endswith("_collapsed"):
        along = collapsed_coordinate(collapsed_log_density(data, priors, float(state.omega)),
                                     state, name)
    else:
        along = coordinate(joint_log_density(data, priors), state, name, school)
    reference = tabulate(along, float(start), positive=name in ("lam", "omega"))
    values = draws[:, school] if name == "theta" else draws
    with pytest.raises(AssertionError):
        assert_draws_follow(values, reference, mutant)


# -- broadcasting -------------------------------------------------------------------------------

def rescaled(data: GroupedData, scale: float, shift: float) -> GroupedData:
    return data.with_values(scale * data.values + shift)


def stacked_stats(datas):
    """The statistics of data sets of one design, stacked along a batch axis (R, m)."""
    return school_stats(datas[0].n, np.stack([d.ybar for d in datas]),
                        np.stack([d.ss for d in datas]))


def stacked_state(states) -> GibbsState:
    return GibbsState(*(np.stack(values) for values in zip(*states)))


@pytest.mark.parametrize("variable", ["theta", "mu", "lam", "omega"])
def test_a_state_of_shape_chains_by_R_draws_each_cell_from_its_own_data_set(datasets, variable):
    """State (DRAWS, R) against statistics (R, m): column r follows data set r's conditional at
    state r, so the batch axes line up, not merely broadcast."""
    rail = datasets["rail"]
    datas = [rail, rescaled(rail, 0.1, -30.0)]  # far apart, so a mix-up cannot pass
    priors = Priors.weakly_informative(rail)
    states = [probe_state(d) for d in datas]
    batch = GibbsState(*(np.broadcast_to(v, (DRAWS,) + v.shape) for v in stacked_state(states)))
    draws = getattr(gibbs, f"draw_{variable}")(np.random.default_rng(5), batch,
                                               stacked_stats(datas), priors)
    assert draws.shape == (DRAWS, 2) + ((rail.m,) if variable == "theta" else ())
    for r, (data, state) in enumerate(zip(datas, states)):
        log_density = joint_log_density(data, priors)
        school = 0 if variable == "theta" else None
        start = state.theta[0] if variable == "theta" else getattr(state, variable)
        reference = tabulate(coordinate(log_density, state, variable, school), float(start),
                             positive=variable in ("lam", "omega"))
        values = draws[:, r, 0] if variable == "theta" else draws[:, r]
        assert_draws_follow(values, reference, f"{variable}, data set {r}")


def batched_inputs(data: GroupedData, state_batch, stats_batch):
    """The probe state with batch shape `state_batch`, data statistics with `stats_batch`."""
    stats = school_stats(data.n, np.broadcast_to(data.ybar, stats_batch + (data.m,)),
                         np.broadcast_to(data.ss, stats_batch + (data.m,)))
    state = probe_state(data)
    state = GibbsState(np.broadcast_to(state.theta, state_batch + (data.m,)),
                       *(np.full(state_batch, x) for x in state[1:]))
    return state, stats


BATCHES = [((), ()), ((4,), ()), ((4,), (4,)), ((3, 4), (4,)), ((2, 3, 4), (3, 4)), ((5,), (1,))]


@pytest.mark.parametrize("state_batch, stats_batch", BATCHES)
def test_every_draw_broadcasts_state_against_statistics(datasets, state_batch, stats_batch):
    data = datasets["rail"]
    state, stats = batched_inputs(data, state_batch, stats_batch)
    batch = np.broadcast_shapes(state_batch, stats_batch)
    rng = np.random.default_rng(6)
    for draw in [*Conditionals(), gibbs.draw_mu_collapsed, gibbs.draw_lam_collapsed]:
        expected = batch + ((data.m,) if draw is gibbs.draw_theta else ())
        value = draw(rng, state, stats, Priors.weakly_informative(data))
        assert np.shape(value) == expected, draw.__name__


@pytest.mark.parametrize("state_batch, stats_batch", BATCHES + [((1,), (5,)), ((), (2, 3))])
def test_a_sweep_returns_the_whole_batch(datasets, state_batch, stats_batch):
    """A sweep keeps the batch shape of a state broadcast against the statistics."""
    data = datasets["rail"]
    state, stats = batched_inputs(data, state_batch, stats_batch)
    state = gibbs.broadcast_state(state, stats)
    batch = np.broadcast_shapes(state_batch, stats_batch)
    for sweep in gibbs.SCHEMES.values():
        moved = sweep(np.random.default_rng(6), state, stats, Priors.weakly_informative(data))
        assert [np.shape(x) for x in moved] == [batch + (data.m,)] + [batch] * 3


def test_run_batches_chains_over_many_data_sets(datasets):
    """The runner takes statistics (R, m) and a state (chains, R) without GroupedData."""
    rail = datasets["rail"]
    datas = [rail, rescaled(rail, 2.0, 5.0), rescaled(rail, 0.5, -1.0)]
    stats = stacked_stats(datas)
    priors = Priors.weakly_informative(rail)
    rng = np.random.default_rng(7)
    state = gibbs.initial_state(rng, stats, priors, (2, 3))
    kept = gibbs.run(rng, stats, priors, state, tune=5, draws=4, thin=2)
    assert kept["theta"].shape == (4, 2, 3, rail.m)
    assert all(kept[name].shape == (4, 2, 3) for name in ("mu", "lam", "omega"))
    assert all(np.isfinite(values).all() for values in kept.values())


# -- starting values ----------------------------------------------------------------------------

def test_dispersed_starts_differ_by_chain_and_lie_around_the_data(datasets):
    data = datasets["mathtest"]
    priors = Priors.weakly_informative(data)
    start = gibbs.initial_state(np.random.default_rng(8), data.stats, priors, (1000,))
    within = data.ss.sum() / (data.N - data.m)
    assert start.theta.shape == (1000, data.m) and start.mu.shape == (1000,)
    assert np.all(start.lam > 0) and np.all(start.omega > 0)
    # log lam is 1/within jittered by N(0, 1): a t-test of its centre at |t| < 5 (false alarm
    # 6e-7), and a spread of many posterior SDs (the posterior SD of log lam is ~ sqrt(2/N) = 0.03)
    log_ratio = np.log(start.lam * within)
    assert abs(log_ratio.mean()) < 5 * log_ratio.std() / np.sqrt(1000)
    assert np.std(np.log(start.lam)) > 10 * np.sqrt(2 / data.N)
    assert np.unique(start.mu).size == 1000


# -- the engine ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rail_run(datasets):
    data = datasets["rail"]
    priors = Priors.weakly_informative(data)
    return data, priors, gibbs.sample(data, priors, draws=50, chains=3, seed=11, tune=20)


def test_sample_returns_the_engine_interface(rail_run):
    data, priors, idata = rail_run
    post = idata.posterior
    assert set(post.data_vars) == set(POSTERIOR_VARIABLES)
    for name in SCALARS:
        assert post[name].dims == ("chain", "draw") and post[name].shape == (3, 50)
    assert post.theta.dims == ("chain", "draw", "school") and post.theta.shape == (3, 50, data.m)
    assert list(post.school.values) == list(data.labels)
    for name in ("n", "ybar", "ss"):
        np.testing.assert_array_equal(idata.constant_data[name].values, getattr(data, name))
    np.testing.assert_allclose(post.sigma, 1 / np.sqrt(post.lam), rtol=1e-15)
    np.testing.assert_allclose(post.tau, 1 / np.sqrt(post.omega), rtol=1e-15)
    assert post.attrs["engine"] == "gibbs"
    assert json.loads(post.attrs["priors"]) == priors.as_dict()
    settings = json.loads(post.attrs["settings"])
    assert settings["tune"] == 20 and settings["thin"] == 1 and settings["scheme"] == "textbook"
    assert settings["conditionals"]["draw_lam"] == "hiercheck.samplers.gibbs.draw_lam"
    assert post.attrs["sampling_time"] > 0


def test_the_same_seed_gives_identical_draws(rail_run):
    data, priors, idata = rail_run
    again = gibbs.sample(data, priors, draws=50, chains=3, seed=11, tune=20)
    other = gibbs.sample(data, priors, draws=50, chains=3, seed=12, tune=20)
    for name in POSTERIOR_VARIABLES:
        np.testing.assert_array_equal(again.posterior[name], idata.posterior[name])
        assert not np.any(other.posterior[name].values == idata.posterior[name].values), name
    sequence = np.random.SeedSequence(99)
    first = gibbs.sample(data, priors, draws=5, chains=2, seed=sequence, tune=0)
    second = gibbs.sample(data, priors, draws=5, chains=2, seed=sequence, tune=0)
    np.testing.assert_array_equal(first.posterior.theta, second.posterior.theta)
    assert np.isfinite(gibbs.sample(data, priors, draws=5, chains=2, seed=None).posterior.mu).all()


def test_chains_are_not_copies(rail_run):
    _, _, idata = rail_run
    mu = idata.posterior.mu.values
    assert not np.any(mu[0] == mu[1]) and not np.any(mu[1] == mu[2])


@pytest.mark.parametrize("scheme", list(gibbs.SCHEMES))
def test_tune_and_thin_keep_the_right_sweeps(datasets, scheme):
    """With one seed, the kept draws of (tune T, thin k, D draws) are sweeps T+k, T+2k, ...
    of a run that keeps every sweep."""
    data = datasets["rail"]
    priors = Priors.weakly_informative(data)
    every = gibbs.sample(data, priors, draws=7 + 3 * 6, chains=2, seed=5, tune=0, scheme=scheme)
    thinned = gibbs.sample(data, priors, draws=6, chains=2, seed=5, tune=7, thin=3, scheme=scheme)
    for name in POSTERIOR_VARIABLES:
        np.testing.assert_array_equal(thinned.posterior[name],
                                      every.posterior[name].isel(draw=slice(7 + 2, None, 3)))


@pytest.mark.parametrize("scheme", list(gibbs.SCHEMES))
def test_sample_runs_tune_plus_draws_times_thin_sweeps(datasets, scheme):
    data = datasets["rail"]
    calls = []

    def counted_draw_theta(rng, state, stats, priors):
        calls.append(np.shape(state.mu))
        return gibbs.draw_theta(rng, state, stats, priors)

    gibbs.sample(data, Priors.weakly_informative(data), draws=9, chains=4, seed=0, tune=13,
                 thin=2, scheme=scheme, conditionals=Conditionals(draw_theta=counted_draw_theta))
    assert len(calls) == 13 + 9 * 2
    assert set(calls) == {(4,)}  # one vectorized call for all chains


def fixed_omega(rng, state, stats, priors):
    """omega = 2, whatever the state: a stand-in for a user's own conditional."""
    return np.full(np.shape(state.lam), 2.0)


@pytest.mark.parametrize("scheme", list(gibbs.SCHEMES))
def test_a_replaced_conditional_runs_through_sample(datasets, scheme):
    data = datasets["rail"]
    idata = gibbs.sample(data, Priors.weakly_informative(data), draws=30, chains=2, seed=3,
                         scheme=scheme, conditionals=Conditionals(draw_omega=fixed_omega))
    assert np.all(idata.posterior.omega.values == 2.0)
    assert np.unique(idata.posterior.mu.values).size == 60
    names = json.loads(idata.posterior.attrs["settings"])["conditionals"]
    assert names["draw_omega"].endswith("fixed_omega")
    assert names["draw_mu"] == "hiercheck.samplers.gibbs.draw_mu"


def stay(name):
    """A conditional that keeps the current value of `name`."""
    return lambda rng, state, stats, priors: getattr(state, name)


def test_a_given_initial_state_is_where_the_chains_start(datasets):
    data = datasets["rail"]
    start = probe_state(data)
    standing = Conditionals(*(stay(name) for name in GibbsState._fields))
    idata = gibbs.sample(data, Priors.weakly_informative(data), draws=3, chains=2, seed=0,
                         tune=0, init=start, conditionals=standing)
    for name, value in start._asdict().items():
        kept = idata.posterior[name].values
        np.testing.assert_array_equal(kept, np.broadcast_to(value, kept.shape))


def test_one_student_schools_sample(datasets):
    data = datasets["radon"]
    assert (data.n == 1).sum() >= 2
    for scheme in gibbs.SCHEMES:
        idata = gibbs.sample(data, Priors.weakly_informative(data), draws=200, chains=2, seed=1,
                             tune=100, scheme=scheme)
        assert all(np.isfinite(idata.posterior[name].values).all() for name in POSTERIOR_VARIABLES)
        assert idata.posterior.attrs["engine"] == gibbs.ENGINE_NAMES[scheme]


@pytest.mark.parametrize("options, message", [
    ({"draws": 0}, "draws"), ({"chains": 0}, "chains"),  # hiercheck.models.engine.check_run_size
])
def test_bad_run_sizes_are_refused(datasets, options, message):
    data = datasets["rail"]
    with pytest.raises(ValueError, match=message):
        gibbs.sample(data, Priors.weakly_informative(data),
                     **({"draws": 10, "chains": 2} | options))


@pytest.mark.parametrize("options, message", [
    ({"tune": -1}, "tune"), ({"thin": 0}, "thin"), ({"thin": 1.5}, "thin"),
    ({"scheme": "nuts"}, "scheme"), ({"init": "random"}, "init"),
    ({"conditionals": (gibbs.draw_theta,)}, "Conditionals"),
    ({"scheme": "blocked", "conditionals": Conditionals(draw_lam=stay("lam"))}, "blocked"),
    ({"init": GibbsState(theta=np.zeros(5), mu=0.0, lam=1.0, omega=1.0)}, "theta"),
    ({"init": GibbsState(theta=np.zeros(6), mu=0.0, lam=-1.0, omega=1.0)}, "lam"),
    ({"init": GibbsState(theta=np.zeros(6), mu=np.nan, lam=1.0, omega=1.0)}, "mu"),
    ({"init": GibbsState(theta=np.zeros((5, 6)), mu=0.0, lam=1.0, omega=1.0)}, "broadcast"),
])
def test_bad_settings_are_refused_by_name(datasets, options, message):
    data = datasets["rail"]
    with pytest.raises(SettingsError, match=message):
        gibbs.sample(data, Priors.weakly_informative(data),
                     **({"draws": 10, "chains": 2, "seed": 0} | options))


def test_sample_blocked_is_the_blocked_engine(rail_run):
    data, priors, _ = rail_run
    blocked = gibbs.sample_blocked(data, priors, draws=20, chains=2, seed=4, tune=10)
    direct = gibbs.sample(data, priors, draws=20, chains=2, seed=4, tune=10, scheme="blocked")
    np.testing.assert_array_equal(blocked.posterior.theta, direct.posterior.theta)
    assert blocked.posterior.attrs["engine"] == "blocked"


# -- the two sweeps share one stationary distribution ---------------------------------------------

MEAN_Z_LIMIT = 4.5  # |z| of a difference of two posterior means: false alarm 6.8e-6 each


def mean_z_scores(first, second, names) -> dict[str, np.ndarray]:
    """z = (mean_1 - mean_2) / sqrt(mcse_1^2 + mcse_2^2) for each variable of two posteriors
    (datasets with dims chain, draw); about N(0, 1) when both chains target the same law."""
    errors = [az.mcse(post, method="mean", var_names=list(names)) for post in (first, second)]
    return {name: ((first[name].mean(("chain", "draw")) - second[name].mean(("chain", "draw")))
                   / np.sqrt(errors[0][name] ** 2 + errors[1][name] ** 2)).values
            for name in names}


def test_textbook_and_blocked_sweeps_agree_on_rail(datasets):
    """Long runs of both sweeps on rail: posterior means agree within MCSE (11 quantities at
    |z| < 4.5: false alarm 8e-5 in all)."""
    data = datasets["rail"]
    priors = Priors.weakly_informative(data)
    runs = [gibbs.sample(data, priors, draws=25_000, chains=4, seed=21, scheme=scheme).posterior
            for scheme in gibbs.SCHEMES]
    for post in runs:
        assert float(az.rhat(post, var_names=["omega"]).omega) < 1.01
    for name, z in mean_z_scores(*runs, ("mu", "lam", "omega", "sigma", "tau", "theta")).items():
        assert np.all(np.abs(z) < MEAN_Z_LIMIT), f"{name}: z = {z}"


def misordered_blocked_sweep(rng, state, stats, priors, conditionals=Conditionals()):
    """The blocked sweep with omega moved after the collapsed lam step, so that it reads a theta
    drawn under the previous lam: not a valid sampler (docs/derivation.md, section 3.2)."""
    state = state._replace(lam=gibbs.draw_lam_collapsed(rng, state, stats, priors))
    state = state._replace(omega=conditionals.draw_omega(rng, state, stats, priors))
    state = state._replace(mu=gibbs.draw_mu_collapsed(rng, state, stats, priors))
    return state._replace(theta=conditionals.draw_theta(rng, state, stats, priors))


def test_the_order_of_the_blocked_sweep_matters():
    """The agreement check above has the power to see a stale theta. On 8 schools of 2 scores
    with little between-school spread (theta's conditional variance, which depends on lam, is
    most of its spread about mu), the mis-ordered sweep overstates E[tau | y] by about 0.06
    posterior SDs: z near 10 at this length (measured 7.0 to 7.7 at half of it), so |z| < 4.5
    would need a 5-sigma fluke. The valid sweeps agree on the same data."""
    rng = np.random.default_rng(5)
    codes = np.repeat(np.arange(8), 2)
    data = GroupedData.from_arrays(codes, rng.normal(0, 1, 16) + 0.2 * rng.normal(0, 1, 8)[codes])
    priors = Priors.weakly_informative(data)
    posteriors = {}
    for name, sweep in [*gibbs.SCHEMES.items(), ("misordered", misordered_blocked_sweep)]:
        start = gibbs.initial_state(rng, data.stats, priors, (4,))
        kept = gibbs.run(rng, data.stats, priors, start, tune=1000, draws=50_000, sweep=sweep)
        kept["tau"] = 1.0 / np.sqrt(kept["omega"])
        posteriors[name] = az.convert_to_dataset({k: np.moveaxis(v, 0, 1) for k, v in kept.items()})
    valid = mean_z_scores(posteriors["textbook"], posteriors["blocked"], ["tau"])["tau"]
    broken = mean_z_scores(posteriors["textbook"], posteriors["misordered"], ["tau"])["tau"]
    assert abs(valid) < MEAN_Z_LIMIT
    assert abs(broken) > MEAN_Z_LIMIT


# -- the derivation names the code ---------------------------------------------------------------

def test_the_derivation_names_functions_that_exist():
    names = set(re.findall(r"`(hiercheck\.samplers\.\w+\.\w+)`", DOC.read_text()))
    for function in ("draw_theta", "draw_mu", "draw_lam", "draw_omega", "draw_lam_collapsed",
                     "draw_mu_collapsed", "sweep", "blocked_sweep"):
        assert f"hiercheck.samplers.gibbs.{function}" in names
    for name in names:
        module, attribute = name.rsplit(".", 1)
        assert hasattr(importlib.import_module(module), attribute), f"{DOC.name} names {name}"


# -- the compiled kernels against the reference sweeps, draw for draw -----------------------------

KERNEL_CASES = [  # (data set, state batch, statistics batch (rescaled copies of the data))
    ("mathtest", (4,), ()), ("rail", (), ()), ("radon", (2, 3), (3,)), ("rail", (5,), (5,)),
]


@pytest.mark.parametrize("scheme", list(gibbs.SCHEMES))
@pytest.mark.parametrize("name, state_batch, stats_batch", KERNEL_CASES)
def test_the_compiled_kernel_draws_what_the_reference_sweeps_draw(datasets, scheme, name,
                                                                  state_batch, stats_batch):
    """`run` with the package's own conditionals goes through the compiled kernel; the sweeps
    themselves (`_run_reference`) are the reference. From one seed both consume the same
    variates, so every kept draw agrees to rounding (relative 1e-11: the sums add in another
    order) and both leave the Generator in the same state. The caller's state is not written."""
    pytest.importorskip("numba")
    data = datasets[name]
    priors = Priors.weakly_informative(data)
    copies = [rescaled(data, 1.0 + r, 3.0 * r) for r in range(int(np.prod(stats_batch)))]
    stats = (data.stats if stats_batch == () else
             school_stats(data.n, np.stack([d.ybar for d in copies]).reshape(stats_batch + (-1,)),
                          np.stack([d.ss for d in copies]).reshape(stats_batch + (-1,))))
    start = gibbs.initial_state(np.random.default_rng(1), stats, priors, state_batch)
    untouched = [np.copy(x) for x in start]
    sweep = gibbs.SCHEMES[scheme]
    assert gibbs._kernel_for(np.random.default_rng(), sweep, Conditionals()) is not None
    fast_rng, reference_rng = np.random.default_rng(2), np.random.default_rng(2)
    fast = gibbs.run(fast_rng, stats, priors, start, tune=7, draws=40, thin=3, sweep=sweep)
    reference = gibbs._run_reference(reference_rng, stats, priors,
                                     gibbs.broadcast_state(start, stats), tune=7, draws=40,
                                     thin=3, conditionals=Conditionals(), sweep=sweep)
    for variable in GibbsState._fields:
        assert fast[variable].shape == reference[variable].shape
        np.testing.assert_allclose(fast[variable], reference[variable], rtol=1e-11, atol=0,
                                   err_msg=variable)
    assert fast_rng.integers(2**62) == reference_rng.integers(2**62)
    for before, after in zip(untouched, start):
        np.testing.assert_array_equal(before, after)


def test_only_the_package_conditionals_and_sweeps_have_a_kernel():
    """A replaced conditional, another sweep or a legacy RandomState takes the reference path,
    whatever numba can do."""
    rng = np.random.default_rng()
    assert gibbs._kernel_for(rng, gibbs.sweep, Conditionals(draw_omega=fixed_omega)) is None
    assert gibbs._kernel_for(rng, misordered_blocked_sweep, Conditionals()) is None
    assert gibbs._kernel_for(np.random.RandomState(0), gibbs.sweep, Conditionals()) is None
