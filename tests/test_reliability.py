"""Bad input at every entry point: CSV, data frame, arrays, new scores, priors, engines, CLI.

Each case gets one line naming the problem and where (the file or source, the column, the first
bad row); the `hiercheck` command prints that line on stderr, exits 2 and shows no traceback.
The CSV and array tables of tests/test_data.py are reused here, not copied: this file adds the
cases they lack and runs every CSV case through every command that reads data.

| entry point        | cases                                                                      |
| ------------------ | -------------------------------------------------------------------------- |
| CSV                | BAD_CSV (test_data) + MORE_BAD_CSV: blank header line, ragged row, not     |
|                    | UTF-8, overflow to inf, "nan", text "true", missing file; labels equal as  |
|                    | numbers but not as text ("01", "1") stay two schools                       |
| data frame         | BAD_FRAMES: duplicate/missing/misspelt column, no rows, non-numeric, NaN,  |
|                    | inf, missing label, mixed label types, one school, one student each, no    |
|                    | within-school variation                                                    |
| arrays             | BAD_ARRAYS (test_data) + 2-D input, one school                             |
| new scores         | GroupedData.with_values: wrong length, NaN, inf                            |
| priors             | every shape, rate and precision <= 0, non-finite, not a number; from_string|
| engines            | draws or chains <= 0 / not an int, for gibbs, blocked, exact, eb, nuts;    |
|                    | unknown engine name                                                        |
| CLI                | every CSV case x every data-reading command; --prior, --draws, --chains,   |
|                    | --reps, --jobs, --engine                                                   |
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hiercheck.models import DataError, GroupedData, Priors, load_dataset
from hiercheck.samplers import empirical_bayes, exact, gibbs
from tests.test_data import BAD_ARRAYS, BAD_CSV
from hiercheck.validation.cli import main
from hiercheck.errors import PriorError, SettingsError
from hiercheck.validation.engines import get_engine

# -- CSV ------------------------------------------------------------------------------------------

MORE_BAD_CSV = [
    # (file contents as bytes, group, value, the message must contain)
    (b"\n\ng,y\n1,2\n", "g", "y", "line 1 is blank; expected a header row"),
    (b"g,y\n1,2\n1,3\n2,4\n2,5,7\n", "g", "y", "not a readable CSV"),
    (b"g,y\n1,2\n1,\xff\xfe\n", "g", "y", "not a readable CSV ('utf-8' codec"),
    (b"g,y\n1,2\n1,1e400\n2,4\n2,5\n", "g", "y", "column 'y', line 3: inf is not a finite number"),
    (b"g,y\n1,2\n1,nan\n2,4\n2,5\n", "g", "y", "column 'y', line 3: missing value"),
    (b"g,y\n1,true\n1,3\n2,4\n2,5\n", "g", "y", "column 'y', line 2: 'true' is not a number"),
    (b"g,y\n1,2\n1,3\n2,4\n2,5\n", "school", "y", "no column 'school'; columns are g, y"),
]
ALL_BAD_CSV = [(contents.encode(), *rest) for contents, *rest in BAD_CSV] + MORE_BAD_CSV


def one_line(text: str) -> bool:
    return "\n" not in text.strip() and "Traceback" not in text


@pytest.mark.parametrize("contents, group, value, message", ALL_BAD_CSV)
def test_bad_csv_gets_one_line_naming_the_problem(tmp_path, contents, group, value, message):
    path = tmp_path / "scores.csv"
    path.write_bytes(contents)
    with pytest.raises(DataError) as caught:
        GroupedData.from_csv(path, group=group, value=value)
    assert message in str(caught.value) and "scores.csv" in str(caught.value)
    assert one_line(str(caught.value))


# describe prints per-school extremes, so it is tested apart (see below); the rest fail at loading
DATA_COMMANDS = ["fit", "validate", "sbc", "report", "mutants"]


@pytest.mark.parametrize("command", DATA_COMMANDS)
def test_every_command_reports_every_bad_csv_in_one_line_with_exit_2(capsys, tmp_path, command):
    for k, (contents, group, value, message) in enumerate(ALL_BAD_CSV):
        path = tmp_path / f"bad{k}.csv"
        path.write_bytes(contents)
        code = main([command, "--data", str(path), "--group", group, "--value", value,
                     "--out", str(tmp_path / "out")])
        _, err = capsys.readouterr()
        assert code == 2, (command, message, err)
        assert err.startswith("hiercheck: error: ") and err.count("\n") == 1, err
        assert message in err and f"bad{k}.csv" in err and "Traceback" not in err


@pytest.mark.parametrize("schools", [2, 3, 5])
def test_describe_lists_each_extreme_school_once(capsys, tmp_path, schools):
    path = tmp_path / "few.csv"
    rows = "".join(f"{g},{g + d}\n" for g in range(schools) for d in (0.0, 1.0))
    path.write_text("g,y\n" + rows)
    code = main(["describe", "--data", str(path), "--group", "g", "--value", "y",
                 "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    listed = [line.split() for line in out.splitlines() if line.split()[:1] in (["lowest"], ["highest"])]
    assert len(listed) == 2 * (schools // 2)
    assert len({row[2] for row in listed}) == len(listed)  # the school column: no repeats


def test_missing_csv_through_the_cli(capsys, tmp_path):
    code = main(["fit", "--data", str(tmp_path / "absent.csv"), "--group", "g", "--value", "y",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "absent.csv: no such file" in err and err.count("\n") == 1


@pytest.mark.parametrize("labels", [("01", "1"), ("1", "1.0")])
def test_labels_equal_as_numbers_but_not_as_text_stay_two_schools(tmp_path, labels):
    """Before the fix, integer-looking labels were converted to numbers first, silently merging
    schools '01' and '1' (or '1' and '1.0') into one. The file's text decides: two schools."""
    first, second = labels
    path = tmp_path / "labels.csv"
    path.write_text(f"g,y\n{first},2\n{first},3\n{second},4\n{second},6\n2,1\n2,2\n")
    data = GroupedData.from_csv(path, group="g", value="y")
    assert data.m == 3 and data.n.tolist() == [2, 2, 2]
    assert data.labels.tolist() == [first, second, "2"]
    # labels that convert one to one still become numbers, sorted as numbers
    path.write_text("g,y\n10,2\n10,3\n9,4\n9,6\n")
    assert GroupedData.from_csv(path, group="g", value="y").labels.tolist() == [9, 10]


def test_installed_command_on_a_bad_csv_prints_one_line_and_exits_2(tmp_path):
    """The console script itself, in its own process: no traceback reaches the user."""
    import shutil
    import subprocess

    command = shutil.which("hiercheck")
    if command is None:
        pytest.skip("the hiercheck console script is not installed")
    path = tmp_path / "blank.csv"
    path.write_bytes(MORE_BAD_CSV[0][0])
    done = subprocess.run([command, "fit", "--data", str(path), "--group", "g", "--value", "y",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "blank.csv: line 1 is blank" in done.stderr


# -- data frames ----------------------------------------------------------------------------------

def frame(columns, rows):
    return pd.DataFrame(rows, columns=columns)


BAD_FRAMES = [
    # (frame, group, value, the message must contain)
    (frame(["g", "g"], [[1, 2.0], [2, 3.0]]), "g", "g", "duplicate column name 'g'"),
    (frame(["g", "y"], [[1, 2.0], [2, 3.0]]), "g", "score", "no column 'score'"),
    (frame(["g", "Score"], [[1, 2.0], [2, 3.0]]), "g", "score", "did you mean 'Score'"),
    (frame(["g", "y"], []), "g", "y", "no rows of data"),
    (frame(["g", "y"], [[1, 2.0], [1, "x"], [2, 3.0]]), "g", "y", "column 'y', row 1: 'x' is not a number"),
    (frame(["g", "y"], [[1, 2.0], [1, np.nan], [2, 3.0]]), "g", "y", "column 'y', row 1: missing value"),
    (frame(["g", "y"], [[1, 2.0], [1, 3.0], [2, np.inf]]), "g", "y", "row 2: inf is not a finite number"),
    (frame(["g", "y"], [[1, 2.0], [None, 3.0], [2, 3.0]]), "g", "y", "column 'g', row 1: missing group label"),
    (frame(["g", "y"], [[1, 2.0], ["a", 3.0], [1, 4.0], ["a", 5.0]]), "g", "y", "mixes label types"),
    (frame(["g", "y"], [[1, 2.0], [1, 3.0]]), "g", "y", "only one school (1)"),
    (frame(["g", "y"], [[1, 2.0], [2, 3.0]]), "g", "y", "every school has one student"),
    (frame(["g", "y"], [[1, 2.0], [1, 2.0], [2, 3.0]]), "g", "y", "no within-school variation"),
]


@pytest.mark.parametrize("table, group, value, message", BAD_FRAMES)
def test_bad_frame_gets_one_line_naming_the_problem(table, group, value, message):
    with pytest.raises(DataError) as caught:
        GroupedData.from_frame(table, group, value, name="my frame")
    assert message in str(caught.value) and str(caught.value).startswith("my frame: ")
    assert one_line(str(caught.value))


# -- arrays and new scores ------------------------------------------------------------------------

MORE_BAD_ARRAYS = [
    (np.zeros((2, 2)), np.zeros((2, 2)), "must be one-dimensional"),
    (np.array(["a", "a"]), np.array([1.0, 2.0]), "only one school ('a')"),
]


@pytest.mark.parametrize("groups, values, message", BAD_ARRAYS + MORE_BAD_ARRAYS)
def test_bad_arrays_are_one_line(groups, values, message):
    with pytest.raises(DataError) as caught:
        GroupedData.from_arrays(np.asarray(groups, dtype=object) if np.ndim(groups) == 1 else groups,
                                np.asarray(values, dtype=object) if np.ndim(values) == 1 else values)
    assert message in str(caught.value) and one_line(str(caught.value))


@pytest.mark.parametrize("bad, message", [
    (np.nan, "new score 4 is nan, not a finite number"),
    (np.inf, "new score 4 is inf, not a finite number"),
])
def test_new_scores_must_be_finite(bad, message):
    """Before the fix, NaN scores were reported as 'no within-school variation'."""
    data = load_dataset("rail")
    values = data.values.copy()
    values[4] = bad
    with pytest.raises(DataError, match=message):
        data.with_values(values)
    with pytest.raises(DataError, match=r"expected \(18,\) scores, got \(3,\)"):
        data.with_values(values[:3])


# -- priors ---------------------------------------------------------------------------------------

ROLES = {"a": "shape of lam", "b": "rate of lam", "d": "rate of omega", "phi": "precision of mu"}
D_ZERO = "with d = 0, omega's prior omega^(c-1) needs c < 0"
BAD_PRIORS = (
    [({name: -1.5}, f"prior {name} (the {role}) must be >= 0") for name, role in ROLES.items()]
    + [({"d": 0}, D_ZERO), ({"c": 0, "d": 0}, D_ZERO)]
    + [({name: value}, f"prior {name} must be finite") for name in ("a", "nu", "phi")
       for value in (np.inf, -np.inf, np.nan)]
    + [({"b": "1"}, "prior b must be a number, got '1'"), ({"c": True}, "must be a number, got True")]
)


@pytest.mark.parametrize("settings, message", BAD_PRIORS)
def test_bad_prior_names_the_parameter(settings, message):
    with pytest.raises(PriorError) as caught:
        Priors(**settings)
    assert message in str(caught.value) and one_line(str(caught.value))


@pytest.mark.parametrize("setting, message", [
    ("a=-1", "prior a (the shape of lam) must be >= 0"),
    ("d=-1", "prior d (the rate of omega) must be >= 0"),
    ("d=0", D_ZERO),
    ("phi=-2", "prior phi (the precision of mu) must be >= 0"),
    ("nu=inf", "prior nu must be finite"),
    ("a=nan", "prior a must be finite"),
    ("a=x", "'x' is not a number"),
    ("a", "expected NAME=NUMBER"),
])
@pytest.mark.parametrize("command", ["fit", "validate", "sbc", "report"])
def test_bad_prior_option_is_one_line_and_exit_2(capsys, tmp_path, command, setting, message):
    code = main([command, "--dataset", "rail", "--prior", setting, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


# -- engines and run sizes ------------------------------------------------------------------------

def nuts(data, priors, *, draws, chains, seed):
    from hiercheck.models.reference import sample_nuts
    return sample_nuts(data, priors, draws=draws, chains=chains, seed=seed)


ENGINES = {"gibbs": gibbs.sample, "blocked": gibbs.sample_blocked, "exact": exact.sample,
           "eb": empirical_bayes.sample, "nuts": nuts}


@pytest.mark.parametrize("engine", sorted(ENGINES))
@pytest.mark.parametrize("draws, chains, message", [
    (0, 2, "draws must be an integer >= 1, got 0"),
    (-3, 2, "draws must be an integer >= 1, got -3"),
    (10, 0, "chains must be an integer >= 1, got 0"),
    (2.5, 2, "draws must be an integer >= 1, got 2.5"),
    (10, True, "chains must be an integer >= 1, got True"),
])
def test_run_sizes_are_checked_by_every_engine(engine, draws, chains, message):
    data = load_dataset("rail")
    with pytest.raises(ValueError) as caught:
        ENGINES[engine](data, Priors.weakly_informative(data), draws=draws, chains=chains, seed=1)
    assert message in str(caught.value) and one_line(str(caught.value))


def test_unknown_engine_lists_the_engines():
    with pytest.raises(SettingsError, match="unknown engine 'metropolis'; engines are gibbs"):
        get_engine("metropolis")


@pytest.mark.parametrize("argv, message", [
    (["fit", "--engine", "gibbs", "--draws", "0"], "draws must be an integer >= 1, got 0"),
    (["fit", "--engine", "exact", "--chains", "0"], "chains must be an integer >= 1, got 0"),
    (["fit", "--engine", "eb", "--draws", "-5"], "draws must be an integer >= 1, got -5"),
    (["sbc", "--draws", "0"], "--draws must be an integer >= 1, got 0"),
    (["sbc", "--reps", "-1"], "--reps must be an integer >= 1, got -1"),
    (["sbc", "--engine", "exact", "--jobs", "0"], "--jobs must be an integer >= 1, got 0"),
])
def test_bad_run_size_options_are_one_line_and_exit_2(capsys, tmp_path, argv, message):
    code = main([*argv, "--dataset", "rail", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv", [["fit", "--engine", "metropolis"], ["sbc", "--engine", "hmc"],
                                  ["fit", "--chains", "two"], ["sbc", "--reps", "1.5"]])
def test_usage_errors_exit_2_in_one_line(capsys, argv):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
