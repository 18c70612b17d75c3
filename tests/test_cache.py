"""hiercheck.cache: computed once, read back by a later run, and never trusted when damaged."""

import json
import warnings

import numpy as np
import pytest

from hiercheck.cache import PICKLE, DiskCache, cache_folder, fingerprint
from hiercheck.errors import HiercheckWarning


class Counter:
    def __init__(self, value):
        self.value, self.calls = value, 0

    def __call__(self):
        self.calls += 1
        return self.value


def test_a_value_is_computed_once_and_read_back(tmp_path):
    compute = Counter({"a": np.arange(5.0)})
    parts = {"data": np.arange(3), "seed": 1}
    first = DiskCache(tmp_path).get("thing", parts, compute, PICKLE)
    second = DiskCache(tmp_path).get("thing", dict(parts), compute, PICKLE)  # a new process, say
    assert compute.calls == 1
    np.testing.assert_array_equal(first["a"], second["a"])


def test_any_change_of_the_inputs_is_another_entry(tmp_path):
    cache, compute = DiskCache(tmp_path), Counter(1)
    base = {"values": np.array([1.0, 2.0]), "priors": {"a": 1.0}}
    variants = [base, {**base, "values": np.array([1.0, 2.0 + 1e-12])},
                {**base, "priors": {"a": 1.5}}, {**base, "values": np.array([1, 2])}]
    keys = {fingerprint(parts)[0] for parts in variants}
    assert len(keys) == len(variants)
    for parts in variants:
        cache.get("thing", parts, compute, PICKLE)
    assert compute.calls == len(variants)


def entry_files(folder, kind):
    payload = next(p for p in (folder / kind).iterdir() if p.suffix != ".json")
    return payload, payload.with_suffix(".json")


def test_a_truncated_entry_is_recomputed_not_trusted(tmp_path):
    cache, compute = DiskCache(tmp_path), Counter(np.linspace(0, 1, 1000))
    cache.get("thing", {"k": 1}, compute, PICKLE)
    payload, _ = entry_files(tmp_path, "thing")
    payload.write_bytes(payload.read_bytes()[:100])
    with pytest.warns(HiercheckWarning, match="unusable .*checksum.*recomputing"):
        value = cache.get("thing", {"k": 1}, compute, PICKLE)
    assert compute.calls == 2
    np.testing.assert_array_equal(value, np.linspace(0, 1, 1000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rewritten entry is sound again
        cache.get("thing", {"k": 1}, compute, PICKLE)
    assert compute.calls == 2


def test_a_manifest_of_other_inputs_or_a_missing_one_is_recomputed(tmp_path):
    cache, compute = DiskCache(tmp_path), Counter("value")
    cache.get("thing", {"k": 1}, compute, PICKLE)
    payload, manifest = entry_files(tmp_path, "thing")
    record = json.loads(manifest.read_text())
    record["inputs"]["parts"]["k"] = 2
    manifest.write_text(json.dumps(record))
    with pytest.warns(HiercheckWarning, match="other inputs"):
        cache.get("thing", {"k": 1}, compute, PICKLE)
    manifest.unlink()  # as a run killed between writing the value and its manifest leaves it
    with pytest.warns(HiercheckWarning, match="unusable"):
        cache.get("thing", {"k": 1}, compute, PICKLE)
    assert compute.calls == 3


def test_inference_data_round_trip(tmp_path, mathtest):
    from hiercheck.models import Priors
    from hiercheck.samplers import gibbs

    idata = gibbs.sample(mathtest, Priors.weakly_informative(mathtest), draws=20, chains=2, seed=1)
    cache = DiskCache(tmp_path)
    cache.get("posterior", {"seed": 1}, lambda: idata, PICKLE)
    read = cache.get("posterior", {"seed": 1}, lambda: pytest.fail("recomputed"), PICKLE)
    for name in ("theta", "mu", "lam", "omega"):
        np.testing.assert_array_equal(read.posterior[name].values, idata.posterior[name].values)
    assert read.posterior.attrs["engine"] == "gibbs"


def test_disabled_computes_every_time_and_writes_nothing(tmp_path):
    compute = Counter(3)
    cache = DiskCache(tmp_path / "c", enabled=False)
    for _ in range(2):
        cache.get("thing", {"k": 1}, compute, PICKLE)
    assert compute.calls == 2 and not (tmp_path / "c").exists()


def test_clear_empties_the_folder_and_the_environment_moves_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERCHECK_CACHE", str(tmp_path / "moved"))
    assert cache_folder() == tmp_path / "moved"
    cache = DiskCache()
    cache.get("thing", {"k": 1}, Counter(1), PICKLE)
    assert cache.size()[0] == 1
    assert cache.clear() == 2 and cache.size() == (0, 0)


def test_the_suites_exact_reference_is_read_back_by_a_second_run(tmp_path, monkeypatch):
    from hiercheck.models import Priors, load_dataset
    from hiercheck.validation import suite

    data = load_dataset("rail")
    calls = []
    original = suite.exact.sample

    def counted(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(suite.exact, "sample", counted)
    first, second = (suite.References(data, Priors.weakly_informative(data), suite.QUICK, seed=4,
                                      cache=DiskCache(tmp_path)).exact for _ in range(2))
    assert len(calls) == 1
    np.testing.assert_array_equal(first.posterior.theta.values, second.posterior.theta.values)
    other_seed = suite.References(data, Priors.weakly_informative(data), suite.QUICK, seed=5,
                                  cache=DiskCache(tmp_path)).exact
    assert len(calls) == 2 and not np.array_equal(other_seed.posterior.mu, first.posterior.mu)


def test_the_command_reports_and_clears_the_cache(tmp_path, monkeypatch, capsys):
    from hiercheck.validation.cli import main

    monkeypatch.setenv("HIERCHECK_CACHE", str(tmp_path / "c"))
    DiskCache().get("thing", {"k": 1}, Counter(np.ones(1000)), PICKLE)
    assert main(["cache", "info"]) == 0
    assert f"{tmp_path / 'c'}: 1 entries" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert "deleted 2 files" in capsys.readouterr().out
    assert DiskCache().size() == (0, 0)


WARM_RUN = """
import sys
from hiercheck.models import load_dataset
from hiercheck.validation.suite import check_sampler

verdict = check_sampler(data=load_dataset("rail"), seed=2, jobs=2)
print("pymc" in sys.modules, *(outcome.value for outcome in verdict.outcomes))
"""


@pytest.mark.slow
def test_a_second_run_reads_every_reference_and_never_imports_pymc(tmp_path, monkeypatch):
    """The consistency checks' states and tables, both reference posteriors and their agreement
    summaries are cached: a later process on the same data gives the same values without
    importing PyMC. (The exact engine stands in for NUTS here, to spare the test a NUTS run.)"""
    import os
    import subprocess
    import sys

    from hiercheck.models import Priors, load_dataset, reference
    from hiercheck.samplers import exact
    from hiercheck.validation import suite

    monkeypatch.setattr(reference, "sample_nuts", exact.sample)
    data = load_dataset("rail")
    references = suite.References(data, Priors.weakly_informative(data), suite.QUICK, seed=2,
                                  cache=DiskCache(tmp_path))
    first = suite.check_sampler(references=references, seed=2)
    kinds = {path.parent.name for path in tmp_path.rglob("*.pkl")}
    assert kinds == {"consistency-grids", "posterior-exact", "posterior-nuts",
                     "agreement-summary"}
    environment = os.environ | {"HIERCHECK_CACHE": str(tmp_path)}
    printed = subprocess.run([sys.executable, "-c", WARM_RUN], env=environment,
                             capture_output=True, text=True, check=True).stdout.split()
    assert printed[0] == "False"
    assert [float(value) for value in printed[1:]] == [o.value for o in first.outcomes]
