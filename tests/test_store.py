"""hiercheck.validation.store: units saved atomically, found again by a re-run with the same settings."""

import numpy as np
import pytest

from hiercheck.errors import StoreMismatchError
from hiercheck.validation.store import UnitStore


def test_units_round_trip_and_are_listed(tmp_path):
    store = UnitStore(tmp_path / "run", {"seed": 1, "design": [5, 5]})
    assert store.done() == set()
    store.save(3, {"theta[0]": np.array([1, 2, 3]), "mu": np.array([0.5])})
    store.save(0, {"theta[0]": np.array([4]), "mu": np.array([1.5])})
    assert store.done() == {0, 3}
    again = UnitStore(tmp_path / "run", {"seed": 1, "design": [5, 5]})
    loaded = again.load(3)
    np.testing.assert_array_equal(loaded["theta[0]"], [1, 2, 3])
    np.testing.assert_array_equal(loaded["mu"], [0.5])


def test_other_settings_are_refused_naming_what_changed(tmp_path):
    UnitStore(tmp_path, {"seed": 1, "draws": 100})
    with pytest.raises(StoreMismatchError, match="seed"):
        UnitStore(tmp_path, {"seed": 2, "draws": 100})


def test_a_failed_write_leaves_no_unit_and_no_temporary_file(tmp_path):
    store = UnitStore(tmp_path, {"seed": 1})

    class Unsaveable:
        def __array__(self, *args, **kwargs):
            raise RuntimeError("killed while writing")

    with pytest.raises(RuntimeError, match="killed"):
        store.save(0, {"mu": Unsaveable()})
    assert store.done() == set()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
