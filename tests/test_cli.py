"""The `hiercheck` command: data options, describe, and one-line errors with exit code 2."""

import subprocess
import sys

import pandas as pd
import pytest

from hiercheck.models import load_dataset
from tests.test_data import BAD_CSV
from hiercheck.validation.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_describe_default_data_set_is_hsb(capsys, tmp_path):
    code, out, _ = run(capsys, "describe", "--out", str(tmp_path))
    assert code == 0
    assert "hsb: 7185 students in 160 schools" in out
    assert (tmp_path / "school_means.png").stat().st_size > 10_000


def test_describe_a_csv(capsys, tmp_path, packaged_csv):
    code, out, _ = run(capsys, "describe", "--data", str(packaged_csv("mathtest.csv")),
                       "--group", "school", "--value", "mathscore", "--out", str(tmp_path))
    assert code == 0
    assert "1993 students in 100 schools" in out
    # the highest mean belongs to school 67, which has 4 students (models/builtin/README.md)
    highest = next(line for line in out.splitlines() if line.strip().startswith("highest 1"))
    assert highest.split()[2:4] == ["67", "4"]


@pytest.mark.parametrize("contents, group, value, message", BAD_CSV)
def test_bad_csv_is_one_line_and_exit_2(capsys, tmp_path, contents, group, value, message):
    path = tmp_path / "bad.csv"
    path.write_text(contents)
    code, out, err = run(capsys, "describe", "--data", str(path), "--group", group,
                         "--value", value, "--out", str(tmp_path))
    assert code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["describe", "--data", "x.csv"], "--data needs --group and --value"),
    (["describe", "--group", "g"], "--group and --value go with --data"),
    (["describe", "--dataset", "rail", "--data", "x.csv", "--group", "g", "--value", "v"],
     "either --dataset or --data"),
    (["fit", "--dataset", "rail", "--prior", "b=-1"], "b (the rate of lam) must be >= 0"),
    (["fit", "--dataset", "rail", "--prior", "beta=1"], "expected NAME=NUMBER"),
    (["sbc", "--reps", "0"], "--reps must be an integer >= 1"),
    (["sbc", "--engine", "exact", "--jobs", "-1"], "--jobs must be an integer >= 1"),
    (["validate", "--dataset", "rail", "--jobs", "0"], "--jobs must be an integer >= 1"),
    (["mutants", "--write", "nowhere.md"], "nowhere.md: no such file"),
    (["mutants", "--write", "pyproject.toml"], "no <!-- detection matrix -->"),
])
def test_bad_options_are_one_line_and_exit_2(capsys, tmp_path, argv, message):
    code, _, err = run(capsys, *argv, "--out", str(tmp_path))
    assert code == 2
    assert err.count("\n") == 1 and message in err


@pytest.mark.parametrize("argv, message", [
    (["describe", "--dataset", "hbs"], "invalid choice: 'hbs'"),
    (["fit", "--engine", "metropolis"], "invalid choice: 'metropolis'"),
    (["fit", "--draws", "many"], "invalid int value"),
    (["validate", "--quick", "--full"], "not allowed with argument --quick"),
    (["sbc", "--engine", "metropolis"], "invalid choice: 'metropolis'"),
])
def test_usage_errors_are_one_line_and_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    _, err = capsys.readouterr()
    assert stopped.value.code == 2
    assert err.count("\n") == 1 and message in err


def test_installed_command_runs_without_traceback(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("g,y\n1,2\n")
    done = subprocess.run([sys.executable, "-m", "hiercheck.validation.cli", "describe", "--data", str(bad),
                           "--group", "g", "--value", "y"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith("hiercheck: error:") and "Traceback" not in done.stderr


def test_fit_writes_posteriors_a_table_and_the_shrinkage_plot(capsys, tmp_path):
    """eb, exact and gibbs side by side on rail; the EB row carries standard errors, which match
    `EBFit.standard_errors`."""
    from hiercheck.samplers import empirical_bayes

    for engine in ("eb", "exact", "gibbs"):
        assert main(["fit", "--dataset", "rail", "--engine", engine, "--draws", "200",
                     "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "posterior mean (SD)" in out
    for engine in ("eb", "exact", "gibbs"):
        assert (tmp_path / f"posterior_{engine}.nc").is_file()
    assert (tmp_path / "shrinkage.png").stat().st_size > 10_000
    assert "95% profile-likelihood intervals" in out
    fit = empirical_bayes.fit(load_dataset("rail"))
    assert f"{fit.mu:.5g} ({fit.standard_errors['mu']:.2g})" in out


@pytest.mark.slow
def test_validate_prints_the_verdict_and_writes_tables_and_plots(capsys, tmp_path):
    code, out, _ = run(capsys, "validate", "--dataset", "rail", "--quick", "--out", str(tmp_path))
    assert code == 0
    assert "on rail: PASSED" in out
    assert "restricted likelihood restricted_loglik" in out  # the package's REML is checked too
    for name in ("verdict.csv", "verdict.json", "check_consistency.csv", "sbc.png",
                 "posteriors.png", "check_restricted_likelihood.csv"):
        assert (tmp_path / name).stat().st_size > 0


def test_sbc_resumes_from_what_it_saved(capsys, tmp_path):
    argv = ("sbc", "--dataset", "dyestuff", "--reps", "100", "--draws", "50", "--out",
            str(tmp_path))
    code, first, _ = run(capsys, *argv)
    assert code == 0 and "ranks uniform" in first
    units = sorted((tmp_path / "sbc-gibbs").glob("unit-*.npz"))
    assert len(units) == 2  # blocks of 50 replications
    modified = [unit.stat().st_mtime_ns for unit in units]
    code, second, _ = run(capsys, *argv)
    assert (code, second) == (0, first)
    assert [unit.stat().st_mtime_ns for unit in units] == modified  # loaded, not recomputed
    assert (tmp_path / "sbc-gibbs" / "ranks.png").is_file()


def test_sbc_shows_empirical_bayes_miscalibrated_on_a_small_design(capsys, tmp_path):
    """EB fixes the hyperparameters at their estimates, so on Dyestuff's six schools of five its
    theta intervals are too narrow: the ranks pile at the ends (Holm-corrected alpha 0.01)."""
    code, out, _ = run(capsys, "sbc", "--engine", "eb", "--dataset", "dyestuff", "--reps", "100",
                       "--out", str(tmp_path))
    assert code == 1
    assert "NOT uniform" in out


def test_sbc_on_a_dask_scheduler_gives_the_ranks_of_a_local_run(capsys, tmp_path):
    distributed = pytest.importorskip("distributed")
    argv = ["sbc", "--engine", "exact", "--dataset", "dyestuff", "--reps", "8", "--draws", "50"]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        code, _, _ = run(capsys, *argv, "--scheduler", cluster.scheduler_address,
                         "--out", str(tmp_path / "cluster"))
    assert code == 0
    assert run(capsys, *argv, "--out", str(tmp_path / "here"))[0] == 0
    tables = [(tmp_path / where / "sbc-exact" / "uniformity.csv").read_text()
              for where in ("cluster", "here")]
    assert tables[0] == tables[1]


def test_fail_fast_stops_a_gross_slip_before_compiling_anything(capsys, tmp_path):
    """The mutant fails the first check (Geweke, on the small design); nothing after it runs,
    so no PyMC model is compiled (conftest fails a test not marked slow that compiles one)."""
    code, out, _ = run(capsys, "validate", "--dataset", "rail", "--mutant",
                       "theta-variance-for-precision", "--fail-fast", "--out", str(tmp_path))
    assert code == 1
    assert "FAILED (geweke)" in out and "stopped at the first failure, geweke" in out
    assert list(pd.read_csv(tmp_path / "verdict.csv").check) == ["geweke"]


def test_every_check_has_a_place_in_the_fail_fast_order():
    from hiercheck.validation.suite import CHECKS, FAIL_FAST_ORDER

    assert sorted(FAIL_FAST_ORDER) == sorted(CHECKS)


def test_an_unknown_mutant_is_named(capsys, tmp_path):
    code, _, err = run(capsys, "validate", "--dataset", "rail", "--mutant", "nonsense",
                       "--out", str(tmp_path))
    assert code == 2 and "unknown mutant 'nonsense'" in err and err.count("\n") == 1
