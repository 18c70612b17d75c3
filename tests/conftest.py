"""Shared fixtures: the real data sets in ../shared/data beside the repository."""

from pathlib import Path

import pytest

from models import GroupedData

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"the test data folder {SHARED_DATA} is missing")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mathtest(shared_data) -> GroupedData:
    return GroupedData.from_csv(shared_data / "mathtest.csv", group="school", value="mathscore")
