"""hiercheck.validation.sbc: simulation-based calibration of the Gibbs sampler (one batch), of any engine
through an executor (threads, processes, dask), resuming from a store, and of empirical Bayes."""

from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from scipy import stats as st

from hiercheck.models import GroupedData, load_dataset
from hiercheck.models.simulate import Parameters, draw_parameters, draw_scores
from hiercheck.samplers import empirical_bayes, exact
from hiercheck.validation import mutants, sbc
from hiercheck.validation.plots import save
from hiercheck.validation.quantities import log_joint_density
from hiercheck.errors import HiercheckError, StoreMismatchError

QUICK = dict(n=sbc.QUICK_DESIGN, priors=sbc.QUICK_PRIORS, **sbc.QUICK_SBC)
EXECUTOR_REPLICATIONS = 8  # the exact engine takes ~0.1 s a replication


@pytest.fixture(scope="module")
def design():
    return load_dataset("dyestuff")


@pytest.fixture(scope="module")
def serial_exact(design):
    return sbc.run_engine_sbc(exact.sample, design, sbc.QUICK_PRIORS,
                              replications=EXECUTOR_REPLICATIONS, draws=50, seed=7)


@pytest.mark.parametrize("scheme", ["textbook", "blocked"])
def test_correct_gibbs_sampler_is_calibrated(scheme):
    """Quick settings, seed 1, either sweep: family-wise false-alarm rate 0.01 each
    (benchmarks/false_alarms.py)."""
    result = sbc.run_gibbs_sbc(**QUICK, seed=1, scheme=scheme)
    table = result.table
    assert result.passed, table.to_string()
    assert result.replications == 1000
    assert result.engine == {"textbook": "gibbs", "blocked": "blocked"}[scheme]
    assert set(table.quantity) == {"mu", "lam", "omega", "sigma", "tau", "loglik", "log joint",
                                   *(f"theta[{i}]" for i in range(sbc.QUICK_DESIGN.size))}
    holm = multipletests(np.r_[table.chi2_p, table.ecdf_p], method="holm")[1]
    np.testing.assert_allclose(np.r_[table.chi2_p_holm, table.ecdf_p_holm], holm)


def test_only_unequal_school_sizes_show_a_slip_in_them():
    """theta_i's conditional with the mean size N/m for n_i is the right one on six schools of
    five, so SBC passes it there (at level 0.01, seed 1), and fails it on the quick design."""
    slip = mutants.get_mutant("theta-mean-school-size").conditionals
    settings = {**QUICK, "seed": 1, "conditionals": slip}
    assert sbc.run_gibbs_sbc(**{**settings, "n": np.full(6, 5)}).passed
    assert not sbc.run_gibbs_sbc(**settings).passed


def test_the_compiled_kernel_is_what_is_calibrated(monkeypatch):
    """With the package's own conditionals each block's chains run in the compiled kernel, and
    their ranks are those of the numpy sweeps (the same variates; a rank could differ only if
    rounding reordered a draw and the truth)."""
    pytest.importorskip("numba")
    from hiercheck.samplers import gibbs

    calls = []
    run_kernel = gibbs._run_kernel
    monkeypatch.setattr(gibbs, "_run_kernel", lambda *a, **k: calls.append(1) or run_kernel(*a, **k))
    settings = dict(n=sbc.QUICK_DESIGN, priors=sbc.QUICK_PRIORS, replications=120, draws=20,
                    thin=2, tune=20, seed=3)
    compiled = sbc.run_gibbs_sbc(**settings)
    assert len(calls) == 3  # one per block
    numpy = sbc.run_gibbs_sbc(**settings, conditionals=gibbs.Conditionals(
        draw_theta=lambda *args: gibbs.draw_theta(*args)))
    assert len(calls) == 3
    for name in compiled.ranks:
        np.testing.assert_array_equal(compiled.ranks[name], numpy.ranks[name], err_msg=name)


def test_the_log_joint_density_is_that_of_the_scores():
    """`log_joint_density` from the sufficient statistics against scipy's densities of the
    simulated scores themselves, theta_i and the priors."""
    rng = np.random.default_rng(4)
    n = np.array([1, 4, 9])
    codes = np.repeat(np.arange(n.size), n)
    priors = sbc.QUICK_PRIORS
    truth = draw_parameters(rng, priors, n.size, size=5)
    scores = draw_scores(rng, truth, codes)
    for k in range(5):
        mu, lam, omega, theta = truth.mu[k], truth.lam[k], truth.omega[k], truth.theta[k]
        expected = (st.norm.logpdf(scores[k], theta[codes], lam**-0.5).sum()
                    + st.norm.logpdf(theta, mu, (omega * lam) ** -0.5).sum()
                    + st.norm.logpdf(mu, priors.nu, priors.phi**-0.5)
                    + st.gamma.logpdf(lam, priors.a, scale=1 / priors.b)
                    + st.gamma.logpdf(omega, priors.c, scale=1 / priors.d))
        data = GroupedData.from_arrays(codes, scores[k])
        value = log_joint_density(Parameters(theta, mu, lam, omega), data.stats, priors)
        np.testing.assert_allclose(value, expected, rtol=1e-12)


def test_gibbs_sbc_resumes_after_an_interruption(tmp_path):
    """Blocks saved as they come: a run that lost some blocks recomputes only those and gives
    the same ranks as an uninterrupted run (no store)."""
    settings = dict(n=sbc.QUICK_DESIGN, priors=sbc.QUICK_PRIORS, replications=120, draws=20,
                    thin=2, tune=20, seed=3)
    whole = sbc.run_gibbs_sbc(**settings)
    sbc.run_gibbs_sbc(**settings, out=tmp_path / "run")
    (tmp_path / "run" / "unit-000001.npz").unlink()  # as if killed before block 1 was written
    resumed = sbc.run_gibbs_sbc(**settings, out=tmp_path / "run")
    for name in whole.ranks:
        np.testing.assert_array_equal(resumed.ranks[name], whole.ranks[name])
    with pytest.raises(StoreMismatchError, match="seed"):
        sbc.run_gibbs_sbc(**{**settings, "seed": 4}, out=tmp_path / "run")


class InterruptAfter:
    """The exact engine, killed (an exception) after `calls` replications; None never."""

    def __init__(self, calls):
        self.calls = calls

    def __call__(self, data, priors, *, draws, chains, seed):
        if self.calls is not None:
            if self.calls == 0:
                raise KeyboardInterrupt("stopped")
            self.calls -= 1
        return exact.sample(data, priors, draws=draws, chains=chains, seed=seed)


def test_engine_sbc_resumes_after_an_interruption(tmp_path, design, serial_exact):
    run = dict(replications=EXECUTOR_REPLICATIONS, draws=50, seed=7, out=tmp_path / "run",
               engine_name="exact")
    with pytest.raises(KeyboardInterrupt):
        sbc.run_engine_sbc(InterruptAfter(3), design, sbc.QUICK_PRIORS, **run)
    assert len(list((tmp_path / "run").glob("unit-*.npz"))) == 3
    resumed = sbc.run_engine_sbc(InterruptAfter(None), design, sbc.QUICK_PRIORS, **run)
    for name in serial_exact.ranks:
        np.testing.assert_array_equal(resumed.ranks[name], serial_exact.ranks[name])


@pytest.mark.parametrize("pool", [ThreadPoolExecutor, ProcessPoolExecutor])
def test_same_seed_same_ranks_on_two_workers(pool, design, serial_exact, tmp_path):
    with pool(max_workers=2) as executor:
        result = sbc.run_engine_sbc(exact.sample, design, sbc.QUICK_PRIORS,
                                    replications=EXECUTOR_REPLICATIONS, draws=50, seed=7,
                                    executor=executor, out=tmp_path / "run")
    assert len(list((tmp_path / "run").glob("unit-*.npz"))) == EXECUTOR_REPLICATIONS
    for name in serial_exact.ranks:
        np.testing.assert_array_equal(result.ranks[name], serial_exact.ranks[name])


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_same_seed_same_ranks_on_a_dask_cluster(processes, design, serial_exact):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=processes,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        result = sbc.run_engine_sbc(exact.sample, design, sbc.QUICK_PRIORS,
                                    replications=EXECUTOR_REPLICATIONS, draws=50, seed=7,
                                    executor=client.get_executor())
    for name in serial_exact.ranks:
        np.testing.assert_array_equal(result.ranks[name], serial_exact.ranks[name])


def test_empirical_bayes_theta_is_miscalibrated_on_a_small_design(design, tmp_path):
    """EB plugs in point estimates of (mu, lam, omega) and ignores their uncertainty, so on 6
    schools of 5 its theta_i intervals are too narrow: too many ranks in the extremes. Seed 0,
    200 replications; every theta fails uniformity at family-wise alpha 0.01. (Were EB calibrated,
    this test would fail with probability at most 0.01.)"""
    result = sbc.run_engine_sbc(empirical_bayes.sample, design, sbc.QUICK_PRIORS,
                                replications=200, draws=100, seed=0, engine_name="eb")
    table = result.table.set_index("quantity")
    thetas = [name for name in result.ranks if name.startswith("theta")]
    assert not table.loc[thetas].uniform.any(), table.to_string()
    extremes = np.mean([np.mean((result.ranks[t] <= 4) | (result.ranks[t] >= 96)) for t in thetas])
    assert extremes > 0.2  # 10 of 101 rank values: 0.099 expected if calibrated
    axes = result.plot(names=thetas)
    assert axes.shape == (len(thetas), 2) and len(axes[0, 0].figure.axes) == 2 * len(thetas)
    save(axes, tmp_path / "eb.png")
    assert (tmp_path / "eb.png").stat().st_size > 10_000


class StickyExact:
    """Exact posterior draws made into a lazy chain: each step keeps the previous joint draw with
    probability `stay`, else takes the next i.i.d. one. Every draw still has the posterior as its
    distribution, but every quantity's autocorrelation at lag k is stay^k, so N draws are worth
    N (1 - stay) / (1 + stay)."""

    def __init__(self, stay):
        self.stay = stay

    def __call__(self, data, priors, *, draws, chains, seed):
        exact_seed, stick_seed = seed.spawn(2)
        idata = exact.sample(data, priors, draws=draws, chains=chains, seed=exact_seed)
        refresh = np.random.default_rng(stick_seed).uniform(size=(chains, draws)) >= self.stay
        refresh[:, 0] = True
        held = np.maximum.accumulate(np.where(refresh, np.arange(draws), 0), axis=1)
        posterior = idata.posterior
        for name in posterior.data_vars:
            values = posterior[name].to_numpy()
            picked = np.take_along_axis(values, held.reshape(held.shape + (1,) * (values.ndim - 2)),
                                        axis=1)
            posterior[name] = posterior[name].copy(data=picked)
        return idata


@pytest.fixture(scope="module")
def sticky_runs(design):
    """SBC of a calibrated engine with autocorrelation 0.8^k (N draws worth N/9), 20 ranked draws
    per replication, 100 replications: unthinned, and thinned by 50 (1000 draws worth 111, the
    kept draws correlated 0.8^50 < 1e-4); and 10 replications thinned by 2 (40 draws worth 4.4)."""
    return {thin: sbc.run_engine_sbc(StickyExact(0.8), design, sbc.QUICK_PRIORS,
                                     replications=replications, draws=20, thin=thin, seed=5)
            for thin, replications in ((1, 100), (50, 100), (2, 10))}


def test_autocorrelated_draws_make_a_calibrated_engine_fail_sbc(sticky_runs):
    """20 draws worth about 2: the ranks pile at 0 and 20 (2/21 = 0.095 of them would if the draws
    were independent; with 900 ranks in 100 replications its standard error is below 0.03), and
    the run fails."""
    result = sticky_runs[1]
    assert not result.passed
    extreme = np.mean([np.mean((ranks == 0) | (ranks == 20)) for ranks in result.ranks.values()])
    assert extreme > 0.095 + 4 * 0.03, extreme
    assert result.lowest_ess is None and result.under_thinned is None


def test_thinning_past_the_autocorrelation_time_restores_uniform_ranks(sticky_runs):
    """Every 50th of 1000 draws: independent for practical purposes, and the engine is
    calibrated, so SBC passes (false-alarm rate 0.01 at this seed). Each run's 1000 draws are
    worth about 111, well above the 20 ranked draws: the recorded lowest of the 18 ESS estimates
    (bulk and tail of 9 quantities) errs low, a tail ESS resting on the ~6 effective draws in a
    5% tail, yet its median over the replications is above 40 (it still falls below 20 in a few
    per cent of them, so the under-thinned count errs toward alarm). Thinned by 2, 40 draws are
    worth 4.4 < 20, and every replication counts as under-thinned."""
    thinned = sticky_runs[50]
    assert thinned.passed, thinned.table.to_string()
    assert thinned.draws == 20 and thinned.settings["thin"] == 50
    assert np.median(thinned.lowest_ess) > 2 * thinned.draws
    assert sticky_runs[2].under_thinned == 10


def test_sbc_validates_its_sizes():
    with pytest.raises(HiercheckError, match="replications must be an integer >= 1"):
        sbc.run_gibbs_sbc(sbc.QUICK_DESIGN, sbc.QUICK_PRIORS, replications=0)


def test_describe_engine_names_partials_reproducibly():
    import functools

    name = sbc.describe_engine(functools.partial(exact.sample, spacing=0.5))
    assert name == "hiercheck.samplers.exact.sample(spacing=0.5)"
    assert sbc.describe_engine(InterruptAfter(None)).endswith("test_sbc.InterruptAfter")


@pytest.mark.slow
def test_nuts_replications_reuse_one_compiled_model(design):
    """NUTS through nutpie: every replication after the first samples the model compiled for the
    first (the scores change through pm.Data), so the cache gains one entry for the whole run."""
    import functools

    from hiercheck.models import reference

    engine = functools.partial(reference.sample_nuts, backend="nutpie", tune=200)
    before = set(reference._nutpie_models)
    sbc.run_engine_sbc(engine, design, sbc.QUICK_PRIORS, replications=4, draws=50, seed=2)
    assert len(set(reference._nutpie_models) - before) == 1


def test_the_most_suspect_quantities_are_the_least_uniform_first():
    """Ranks piled at the top (a bias a posterior SD wide), piled mildly in the middle, and
    uniform: the plot's rows come in that order, whatever the order of the ranks."""
    rng = np.random.default_rng(5)
    draws, replications = 99, 1000
    uniform = {f"flat{k}": rng.integers(0, draws + 1, replications) for k in range(4)}
    biased = np.minimum(rng.binomial(draws, 0.8, replications), draws)
    middle = np.where(rng.random(replications) < 0.04, draws // 2,
                      rng.integers(0, draws + 1, replications))
    result = sbc.SBCResult(ranks={**uniform, "middle": middle, "biased": biased}, draws=draws,
                           engine="test")
    assert result.most_suspect(2) == ["biased", "middle"]
    assert sorted(result.most_suspect(10)) == sorted(result.ranks)


def test_saving_keeps_the_rank_plots_margins_and_tightens_other_figures(tmp_path):
    """The rank plot places its rows in inches (the title's lines above them); `save` keeps
    that, and still tightens a figure whose margins its plot function left alone, even one
    that widened the gaps between panels."""
    from hiercheck.validation.plots import new_axes

    rng = np.random.default_rng(7)
    result = sbc.SBCResult(ranks={name: rng.integers(0, 51, 200) for name in ("a", "b")},
                           draws=50, engine="test")
    figure = result.plot(title="two\nlines")[0, 0].figure
    placed = vars(figure.subplotpars).copy()
    save(figure, tmp_path / "ranks.png")
    assert vars(figure.subplotpars) == placed
    for widened in (False, True):
        axes = new_axes(2, 1, figsize=(4, 4))
        if widened:
            axes[0].figure.subplots_adjust(hspace=0.6)
        before = vars(axes[0].figure.subplotpars).copy()
        save(axes, tmp_path / "other.png")
        assert vars(axes[0].figure.subplotpars) != before
