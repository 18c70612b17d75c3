"""Reproducibility: a seed determines every draw, whatever process, worker count or run length.

Already tested elsewhere, and not repeated here:

| engine / run            | same seed, same draws                    | test                                  |
| ----------------------- | ---------------------------------------- | ------------------------------------- |
| gibbs (numba and numpy) | twice in one process; kernel = reference | test_gibbs.py                         |
| exact                   | twice in one process                     | test_exact.py::test_same_seed_same_draws |
| eb                      | twice in one process                     | test_empirical_bayes.py::test_engine_is_reproducible |
| NUTS (pymc)             | cores=1 against cores=2                  | test_reference.py::test_the_same_seed_gives_the_same_draws_whatever_the_cores |
| engine SBC (exact)      | serial, 2 threads, 2 processes, dask     | test_sbc.py::test_same_seed_same_ranks_* |

This file adds: the same draws in a fresh interpreter with another hash seed (numba's cached
kernel, import order and dict order must not matter); engine SBC of a Markov-chain engine
(Gibbs) and of EB on 1 and 2 worker processes; runs that differ only in length share their
common prefix (replication r's stream is SeedSequence(seed).spawn(...)[r], whatever the count);
and Gibbs SBC, whose blocks of a fixed size share a stream, doing the same at block boundaries.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hiercheck.models import Priors, load_dataset
from hiercheck.samplers import empirical_bayes, exact, gibbs
from hiercheck.validation import sbc

ROOT = Path(__file__).resolve().parents[1]

DRAWS = textwrap.dedent("""
    import sys
    import numpy as np
    from hiercheck.models import Priors, load_dataset
    from hiercheck.samplers import empirical_bayes, exact, gibbs

    ENGINES = {"gibbs": gibbs.sample, "blocked": gibbs.sample_blocked, "exact": exact.sample,
               "eb": empirical_bayes.sample}

    def draws(data):
        priors = Priors.weakly_informative(data)
        out = {}
        for name, engine in ENGINES.items():
            for seed in (3, np.random.SeedSequence(3)):
                post = engine(data, priors, draws=40, chains=3, seed=seed).posterior
                for variable in ("theta", "mu", "lam", "omega"):
                    out[f"{name}/{type(seed).__name__}/{variable}"] = post[variable].to_numpy()
        return out

    if __name__ == "__main__":
        np.savez(sys.argv[1], **draws(load_dataset("rail")))
""")


def test_every_engine_draws_the_same_in_a_fresh_process_with_another_hash_seed(tmp_path):
    script = tmp_path / "draws.py"
    script.write_text(DRAWS)
    environment = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "there.npz")], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-1000:]
    namespace: dict = {}
    exec(compile(DRAWS, "draws", "exec"), namespace)
    here = namespace["draws"](load_dataset("rail"))
    with np.load(tmp_path / "there.npz") as there:
        assert sorted(there.files) == sorted(here)
        for key, values in here.items():
            np.testing.assert_array_equal(there[key], values, err_msg=key)
    # and the seed matters: another seed gives other draws for every engine
    other = gibbs.sample(load_dataset("rail"), Priors.weakly_informative(load_dataset("rail")),
                         draws=40, chains=3, seed=4).posterior.mu.to_numpy()
    assert not np.array_equal(other, here["gibbs/int/mu"])


@pytest.fixture(scope="module")
def design():
    return load_dataset("dyestuff")


ENGINE_SBC = {
    # a Markov chain, thinned through its options (partials pickle to worker processes)
    "gibbs": functools.partial(gibbs.sample, tune=50, thin=2),
    "eb": empirical_bayes.sample,
}


@pytest.mark.parametrize("engine", sorted(ENGINE_SBC))
def test_engine_sbc_ranks_do_not_depend_on_the_number_of_worker_processes(design, engine):
    run = dict(replications=10, draws=30, chains=2, seed=9)
    serial = sbc.run_engine_sbc(ENGINE_SBC[engine], design, sbc.QUICK_PRIORS, **run)
    for workers in (1, 2):
        with ProcessPoolExecutor(workers) as executor:
            pooled = sbc.run_engine_sbc(ENGINE_SBC[engine], design, sbc.QUICK_PRIORS,
                                        executor=executor, **run)
        for name in serial.ranks:
            np.testing.assert_array_equal(pooled.ranks[name], serial.ranks[name],
                                          err_msg=f"{workers} workers: {name}")


def test_a_shorter_engine_sbc_run_is_a_prefix_of_a_longer_one(design):
    short = sbc.run_engine_sbc(exact.sample, design, sbc.QUICK_PRIORS, replications=4, draws=30,
                               seed=2)
    long = sbc.run_engine_sbc(exact.sample, design, sbc.QUICK_PRIORS, replications=7, draws=30,
                              seed=2)
    for name in short.ranks:
        np.testing.assert_array_equal(long.ranks[name][:4], short.ranks[name], err_msg=name)


def test_gibbs_sbc_ranks_depend_on_the_seed_alone(tmp_path):
    """Block k (GIBBS_BLOCK replications) has stream SeedSequence(seed).spawn(...)[k], whatever
    the number of replications: a run of 150 begins with the ranks of a run of 100 (two whole
    blocks). The block size is a constant, not a setting, so no other choice could change them;
    resuming the finished run recomputes nothing and returns the same ranks."""
    settings = dict(n=sbc.QUICK_DESIGN, priors=sbc.QUICK_PRIORS, draws=20, thin=2, tune=20, seed=6)
    assert sbc.GIBBS_BLOCK == 50
    short = sbc.run_gibbs_sbc(**settings, replications=100, out=tmp_path / "short")
    long = sbc.run_gibbs_sbc(**settings, replications=150)
    for name in short.ranks:
        np.testing.assert_array_equal(long.ranks[name][:100], short.ranks[name], err_msg=name)
    again = sbc.run_gibbs_sbc(**settings, replications=100, out=tmp_path / "short")
    for name in short.ranks:
        np.testing.assert_array_equal(again.ranks[name], short.ranks[name])


@pytest.mark.slow
def test_the_verdict_does_not_depend_on_the_number_of_check_processes():
    """check_sampler(jobs=2) runs the agreement check here and the others in a forked process
    (this one taking back those not started): each check keeps its own stream, so every number
    of every table is what jobs=1 gives."""
    from hiercheck.validation.suite import check_sampler

    data = load_dataset("rail")
    checks = ("consistency (small)", "agreement vs exact", "geweke", "marginal likelihood",
              "eb vs statsmodels")
    serial, forked = (check_sampler(data=data, checks=checks, seed=3, jobs=jobs)
                      for jobs in (1, 2))
    assert [o.check for o in forked.outcomes] == list(checks)
    for one, two in zip(serial.outcomes, forked.outcomes):
        assert one.value == two.value and one.passed == two.passed
        pd.testing.assert_frame_equal(one.table, two.table)
