"""Shared pieces of the benchmark scripts: timing, ESS, machine info, output.

The scripts run from the repository root as `python benchmarks/NAME.py`, so this module is
imported as `common` (the script's own folder is first on sys.path). Nothing here imports PyMC:
a script imports it only when a NUTS engine is asked for.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from hiercheck.models.engine import az

REPO = Path(__file__).resolve().parents[1]
SCALARS = ("mu", "sigma", "tau", "omega")
PACKAGES = ("numpy", "scipy", "pandas", "arviz", "pymc", "pytensor", "nutpie", "statsmodels")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def machine_info() -> dict:
    """What the numbers depend on: versions, cores, and how busy the machine was (the load
    average over the last 1, 5, 15 minutes; other work on a 2-core machine slows everything)."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "versions": {package: _version(package) for package in PACKAGES},
        "git_commit": _git_commit(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join([Path(sys.executable).name] + sys.argv),
    }


def timed(function, repeats: int = 1):
    """(the last result, the median wall time in seconds, every wall time) over `repeats` calls."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times), times


def ess_summary(idata: az.InferenceData) -> dict:
    """Bulk and tail ESS (ArviZ) of mu, sigma, tau, omega, and of the slowest theta_i (the school
    whose bulk ESS is smallest; its tail ESS is reported beside it, and the smallest tail ESS of
    any school separately)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        bulk = az.ess(idata, var_names=list(SCALARS) + ["theta"], method="bulk")
        tail = az.ess(idata, var_names=list(SCALARS) + ["theta"], method="tail")
    out = {}
    for name in SCALARS:
        out[name] = {"bulk": float(bulk[name]), "tail": float(tail[name])}
    theta_bulk = bulk["theta"].values
    slowest = int(np.argmin(theta_bulk))
    out["theta_min"] = {"bulk": float(theta_bulk[slowest]),
                        "tail": float(tail["theta"].values[slowest]),
                        "school": str(idata.posterior["school"].values[slowest]),
                        "tail_min_any_school": float(tail["theta"].values.min())}
    return out


def clean(value):
    """Numbers as plain floats and non-finite ones as None, so the JSON is strict JSON."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_json(path, payload: dict) -> None:
    Path(path).write_text(json.dumps(clean(payload), indent=2, allow_nan=False) + "\n")


def parser(description: str) -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(description=description)
    result.add_argument("--json", metavar="PATH", help="also write the numbers as JSON here")
    result.add_argument("--quick", action="store_true",
                        help="a tiny smoke run (numbers meaningless, for tests)")
    return result


def engines_argument(result: argparse.ArgumentParser, choices, default) -> None:
    result.add_argument("--engines", default=",".join(default),
                        help=f"comma-separated subset of {','.join(choices)} "
                             f"(default: {','.join(default)})")


def chosen(text: str, choices) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in choices]
    if unknown:
        raise SystemExit(f"unknown engine(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(choices)}")
    return names


def show(title: str, frame: pd.DataFrame, float_format="{:.4g}".format) -> None:
    print(f"\n## {title}\n")
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        print(frame.to_string(float_format=float_format))
