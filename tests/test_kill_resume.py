"""Long runs lose nothing: an SBC run killed with SIGKILL part way, then started again, finishes
with exactly the ranks of an uninterrupted run with the same seed, and recomputes only the units
(blocks of replications, or single replications) that had not been saved. The same when a dask
worker process dies mid-run: the scheduler resubmits its tasks to the surviving worker.

Where tests/test_sbc.py and tests/test_cli.py interrupt a run politely (an exception, a deleted
unit), these kill a real process at an arbitrary moment, so a unit may be half written; the
store's write-then-rename must leave only whole units behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from hiercheck.models import Priors, load_dataset
from hiercheck.validation import sbc
from hiercheck.validation.store import UnitStore

ROOT = Path(__file__).resolve().parents[1]
KILL_AFTER_UNITS = 3
DEADLINE = 60.0  # seconds to wait for a unit before declaring the run stuck


def units_in(folder: Path) -> dict[str, int]:
    """Saved units and their modification times (ns)."""
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("unit-*.npz")}


def start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *argv], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def kill_after(process: subprocess.Popen, folder: Path, units: int, total: int) -> dict[str, int]:
    """SIGKILL `process` once `units` units are saved; returns the units saved when it died."""
    started = time.monotonic()
    while len(units_in(folder)) < units:
        if process.poll() is not None:
            pytest.fail(f"the run ended (code {process.returncode}) before it could be killed: "
                        f"{process.stderr.read()[-500:]}")
        if time.monotonic() - started > DEADLINE:
            process.kill()
            pytest.fail("no unit saved within the deadline")
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    saved = units_in(folder)
    assert KILL_AFTER_UNITS <= len(saved) < total, "killed part way, not at the end"
    return saved


def stored_ranks(folder: Path, config: dict, units: int) -> dict[str, np.ndarray]:
    store = UnitStore(folder, config)
    loaded = [store.load(k) for k in range(units)]
    return {name: np.concatenate([unit[name] for unit in loaded]) for name in loaded[0]}


def test_cli_sbc_killed_with_sigkill_resumes_to_the_uninterrupted_ranks(tmp_path):
    """`hiercheck sbc` (Gibbs, blocks of 50) on Dyestuff's design, 600 replications = 12 blocks,
    killed after 3 blocks are saved, then run again to the end."""
    reps, blocks = 600, 12
    argv = ["-m", "hiercheck.validation.cli", "sbc", "--dataset", "dyestuff", "--reps", str(reps),
            "--draws", "50", "--seed", "5", "--out", str(tmp_path)]
    folder = tmp_path / "sbc-gibbs"
    saved = kill_after(start(argv), folder, KILL_AFTER_UNITS, blocks)

    resumed = start(argv)
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode in (0, 1), err[-1000:]  # 1: ranks not uniform, still complete
    after = units_in(folder)
    assert len(after) == blocks
    # the saved blocks were loaded, not recomputed; the rest were computed once, by the re-run
    assert {name: after[name] for name in saved} == saved
    assert not list(folder.glob(".tmp-*"))  # a unit half written when killed is gone

    data = load_dataset("dyestuff")
    priors = Priors.weakly_informative(data)
    whole = sbc.run_gibbs_sbc(data.n, priors, replications=reps, draws=50, seed=5)
    got = stored_ranks(folder, whole.settings, blocks)
    assert set(got) == set(whole.ranks)
    for name in whole.ranks:
        np.testing.assert_array_equal(got[name], whole.ranks[name], err_msg=name)


ENGINE_RUN = textwrap.dedent("""
    import sys
    from hiercheck.models import load_dataset
    from hiercheck.samplers import exact
    from hiercheck.validation import sbc
    design = load_dataset(sys.argv[1])
    sbc.run_engine_sbc(exact.sample, design, sbc.QUICK_PRIORS, replications=int(sys.argv[3]),
                       draws=50, seed=7, out=sys.argv[2], engine_name="exact")
""")


def test_engine_sbc_killed_with_sigkill_resumes_to_the_uninterrupted_ranks(tmp_path):
    """`run_engine_sbc` with the exact engine, one replication a unit, killed after 3."""
    from hiercheck.samplers import exact

    reps = 10
    folder = tmp_path / "run"
    argv = ["-c", ENGINE_RUN, "dyestuff", str(folder), str(reps)]
    saved = kill_after(start(argv), folder, KILL_AFTER_UNITS, reps)
    resumed = start(argv)
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err[-1000:]
    after = units_in(folder)
    assert len(after) == reps and {name: after[name] for name in saved} == saved

    whole = sbc.run_engine_sbc(exact.sample, load_dataset("dyestuff"), sbc.QUICK_PRIORS,
                               replications=reps, draws=50, seed=7, engine_name="exact")
    got = stored_ranks(folder, whole.settings, reps)
    for name in whole.ranks:
        np.testing.assert_array_equal(got[name], whole.ranks[name], err_msg=name)


def test_a_dask_worker_killed_mid_run_changes_no_rank(tmp_path):
    """Two worker processes; once 3 replications are saved, one worker is SIGKILLed. The
    scheduler resubmits what it held to the survivor (or its restarted replacement), and every
    rank equals the serial run's."""
    import threading

    distributed = pytest.importorskip("distributed")
    from hiercheck.samplers import exact

    reps = 24
    design = load_dataset("dyestuff")
    serial = sbc.run_engine_sbc(exact.sample, design, sbc.QUICK_PRIORS, replications=reps,
                                draws=50, seed=7)
    folder = tmp_path / "run"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        pids = client.run(os.getpid)
        victim = sorted(pids.values())[0]
        killed = threading.Event()

        def kill_a_worker():
            started = time.monotonic()
            while len(units_in(folder)) < KILL_AFTER_UNITS and time.monotonic() - started < DEADLINE:
                time.sleep(0.005)
            if len(units_in(folder)) < reps:
                os.kill(victim, signal.SIGKILL)
                killed.set()

        killer = threading.Thread(target=kill_a_worker)
        killer.start()
        result = sbc.run_engine_sbc(exact.sample, design, sbc.QUICK_PRIORS, replications=reps,
                                    draws=50, seed=7, executor=client.get_executor(),
                                    out=folder)
        killer.join()
        assert killed.is_set(), "the run finished before a worker could be killed"
        assert victim not in client.run(os.getpid).values()
    assert len(units_in(folder)) == reps
    for name in serial.ranks:
        np.testing.assert_array_equal(result.ranks[name], serial.ranks[name], err_msg=name)
