"""hiercheck.validation.agreement: posterior-quantile comparison of two engines, Holm-corrected."""

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from hiercheck.models import GroupedData, Priors
from hiercheck.samplers import exact
from hiercheck.validation import agreement


@pytest.fixture(scope="module")
def dyestuff(shared_data):
    return GroupedData.from_csv(shared_data / "dyestuff.csv", group="Batch", value="Yield")


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
        np.testing.assert_allclose(agreement.holm_adjust(p),
                                   multipletests(p, method="holm")[1], rtol=1e-12)


def test_exact_engine_agrees_with_itself_under_another_seed(exact_runs):
    """Two independent exact runs: the family-wise false-alarm rate of this test is alpha = 0.01
    (benchmarks/false_alarms.py measures it)."""
    result = agreement.compare(*exact_runs, alpha=0.01)
    assert result.passed, str(result)
    assert len(result.table) == 5 * (5 + 6)  # 5 quantiles of 5 scalars and 6 batches' theta
    assert "AGREE" in str(result)


def test_quantiles_are_the_draws_quantiles(exact_runs):
    a, b = exact_runs
    table = agreement.compare(a, b).table
    row = table[(table.variable == "theta") & (table.school == "C") & (table["quantile"] == 0.25)]
    draws = a.posterior.theta.sel(school="C").to_numpy().ravel()
    assert row.a.item() == pytest.approx(np.quantile(draws, 0.25))
    expected_z = (row.a - row.b) / np.sqrt(row.mcse_a**2 + row.mcse_b**2)
    assert row.z.item() == pytest.approx(expected_z.item())


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


def test_alpha_outside_zero_one_is_refused(exact_runs):
    with pytest.raises(ValueError, match="alpha"):
        agreement.compare(*exact_runs, alpha=1.5)
