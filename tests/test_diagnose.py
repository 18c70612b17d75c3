"""`Verdict.diagnose` and `Verdict.plot_diagnosis` (`hiercheck.validation.diagnose`): where a
failed `check_gibbs` verdict's slip is, each number measured against a closed form derived here,
with tolerances of five Monte Carlo standard errors (also derived here).

Two models: the student's math-test hierarchy (`hiercheck.samplers.student`, in variances) and
the linear regression of tests/test_generic.py (beta | tau, y multivariate normal, tau | beta, y
gamma). Their references are computed once per model and shared; only the consistency check
runs. The frame's own logic (which rows, at which state, from which stage) is also tested on
tables written by hand, without PyMC.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from hiercheck import check_gibbs
from hiercheck.errors import SettingsError
from hiercheck.samplers.student import student_conditionals, student_model
from hiercheck.validation.diagnose import COLUMNS, _elements
from hiercheck.validation.generic import Block
from hiercheck.validation.result import CheckOutcome, Verdict
from tests.test_generic import REGRESSION, draw_beta_independent, regression_model

DRAWS = 8000  # calls of the user's function per block and state, for tolerances of a few %


def draw_tau_rate_as_scale(rng, state, data):
    """tau | beta, y ~ Gamma(2 + n/2, rate 1 + |y - X beta|^2 / 2), with numpy given the rate
    where it takes the scale: Gamma(2 + n/2, scale 1 + |y - X beta|^2 / 2)  [wrong]
    """
    residual = data["y"] - data["X"] @ state["beta"]
    return rng.gamma(2.0 + residual.size / 2, 1.0 + residual @ residual / 2)


def parameters_of(shown: str) -> dict[str, float]:
    """'alpha=52, beta=2.007e+04' -> {'alpha': 52.0, 'beta': 20070.0}."""
    return {name: float(value) for name, value in (part.split("=") for part in shown.split(", "))}


SHOWN = 5e-5  # the frame shows 5 significant digits: at most half a unit of the 5th off


def log_sd(law, n: int, p: float, q: float) -> float:
    """The asymptotic SD of p log(mean) + q log(variance) of n draws of scipy's `law`, by the
    delta method: with a = d(mean)/mean, b = d(variance)/variance, var a = cv^2/n,
    var b = (excess kurtosis + 2)/n and cov(a, b) = skewness cv/n (cv = SD/mean).
    The method of moments' fits are such functions: a gamma's shape mean^2/variance (p = 2,
    q = -1) and rate mean/variance (p = 1, q = -1).
    """
    cv = law.std() / law.mean()
    skewness, excess = (float(v) for v in law.stats(moments="sk"))
    return math.sqrt((p**2 * cv**2 + q**2 * (excess + 2) + 2 * p * q * skewness * cv) / n)


# -- the student's math-test hierarchy --------------------------------------------------------

@pytest.fixture(scope="module")
def student(mathtest):
    """The compiled model and NUTS on the math-test data, shared by the checks below."""
    from hiercheck.validation.generic import ModelReferences

    return ModelReferences(student_model(mathtest), seed=0)


def consistency(references, conditionals):
    """The verdict of the consistency check alone, on shared references."""
    return check_gibbs(references.model, conditionals, checks=("consistency",),
                       references=references)


@pytest.mark.slow
def test_theta_given_its_variance_as_sd_shows_sd_ratio_sqrt_of_the_variance(mathtest, student):
    """rnorm's sd given the variance v_i = sigma^2 / (n_i + 1/tau^2): the draws' SD is v_i where
    the exact conditional's is sqrt(v_i), so sd_ratio = v_i / sqrt(v_i) = sqrt(v_i) at the state
    of the row, every school; the mean is right. The exact parameters are theta_i's conditional
    N((n_i ybar_i + mu/tau^2) / (n_i + 1/tau^2), v_i), written out here.
    """
    verdict = consistency(student, student_conditionals(mathtest, "draw_theta_variance_as_sd"))
    frame = verdict.diagnose(draws=DRAWS)
    assert list(frame.columns) == COLUMNS
    assert set(frame.block) == {"theta"}
    assert set(frame.coordinate) == {f"theta[{i}]" for i in range(mathtest.m)}
    n = np.bincount(mathtest.codes)
    ybar = np.bincount(mathtest.codes, weights=mathtest.values) / n
    for row in frame.itertuples():
        origin, x = student.states[row.state]
        assert origin == row.origin == "posterior"
        i = int(row.coordinate[len("theta["):-1])
        variance = x["sigma2"] / (n[i] + 1 / x["tau2"])
        mean = (n[i] * ybar[i] + x["mu"] / x["tau2"]) / (n[i] + 1 / x["tau2"])
        expected_ratio = variance / math.sqrt(variance)
        # a sample SD of normal draws is off by 1/sqrt(2 (draws - 1)) of itself
        assert row.sd_ratio == pytest.approx(expected_ratio, rel=5 / math.sqrt(2 * DRAWS))
        assert abs(row.mean_shift) < 5 * expected_ratio / math.sqrt(DRAWS)
        exact = parameters_of(row.exact)
        assert exact["mu"] == pytest.approx(mean, rel=SHOWN)
        assert exact["sigma"] == pytest.approx(math.sqrt(variance), rel=SHOWN)
        assert parameters_of(row.fitted)["sigma"] == pytest.approx(
            variance, rel=5 / math.sqrt(2 * DRAWS) + SHOWN)
        assert row.family == "normal" and row.draws == DRAWS
    # far from 1: sqrt(v_i) is at least 1.53 at these states (at the 32-student school)
    assert (frame.sd_ratio > 1.4).all()
    # the slip is in the SD alone: the worst rows failed the variance test
    assert frame.test.iloc[0] == "variance" and frame.var_z.iloc[0] > 50


@pytest.mark.slow
def test_sigma2_with_the_rate_as_scale_fits_beta_as_one_over_the_rate(mathtest, student):
    """1 / rng.gamma(shape, rate) is 1/(rate G), G ~ Gamma(shape, 1): an IG(shape, 1/rate)
    where IG(shape, rate) = rate/G is right. So the fitted shape is (N + P)/2, as the exact
    one, and the fitted beta 1/rate where the exact beta is the rate (S_w + S_b/tau^2)/2, with
    S_w = sum (y_ij - theta_i)^2 and S_b = sum (theta_i - mu)^2 at the row's state.
    """
    verdict = consistency(student, student_conditionals(mathtest, "draw_sigma2_rate_as_scale"))
    [row] = verdict.diagnose(draws=DRAWS).itertuples()
    assert (row.block, row.coordinate, row.family) == ("sigma2", "sigma2", "inversegamma")
    _, x = student.states[row.state]
    shape = (mathtest.N + mathtest.m) / 2
    within = np.sum((mathtest.values - x["theta"][mathtest.codes]) ** 2)
    between = np.sum((x["theta"] - x["mu"]) ** 2)
    rate = (within + between / x["tau2"]) / 2
    exact, fitted = parameters_of(row.exact), parameters_of(row.fitted)
    assert exact == pytest.approx({"alpha": shape, "beta": rate}, rel=SHOWN)
    # the inverse gamma's moment fit: alpha - 2 = mean^2/variance (p = 2, q = -1), and
    # beta = mean (alpha - 1), whose log moves by d log mean + w d log(mean^2/variance),
    # w = (alpha - 2)/(alpha - 1): p = 1 + 2w, q = -w
    users = st.invgamma(shape, scale=1 / rate)
    w = (shape - 2) / (shape - 1)
    assert fitted["alpha"] - 2 == pytest.approx(
        shape - 2, rel=5 * log_sd(users, DRAWS, 2, -1) + SHOWN)
    assert fitted["beta"] == pytest.approx(
        1 / rate, rel=5 * log_sd(users, DRAWS, 1 + 2 * w, -w) + SHOWN)
    # both means and SDs in the exact conditional's units, from the IG's moments
    exact_mean, exact_sd = rate / (shape - 1), rate / ((shape - 1) * math.sqrt(shape - 2))
    assert row.mean_shift == pytest.approx((1 / rate / (shape - 1) - exact_mean) / exact_sd,
                                           rel=1e-3)
    assert row.sd_ratio == pytest.approx(1 / rate**2, rel=5 * log_sd(users, DRAWS, 0, 0.5))


# -- the regression: a vector block and a gamma ----------------------------------------------

@pytest.fixture(scope="module")
def regression():
    """The compiled regression model and NUTS on its data, shared by the checks below."""
    from hiercheck.validation.generic import GENERIC_QUICK, ModelReferences

    return ModelReferences(regression_model(), GENERIC_QUICK, 0, "regression")


@pytest.mark.slow
def test_a_correct_sweep_has_nothing_to_diagnose(regression):
    """A passed verdict: an empty frame with every column, and nothing to draw."""
    verdict = consistency(regression, REGRESSION)
    assert verdict.passed
    frame = verdict.diagnose()
    assert frame.empty and list(frame.columns) == COLUMNS
    with pytest.raises(SettingsError, match="nothing to draw"):
        verdict.plot_diagnosis()


@pytest.mark.slow
def test_tau_with_the_rate_as_scale_fits_the_rate_as_its_inverse(regression):
    """numpy's gamma given the rate b = 1 + |y - X beta|^2 / 2 as its scale draws
    Gamma(2 + n/2, rate 1/b): the fitted shape is the exact 2 + n/2 = 52, the fitted rate 1/b
    where the exact one is b (beta at the row's state).
    """
    verdict = consistency(regression, REGRESSION | {"tau": draw_tau_rate_as_scale})
    [row] = verdict.diagnose(draws=DRAWS).itertuples()
    assert (row.block, row.coordinate, row.family) == ("tau", "tau", "gamma")
    _, x = regression.states[row.state]
    data = regression.compiled.data
    residual = data["y"] - data["X"] @ x["beta"]
    shape, rate = 2 + residual.size / 2, 1 + residual @ residual / 2
    assert parameters_of(row.exact) == pytest.approx({"alpha": shape, "beta": rate}, rel=SHOWN)
    users = st.gamma(shape, scale=rate)
    fitted = parameters_of(row.fitted)
    assert fitted["alpha"] == pytest.approx(shape, rel=5 * log_sd(users, DRAWS, 2, -1) + SHOWN)
    assert fitted["beta"] == pytest.approx(1 / rate, rel=5 * log_sd(users, DRAWS, 1, -1) + SHOWN)
    # the user's mean shape * rate against the exact shape / rate, in exact SDs sqrt(shape)/rate
    assert row.mean_shift == pytest.approx((shape * rate - shape / rate) * rate / math.sqrt(shape),
                                           rel=5 / math.sqrt(shape * DRAWS))


@pytest.mark.slow
def test_beta_drawn_without_its_correlations_shows_the_missing_correlation(regression):
    """Each beta_k from its own marginal conditional: right means and SDs, no correlation. The
    exact conditional is N(V tau X'y, V), V = (tau X'X + I/100)^-1, so each element's largest
    difference is minus its largest exact correlation in size, with that partner.
    """
    verdict = consistency(regression, REGRESSION | {"beta": draw_beta_independent})
    frame = verdict.diagnose(draws=DRAWS)
    assert list(frame.coordinate) == ["beta[0]", "beta[1]", "beta[2]"]
    assert set(frame.block) == {"beta"} and set(frame.family) == {"mvnormal"}
    data = regression.compiled.data
    for j, row in enumerate(frame.itertuples()):
        _, x = regression.states[row.state]
        covariance = np.linalg.inv(x["tau"] * data["X"].T @ data["X"] + np.eye(3) / 100)
        sd = np.sqrt(np.diag(covariance))
        correlation = covariance / np.outer(sd, sd)
        others = [k for k in range(3) if k != j]
        k = max(others, key=lambda k: abs(correlation[j, k]))
        # a sample correlation of independent draws is off by 1/sqrt(draws); the partner is
        # clear of the other by far more
        assert abs(abs(correlation[j, others[0]]) - abs(correlation[j, others[1]])) > 0.3
        assert row.corr_pair == f"beta[{j}], beta[{k}]"
        assert row.corr_diff == pytest.approx(-correlation[j, k], abs=5 / math.sqrt(DRAWS))
        assert row.sd_ratio == pytest.approx(1, rel=5 / math.sqrt(2 * DRAWS))
        assert abs(row.mean_shift) < 5 / math.sqrt(DRAWS)
        assert parameters_of(row.exact)["sigma"] == pytest.approx(sd[j], rel=SHOWN)


@pytest.mark.slow
def test_the_plot_draws_the_worst_coordinate_and_a_named_one(mathtest, student, tmp_path):
    """Two panels, titled with the frame's first coordinate or the one asked for, written to
    a file; a coordinate that did not fail is refused.
    """
    from matplotlib.figure import Figure

    from hiercheck.validation.plots import save

    verdict = consistency(student, student_conditionals(mathtest, "draw_theta_variance_as_sd"))
    worst = verdict.diagnose().coordinate.iloc[0]
    figure = verdict.plot_diagnosis()
    assert isinstance(figure, Figure) and len(figure.axes) == 2
    assert figure._suptitle.get_text().startswith(f"{worst} (block theta)")
    named = verdict.plot_diagnosis("theta[7]")
    assert named._suptitle.get_text().startswith("theta[7] (block theta)")
    save(named, tmp_path / "diagnosis.png")
    assert (tmp_path / "diagnosis.png").stat().st_size > 10_000
    with pytest.raises(SettingsError, match="'mu'"):
        verdict.plot_diagnosis("mu")


# -- the frame's rows, from tables written by hand (no PyMC) ---------------------------------

def table_verdict(rows: list[dict], blocks=("a", "b")) -> Verdict:
    """A check_gibbs-like verdict whose consistency table is `rows` (p_holm = p, agree where
    p > 0.001), its blocks functions of one state, and no conjugate conditional: the frame is
    what the table has.
    """
    table = pd.DataFrame(rows)
    table["p_holm"] = table.p
    table["agree"] = table.p > 1e-3
    outcome = CheckOutcome("consistency", "min Holm-adjusted p", float(table.p.min()), 5e-4,
                           bool(table.agree.all()), 0.0, table)
    references = SimpleNamespace(conjugate={})
    return Verdict((outcome,), "check_gibbs(...)", references,
                   tuple(Block((name,), print, joint=False) for name in blocks))


def table_row(block, point, coordinate, test, statistic, p, stage=0):
    """A row of a check_gibbs consistency table; state 0 is posterior, state 1 prior."""
    return {"block": block, "point": point, "origin": "prior" if point else "posterior",
            "coordinate": coordinate, "test": test, "statistic": statistic, "p": p,
            "draws": 2000 * (1 + 3 * stage), "stage": stage}


def test_a_block_without_an_exact_conditional_keeps_the_tables_z_scores():
    """Block a fails at coordinate a[1], worst at state 1 (prior), where its mean and variance
    z-scores are read; block b passes and has no row; the exact columns stay empty.
    """
    frame = table_verdict([
        table_row("a", 0, "a[0]", "mean", 1.0, 0.3),
        table_row("a", 0, "a[1]", "mean", 4.0, 1e-4),
        table_row("a", 0, "a[1]", "variance", 0.5, 0.6),
        table_row("a", 1, "a[1]", "mean", 6.0, 1e-9),
        table_row("a", 1, "a[1]", "variance", -2.0, 0.04),
        table_row("b", 0, "b", "mean", 0.1, 0.9),
    ]).diagnose()
    [found] = frame.to_dict(orient="records")
    assert {key: found[key] for key in ("block", "coordinate", "state", "origin", "test",
                                        "mean_z", "var_z", "draws", "family", "exact")} == {
        "block": "a", "coordinate": "a[1]", "state": 1, "origin": "prior", "test": "mean",
        "mean_z": 6.0, "var_z": -2.0, "draws": 2000, "family": "", "exact": ""}
    assert np.isnan([found["mean_shift"], found["sd_ratio"], found["corr_diff"]]).all()


def test_the_stage_that_decided_is_read_and_worst_comes_first():
    """A second stage decides: the first stage's failure at b is not a row, and of a's two
    failing coordinates the smaller p comes first (ties: the larger |z|).
    """
    frame = table_verdict([
        table_row("b", 0, "b", "mean", 5.0, 1e-7),
        table_row("a", 0, "a[0]", "mean", 1.0, 0.5, stage=1),
        table_row("b", 0, "b", "mean", 1.0, 0.5, stage=1),
        table_row("a", 0, "a[1]", "mean", 5.0, 0.0, stage=1),
        table_row("a", 1, "a[2]", "mean", 9.0, 0.0, stage=1),
    ]).diagnose()
    assert list(frame.coordinate) == ["a[2]", "a[1]"] and set(frame.draws) == {8000}


def test_a_block_failed_only_across_its_elements_shows_its_most_suspect_coordinate():
    """No coordinate of a failed, only the test of its elements' independence: its coordinate
    of the smallest p stands for it.
    """
    frame = table_verdict([
        table_row("a", 0, "a[0]", "mean", 1.0, 0.3),
        table_row("a", 0, "a[1]", "mean", 2.5, 0.01),
        table_row("a", 0, "2 separable elements", "independence", 0.2, 1e-8),
    ], blocks=("a",)).diagnose()
    assert list(frame.coordinate) == ["a[1]"] and frame.p_holm.iloc[0] == 0.01


def test_a_coupled_components_elements_are_read_from_its_name():
    """An element, a short component, a long one: "(first, ..., last: K coupled)"."""
    labels = [f"m[{j}]" for j in range(7)]
    assert _elements("m[3]", labels) == ["m[3]"]
    assert _elements("(m[0], m[1])", labels) == ["m[0]", "m[1]"]
    assert _elements("(m[1], ..., m[5]: 5 coupled)", labels) == labels[1:6]


def test_what_diagnose_does_not_cover_is_refused():
    """A check_sampler verdict, one without consistency, one whose consistency diverged, and
    fewer than two draws: each a SettingsError that says so.
    """
    passed = CheckOutcome("geweke", "min Holm-adjusted p", 0.5, 1e-3, True, 0.0, pd.DataFrame())
    with pytest.raises(SettingsError, match="covers verdicts of check_gibbs"):
        Verdict((passed,), "check_sampler(...)").diagnose()
    blocks = (Block(("a",), print, joint=False),)
    with pytest.raises(SettingsError, match="include 'consistency'"):
        Verdict((passed,), "check_gibbs(...)", None, blocks).diagnose()
    diverged = CheckOutcome("consistency", "the sweep diverged: draw_a returned nan", math.nan,
                            1e-3, False, 0.0, pd.DataFrame({"divergence": ["..."]}))
    with pytest.raises(SettingsError, match="no tests to read: the sweep diverged"):
        Verdict((diverged,), "check_gibbs(...)", None, blocks).diagnose()
    with pytest.raises(SettingsError, match="draws must be an integer >= 2"):
        table_verdict([table_row("a", 0, "a", "mean", 9.0, 0.0)]).diagnose(draws=1)
