"""The notebooks run top to bottom as plain scripts: notebooks/math_tests.py, the math-test
walk-through, and notebooks/blood_pressure.py, the blood-pressure analysis, whose numbers are
checked against computations made here from the packaged copy of the data."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run_notebook(name: str, folder: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run notebooks/NAME from `folder` (so it cannot rely on the working directory), its
    figures and tables written to folder/figures; the run must succeed."""
    environment = {**os.environ, "MPLBACKEND": "Agg", "HIERCHECK_FIGURES": str(folder / "figures")}
    run = subprocess.run([sys.executable, str(NOTEBOOKS / name)], cwd=folder, env=environment,
                         capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def assert_figures_drawn(folder: Path, names) -> None:
    from matplotlib import image

    for name in names:
        pixels = image.imread(folder / "figures" / f"{name}.png")
        assert pixels.shape[0] > 300 and pixels.shape[1] > 500, name


@pytest.mark.slow
def test_math_tests_notebook_runs_and_draws_its_figures(tmp_path):
    run = run_notebook("math_tests.py", tmp_path, timeout=300)  # the 5 min
    assert "1993 students in 100 schools" in run.stdout
    # the package's derivation passes every check on the data, the planted slip fails two
    verdicts = [line for line in run.stdout.splitlines()
                if line.endswith(": PASSED") or ": FAILED" in line]
    assert verdicts[0].endswith("mathtest: PASSED"), verdicts
    assert verdicts[1].endswith("mathtest: FAILED (consistency, geweke)"), verdicts
    # the student's port with the variance as theta's SD, and where diagnose() finds the slip
    assert verdicts[2].endswith("mathtest (student): FAILED (consistency)"), verdicts
    diagnosis = run.stdout.split(verdicts[2])[1].splitlines()
    header = next(line.split() for line in diagnosis if line.startswith("block coordinate"))
    rows = [line.split() for line in diagnosis if line.startswith("theta ")]
    assert header[:6] == ["block", "coordinate", "state", "origin", "mean_shift", "sd_ratio"]
    assert rows and all(float(row[5]) > 1.4 for row in rows)  # sqrt of theta_i's variance
    assert_figures_drawn(tmp_path, ("school_means", "theta_forest", "shrinkage", "sbc",
                                    "diagnosis"))


def pooled_t(treated: np.ndarray, control: np.ndarray) -> tuple[float, float]:
    """(difference of means, Student's t with the pooled variance), by the textbook formula."""
    k1, k0 = treated.size, control.size
    pooled = (((treated - treated.mean()) ** 2).sum()
              + ((control - control.mean()) ** 2).sum()) / (k1 + k0 - 2)
    difference = treated.mean() - control.mean()
    return difference, difference / np.sqrt(pooled * (1 / k1 + 1 / k0))


@pytest.mark.slow  # a subprocess: about 10 s, most of it imports
def test_blood_pressure_notebook_numbers(packaged_csv, tmp_path):
    run = run_notebook("blood_pressure.py", tmp_path, timeout=120)
    assert "426 measurements of 20 subjects" in run.stdout
    table = pd.read_csv(tmp_path / "figures" / "treatment_effect.csv").set_index("method")
    frame = pd.read_csv(packaged_csv("bloodpressure.csv"))
    treated = frame.treatment == 2
    arms = frame.groupby("subject").agg(mean=("systolic", "mean"), treatment=("treatment", "first"))
    by_hand = {
        "naive t-test (426 measurements)":
            pooled_t(frame.systolic[treated].to_numpy(), frame.systolic[~treated].to_numpy()),
        "t-test on subject means (20)":
            pooled_t(arms["mean"][arms.treatment == 2].to_numpy(),
                     arms["mean"][arms.treatment == 1].to_numpy()),
    }
    for method, (difference, t) in by_hand.items():
        row = table.loc[method]
        assert row.estimate == pytest.approx(difference, rel=1e-10)
        assert row.t == pytest.approx(t, rel=1e-10)
        assert row["standard error"] == pytest.approx(difference / t, rel=1e-10)
    # beta's posterior against statsmodels' REML fit (models/builtin/README.md: -7.43, SE 4.51):
    # under the weak priors they differ by 0.01 (docs/derivation.md 7.5); the Monte Carlo SE of
    # the mean of 8000 draws (ESS about 7600) is 0.05, so 0.25 is five of them
    model = table.loc["hierarchical model: posterior of beta"]
    assert model.estimate == pytest.approx(-7.43, abs=0.25)
    assert model["standard error"] == pytest.approx(4.51, abs=0.25)
    # the naive SE is several times too small; the subject means' is the model's, nearly
    naive = table.loc["naive t-test (426 measurements)", "standard error"]
    assert model["standard error"] / naive > 3
    # the independence check: the data show no serial dependence (p 0.61 at the notebook's seed)
    independence = pd.read_csv(tmp_path / "figures" / "independence.csv").squeeze()
    assert independence.passed and independence.p > 0.1
    assert_figures_drawn(tmp_path, ("treatment_effect", "independence"))
