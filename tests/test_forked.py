"""forked.forked_map: every task once, in the process it was meant for."""

import os
import time

import pytest

from hiercheck.validation.forked import forked_map, in_order


def where_and_what(index: int, seconds: float = 0.0) -> tuple[int, int]:
    time.sleep(seconds)
    return os.getpid(), index * index


def test_tasks_kept_here_run_here_first_and_the_others_in_a_worker():
    """The task kept here takes a second, the others none: the worker has run them all by then."""
    finished = list(forked_map(lambda i: where_and_what(i, 1.0 if i == 4 else 0.0), 6, jobs=2,
                               here=(4,)))
    assert finished[0][0] == 4  # this process's, first
    results = in_order(finished)
    assert [square for _, square in results] == [i * i for i in range(6)]
    pids = [pid for pid, _ in results]
    assert pids[4] == os.getpid()
    assert os.getpid() not in {pids[i] for i in (0, 1, 2, 3, 5)}
    assert len({pids[i] for i in (0, 1, 2, 3, 5)}) == 1  # jobs=2: this process and one worker


def test_this_process_takes_back_the_last_tasks_no_worker_has_started():
    """The task kept here takes none, the others half a second each: of the seven the one
    worker has (at most two started or queued when this process is done with its own), this
    process runs the last ones."""
    finished = list(forked_map(lambda i: where_and_what(i, 0.0 if i == 0 else 0.5), 8, jobs=2,
                               here=(0,)))
    results = in_order(finished)
    assert [square for _, square in results] == [i * i for i in range(8)]
    taken_back = [i for i, (pid, _) in enumerate(results) if pid == os.getpid() and i != 0]
    assert taken_back and taken_back == list(range(8 - len(taken_back), 8))
    assert len(taken_back) <= 5  # tasks 1 and 2 were the worker's before this process was free
    assert [index for index, _ in finished[:1 + len(taken_back)]] == [0, *taken_back[::-1]]


def test_one_job_runs_everything_here_in_order():
    assert [(i, pid) for i, (pid, _) in forked_map(where_and_what, 3, jobs=1, here=(2,))] == [
        (0, os.getpid()), (1, os.getpid()), (2, os.getpid())]


def test_without_here_every_task_runs_in_a_worker():
    pids = {pid for _, (pid, _) in forked_map(lambda i: where_and_what(i, 0.2), 6, jobs=2)}
    assert os.getpid() not in pids


def test_a_failing_task_here_stops_the_workers_tasks_not_yet_started(tmp_path):
    """The error comes back at once; of the seven half-second tasks for the one worker, only
    those it had started or queued (at most three) run."""
    def task(index):
        if index == 0:
            raise ValueError("the task kept here failed")
        (tmp_path / str(index)).touch()
        time.sleep(0.5)

    with pytest.raises(ValueError, match="kept here failed"):
        list(forked_map(task, 8, jobs=2, here=(0,)))
    assert 1 <= len(list(tmp_path.iterdir())) <= 3
