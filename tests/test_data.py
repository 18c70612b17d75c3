"""The data layer: loaders, sufficient statistics, and the errors bad input gets."""

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hiercheck.models import DATASETS, DataError, GroupedData, load_dataset

# (name, schools, students) as documented by each data set's R package
BUILT_IN_SIZES = {
    "hsb": (160, 7185),
    "mathtest": (100, 1993),  # models/builtin/README.md
    "dyestuff": (6, 30),
    "dyestuff2": (6, 30),
    "rail": (6, 18),
    "radon": (85, 919),
    "nlschools": (133, 2287),
    "exam": (65, 4059),
}


def direct_stats(groups, values):
    """Per-group (n, mean, sum of squared deviations) the slow, obvious way, in sorted label order."""
    frame = pd.DataFrame({"g": groups, "y": values})
    rows = []
    for _, scores in sorted(frame.groupby("g")["y"], key=lambda item: item[0]):
        y = scores.to_numpy()
        rows.append((y.size, y.mean(), ((y - y.mean()) ** 2).sum()))
    return tuple(np.array(column) for column in zip(*rows))


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_built_in_data_set_loads_with_its_documented_size(name):
    data = load_dataset(name)
    assert (data.m, data.N) == BUILT_IN_SIZES[name]
    assert data.n.sum() == data.N
    assert np.all(np.isfinite(data.ybar)) and np.all(data.ss >= 0)


def test_math_test_extremes_are_small_schools(mathtest):
    # models/builtin/README.md: the highest mean is school 67 (n=4, 65.0175); the smallest
    # school is 67 (n=4)
    table = mathtest.school_table()
    top = table.loc[table.ybar.idxmax()]
    assert top.school == 67 and top.n == 4
    assert top.ybar == pytest.approx(65.0175, abs=5e-5)
    assert table.n.min() == 4 and table.n.max() == 32
    assert np.mean(mathtest.values) == pytest.approx(48.07446, abs=5e-6)


def test_school_labels_are_the_csv_ids_in_numeric_order(mathtest):
    assert mathtest.labels.tolist() == list(range(1, 101))


@pytest.mark.parametrize("name", ["hsb", "radon", "exam"])
def test_sufficient_statistics_equal_a_direct_computation(name):
    data = load_dataset(name)
    n, ybar, ss = direct_stats(data.labels[data.codes], data.values)
    np.testing.assert_array_equal(data.n, n)
    # a mean near zero is the difference of large sums: its error scales with the scores' size
    scale = np.abs(data.values).max()
    np.testing.assert_allclose(data.ybar, ybar, rtol=1e-13, atol=1e-14 * scale)
    np.testing.assert_allclose(data.ss, ss, rtol=1e-10, atol=1e-12)


def exact_ss(values) -> float:
    """Sum of squared deviations in exact rational arithmetic, rounded once at the end."""
    exact = [Fraction(v) for v in values]
    mean = sum(exact) / len(exact)
    return float(sum((v - mean) ** 2 for v in exact))


@pytest.mark.parametrize("offset, spread", [(1e6, 1e-3), (0.0, 1e-8), (0.0, 1e8), (-3e7, 1.0)])
def test_sufficient_statistics_keep_their_digits_at_extreme_offsets(offset, spread):
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(5), [1, 2, 30, 400, 7])
    values = offset + spread * rng.standard_normal(groups.size)
    data = GroupedData.from_arrays(groups, values)
    for i in range(5):
        school = values[groups == i]
        assert data.ss[i] == pytest.approx(exact_ss(school), rel=1e-9, abs=1e-300)
        # rounding the sum costs about one ulp of the scores' size, not of their mean
        exact_mean = float(sum(map(Fraction, school)) / school.size)
        assert data.ybar[i] == pytest.approx(exact_mean, rel=1e-15, abs=1e-15 * np.abs(school).max())


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 12), min_size=2, max_size=8),
    scale=st.floats(1e-3, 1e3),
    offset=st.floats(-1e4, 1e4),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_designs_give_the_direct_statistics(sizes, scale, offset, seed):
    rng = np.random.default_rng(seed)
    groups = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    values = offset + scale * rng.standard_normal(groups.size)
    if all(size == 1 for size in sizes):
        with pytest.raises(DataError, match="every school has one student"):
            GroupedData.from_arrays(groups, values)
        return
    data = GroupedData.from_arrays(groups, values)
    n, ybar, ss = direct_stats(groups, values)
    np.testing.assert_array_equal(data.n, n)
    np.testing.assert_allclose(data.ybar, ybar, rtol=1e-12, atol=1e-12 * abs(offset))
    np.testing.assert_allclose(data.ss, ss, rtol=1e-8, atol=1e-20)


def test_single_student_schools_have_zero_ss():
    data = GroupedData.from_arrays(["a", "a", "b", "c"], [1.0, 2.0, 5.0, 7.0])
    np.testing.assert_array_equal(data.n, [2, 1, 1])
    np.testing.assert_array_equal(data.ss, [0.5, 0.0, 0.0])


def test_from_frame_and_with_values_keep_the_design():
    frame = pd.DataFrame({"s": ["x", "y", "x", "y"], "v": [1.0, 2.0, 3.0, 5.0]})
    data = GroupedData.from_frame(frame, "s", "v")
    moved = data.with_values(data.values + 10)
    np.testing.assert_array_equal(moved.n, data.n)
    np.testing.assert_allclose(moved.ybar, data.ybar + 10)
    np.testing.assert_allclose(moved.ss, data.ss)


# -- bad input: one line naming the problem and where ------------------------------------------

BAD_CSV = [
    # (file contents, group, value, the message must contain)
    ("", "g", "y", "file is empty"),
    ("g,y\n", "g", "y", "no rows of data"),
    ("g,y\n1,2\n1,3\n", "g", "score", "no column 'score'"),
    ("g,y\n1,2\n1,3\n", "g", "Y", "did you mean 'y'"),
    ("g,y\n1,2\n1,abc\n2,4\n", "g", "y", "line 3: 'abc' is not a number"),
    ("g,y\n1,2\n1,\n2,4\n", "g", "y", "line 3: missing value"),
    ("g,y\n1,2\n1,inf\n2,4\n", "g", "y", "line 3: inf is not a finite number"),
    ("g,y\n1,2\n,3\n2,4\n", "g", "y", "line 3: missing group label"),
    ("g,y\n1,2\n1,3\n1,4\n", "g", "y", "only one school"),
    ("g,y\n1,2\n2,3\n3,4\n", "g", "y", "every school has one student"),
    ("g,y\n1,2\n1,2\n2,4\n2,4\n", "g", "y", "no within-school variation"),
    ("g,y,y\n1,2,3\n2,3,4\n", "g", "y", "duplicate column name 'y'"),
]


# BAD_CSV is read through GroupedData.from_csv in tests/test_reliability.py, with the cases
# that need raw bytes, and through every command in tests/test_cli.py.


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        GroupedData.from_csv(tmp_path / "absent.csv", group="g", value="y")


BAD_ARRAYS = [
    ([1, "a", 2, "a"], [1.0, 2.0, 3.0, 4.0], "mixes label types"),
    ([1, 1, 2], [1.0, 2.0], "3 group labels but 2 values"),
    ([1, 1, 2, 2], [1.0, np.nan, 3.0, 4.0], "row 1: missing value"),
    ([1, 1, 2, 2], [1.0, 2.0, -np.inf, 4.0], "row 2: -inf is not a finite number"),
    ([1, 1, 2, 2], [True, False, True, True], "row 0: True is not a number"),
    ([], [], "no rows of data"),
]


@pytest.mark.parametrize("groups, values, message", BAD_ARRAYS)
def test_bad_arrays_get_one_line_naming_the_problem(groups, values, message):
    with pytest.raises(DataError, match=message):
        GroupedData.from_arrays(np.array(groups, dtype=object), np.array(values, dtype=object))


def test_unknown_data_set_lists_the_choices():
    with pytest.raises(DataError, match="unknown data set 'hbs'; built-in data sets are hsb, mathtest"):
        load_dataset("hbs")
