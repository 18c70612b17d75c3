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


def test_correct_conditionals_pass():
    """Quick design and priors, seed 1: family-wise false-alarm rate alpha = 0.01
    (benchmarks/false_alarms.py measures it)."""
    result = geweke.geweke_test(QUICK_PRIORS, QUICK_DESIGN, seed=1)
    assert result.passed, result.table.to_string()
    np.testing.assert_allclose(result.table.p_holm,
                               multipletests(result.table.p.to_numpy(), method="holm")[1])


@pytest.mark.parametrize("mutant", [m for m in mutants.CATALOGUE if m.conditionals is not None],
                         ids=lambda m: m.name)
def test_every_gibbs_mutant_is_caught(mutant):
    """Subtle ones included: at seed 1 each mutant's largest |z| is above 20 (docs/validation.md)."""
    result = geweke.geweke_test(QUICK_PRIORS, QUICK_DESIGN, seed=1,
                                conditionals=mutant.conditionals)
    assert not result.passed
    assert result.max_abs_z > 10


def test_standardized_test_functions_are_standard_normal_under_the_joint():
    """e_0, r_0 and z are N(0, 1) under the joint whatever (mu, lam, omega): checked on 20000
    joint draws with unequal school sizes by Kolmogorov-Smirnov (each at level 0.001)."""
    rng = np.random.default_rng(0)
    n = np.array([2, 3, 7, 20])
    truth = draw_parameters(rng, QUICK_PRIORS, n.size, size=20_000)
    values = geweke.geweke_functions(truth, draw_school_stats(rng, truth, n))
    for name in ("e_0", "r_0 (data)", "z (data)"):
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
