"""hiercheck.validation.diagnostics: ESS and R-hat vectorized over quantities, checked against
ArviZ's own implementation (one quantity at a time, through its numpy entry points), which the
mixing gate's floors were set with. Both are deterministic functions of the same draws, so they
must agree to rounding: relative 1e-8 (observed: 1e-13)."""

import logging

import numpy as np
import pandas as pd
import pytest

from hiercheck.errors import DataError, SettingsError
from hiercheck.models.engine import az
from hiercheck.validation import agreement, diagnostics

RTOL = 1e-8
PROBS = (0.0, 0.025, 0.05, 0.25, 0.5, 0.75, 0.95, 0.975, 1.0)


@pytest.fixture(autouse=True)
def quiet_arviz(caplog):
    """ArviZ logs a warning for each quantity it finds undefined (NaN, too few chains)."""
    caplog.set_level(logging.ERROR, logger="arviz")


def ar1(rng, rho, chains, draws, k=3):
    """Stationary AR(1) chains with N(0, 1) margins and lag-one correlation rho, shape
    (chains, draws, k)."""
    x = np.empty((chains, draws, k))
    x[:, 0] = rng.standard_normal((chains, k))
    shocks = rng.standard_normal((chains, draws, k)) * np.sqrt(1 - rho ** 2)
    for t in range(1, draws):
        x[:, t] = rho * x[:, t - 1] + shocks[:, t]
    return x


def one_stuck_chain(rng):
    """Three mixing chains and one stuck at a single value, beside an entirely constant quantity."""
    x = rng.standard_normal((4, 400, 2))
    x[3, :, 0] = 0.7
    x[:, :, 1] = 2.5
    return x


CASES = {
    "iid normal": lambda rng: rng.standard_normal((4, 1000, 4)),
    "ar1 0.5": lambda rng: ar1(rng, 0.5, 4, 600),
    "ar1 0.9": lambda rng: ar1(rng, 0.9, 4, 600),
    "ar1 0.99": lambda rng: ar1(rng, 0.99, 4, 1000),
    "ar1 -0.6 (antithetic)": lambda rng: ar1(rng, -0.6, 4, 500),
    "ar1 0.99, 11 draws (Geyer's sum hits its length limit)": lambda rng: ar1(rng, 0.99, 4, 11),
    "cauchy": lambda rng: rng.standard_cauchy((4, 700, 4)),
    "discrete, many ties": lambda rng: rng.poisson(0.4, (4, 500, 3)),
    "one chain": lambda rng: ar1(rng, 0.8, 1, 1000),
    "odd draws (split drops the middle one)": lambda rng: ar1(rng, 0.7, 4, 501),
    "two chains of 5 draws": lambda rng: rng.standard_normal((2, 5, 3)),
    "one stuck chain, one constant quantity": one_stuck_chain,
    "one chain of 4 draws, the fewest defined": lambda rng: rng.standard_normal((1, 4, 3)),
    "3 draws: undefined": lambda rng: rng.standard_normal((4, 3, 2)),
}


def arviz_each(function, draws):
    """ArviZ's diagnostic of each quantity (chains, draws) of draws (chains, draws, K)."""
    return np.array([float(function(draws[:, :, k])) for k in range(draws.shape[2])])


def assert_same(mine, arviz):
    np.testing.assert_array_equal(np.isnan(mine), np.isnan(arviz))
    np.testing.assert_allclose(mine, arviz, rtol=RTOL)


@pytest.fixture(params=list(CASES), scope="module")
def draws(request):
    return CASES[request.param](np.random.default_rng(list(CASES).index(request.param)))


def test_bulk_ess_matches_arviz(draws):
    assert_same(diagnostics.ess_bulk(draws), arviz_each(lambda x: az.ess(x, method="bulk"), draws))


def test_tail_ess_matches_arviz(draws):
    assert_same(diagnostics.ess_tail(draws), arviz_each(lambda x: az.ess(x, method="tail"), draws))


def test_rank_normalized_split_r_hat_matches_arviz(draws):
    with np.errstate(divide="ignore", invalid="ignore"):  # ArviZ's 0/0 on a constant quantity
        assert_same(diagnostics.rhat(draws), arviz_each(az.rhat, draws))


@pytest.mark.parametrize("prob", PROBS)
def test_quantile_ess_matches_arviz(draws, prob):
    assert_same(diagnostics.ess_quantile(draws, prob),
                arviz_each(lambda x: az.ess(x, method="quantile", prob=prob), draws))


def test_the_undefined_cases_are_those_of_arviz():
    """A NaN draw makes only its own quantity's diagnostics NaN; one chain leaves R-hat undefined;
    a constant quantity has ESS = the split draws' count (2 x 4 x 200) and R-hat NaN."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 401, 3))
    x[2, 17, 0] = np.nan
    x[:, :, 2] = -1.0
    assert np.isnan(diagnostics.ess_bulk(x)[0]) and np.isfinite(diagnostics.ess_bulk(x)[1])
    assert np.isnan(diagnostics.rhat(x)[0]) and np.isfinite(diagnostics.rhat(x)[1])
    assert diagnostics.ess_bulk(x)[2] == diagnostics.ess_tail(x)[2] == 1600
    assert np.isnan(diagnostics.rhat(x)[2])
    assert np.isnan(diagnostics.rhat(x[:1])).all()


def test_bad_input_is_refused():
    with pytest.raises(DataError, match="shape"):
        diagnostics.ess_bulk(np.zeros((4, 100)))
    with pytest.raises(SettingsError, match="prob"):
        diagnostics.ess_quantile(np.zeros((4, 100, 1)), 1.5)


def arviz_mixing_table(posterior, var_names):
    """The mixing table as agreement computed it before `diagnostics`: az.ess and az.rhat on the
    xarray posterior, a row per scalar and per theta_i."""
    dataset = posterior.posterior[var_names]
    bulk, tail = (az.ess(dataset, method=method) for method in ("bulk", "tail"))
    r_hat = az.rhat(dataset)
    rows = []
    for name in var_names:
        values = [np.atleast_1d(ds[name].to_numpy()) for ds in (bulk, tail, r_hat)]
        has_schools = "school" in dataset[name].dims
        schools = dataset[name].coords["school"].to_numpy() if has_schools else [""]
        rows += [{"variable": name, "school": s, "ess_bulk": b, "ess_tail": t, "r_hat": r}
                 for s, b, t, r in zip(schools, *values)]
    table = pd.DataFrame(rows)
    floor, ceiling = diagnostics.ESS_FLOOR, diagnostics.RHAT_CEILING
    table["mixed"] = ((table.ess_bulk >= floor) & (table.ess_tail >= floor)
                      & (table.r_hat <= ceiling))
    return table


def random_posterior(rng, schools=9):
    """Scalars that mix well, slowly, or not at all, and heavy-tailed theta_i."""
    posterior = {"mu": rng.standard_normal((4, 801)), "lam": rng.gamma(2.0, size=(4, 801)),
                 "omega": ar1(rng, 0.95, 4, 801, 1)[:, :, 0],
                 "sigma": ar1(rng, 0.3, 4, 801, 1)[:, :, 0] + np.array([[0], [0], [0], [0.4]]),
                 "tau": np.round(rng.exponential(size=(4, 801)), 1),
                 "theta": rng.standard_t(3, (4, 801, schools))}
    return az.from_dict(posterior=posterior, coords={"school": [f"s{i}" for i in range(schools)]},
                        dims={"theta": ["school"]})


def test_mixing_table_is_what_arviz_gave():
    posterior = random_posterior(np.random.default_rng(11))
    mine = diagnostics.mixing_table(posterior, agreement.VARIABLES)
    theirs = arviz_mixing_table(posterior, list(agreement.VARIABLES))
    pd.testing.assert_frame_equal(mine, theirs, rtol=RTOL)
    assert 0 < mine.mixed.sum() < len(mine)  # the gate has both verdicts to agree on


def test_compare_uses_arviz_quantile_ess():
    """Both engines' MCSEs share the pooled density, so mcse_a / mcse_b = sqrt(ESS_b / ESS_a)
    whatever the density: the quantile ESS enters as ArviZ computes it. (tau, rounded, is left
    out: its density window can hold a single value, and its MCSEs are then inf / inf.)"""
    rng = np.random.default_rng(12)
    a, b = random_posterior(rng), random_posterior(rng)
    names = ["mu", "lam", "omega", "sigma", "theta"]
    table = agreement.compare(a, b, var_names=names).table
    for q, rows in table.groupby("quantile"):
        ess_a, ess_b = (np.concatenate([np.atleast_1d(ess[name].to_numpy()) for name in names])
                        for ess in (az.ess(p.posterior[names], method="quantile", prob=q)
                                    for p in (a, b)))
        np.testing.assert_allclose(rows.mcse_a / rows.mcse_b, np.sqrt(ess_b / ess_a), rtol=RTOL)
