"""Shared fixtures: the real data sets in ../shared/data beside the repository."""

from pathlib import Path

import pytest

from models import GroupedData, Priors

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"the test data folder {SHARED_DATA} is missing")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mathtest(shared_data) -> GroupedData:
    return GroupedData.from_csv(shared_data / "mathtest.csv", group="school", value="mathscore")


@pytest.fixture(scope="session")
def mathtest_nuts(mathtest):
    """PyMC's NUTS on the math-test data under the default priors, run once for every test."""
    from models.reference import sample_nuts
    return sample_nuts(mathtest, Priors.weakly_informative(mathtest), draws=2500, chains=4, seed=1)
