"""Tasks run by forked worker processes, which share the parent's memory as it is.

A build of 10,000 nodes renders and writes 2.46 GB from an IR that a compile
made. Threads cannot spread that over the CPUs: the renderer holds the GIL,
and a writing thread waits for it after each of its system calls. Forked
processes can, and they inherit the IR: nothing crosses between the processes
but a task's index and its result.

`Forked` starts the workers on entry; the parent does its own work, then takes
the results, in the tasks' order. Before the fork:
- the collector is frozen: a collection in a worker would write to every
  object it visits, and copy the parent's memory page by page;
- the standard streams are flushed, so that no worker writes out a second copy
  of what the parent had buffered.
Workers ignore SIGINT. A Ctrl-C reaches the parent, which cancels the tasks
not started and waits for those running (one per worker), so no worker works
on after the parent has gone on. A parent that is killed takes its workers
with it (PR_SET_PDEATHSIG): none is left waiting for work that never comes.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Generic, TypeVar, cast

from hercc.diagnostics import OperationError

T = TypeVar("T")

# More would only share the same disk and memory bandwidth.
MAX_WORKERS = 8
_PR_SET_PDEATHSIG = 1  # linux/prctl.h

# The tasks of the Forked that is starting: fork copies them into each worker,
# which runs one by its index. Nothing is pickled but the index and the result.
_inherited: Sequence[Callable[[], object]] = ()


class Forked(Generic[T]):
    """Run `tasks` in up to `workers` forked processes, while the parent goes on."""

    def __init__(self, tasks: Sequence[Callable[[], T]], workers: int) -> None:
        self._tasks = tasks
        self._workers = max(1, min(workers, len(tasks), MAX_WORKERS))
        self._pool: ProcessPoolExecutor | None = None
        self._futures: list[Future[T]] = []

    def __enter__(self) -> Forked[T]:
        global _inherited
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        gc.freeze()
        _inherited = self._tasks
        try:
            # With fork, the pool starts every worker at the first submit, before its own thread.
            self._pool = ProcessPoolExecutor(
                self._workers,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_start_worker,
                initargs=(os.getpid(),),
            )
            run = cast(Callable[[int], T], _run)  # _inherited holds self._tasks
            self._futures = [self._pool.submit(run, i) for i in range(len(self._tasks))]
        except BaseException:
            self._close(cancel=True)
            raise
        finally:
            _inherited = ()
        return self

    def results(self) -> list[T]:
        """Each task's result, in order: the first task's exception, if one raised."""
        try:
            return [future.result() for future in self._futures]
        except BrokenProcessPool:
            raise OperationError(
                "a worker process ended before its work was done (killed, or out of memory?)"
            ) from None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close(cancel=exc_type is not None)

    def _close(self, cancel: bool) -> None:
        try:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=cancel)
        finally:
            gc.unfreeze()


def _start_worker(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _run(index: int) -> object:
    return _inherited[index]()
