"""Independent tasks in forked processes, for the checks, the generic sweep's chains and the
power study.

The processes are forked, so each inherits the caller's state (compiled densities, the user's
draw functions, which need not be picklable) instead of receiving it; only a task's index goes
out and its result (which must be picklable) comes back. Every caller gives each task its own
random stream, so results do not depend on the number of processes.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import TypeVar

__all__ = ["forked_map", "in_order"]

T = TypeVar("T")

_TASK: Callable | None = None  # what the forked workers run, inherited at the fork


def _run_task(index: int):
    return index, _TASK(index)


def forked_map(task: Callable[[int], T], count: int, jobs: int,
               here: Collection[int] = ()) -> Iterator[tuple[int, T]]:
    """(i, task(i)) for i in 0 .. count - 1: in `jobs` forked processes when there are several
    jobs and tasks, else here in order. The tasks in `here` run in this process while forked
    workers (then `jobs` - 1 of them) run the others: for tasks that need what is costly to
    compute or load and that this process keeps afterwards, when the other tasks do not need
    it (the workers are forked before it exists, so none waits for it). Done with those, this
    process takes back, last first, the workers' tasks that none has started. A task that runs
    in a worker and calls `forked_map` again runs its own tasks itself (no nested pools).

    Parameters
    ----------
    task : callable
        task(i) -> a picklable result.
    count : int
        How many tasks.
    jobs : int
        How many processes at most, this one included when `here` is not empty.
    here : collection of int, optional
        The indices of the tasks that run in this process.

    Yields
    ------
    tuple of (int, object)
        A task's index and its result: those this process ran first, then the workers' in
        the order they finish.
    """
    global _TASK
    here = sorted(set(here))
    forked = [index for index in range(count) if index not in here]
    workers = min(jobs - 1 if here else jobs, len(forked))
    if _TASK is not None or workers < 1 or (workers < 2 and not here):
        for index in range(count):
            yield index, task(index)
        return
    _TASK = task
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            try:
                yield from _share(task, here, forked, pool)
            except BaseException:
                pool.shutdown(cancel_futures=True)  # a task failed, or Ctrl-C: start no other
                raise
    finally:
        _TASK = None


def _share(task: Callable[[int], T], here: list[int], forked: list[int],
           pool: ProcessPoolExecutor) -> Iterator[tuple[int, T]]:
    """`forked_map`'s tasks once its workers exist: `forked` sent to them, `here` run here."""
    futures = [pool.submit(_run_task, index) for index in forked]
    for index in here:
        yield index, task(index)
    # the workers take tasks first to last, so once one cannot be taken back (started, or
    # queued for a worker), neither can any before it
    for index, future in reversed(list(zip(forked, futures)) if here else []):
        if not future.cancel():
            break
        yield index, task(index)
    for future in as_completed([future for future in futures if not future.cancelled()]):
        yield future.result()


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
