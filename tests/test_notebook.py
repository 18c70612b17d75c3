"""notebooks/math_tests.py, the math-test walk-through, runs top to bottom as a plain script."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "math_tests.py"
FIGURES = ("school_means", "theta_forest", "shrinkage", "sbc")


@pytest.mark.slow
def test_notebook_runs_and_draws_its_figures(shared_data, tmp_path):
    from matplotlib import image

    environment = {**os.environ, "MPLBACKEND": "Agg", "HIERCHECK_DATA": str(shared_data),
                   "HIERCHECK_FIGURES": str(tmp_path / "figures")}
    # from another folder: the script must find its data without relying on the working directory
    run = subprocess.run([sys.executable, str(NOTEBOOK)], cwd=tmp_path, env=environment,
                         capture_output=True, text=True, timeout=300)  # the 5 minutes
    assert run.returncode == 0, run.stderr[-3000:]
    assert "1993 students in 100 schools" in run.stdout
    # the package's derivation passes every check on the data, the planted slip fails two
    verdicts = [line for line in run.stdout.splitlines()
                if line.endswith(": PASSED") or ": FAILED" in line]
    assert verdicts[0].endswith("mathtest.csv: PASSED"), verdicts
    assert verdicts[1].endswith("mathtest.csv: FAILED (consistency, geweke)"), verdicts
    for name in FIGURES:
        pixels = image.imread(tmp_path / "figures" / f"{name}.png")
        assert pixels.shape[0] > 300 and pixels.shape[1] > 500, name
