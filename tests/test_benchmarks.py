"""Smoke tests of benchmarks/: each script runs in its --quick setting and writes strict JSON.

The scripts run as a user runs them (`python benchmarks/NAME.py`), in a subprocess, with only the
engines that need no PyMC compilation, so the three together take seconds. Speeds are not
asserted; what is checked is that the JSON holds what the tables show, internally consistent.
The empirical-Bayes check is also a numerical one: hiercheck's and statsmodels' log-likelihoods
must equal the benchmark's own formula, written from scratch, at their estimates.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_script(name: str, tmp_path: Path, *options: str) -> dict:
    out = tmp_path / f"{name}.json"
    completed = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / f"{name}.py"), "--quick", "--json", str(out),
         *options], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "## " in completed.stdout  # the tables were printed

    def reject(constant):
        raise AssertionError(f"{constant} in the JSON: not strict JSON")
    payload = json.loads(out.read_text(), parse_constant=reject)
    machine = payload["machine"]
    assert machine["cpu_count"] >= 1
    for package in ("numpy", "pymc", "arviz"):
        assert machine["versions"][package]
    assert machine["python"].count(".") == 2
    assert payload["settings"]["quick"] is True
    return payload


def test_gibbs_schemes_quick(tmp_path):
    payload = run_script("gibbs_schemes", tmp_path, "--engines", "gibbs,blocked")
    runs = payload["runs"]
    assert [(r["dataset"], r["engine"]) for r in runs] == [("rail", "gibbs"), ("rail", "blocked")]
    for run in runs:
        assert run["wall_s"] > 0 and run["compile_s"] is None
        for variable in ("mu", "sigma", "tau", "omega", "theta_min"):
            for kind in ("bulk", "tail"):
                ess = run["ess"][variable][kind]
                assert ess > 0
                assert run["ess_per_s"][variable][kind] == pytest.approx(ess / run["wall_s"])
        # tau = omega^(-1/2) is monotone in omega, and ESS uses ranks: the same ESS
        assert run["ess"]["tau"]["bulk"] == pytest.approx(run["ess"]["omega"]["bulk"])
    costs = payload["sweep_cost"]
    assert sorted((c["scheme"], c["chains"]) for c in costs) == [
        ("blocked", 4), ("blocked", 256), ("textbook", 4), ("textbook", 256)]
    for cost in costs:
        assert cost["us_per_sweep_per_chain"] == pytest.approx(
            cost["us_per_sweep"] / cost["chains"])


def test_empirical_bayes_quick(tmp_path):
    payload = run_script("empirical_bayes", tmp_path)
    fits = payload["fits"]
    groups = {}
    for fit in fits:
        groups.setdefault((fit["dataset"], fit["criterion"]), []).append(fit)
    assert sorted(groups) == [("dyestuff2", "ML"), ("dyestuff2", "REML"), ("rail", "ML"),
                              ("rail", "REML")]
    for rows in groups.values():
        assert [r["method"] for r in rows] == ["profile", "nelder-mead", "statsmodels",
                                               "scipy-nm"]
        assert max(r["diff_to_best"] for r in rows) == 0.0
        for row in rows:
            assert row["time_ms"] > 0 and row["diff_to_best"] <= 0.0
            # every method's own log-likelihood is the benchmark's formula at its estimates
            # (a bug in either, or a different REML constant, shows up as a gap >> 1e-8)
            assert abs(row["self_minus_ours"]) < 1e-8, row
        profile = rows[0]
        assert profile["converged"] and profile["diff_to_best"] > -1e-9
    # Dyestuff2's between-batch variance estimate is 0: the profile method lands on it exactly
    assert all(r["between_sd"] == 0.0 for r in fits
               if r["dataset"] == "dyestuff2" and r["method"] == "profile")
    assert [e["dataset"] for e in payload["exact"]] == ["rail", "dyestuff2"]
    assert all(e["time_ms"] > 0 for e in payload["exact"])


def test_engines_quick(tmp_path):
    payload = run_script("engines", tmp_path, "--engines", "gibbs,exact")
    rows = payload["engines"]
    assert [r["engine"] for r in rows] == ["gibbs", "exact"]
    for row in rows:
        assert row["draws_per_chain"] >= 1 and row["wall_s"] > 0
        margin = payload["settings"]["margin"]
        expected = math.ceil(margin * row["target"] / (4 * row["pilot_ess_per_draw"]))
        assert row["draws_per_chain"] == expected
        assert row["s_per_1000_ess"] == pytest.approx(row["wall_s"] * 1000 / row["ess_bulk_tau"])
        assert row["cold_s"] == pytest.approx(row["wall_s"])  # no compile step
        assert 0 < row["rss_start"] <= row["peak_rss"]
        assert row["tracemalloc_peak"] > 0
    assert rows[1]["tune"] == 0  # the exact sampler has no warm-up


def test_the_benchmark_entry_point_quick(tmp_path):
    """`python -m benchmarks --quick --skip-nuts`: every section runs, the JSON holds what the
    tables show, and each ratio is the quotient of the numbers beside it."""
    out = tmp_path / "bench.json"
    completed = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--skip-nuts",
                                "--json", str(out)], cwd=REPO, capture_output=True, text=True,
                               timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "## Ratios from this run" in completed.stdout

    def reject(constant):
        raise AssertionError(f"{constant} in the JSON: not strict JSON")
    payload = json.loads(out.read_text(), parse_constant=reject)
    assert payload["settings"]["quick"] is True and payload["bars"] == []
    sections, ratios = payload["sections"], payload["ratios"]
    rows = {row["engine"]: row for row in sections["ess"]["rows"]}
    assert list(rows) == ["gibbs", "blocked", "gibbs-numpy", "exact"]
    for row in rows.values():
        assert 0 < row["ess"]["min"] == min(row["ess"]["bulk"], row["ess"]["tail"])
    assert rows["exact"]["min_ess_per_s"] == pytest.approx(
        rows["exact"]["ess"]["min"] / rows["exact"]["wall_s"])
    assert ratios["gibbs_vs_gibbs_numpy"] == pytest.approx(
        rows["gibbs"]["min_ess_per_s"] / rows["gibbs-numpy"]["min_ess_per_s"])
    eb = {row["method"]: row for row in sections["eb"]["rows"]}
    assert list(eb) == ["profile", "nelder-mead", "statsmodels"]
    assert eb["profile"]["diff_to_best"] > -1e-9  # the profile fit reaches the best optimum
    assert ratios["eb_profile_vs_statsmodels"] == pytest.approx(
        eb["statsmodels"]["time_ms"] / eb["profile"]["time_ms"])
    sbc = sections["sbc"]["rows"]
    assert [(row["engine"].split(",")[0], row["thin"]) for row in sbc] == [
        ("gibbs", 1), ("gibbs", 10), ("gibbs", 1)]
    assert "small design" in sbc[2]["engine"]
    assert ratios["gibbs_sbc_s"] == sbc[0]["wall_s"]
    assert ratios["gibbs_sbc_small_design_s"] == sbc[2]["wall_s"]
    assert all(row["sweeps"] == row["tune"] + row["draws"] * row["thin"] for row in sbc)
    scaling = sections["scaling"]["rows"]
    assert [row["m"] for row in scaling] == [10, 100]
    for row in scaling:
        assert row["N"] >= 2 * row["m"] and row["kept_draws"] == 200
        assert row["build_and_eb_s"] == pytest.approx(row["build_s"] + row["eb_s"])
        assert row["peak_rss_gib"] >= row["rss_after_simulation_gib"] > 0
    for row in sections["profile"]["per_chain_sweep"]:
        assert row["chains"] in (4, 256)
        assert all(value > 0 for key, value in row.items() if key.endswith("_us"))
