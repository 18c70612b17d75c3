"""hiercheck.validation.agreement: posterior-quantile comparison of two engines, Holm-corrected,
and the mixing gate that keeps it from passing what it cannot verify."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from hiercheck.models import Priors, load_dataset
from hiercheck.samplers import exact
from hiercheck.models.engine import az
from hiercheck.validation import agreement, diagnostics
from hiercheck.validation.statistics import holm_adjust, holm_adjust_per_group


@pytest.fixture(scope="module")
def dyestuff():
    return load_dataset("dyestuff")


@pytest.fixture(scope="module")
def exact_runs(dyestuff):
    priors = Priors.weakly_informative(dyestuff)
    a, b = np.random.SeedSequence(0).spawn(2)  # as benchmarks/false_alarms.py draws seed 0
    return (exact.sample(dyestuff, priors, draws=1000, chains=4, seed=a),
            exact.sample(dyestuff, priors, draws=1000, chains=4, seed=b))


def test_holm_matches_statsmodels():
    rng = np.random.default_rng(0)
    for size in (1, 2, 7, 55):
        p = rng.uniform(0, 0.2, size) ** 2
        p[: size // 3] = p[0]  # ties
        np.testing.assert_allclose(holm_adjust(p),
                                   multipletests(p, method="holm")[1], rtol=1e-12)


def test_holm_on_a_hand_worked_example():
    """p = (0.01, 0.04, 0.03, 0.005). Sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06,
    0.04 x 1 = 0.04, raised to the running maximum 0.06; a p-value of 0.5 x 5 is capped at 1."""
    np.testing.assert_allclose(holm_adjust(np.array([0.01, 0.04, 0.03, 0.005])),
                               [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm_adjust(np.array([0.5, 0.001, 0.5, 0.5, 0.5])),
                               [1, 0.005, 1, 1, 1])


def test_holm_per_group_on_a_hand_worked_example():
    """Groups a = (0.001, 0.2) and b = (0.004, 0.01, 0.02, 0.5, 0.5, 0.5), two groups. Within a:
    0.001 x 2 = 0.002, 0.2 -> 0.2, doubled: 0.004, 0.4. Within b: 0.004 x 6 = 0.024, 0.01 x 5 =
    0.05, 0.02 x 4 = 0.08, 0.5 x 3 = 1.5 -> 1, doubled and capped: 0.048, 0.1, 0.16, 1, 1, 1.
    Holm over all eight would give a's 0.001 only 0.008: the small group keeps its power."""
    p = np.array([0.001, 0.2, 0.004, 0.01, 0.02, 0.5, 0.5, 0.5])
    groups = np.array(["a", "a", "b", "b", "b", "b", "b", "b"])
    np.testing.assert_allclose(holm_adjust_per_group(p, groups),
                               [0.004, 0.4, 0.048, 0.1, 0.16, 1, 1, 1])
    assert holm_adjust(p)[0] == pytest.approx(0.008)


def test_holm_per_group_holds_the_family_wise_rate():
    """Uniform p-values in groups of 2 and 200 tests, 20,000 families: the share of families
    with some adjusted p <= 0.05 is at most 0.05 (Bonferroni over groups, Holm within: each
    group's rate 0.025; observed within 4 binomial SEs of at most that)."""
    rng = np.random.default_rng(0)
    groups = np.repeat([0, 1], [2, 200])
    families = 20_000
    alarms = sum(holm_adjust_per_group(rng.uniform(size=202), groups).min() <= 0.05
                 for _ in range(families))
    assert alarms / families <= 0.05 + 4 * np.sqrt(0.05 * 0.95 / families)


def test_exact_engine_agrees_with_itself_under_another_seed(exact_runs):
    """Two independent exact runs: the family-wise false-alarm rate of this test is alpha = 0.01
    (benchmarks/false_alarms.py measures it)."""
    result = agreement.compare(*exact_runs, alpha=0.01)
    assert result.passed, str(result)
    assert len(result.table) == 5 * (5 + 6)  # 5 quantiles of 5 scalars and 6 batches' theta
    assert "AGREE" in str(result)


# -- the z-test against engines whose answer is known: i.i.d. N(0, 1) draws -------------------------

SCHOOLS, SHIFTED, CHAINS, DRAWS = 150, 30, 4, 1000


def normal_engine(rng, shift):
    """An engine that draws theta_i i.i.d. N(shift_i, 1) for SCHOOLS schools."""
    theta = rng.standard_normal((CHAINS, DRAWS, SCHOOLS)) + shift
    return az.from_dict(posterior={"theta": theta}, coords={"school": np.arange(SCHOOLS)},
                        dims={"theta": ["school"]})


def window_to_true_density(q):
    """The pooled-window density of N(0, 1) at its q-quantile over its true density there:
    2 delta / (Phi^-1(q + delta) - Phi^-1(q - delta)) / phi(Phi^-1(q)), delta = min(q, 1-q)/2.
    A sample quantile's SD is sqrt(q (1-q) / N) / phi(Phi^-1(q)); the check's MCSE uses the
    window density, so its z has SD equal to this ratio (0.93 to 0.95: conservative)."""
    delta = min(q, 1 - q) / 2
    window = 2 * delta / (stats.norm.ppf(q + delta) - stats.norm.ppf(q - delta))
    return window / stats.norm.pdf(stats.norm.ppf(q))


@pytest.fixture(scope="module")
def normal_comparison():
    """Engine a draws the first SHIFTED schools 0.25 too high; engine b draws every school from
    N(0, 1). One comparison: 600 z's under agreement, 150 under a known shift."""
    rng = np.random.default_rng(20261128)
    shift = np.where(np.arange(SCHOOLS) < SHIFTED, 0.25, 0.0)
    return agreement.compare(normal_engine(rng, shift), normal_engine(rng, 0.0),
                             var_names=("theta",), alpha=0.01)


def test_quantiles_are_the_known_normal_quantiles_within_their_standard_error(normal_comparison):
    """Engine b's quantile column against Phi^-1(q): standardized by the known SD of a sample
    quantile of N = 4000 i.i.d. draws, sqrt(q (1-q) / N) / phi(Phi^-1(q)), the 750 errors have
    mean within 4 standard errors of 0 and SD within 4 standard errors of 1."""
    table = normal_comparison.table
    q = table["quantile"].to_numpy()
    true = stats.norm.ppf(q)
    sd = np.sqrt(q * (1 - q) / (CHAINS * DRAWS)) / stats.norm.pdf(true)
    errors = (table.b - true) / sd
    assert abs(errors.mean()) < 4 / np.sqrt(len(errors))
    assert abs(errors.std() - 1) < 4 / np.sqrt(2 * len(errors))


def test_z_under_agreement_has_the_predicted_spread(normal_comparison):
    """Over the 120 unshifted schools, z at each quantile level has mean ~0 and SD the window's
    density ratio (about 0.93), to within 4 standard errors (SD/sqrt(120) for the mean,
    SD/sqrt(240) for the SD); over all 600 the SD is 0.9 to 1."""
    table = normal_comparison.table
    unshifted = table[table.school >= SHIFTED]
    for q, rows in unshifted.groupby("quantile"):
        predicted = window_to_true_density(q)
        assert abs(rows.z.mean()) < 4 * predicted / np.sqrt(len(rows)), q
        assert abs(rows.z.std() - predicted) < 4 * predicted / np.sqrt(2 * len(rows)), q
    assert unshifted.agree.all()


def test_a_known_shift_moves_z_by_the_predicted_amount_and_is_caught(normal_comparison):
    """Shifting theta by 0.25 moves each quantile by 0.25, so z moves by 0.25 / sqrt(2 q (1-q) /
    N) times the window density: 7.4 at the median, 4.3 at 2.5%. The mean over the 30 shifted
    schools is within 4 standard errors of that at each level (the pooled draws of a shifted and
    an unshifted engine spread by 0.8% more, which lowers z by as much: far inside the bound),
    and the comparison fails on shifted schools only."""
    table = normal_comparison.table
    shifted = table[table.school < SHIFTED]
    for q, rows in shifted.groupby("quantile"):
        ratio = window_to_true_density(q)
        predicted = 0.25 * ratio * stats.norm.pdf(stats.norm.ppf(q)) / np.sqrt(
            2 * q * (1 - q) / (CHAINS * DRAWS))
        assert abs(rows.z.mean() - predicted) < 4 * ratio / np.sqrt(len(rows)), q
    assert not normal_comparison.passed
    assert set(table[~table.agree].school) <= set(range(SHIFTED))
    assert (shifted[shifted["quantile"] == 0.5].verdict == "disagree").all()


def test_a_posterior_shifted_by_a_few_mcse_disagrees(exact_runs):
    """mu's draws moved by 8 Monte Carlo standard errors of its median: every quantile of mu
    moves by ~8 mcse, z ~ 8 / sqrt(2) ~ 5.7, past Holm's threshold (~3.9 for 55 tests at 0.01)."""
    a, b = exact_runs
    shift = 8 * float(agreement.az.mcse(b.posterior.mu, method="quantile", prob=0.5).mu)
    shifted = b.copy()
    shifted.posterior["mu"] = b.posterior.mu + shift
    result = agreement.compare(a, shifted, alpha=0.01)
    assert not result.passed
    failed = result.table[~result.table.agree]
    assert set(failed.variable) == {"mu"}
    assert "DISAGREE" in str(result)


def test_kept_summaries_give_the_same_comparison(exact_runs):
    """The suite keeps the reference's side of the comparison (its quantiles, their ESS and its
    mixing table) between runs, and summarizes the sampler's draws once for both references:
    comparing with a summary must be comparing with the draws it summarizes."""
    a, b = exact_runs
    kept = {"summary_a": agreement.summarize(a), "summary_b": agreement.summarize(b)}
    table = agreement.compare(a, b).table
    for side, summary in kept.items():
        pd.testing.assert_frame_equal(agreement.compare(a, b, **{side: summary}).table, table)
    pd.testing.assert_frame_equal(agreement.compare(a, b, **kept).table, table)
    # and a kept summary is what is compared: its quantiles moved, the table's move with them
    for side, column in (("summary_a", "a"), ("summary_b", "b")):
        moved = dataclasses.replace(kept[side], values=kept[side].values + 1.0)
        np.testing.assert_allclose(agreement.compare(a, b, **{side: moved}).table[column],
                                   table[column] + 1.0)
        with pytest.raises(ValueError, match=f"{side} summarizes other quantiles or quantities"):
            agreement.compare(a, b, **{side: agreement.summarize(b, quantiles=(0.5,))})
        with pytest.raises(ValueError, match=f"{side} summarizes other quantiles or quantities"):
            agreement.compare(a, b, var_names=("mu",), **{side: kept[side]})


def test_alpha_outside_zero_one_is_refused(exact_runs):
    with pytest.raises(ValueError, match="alpha"):
        agreement.compare(*exact_runs, alpha=1.5)


# -- the mixing gate ---------------------------------------------------------------------------------

def ar1_chains(rng, rho, chains=4, draws=1000):
    """Stationary AR(1) chains with N(0, 1) margins: x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t."""
    x = np.empty((chains, draws))
    x[:, 0] = rng.standard_normal(chains)
    noise = rng.standard_normal((chains, draws)) * np.sqrt(1 - rho ** 2)
    for t in range(1, draws):
        x[:, t] = rho * x[:, t - 1] + noise[:, t]
    return x


def ar1_indicator_ess(draws, rho, p):
    """ESS of I(x_t <= Phi^-1(p)) over `draws` draws of a stationary Gaussian AR(1), from the
    indicator's autocorrelation at lag k, (Phi_2(c, c; rho^k) - p^2) / (p (1 - p)), summed."""
    c = stats.norm.ppf(p)
    lags = np.arange(1, 400)
    joint = [stats.multivariate_normal([0, 0], [[1, r], [r, 1]]).cdf([c, c]) for r in rho ** lags]
    correlation = (np.array(joint) - p ** 2) / (p * (1 - p))
    return draws / (1 + 2 * np.sum((1 - lags / draws) * correlation))


def test_mixing_table_reads_known_effective_sample_sizes():
    """Bulk ESS (of rank-normalized draws; normal draws already are) of N draws of a stationary
    AR(1) is N (1 - rho) / (1 + rho): 4000 for 4 chains of 1000 i.i.d. draws, 211 at rho = 0.9.
    Tail ESS is the ESS of the indicator of the 5% (and 95%) quantile, whose autocorrelation
    decays faster: 470 at rho = 0.9 (`ar1_indicator_ess`; 4000 chains' indicator means gave
    117.4 per chain against 117.5). One estimate errs by about 20% at rho = 0.9, so the test
    averages 40 independent sets of 4 chains. ArviZ's estimators are slightly biased at these
    sizes (its tail ESS of i.i.d. draws averages 3820, 4.5% low), and the gate needs them to 10%
    (the floor then lies between 360 and 440), so each mean must lie within 10% plus 4 standard
    errors of the known value. Every i.i.d. set clears the gate and no autocorrelated one does."""
    rng = np.random.default_rng(1)
    sets = 40
    draws = {f"iid{k}": rng.standard_normal((4, 1000)) for k in range(sets)}
    draws |= {f"ar{k}": ar1_chains(rng, 0.9) for k in range(sets)}
    table = diagnostics.mixing_table(draws, var_names=list(draws))
    kind = table.variable.str.rstrip("0123456789")
    expected = {("iid", "ess_bulk"): 4000, ("iid", "ess_tail"): 4000,
                ("ar", "ess_bulk"): 4000 * 0.1 / 1.9,
                ("ar", "ess_tail"): 4 * ar1_indicator_ess(1000, 0.9, 0.05)}
    for (name, column), value in expected.items():
        estimates = table.loc[kind == name, column]
        standard_error = estimates.std() / np.sqrt(sets)
        assert abs(estimates.mean() - value) < 0.1 * value + 4 * standard_error, \
            (name, column, value)
    assert table.mixed[kind == "iid"].all() and not table.mixed[kind == "ar"].any()


def test_chains_that_disagree_fail_the_gate_by_r_hat():
    """Four chains of i.i.d. draws, one centred 0.5 SD away: split R-hat is about
    sqrt(1 + var(split-chain means)) = sqrt(1 + 0.054) = 1.026, past 1.01."""
    rng = np.random.default_rng(2)
    draws = rng.standard_normal((4, 1000)) + np.array([[0.0], [0.0], [0.0], [0.5]])
    row = diagnostics.mixing_table({"x": draws}, var_names=["x"]).iloc[0]
    assert row.r_hat == pytest.approx(1.026, abs=0.008)
    assert not row.mixed


def test_a_single_chain_cannot_be_verified():
    row = diagnostics.mixing_table({"x": np.random.default_rng(3).standard_normal((1, 4000))},
                                 var_names=["x"]).iloc[0]
    assert np.isnan(row.r_hat) and not row.mixed


def sticky(idata, name, every=20):
    """`idata` with `name`'s draws held for `every` draws at a time: the same distribution,
    1/every as many effective draws."""
    out = idata.copy()
    values = idata.posterior[name].to_numpy()
    out.posterior[name] = idata.posterior[name].copy(data=np.repeat(values[:, ::every], every, 1))
    return out


def test_a_sampler_that_mixes_too_slowly_cannot_be_verified(exact_runs):
    """Exact draws of mu held 20 draws at a time: right distribution, ESS ~200 < 400. The mu rows
    say "cannot verify" and the comparison fails, naming the lowest ESS; the other rows agree."""
    a, b = exact_runs
    result = agreement.compare(sticky(a, "mu"), b, alpha=0.01)
    assert not result.passed and not result.verified
    verdicts = result.table.groupby("variable").verdict.unique()
    assert list(verdicts["mu"]) == ["cannot verify"]
    assert all(list(verdicts[name]) == ["agree"] for name in verdicts.index if name != "mu")
    what, value, limit = result.gate()
    assert what == "cannot verify: lowest ESS" and value < limit == diagnostics.ESS_FLOOR
    assert str(result).startswith("exact vs exact: cannot verify: lowest ESS")


def test_a_reference_that_mixes_too_slowly_is_named(exact_runs):
    a, b = exact_runs
    result = agreement.compare(a, sticky(b, "theta"), alpha=0.01)
    assert not result.passed
    assert set(result.table[result.table.variable == "theta"].verdict) == {
        "cannot verify: reference"}
    assert result.gate()[0] == "cannot verify: reference's lowest ESS"
