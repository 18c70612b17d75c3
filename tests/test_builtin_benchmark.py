"""Smoke test of benchmarks/builtin_models.py in its --quick setting (speeds are not asserted)."""

from tests.test_benchmarks import run_script


def test_the_builtin_models_benchmark_runs_and_writes_what_it_shows(tmp_path):
    payload = run_script("builtin_models", tmp_path)
    for name, keys in (("bloodpressure", {"theta", "('mu', 'beta')", "lam", "omega"}),
                       ("cheese", {"beta", "m", "Sigma", "lam"})):
        result = payload["results"][name]
        assert set(result["per_call_us"]) == keys
        assert all(value > 0 for value in result["per_call_us"].values())
        assert result["sweep_us"] > 0 and result["engine_wall_s"] > 0
        for variable, ess in result["ess_bulk_min"].items():
            assert result["ess_per_s"][variable] == ess / result["engine_wall_s"]
