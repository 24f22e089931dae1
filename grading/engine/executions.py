"""Where `make autograde`'s notebooks execute, and the scheduling of those executions.

An Executor runs ExecutionRequests somewhere and returns what grading.engine.execute_sandboxed.execute_in_sandbox
returns: LocalExecutor in this machine's worker processes, ClusterExecutor on a Dask cluster
(grading/engine/dask_executor.py), or a fake in the tests. ExecutionScheduler keeps an executor busy with a bounded
window of notebooks, taking them lazily from an iterable, and yields each one's typed outcome as it finishes.
An execution that failed becomes a SANDBOX_ERROR outcome, never an exception, so that one submission never stops the
class; and one submission never costs another: when a worker dies, the executions it took with it are executed again,
each alone, so that only the one that kills its worker again, alone, is reported (see ExecutionScheduler).
"""

from __future__ import annotations

import concurrent.futures as cf
import gc
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from .execute_sandboxed import execute_in_sandbox, start_worker_template
from .execution_outcome import ExecutionOutcome
from .limits import Limits

Key = TypeVar("Key")
# what execute_in_sandbox returns: (the executed notebook as JSON text, its outcome)
RawExecution = tuple[str, ExecutionOutcome]

# the report's words for the execution that killed its worker again when it ran alone
KILLED_ITS_WORKER = (
    "its execution killed the grading worker, again when executed alone (most often: memory beyond the worker's limit,"
    " e.g. by its output); nothing of it was graded"
)


class WorkerLost(Exception):
    """The worker that ran one execution died (the other executions of the executor went on): an executor's way to
    say so, in words for the report. The scheduler executes it again alone, and reports those words if it dies
    again."""


@dataclass(frozen=True)
class ExecutionRequest:
    """One notebook to execute, as data that may travel to another process or machine."""

    notebook_json: str  # sanitized, without hidden tests
    files: Mapping[str, bytes]  # the assignment's own files, put beside the notebook
    limits: Limits
    questions: Mapping[str, str]  # grade id -> the judge's probe, asked after that test cell
    probe_setup: str = ""  # run once in the kernel before its first probe: what every probe uses

    def arguments(self) -> tuple[str, dict[str, bytes], Limits, dict[str, str], str]:
        """execute_in_sandbox's arguments, as plain values a process pool or a cluster can send."""
        return self.notebook_json, dict(self.files), self.limits, dict(self.questions), self.probe_setup


class Executor(Protocol):
    """Runs notebooks: a pool of local worker processes, a Dask cluster, or a fake."""

    @property
    def capacity(self) -> int:
        """Notebooks executed at once."""

    def submit(self, request: ExecutionRequest) -> cf.Future[RawExecution]:
        """Start executing request; the future's exception (or submit's own) is that execution's failure.
        A cf.BrokenExecutor means a worker died and took every execution in flight with it: the scheduler then calls
        restart. WorkerLost means this execution's worker died, and only this execution was lost."""

    def restart(self) -> None:
        """After a cf.BrokenExecutor: drop every execution in flight and be ready for new ones."""

    def shutdown(self) -> None:
        """Stop, cancelling what has not started; wait for the rest."""


def _set_parent_death_signal() -> None:
    """Worker processes die with the coordinator (and their sandboxes with them)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _start_method() -> str:
    """How the workers start: forked while this process has no other thread (they then have at once what it
    imported, the engine included); spawned, importing it again, once it has threads (after a worker died, say),
    as a thread's lock copied by fork could be held forever in the child. Threads are counted as the kernel knows
    them, those that libraries start in C (a BLAS's, say) included."""
    try:
        threads = len(os.listdir("/proc/self/task"))
    except OSError:
        threads = threading.active_count()
    return "fork" if threads == 1 else "spawn"


class LocalExecutor:
    """Executions in worker processes of this machine, each keeping its own sandbox (and kernel template).

    A worker process that dies (killed at a memory limit, say) breaks the whole process pool: every execution in
    flight fails with cf.process.BrokenProcessPool, and restart starts a fresh pool. `execute` is what the workers run
    with each request's arguments: a module-level function, as the spawned workers import it."""

    def __init__(self, workers: int, execute: Callable[..., RawExecution] = execute_in_sandbox) -> None:
        self.workers = max(1, workers)
        self.execute = execute
        self._pool: cf.ProcessPoolExecutor | None = None  # started at the first submission

    @property
    def capacity(self) -> int:
        return self.workers

    def _started(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            method = _start_method()
            if method == "fork":
                # as the gc module's documentation advises before fork: the objects this process holds are left out
                # of every later collection, so the workers' collections never touch (and copy) them, and this
                # process's own collections and exit skip them too
                gc.collect()
                gc.freeze()
            self._pool = cf.ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context(method),
                initializer=_set_parent_death_signal,
            )
        return self._pool

    def warm_up(self, limits: Limits) -> None:
        """Start the workers and their kernel templates now, while the coordinator prepares the first notebooks
        (nothing waits for this: a worker still starting takes its first notebook when it is ready)."""
        for _ in range(self.workers):
            self._started().submit(start_worker_template, limits)

    def submit(self, request: ExecutionRequest) -> cf.Future[RawExecution]:
        return self._started().submit(self.execute, *request.arguments())

    def restart(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class ClusterExecutor:
    """Executions on a Dask cluster, through grading.engine.dask_executor.DaskExecutor (or anything with its submit(fn,
    *args) -> concurrent.futures.Future, threads and shutdown).

    The cluster reschedules, on another worker, each task of a worker it lost; a task whose workers died while running
    it more often than the scheduler allows (distributed.scheduler.allowed-failures: 3) fails with
    distributed.KilledWorker. Tasks that ran beside it on those workers may have been counted too: that failure
    becomes WorkerLost, so that the scheduler executes it again alone before blaming it."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster

    @property
    def capacity(self) -> int:
        return max(1, int(self.cluster.threads))

    def submit(self, request: ExecutionRequest) -> cf.Future[RawExecution]:
        task = self.cluster.submit(execute_in_sandbox, *request.arguments())
        future: cf.Future[RawExecution] = cf.Future()

        def relay(finished: cf.Future[RawExecution]) -> None:
            try:
                if finished.cancelled():
                    future.cancel()
                elif (error := finished.exception()) is None:
                    future.set_result(finished.result())
                else:
                    future.set_exception(_worker_lost(error) or error)
            except cf.InvalidStateError:  # the scheduler cancelled it meanwhile
                pass

        task.add_done_callback(relay)
        future.add_done_callback(lambda done: task.cancel() if done.cancelled() else None)
        return future

    def restart(self) -> None:
        """Nothing to do: the cluster never loses more than the tasks of the worker that died, and reschedules them."""

    def shutdown(self) -> None:
        self.cluster.shutdown(wait=True, cancel_futures=True)


def _worker_lost(error: BaseException) -> WorkerLost | None:
    """Dask's failure of a task whose workers all died while running it, as WorkerLost; None for any other error."""
    try:
        from distributed import KilledWorker
    except ImportError:
        return None
    if not isinstance(error, KilledWorker):
        return None
    workers = error.allowed_failures + 1 if isinstance(error.allowed_failures, int) else "several"
    return WorkerLost(
        f"the {workers} Dask workers that executed it died while executing it, again when executed alone (most often:"
        " memory beyond a worker's limit, e.g. by its output); nothing of it was graded"
    )


@dataclass(frozen=True)
class Finished(Generic[Key]):
    """One execution, finished: executed_json is None when the notebook could not be executed at all."""

    key: Key
    executed_json: str | None
    outcome: ExecutionOutcome


@dataclass
class _Task(Generic[Key]):
    key: Key
    request: ExecutionRequest
    alone: bool = False  # executed with nothing else in flight: a worker that died then died of this execution


class ExecutionScheduler:
    """Keeps an executor busy: at most `window` notebooks in flight (default: twice its capacity).

    When a worker dies (cf.BrokenExecutor: the executor lost every execution in flight; WorkerLost: it lost that one),
    the executions lost with it become suspects: nothing new is submitted until the others in flight have finished,
    then the suspects are executed again one at a time, each alone. A suspect that comes back is graded as any other;
    one whose worker dies again while it is alone killed it, and is reported as such (KILLED_ITS_WORKER), nothing of
    it graded. The culprit found, the suspects not yet executed again are executed with the others, first: a worker
    that dies is most often killed by one execution (should another one have a part in it, it is found the same way).
    Once no suspect is left, the window fills again."""

    def __init__(self, executor: Executor, window: int | None = None) -> None:
        self.executor = executor
        self.window = window or 2 * max(1, executor.capacity)

    def run(self, jobs: Iterable[tuple[Key, ExecutionRequest]]) -> Generator[Finished[Key], None, None]:
        """Execute every (key, request) of jobs, taken one by one as room frees up; yield each as it finishes.
        The executor is left running (its owner shuts it down)."""
        pending = iter(jobs)
        inflight: dict[cf.Future[RawExecution], _Task[Key]] = {}  # in the order submitted
        suspects: deque[_Task[Key]] = deque()  # lost with a worker that died: each executed again, alone
        cleared: deque[_Task[Key]] = deque()  # suspects no more (the culprit was found): submitted before new jobs
        exhausted = False
        try:
            while True:
                if suspects:
                    if not inflight:
                        task = suspects.popleft()
                        task.alone = True
                        inflight[self._submit(task.request)] = task
                else:
                    taken: list[_Task[Key]] = []  # prepared first, then submitted together
                    while len(inflight) + len(taken) < self.window:
                        if cleared:
                            taken.append(cleared.popleft())
                            continue
                        job = None if exhausted else next(pending, None)
                        if job is None:
                            exhausted = True
                            break
                        taken.append(_Task(*job))
                    for task in taken:
                        inflight[self._submit(task.request)] = task
                if not inflight:
                    return
                done, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
                pool_broke = False
                for future in [f for f in inflight if f in done]:
                    task = inflight.pop(future)
                    try:
                        executed, outcome = future.result()
                        if not isinstance(outcome, ExecutionOutcome):
                            raise ValueError(f"an execution's outcome, not a {type(outcome).__name__}")
                    except (cf.BrokenExecutor, WorkerLost) as error:
                        pool_broke = pool_broke or isinstance(error, cf.BrokenExecutor)
                        if not task.alone:
                            suspects.append(task)
                            continue
                        words = str(error) if isinstance(error, WorkerLost) else KILLED_ITS_WORKER
                        executed, outcome = None, ExecutionOutcome.failed(words)
                        cleared.extend(suspects)
                        suspects.clear()
                    except Exception as error:  # noqa: BLE001 - the execution failed: that notebook's outcome
                        executed, outcome = None, ExecutionOutcome.failed(f"{type(error).__name__}: {error}")
                    yield Finished(task.key, executed, outcome)
                if pool_broke:  # the other executions in flight died with the pool: suspects too, for a new pool
                    suspects.extend(inflight.values())
                    inflight.clear()
                    self.executor.restart()
        finally:
            for future in inflight:
                future.cancel()

    def _submit(self, request: ExecutionRequest) -> cf.Future[RawExecution]:
        """The executor's future; if submitting failed, a future holding that failure."""
        try:
            return self.executor.submit(request)
        except Exception as error:  # noqa: BLE001 - e.g. a pool found broken: handled as that execution's failure
            future: cf.Future[RawExecution] = cf.Future()
            future.set_exception(error)
            return future
