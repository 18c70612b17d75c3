"""The derivation names the code that implements each formula; those names must exist."""

import importlib
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
DOTTED_NAME = re.compile(r"`(hiercheck\.(?:models|samplers|validation)(?:\.\w+)+)`")


def referenced_names():
    names = set()
    for page in DOCS.glob("*.md"):
        names.update((page.name, name) for name in DOTTED_NAME.findall(page.read_text()))
    return sorted(names)


def resolve(dotted: str):
    """Import the longest module prefix of `dotted`, then walk attributes for the rest."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            target = getattr(target, attribute)
        return target
    raise ModuleNotFoundError(dotted)


def test_the_derivation_references_code():
    assert len([n for page, n in referenced_names() if page == "derivation.md"]) >= 15


@pytest.mark.parametrize("page, name", referenced_names())
def test_every_referenced_name_exists(page, name):
    assert resolve(name) is not None, f"{page} names {name}, which does not exist"


# -- the derivation is one document, and its section 6 matches the catalogue of slips ------------

DERIVATION = DOCS / "derivation.md"


def section(number: int) -> str:
    """The text of `## <number>.` up to the next top-level section of docs/derivation.md."""
    text = DERIVATION.read_text()
    start = text.index(f"\n## {number}. ")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def test_the_derivation_is_one_page():
    """The parts were merged into docs/derivation.md; nothing is derived twice."""
    assert (DOCS / "derivation.md").is_file() and not (DOCS / "parts").exists()


def test_every_mutant_is_listed_with_its_function_among_the_slips():
    from hiercheck.samplers import gibbs
    from hiercheck.validation.mutants import CATALOGUE

    slips = section(6)
    for mutant in CATALOGUE:
        if mutant.conditionals is not None:
            wrong = [f for f in mutant.conditionals if f not in gibbs.Conditionals()]
        else:
            wrong = [function for function in (mutant.log_marginal_likelihood,
                                               mutant.restricted_log_likelihood)
                     if function is not None]
        assert len(wrong) == 1, mutant.name
        row = next((line for line in slips.splitlines() if f"`{mutant.name}`" in line), None)
        assert row is not None, f"section 6 does not list {mutant.name}"
        assert f"`{wrong[0].__module__}.{wrong[0].__qualname__}`" in row, mutant.name


def test_the_eb_mutant_lacks_exactly_the_log_ratio_and_so_prefers_omega_to_0(mathtest):
    """Section 6: the mutant is the log-likelihood of section 4.5 minus
    1/2 sum_i log(omega/(n_i + omega)) (written here directly, not through the code), and at
    fixed (mu, lam) it rises as omega falls, while the correct one has an interior maximum."""
    import numpy as np

    from hiercheck.samplers.marginal import log_marginal_likelihood
    from hiercheck.validation.mutants import get_mutant

    wrong = get_mutant("eb-missing-log-ratio").log_marginal_likelihood
    stats = mathtest.stats
    mu, lam = float(np.mean(mathtest.values)), 1.0 / float(np.var(mathtest.values))
    omega = np.geomspace(1e-4, 1e4, 81)
    log_ratio = 0.5 * np.log(omega[:, None] / (stats.n + omega[:, None])).sum(-1)
    right_values = log_marginal_likelihood(stats, mu, lam, omega)
    wrong_values = wrong(stats, mu, lam, omega)
    # the difference of two log-likelihoods of size L carries rounding of order eps * L
    rounding = 64 * np.finfo(float).eps * np.abs(right_values).max()
    np.testing.assert_allclose(right_values - wrong_values, log_ratio, rtol=0, atol=rounding)
    assert np.all(np.diff(wrong_values) < 0)
    assert 0 < np.argmax(right_values) < omega.size - 1


def test_the_careful_sums_of_squares_of_section_0():
    """Section 0.1: 1000 scores near 1e6 with SD 1e-3 (seed 0). The one-pass formula gives -0.25;
    `group_moments` agrees with exact rational arithmetic on the same floats to 1e-15."""
    from fractions import Fraction

    import numpy as np

    from hiercheck.models.data import group_moments

    y = 1e6 + 1e-3 * np.random.default_rng(0).standard_normal(1000)
    exact = [Fraction(v) for v in y]
    mean = sum(exact) / len(exact)
    exact_ss = float(sum((v - mean) ** 2 for v in exact))
    n, ybar, ss = group_moments(np.zeros(y.size, dtype=np.intp), y, 1)
    assert float(np.sum(y * y) - y.size * np.mean(y) ** 2) == -0.25
    assert abs(ss[0] - exact_ss) <= 1e-15 * exact_ss
    assert abs(ybar[0] - float(mean)) <= 1e-16 * float(mean)
    assert round(exact_ss, 7) == 9.54e-4
