"""The power study (hiercheck.validation.power): its perturbations against the closed-form
conditionals written out here, its bookkeeping against synthetic runs and scipy, resumption,
and the command's one-line errors.

Moment tests use 100000 draws at one state and hold the sample mean and SD within 5 Monte
Carlo standard errors of the closed form: a false alarm about 6e-7 per comparison, at fixed seeds.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from hiercheck.errors import SettingsError, StoreMismatchError
from hiercheck.models import Priors
from hiercheck.models.data import school_stats
from hiercheck.samplers import gibbs
from hiercheck.validation import power, suite
from hiercheck.validation.cli import main

DRAWS = 100_000
STATS = school_stats(np.array([3, 5, 8, 12]), np.array([1.0, -0.5, 2.0, 0.3]),
                     np.array([4.0, 6.0, 11.0, 20.0]))
PRIORS = Priors(a=3, b=6, c=3, d=2, nu=0.5, phi=1.5)
THETA = np.array([0.8, -0.2, 1.5, 0.1])
MU, LAM, OMEGA = 0.4, 0.7, 2.5


def state(batch=DRAWS):
    return gibbs.GibbsState(np.tile(THETA, (batch, 1)), np.full(batch, MU), np.full(batch, LAM),
                            np.full(batch, OMEGA))


def closed_form(conditional):
    """(mean, sd, excess kurtosis) of each full conditional at the state above, from
    docs/derivation.md written out afresh."""
    n, ybar, ss, m, N = STATS.n, STATS.ybar, STATS.ss, 4, STATS.n.sum()
    p = PRIORS
    w = n * OMEGA / (n + OMEGA)
    if conditional == "theta":
        return ((n * ybar + OMEGA * MU) / (n + OMEGA), 1 / np.sqrt(LAM * (n + OMEGA)), 0.0)
    if conditional in ("mu", "mu_collapsed"):
        if conditional == "mu":
            precision = OMEGA * LAM * m + p.phi
            mean = (OMEGA * LAM * THETA.sum() + p.phi * p.nu) / precision
        else:
            precision = LAM * w.sum() + p.phi
            mean = (LAM * (w * ybar).sum() + p.phi * p.nu) / precision
        return mean, 1 / np.sqrt(precision), 0.0
    if conditional == "lam":
        shape = p.a + (N + m) / 2
        rate = p.b + (ss.sum() + (n * (ybar - THETA) ** 2).sum()
                      + OMEGA * ((THETA - MU) ** 2).sum()) / 2
    elif conditional == "lam_collapsed":
        shape, rate = p.a + N / 2, p.b + (ss.sum() + (w * (ybar - MU) ** 2).sum()) / 2
    else:
        shape, rate = p.c + m / 2, p.d + LAM * ((THETA - MU) ** 2).sum() / 2
    return shape / rate, np.sqrt(shape) / rate, 6 / shape


CONDITIONALS = ("theta", "mu", "lam", "omega", "mu_collapsed", "lam_collapsed")


@pytest.mark.parametrize("conditional", CONDITIONALS)
@pytest.mark.parametrize("kind, eps", [("shift", 0.2), ("spread", 0.2), ("shift", 0.0)])
def test_a_perturbation_moves_the_mean_or_scales_the_sd_as_specified(conditional, kind, eps):
    mean, sd, excess_kurtosis = closed_form(conditional)
    draw = power.perturbed_conditional(conditional, kind, eps)
    x = draw(np.random.default_rng(11), state(), STATS, PRIORS)
    expected_mean = mean + eps * sd if kind == "shift" else mean
    expected_sd = sd * (1 + eps) if kind == "spread" else sd
    mean_se = expected_sd / np.sqrt(DRAWS)
    sd_se = expected_sd * np.sqrt((excess_kurtosis + 2) / (4 * DRAWS))
    np.testing.assert_array_less(np.abs(x.mean(0) - expected_mean), 5 * mean_se)
    np.testing.assert_array_less(np.abs(x.std(0) - expected_sd), 5 * sd_se)


@pytest.mark.parametrize("conditional", CONDITIONALS)
@pytest.mark.parametrize("kind", power.KINDS)
def test_eps_zero_reproduces_the_package_draws_exactly(conditional, kind):
    field = f"draw_{conditional}"
    mine = power.perturbed_conditional(conditional, kind, 0.0)(
        np.random.default_rng(5), state(50), STATS, PRIORS)
    theirs = getattr(gibbs, field)(np.random.default_rng(5), state(50), STATS, PRIORS)
    np.testing.assert_array_equal(mine, theirs)


def test_conditional_moments_are_the_closed_forms():
    for conditional in CONDITIONALS:
        mean, sd = power.conditional_moments(conditional, state(1), STATS, PRIORS)
        want_mean, want_sd, _ = closed_form(conditional)
        np.testing.assert_allclose(np.squeeze(mean), want_mean, rtol=1e-12)
        np.testing.assert_allclose(np.squeeze(sd), want_sd, rtol=1e-12)


def test_a_spread_draw_of_a_precision_stays_positive():
    # eps = 3 scales omega's deviations fourfold: x + 3 (x - mean) <= 0 when x <= 3/4 of the
    # mean, P = Gamma(5).cdf(3.75) = 0.32; each such draw becomes POSITIVE_FLOOR times the mean
    x = power.perturbed_conditional("omega", "spread", 3.0)(
        np.random.default_rng(2), state(10_000), STATS, PRIORS)
    mean = closed_form("omega")[0]
    floored = np.mean(x == power.POSITIVE_FLOOR * mean)
    p = scipy_stats.gamma.cdf(0.75 * 5, 5)
    assert x.min() > 0
    assert abs(floored - p) < 5 * np.sqrt(p * (1 - p) / x.size)


@pytest.mark.parametrize("arguments, message", [
    (("sigma", "shift", 0.1), "unknown conditional 'sigma'"),
    (("mu", "tilt", 0.1), "unknown perturbation kind 'tilt'"),
    (("mu", "shift", -0.1), "eps must be a finite number >= 0"),
    (("mu", "shift", float("nan")), "eps must be a finite number >= 0"),
])
def test_bad_perturbations_are_refused(arguments, message):
    with pytest.raises(SettingsError, match=message):
        power.perturbed_conditional(*arguments)


def test_a_collapsed_conditional_is_refused_in_the_textbook_sweep():
    with pytest.raises(SettingsError, match="textbook sweep does not draw from 'mu_collapsed'"):
        power.power_study(["mu_collapsed"], checks=("geweke",))


# -- the study and its bookkeeping ----------------------------------------------------------------

def test_a_gross_error_is_caught_and_no_error_is_not(tmp_path):
    runs = power.power_study(["omega"], ["shift"], [0.0, 0.5], seeds=1, checks=("geweke",))
    caught = runs.set_index("eps")["caught"]
    assert not caught.loc[0.0] and caught.loc[0.5]
    smallest = power.smallest_detected(power.detection_rates(runs))
    assert set(smallest["eps_rate"]) == {0.5}


def test_rates_and_the_smallest_eps_from_a_synthetic_table():
    # suite-level catches at eps 0.01, 0.02, 0.03, 0.04 out of 20 seeds, two checks:
    # check A catches 20, 12, 20, 20; check B catches 0, 20, 19, 20 (seeds 0.. as listed)
    rows = []
    for eps, (a, b) in zip([0.01, 0.02, 0.03, 0.04], [(20, 0), (12, 20), (20, 19), (20, 20)]):
        for seed in range(20):
            rows += [{"conditional": "mu", "kind": "shift", "eps": eps, "seed": seed,
                      "check": "A", "value": 0.0, "caught": seed < a},
                     {"conditional": "mu", "kind": "shift", "eps": eps, "seed": seed,
                      "check": "B", "value": 0.0, "caught": seed >= 20 - b}]
    rates = power.detection_rates(pd.DataFrame(rows)).set_index(["check", "eps"])
    assert rates.loc[("A", 0.02), "caught"] == 12 and rates.loc[("B", 0.03), "rate"] == 0.95
    # at 0.02, A catches seeds 0-11 and B seeds 0-19: the suite catches all 20
    assert rates.loc[("suite", 0.01), "caught"] == 20 and rates.loc[("suite", 0.02), "caught"] == 20
    # one-sided 95% Clopper-Pearson lower bound: the lower end of the two-sided 90% exact interval
    for k in (12, 19, 20):
        want = scipy_stats.binomtest(k, 20).proportion_ci(0.90, method="exact").low
        assert power.clopper_pearson_lower(k, 20) == pytest.approx(want, rel=1e-9)
    assert rates.loc[("A", 0.04), "lower"] == pytest.approx(0.05 ** (1 / 20))
    smallest = power.smallest_detected(rates.reset_index()).set_index("check")
    # A: rate 1 at 0.01 but 0.6 at 0.02, so its claim starts at 0.03; B: 0.95 at 0.03 counts
    assert smallest.loc["A", "eps_rate"] == 0.03 and smallest.loc["B", "eps_rate"] == 0.02
    assert smallest.loc["suite", "eps_rate"] == 0.01
    # 20 of 20 gives a lower bound of 0.861 < 0.95: no eps is claimed at 95% confidence
    assert smallest["eps_bound"].isna().all()
    table = power.power_markdown(rates.reset_index())
    assert "| mu | shift | 0.02 | 12/20 | 20/20 | 20/20 | 0.86 |" in table
    assert "| mu | shift | 20 | 0.01 | not reached |" in table


def test_a_study_resumes_from_its_folder_without_running_again(tmp_path, monkeypatch):
    arguments = (["lam"], ["spread"], [0.05], 2)
    first = power.power_study(*arguments, checks=("geweke",), out=tmp_path)
    assert len(list(tmp_path.glob("unit-*.npz"))) == 2

    def refuse(*_, **__):
        raise AssertionError("a saved run was run again")
    monkeypatch.setattr(suite, "check_sampler", refuse)
    again = power.power_study(*arguments, checks=("geweke",), out=tmp_path)
    pd.testing.assert_frame_equal(first, again)
    with pytest.raises(StoreMismatchError, match="other settings"):
        power.power_study(*arguments, checks=("sbc",), out=tmp_path)


def test_two_processes_give_the_runs_of_one(tmp_path):
    arguments = (["mu"], ["shift"], [0.02, 0.1], 1)
    one = power.power_study(*arguments, checks=("geweke",))
    two = power.power_study(*arguments, checks=("geweke",), jobs=2)
    pd.testing.assert_frame_equal(one, two)


# -- the command ----------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--eps", "-0.1"], "eps must be a finite number >= 0"),
    (["--eps", "nan"], "eps must be a finite number >= 0"),
    (["--eps", "x"], "invalid float value: 'x'"),
    (["--seeds", "0"], "--seeds must be an integer >= 1"),
    (["--jobs", "0"], "--jobs must be an integer >= 1"),
    (["--conditional", "sigma"], "unknown conditional 'sigma'"),
    (["--model", "bloodpressure", "--scheme", "blocked"], "--model brings its own data and "
                                                           "priors; leave out --scheme"),
    (["--model", "bloodpressure", "--kind", "kernel"], "a model's block is perturbed by shift "
                                                       "or spread, not 'kernel'"),
    (["--conditional", "mu_collapsed"], "textbook sweep does not draw from 'mu_collapsed'"),
])
def test_bad_power_options_are_one_line_and_exit_2(capsys, tmp_path, argv, message):
    try:
        code = main(["power", *argv, "--out", str(tmp_path)])
    except SystemExit as stop:  # argparse's own usage errors
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_power_command_writes_its_tables(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(power, "DEFAULT_CHECKS", ("geweke",))
    code = main(["power", "--conditional", "omega", "--kind", "shift", "--eps", "0.5",
                 "--seeds", "1", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "| omega | shift | 0.5 | 1/1 | 1/1 | 0.05 |" in out
    for name in ("power_runs.csv", "power_rates.csv", "power_smallest.csv", "power.json",
                 "power.md"):
        assert (tmp_path / "power" / name).stat().st_size > 0


# -- any model: its conjugate blocks perturbed ------------------------------------------------------

BATCH = 20_000


@pytest.fixture(scope="module")
def regression():
    """The regression of tests/test_generic.py (beta | tau multivariate normal, tau | beta
    Gamma), its recognized conditionals, one state repeated BATCH times, and the data."""
    from hiercheck.validation.conjugate import conjugate_conditionals
    from tests.test_generic import regression_model

    model = regression_model()
    data = {"X": model["X"].get_value(), "y": model.rvs_to_values[model["y"]].data}
    states = {"beta": np.tile([0.9, -0.4, 2.1], (BATCH, 1)), "tau": np.full(BATCH, 3.5)}
    return conjugate_conditionals(model), states, data


def _beta_moments(data, tau):
    """beta | tau, y ~ N(V tau X'y, V), V = (tau X'X + I/100)^-1 (prior beta ~ N(0, 10^2 I))."""
    x, y = data["X"], data["y"]
    covariance = np.linalg.inv(tau * x.T @ x + np.eye(3) / 100)
    return covariance @ (tau * x.T @ y), covariance


def _tau_moments(data, beta):
    """tau | beta, y ~ Gamma(2 + n/2, 1 + |y - X beta|^2 / 2): its mean and SD."""
    residual = data["y"] - data["X"] @ beta
    shape, rate = 2.0 + residual.size / 2, 1.0 + residual @ residual / 2
    return shape / rate, np.sqrt(shape) / rate


def _batched_exact(data):
    """Exact batched draws of both blocks (every state of a batch the same), from the closed
    forms above."""
    def draw_beta(rng, state, data_):
        mean, covariance = _beta_moments(data, state["tau"][0])
        return rng.multivariate_normal(mean, covariance, size=len(state["tau"]))

    def draw_tau(rng, state, data_):
        mean, sd = _tau_moments(data, state["beta"][0])
        return rng.gamma((mean / sd) ** 2, sd**2 / mean, size=len(state["beta"]))
    return {"beta": draw_beta, "tau": draw_tau}


@pytest.mark.slow
def test_a_perturbed_block_moves_its_exact_conditional_by_eps_of_its_sd(regression):
    """Shift and spread of the multivariate normal beta and the Gamma tau, BATCH draws at one
    state: spread 0.2 multiplies beta's covariance by 1.44 (each variance within 5 SEs,
    sqrt(2/BATCH) relative), shift 0.2 moves each mean by 0.2 SD (within 5 SEs); eps = 0
    returns the draw itself."""
    exact, states, data = regression
    draws = _batched_exact(data)
    mean, covariance = _beta_moments(data, 3.5)
    sd = np.sqrt(np.diag(covariance))
    spread = power.perturbed_block(draws["beta"], exact["beta"], "spread", 0.2, batched=True)(
        np.random.default_rng(0), states, data)
    np.testing.assert_allclose(spread.var(axis=0), 1.44 * sd**2, rtol=5 * np.sqrt(2 / BATCH))
    shifted = power.perturbed_block(draws["beta"], exact["beta"], "shift", 0.2, batched=True)(
        np.random.default_rng(0), states, data)
    assert np.all(np.abs(shifted.mean(axis=0) - (mean + 0.2 * sd)) < 5 * sd / np.sqrt(BATCH))
    tau_mean, tau_sd = _tau_moments(data, states["beta"][0])
    tau = power.perturbed_block(draws["tau"], exact["tau"], "shift", 0.2, batched=True)(
        np.random.default_rng(1), states, data)
    assert abs(tau.mean() - (tau_mean + 0.2 * tau_sd)) < 5 * tau_sd / np.sqrt(BATCH)
    unchanged = power.perturbed_block(draws["tau"], exact["tau"], "spread", 0.0, batched=True)(
        np.random.default_rng(1), states, data)
    np.testing.assert_array_equal(unchanged, draws["tau"](np.random.default_rng(1), states,
                                                          data))


@pytest.mark.slow
def test_a_perturbed_block_of_one_state(regression):
    """One state at a time: the perturbed draw has the variable's shape; a kernel
    perturbation is refused for a model's block."""
    exact, states, data = regression
    state = {name: value[0] for name, value in states.items()}
    draws = _batched_exact(data)

    def draw_beta(rng, state, data_):
        return draws["beta"](rng, {"tau": np.atleast_1d(state["tau"])}, data_)[0]
    beta = power.perturbed_block(draw_beta, exact["beta"], "shift", 0.1)(
        np.random.default_rng(0), state, data)
    assert beta.shape == (3,)
    with pytest.raises(SettingsError, match="perturbed by shift or spread, not 'kernel'"):
        power.perturbed_block(draw_beta, exact["beta"], "kernel", 0.1)


@pytest.mark.slow
def test_power_of_a_built_in_model_through_the_command(capsys, tmp_path):
    """`power --model bloodpressure`: lam's draw spread by 5% of its SD is caught by
    consistency, its own draw (eps 0) is not; the tables are written."""
    code = main(["power", "--model", "bloodpressure", "--conditional", "lam", "--kind",
                 "spread", "--eps", "0", "0.05", "--seeds", "1", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "| lam | spread | 0 | 0/1 | 0/1 | 0.00 |" in out
    assert "| lam | spread | 0.05 | 1/1 | 1/1 | 0.05 |" in out
    for name in ("power_runs.csv", "power_rates.csv", "power_smallest.csv", "power.json",
                 "power.md"):
        assert (tmp_path / "power" / name).stat().st_size > 0
    code = main(["power", "--model", "bloodpressure", "--conditional", "sigma", "--out",
                 str(tmp_path / "other")])
    assert code == 2
    assert "the model bloodpressure has no block 'sigma' that can be perturbed; its conjugate " \
           "blocks in normal, mvnormal, gamma, inversegamma, beta are theta, (mu, beta), lam, " \
           "omega" in capsys.readouterr().err


# -- the kernel perturbation ----------------------------------------------------------------------

def test_the_kernel_perturbation_at_eps_zero_is_the_correct_kernel():
    from hiercheck.validation.kernels import draw_omega_metropolis

    start = state(200)._replace(omega=np.random.default_rng(1).gamma(5.0, 1.0, 200))
    mine = power.perturbed_conditional("omega", "kernel", 0.0)(
        np.random.default_rng(3), start, STATS, PRIORS)
    theirs = draw_omega_metropolis(np.random.default_rng(3), start, STATS, PRIORS)
    np.testing.assert_array_equal(mine, theirs)


def test_a_kernel_off_by_eps_leaves_a_wider_law_than_the_conditional():
    # started from exact draws of omega | rest = Gamma(c + m/2, R), one call of the correct
    # kernel keeps log omega's variance at trigamma(c + m/2); accepting e^1 times too often
    # widens it
    from scipy.special import polygamma

    shape = PRIORS.c + 4 / 2
    rate = PRIORS.d + LAM * ((THETA - MU) ** 2).sum() / 2
    exact = np.random.default_rng(4).gamma(shape, 1 / rate, DRAWS)
    start = state()._replace(omega=exact)
    variance = float(polygamma(1, shape))  # Var log omega under Gamma(shape, rate)
    excess_kurtosis = float(polygamma(3, shape)) / variance ** 2  # of log omega
    se = variance * np.sqrt((excess_kurtosis + 2) / DRAWS)  # of the sample variance
    for eps, widened in ((0.0, False), (1.0, True)):
        out = power.perturbed_conditional("omega", "kernel", eps)(
            np.random.default_rng(6), start, STATS, PRIORS)
        excess = np.log(out).var() - variance
        assert (excess > 10 * se) if widened else (abs(excess) < 5 * se)


def test_the_kernel_perturbation_is_refused_for_another_conditional():
    with pytest.raises(SettingsError, match="Metropolis kernel for omega, not of 'mu'"):
        power.perturbed_conditional("mu", "kernel", 0.1)
    with pytest.raises(SettingsError, match="needs omega among the conditionals"):
        power.power_study(["mu"], ["kernel"], checks=("geweke",))
