"""hiercheck.validation.geweke: the joint-distribution test of a set of Gibbs conditionals."""

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from hiercheck.errors import UserFunctionError
from hiercheck.models.simulate import draw_parameters, draw_school_stats
from hiercheck.samplers import gibbs
from hiercheck.validation import geweke, mutants
from hiercheck.validation.sbc import QUICK_DESIGN, QUICK_PRIORS

BALANCED_DESIGN = np.full(6, 5)  # the design the suite used before: blind to school sizes


@pytest.mark.parametrize("scheme", list(gibbs.SCHEMES))
def test_correct_conditionals_pass(scheme):
    """Quick design and priors, seed 1, either sweep: family-wise false-alarm rate alpha = 0.01
    each (benchmarks/false_alarms.py measures it)."""
    result = geweke.geweke_test(QUICK_PRIORS, QUICK_DESIGN, seed=1, scheme=scheme)
    assert result.passed, result.table.to_string()
    np.testing.assert_allclose(result.table.p_holm,
                               multipletests(result.table.p.to_numpy(), method="holm")[1])
    schools = range(QUICK_DESIGN.size)
    assert {f"e[{i}]" for i in schools} | {f"r[{i}] (data)" for i in schools} \
        | {"log joint (data)"} <= set(result.table.function)


@pytest.mark.parametrize("mutant", [m for m in mutants.CATALOGUE if m.conditionals is not None],
                         ids=lambda m: m.name)
def test_every_gibbs_mutant_is_caught(mutant):
    """Subtle ones included, each in its own sweep: at seed 1 each mutant's largest |z| is above
    20 (docs/validation.md)."""
    result = geweke.geweke_test(QUICK_PRIORS, QUICK_DESIGN, seed=1, scheme=mutant.scheme,
                                conditionals=mutant.conditionals)
    assert not result.passed
    assert result.max_abs_z > 10


def test_only_unequal_school_sizes_show_a_slip_in_them():
    """theta_i's conditional with the mean size N/m for n_i: on six schools of five it is the
    right conditional, so the test passes it (at level 0.01, seed 1); on the quick design's
    sizes 1 to 12 its largest |z| is about 40."""
    slip = mutants.get_mutant("theta-mean-school-size").conditionals
    assert geweke.geweke_test(QUICK_PRIORS, BALANCED_DESIGN, seed=1, conditionals=slip).passed
    unequal = geweke.geweke_test(QUICK_PRIORS, QUICK_DESIGN, seed=1, conditionals=slip)
    assert not unequal.passed and unequal.max_abs_z > 10


@pytest.mark.parametrize("scheme", list(gibbs.SCHEMES))
def test_the_compiled_kernel_is_what_is_tested(monkeypatch, scheme):
    """With the package's own conditionals every sweep of the successive-conditional chains is
    the compiled kernel's (as in real fits); with one replaced, the numpy sweeps'."""
    pytest.importorskip("numba")
    calls = []
    run_kernel = gibbs._run_kernel
    monkeypatch.setattr(gibbs, "_run_kernel", lambda *a, **k: calls.append(1) or run_kernel(*a, **k))
    settings = dict(chains=10, steps=5, burn=2, independent=100, seed=0, scheme=scheme)
    geweke.geweke_test(QUICK_PRIORS, QUICK_DESIGN, **settings)
    assert len(calls) == 7
    replaced = gibbs.Conditionals(draw_theta=lambda *args: gibbs.draw_theta(*args))
    geweke.geweke_test(QUICK_PRIORS, QUICK_DESIGN, conditionals=replaced, **settings)
    assert len(calls) == 7


def test_standardized_test_functions_are_standard_normal_under_the_joint():
    """e_i, r_i of every school and z are N(0, 1) under the joint whatever (mu, lam, omega):
    checked on 20000 joint draws with unequal school sizes by Kolmogorov-Smirnov (each at level
    0.001)."""
    rng = np.random.default_rng(0)
    n = np.array([1, 3, 7, 20])
    truth = draw_parameters(rng, QUICK_PRIORS, n.size, size=20_000)
    values = geweke.geweke_functions(truth, draw_school_stats(rng, truth, n), QUICK_PRIORS)
    names = [f"{kind}[{i}]" + suffix for i in range(n.size)
             for kind, suffix in (("e", ""), ("r", " (data)"))] + ["z (data)"]
    for name in names:
        assert stats.kstest(values[name], "norm").pvalue > 0.001, name


def test_a_conditional_returning_infinity_is_refused_by_name():
    """Not tested as if it were draws: the sweep stops the run (hiercheck.samplers.user_functions)."""
    def draw_lam_overflow(rng, state, stats, priors):
        return np.full(np.shape(state.mu), np.inf)

    with pytest.raises(UserFunctionError,
                       match=r"^draw_lam \(draw_lam_overflow\) returned infinity"):
        geweke.geweke_test(QUICK_PRIORS, QUICK_DESIGN, seed=0, chains=20, steps=5,
                           independent=1000,
                           conditionals=gibbs.Conditionals(draw_lam=draw_lam_overflow))
