"""hiercheck.validation.ppc: posterior predictive checks of the common variance and of
independence within a group, against scipy's Bartlett test and data that break each assumption."""

import numpy as np
import pytest
from scipy import stats

from hiercheck.models import GroupedData, Priors
from hiercheck.samplers import gibbs
from hiercheck.validation import ppc


def grouped(sizes, sds, rng, ar=0.0, means=None):
    """Groups of the given sizes and within SDs; residuals AR(1) with coefficient `ar`."""
    codes = np.repeat(np.arange(len(sizes)), sizes)
    means = rng.normal(50, 5, len(sizes)) if means is None else means
    values = []
    for size, sd, mean in zip(sizes, sds, means):
        e = np.empty(size)
        e[0] = rng.standard_normal()
        for j in range(1, size):  # stationary AR(1), unit variance
            e[j] = ar * e[j - 1] + np.sqrt(1 - ar * ar) * rng.standard_normal()
        values.append(mean + sd * e)
    return GroupedData.from_arrays(codes, np.concatenate(values), name="simulated")


def posterior(data, seed=0):
    return gibbs.sample(data, Priors.weakly_informative(data), draws=500, chains=4, seed=seed)


def test_bartlett_statistic_is_scipys():
    rng = np.random.default_rng(1)
    groups = [rng.normal(0, s, n) for s, n in zip((1, 2, 1.5, 3), (5, 9, 2, 14))]
    data = GroupedData.from_arrays(np.repeat(np.arange(4), [g.size for g in groups]),
                                   np.concatenate(groups))
    assert ppc.bartlett_statistic(data.ss, data.n) == pytest.approx(
        stats.bartlett(*groups).statistic, rel=1e-12)


def test_lag_one_autocorrelation_counts_neighbours_within_a_group_only():
    residuals = np.array([1.0, 2.0, -1.0, 3.0, 0.5])
    codes = np.array([0, 0, 0, 1, 1])
    by_hand = (1 * 2 + 2 * -1 + 3 * 0.5) / (1 + 4 + 1 + 9 + 0.25)
    assert ppc.lag_one_autocorrelation(residuals, codes) == pytest.approx(by_hand)


def test_replicated_bartlett_follows_its_chi_square_null(mathtest):
    """Under a common variance B is approximately chi^2 with k - 1 degrees of freedom."""
    result = ppc.check_common_variance(posterior(mathtest), mathtest, seed=2)
    k = int((mathtest.n >= 2).sum())
    replicated = result.replicated
    assert replicated.size == 2000
    assert abs(replicated.mean() - (k - 1)) < 4 * np.sqrt(2 * (k - 1) / replicated.size)
    assert result.p_value == pytest.approx(stats.chi2.sf(result.observed[0], k - 1), abs=0.03)


def test_a_common_variance_is_not_flagged_but_sds_from_1_to_5_are():
    """Seeded: 40 schools of 6 to 20; each outcome is far from the threshold 0.01."""
    rng = np.random.default_rng(3)
    sizes = rng.integers(6, 21, 40)
    common = grouped(sizes, np.full(40, 3.0), rng)
    unequal = grouped(sizes, np.linspace(1, 5, 40), rng)
    kept = ppc.check_common_variance(posterior(common), common, seed=4)
    flagged = ppc.check_common_variance(posterior(unequal), unequal, seed=4)
    assert kept.passed and kept.p_value > 0.1, kept.table
    assert not flagged.passed and flagged.p_value < 0.001, flagged.table


def test_independent_measurements_are_not_flagged_but_autocorrelated_ones_are():
    rng = np.random.default_rng(5)
    sizes = np.full(20, 21)
    independent = grouped(sizes, np.full(20, 4.0), rng)
    correlated = grouped(sizes, np.full(20, 4.0), rng, ar=0.5)
    kept = ppc.check_independence(posterior(independent), independent, seed=6)
    flagged = ppc.check_independence(posterior(correlated), correlated, seed=6)
    assert kept.passed and kept.p_value > 0.05, kept.table
    assert not flagged.passed and flagged.p_value < 0.001, flagged.table


def test_a_result_is_a_table_and_a_plot(mathtest):
    result = ppc.check_independence(posterior(mathtest), mathtest, seed=0)
    assert list(result.table.columns[:2]) == ["check", "statistic"]
    assert result.table.passed.item() == result.passed
    ax = result.plot()
    assert ax.get_title().startswith("independence within a group")


def test_the_command_flags_unequal_variances_and_passes_a_common_one(tmp_path, capsys):
    from hiercheck.validation.cli import main

    rng = np.random.default_rng(8)
    sizes = rng.integers(6, 21, 40)
    for name, sds, code in (("common", np.full(40, 3.0), 0),
                            ("unequal", np.linspace(1, 5, 40), 1)):
        data = grouped(sizes, sds, rng)
        path = tmp_path / f"{name}.csv"
        path.write_text("school,score\n" + "\n".join(
            f"{data.labels[c]},{v:.12g}" for c, v in zip(data.codes, data.values)))
        assert main(["ppc", "--data", str(path), "--group", "school", "--value", "score",
                     "--out", str(tmp_path / name)]) == code
        assert (tmp_path / name / "ppc.csv").is_file()
    assert "Bartlett's statistic" in capsys.readouterr().out
