"""Independent tasks in forked processes, for the checks, the generic sweep's chains and the
power study.

The processes are forked, so each inherits the caller's state (compiled densities, the user's
draw functions, which need not be picklable) instead of receiving it; only a task's index goes
out and its result (which must be picklable) comes back. Every caller gives each task its own
random stream, so results do not depend on the number of processes.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import TypeVar

__all__ = ["forked_map", "in_order"]

T = TypeVar("T")

_TASK: Callable | None = None  # what the forked workers run, inherited at the fork


def _run_task(index: int):
    return index, _TASK(index)


def forked_map(task: Callable[[int], T], count: int, jobs: int) -> Iterator[tuple[int, T]]:
    """(i, task(i)) for i in 0 .. count - 1, in the order they finish: in `jobs` forked
    processes when there are several jobs and tasks, else here in order. A task that runs in a
    worker and calls `forked_map` again runs its own tasks itself (no nested pools).

    Parameters
    ----------
    task : callable
        task(i) -> a picklable result.
    count : int
        How many tasks.
    jobs : int
        How many processes at most.

    Yields
    ------
    tuple of (int, object)
        A task's index and its result.
    """
    global _TASK
    jobs = min(jobs, count)
    if jobs < 2 or _TASK is not None:
        for index in range(count):
            yield index, task(index)
        return
    _TASK = task
    try:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
            for future in as_completed([pool.submit(_run_task, i) for i in range(count)]):
                yield future.result()
    finally:
        _TASK = None


def in_order(finished: Iterable[tuple[int, T]]) -> list[T]:
    """The results of `forked_map` in the order of their tasks.

    Parameters
    ----------
    finished : iterable of (int, object)
        (index, result) pairs, as `forked_map` yields them.

    Returns
    -------
    list
        The results, task 0 first.
    """
    return [result for _, result in sorted(finished, key=lambda pair: pair[0])]
