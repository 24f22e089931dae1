"""Where `make autograde`'s notebooks execute, and the scheduling of those executions.

An Executor runs ExecutionRequests somewhere and returns what grading.engine.execute_sandboxed.execute_in_sandbox
returns, as plain data: LocalExecutor in this machine's worker processes, ClusterExecutor on a Dask cluster
(grading/engine/dask_executor.py), or a fake in the tests. ExecutionScheduler keeps an executor busy with a bounded
window of notebooks, taking them lazily from an iterable, and yields each one's typed outcome as it finishes:
a worker that died is retried once, and an execution that failed becomes a SANDBOX_ERROR outcome, never an
exception, so that one submission never stops the class.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from collections import deque
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from grading.coordinator.grading_outcome import ExecutionOutcome

from .execute_sandboxed import execute_in_sandbox

Key = TypeVar("Key")
# what execute_in_sandbox returns: (the executed notebook as JSON text, its outcome as a plain dict)
RawExecution = tuple[str, Mapping[str, Any]]


@dataclass(frozen=True)
class ExecutionRequest:
    """One notebook to execute, as plain data (it may travel to another process or machine)."""

    notebook_json: str  # sanitized, without hidden tests
    files: Mapping[str, bytes]  # the assignment's own files, put beside the notebook
    limits: Mapping[str, Any]  # grading.engine.sandbox.Limits fields
    questions: Mapping[str, str]  # grade id -> the judge's probe, asked after that test cell

    def arguments(self) -> tuple[str, dict[str, bytes], dict[str, Any], dict[str, str]]:
        """execute_in_sandbox's arguments, as plain values a process pool or a cluster can send."""
        return self.notebook_json, dict(self.files), dict(self.limits), dict(self.questions)


class Executor(Protocol):
    """Runs notebooks: a pool of local worker processes, a Dask cluster, or a fake."""

    @property
    def capacity(self) -> int:
        """Notebooks executed at once."""

    def submit(self, request: ExecutionRequest) -> cf.Future[RawExecution]:
        """Start executing request; the future's exception (or submit's own) is that execution's failure.
        A cf.BrokenExecutor means the worker died: the scheduler then calls restart and submits again."""

    def restart(self) -> None:
        """After a worker died: drop every execution in flight and be ready for new ones."""

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


class LocalExecutor:
    """Executions in worker processes of this machine, each keeping its own sandbox (and kernel template)."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._pool: cf.ProcessPoolExecutor | None = None  # started at the first submission

    @property
    def capacity(self) -> int:
        return self.workers

    def _started(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_set_parent_death_signal,
            )
        return self._pool

    def submit(self, request: ExecutionRequest) -> cf.Future[RawExecution]:
        return self._started().submit(execute_in_sandbox, *request.arguments())

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
    *args) -> concurrent.futures.Future, threads and shutdown). The cluster retries a task whose worker died."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster

    @property
    def capacity(self) -> int:
        return max(1, int(self.cluster.threads))

    def submit(self, request: ExecutionRequest) -> cf.Future[RawExecution]:
        return self.cluster.submit(execute_in_sandbox, *request.arguments())

    def restart(self) -> None:
        """Nothing to do: the cluster reschedules the tasks of a worker it lost."""

    def shutdown(self) -> None:
        self.cluster.shutdown(wait=True, cancel_futures=True)


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
    attempts: int = 0


class ExecutionScheduler:
    """Keeps an executor busy: at most `window` notebooks queued or in flight (default: twice its capacity)."""

    def __init__(self, executor: Executor, window: int | None = None, retries: int = 1) -> None:
        self.executor = executor
        self.window = window or 2 * max(1, executor.capacity)
        self.retries = retries  # new attempts of an execution whose worker died

    def run(self, jobs: Iterable[tuple[Key, ExecutionRequest]]) -> Generator[Finished[Key], None, None]:
        """Execute every (key, request) of jobs, taken one by one as room frees up; yield each as it finishes.
        The executor is left running (its owner shuts it down)."""
        pending = iter(jobs)
        queue: deque[_Task[Key]] = deque()
        inflight: dict[cf.Future[RawExecution], _Task[Key]] = {}
        exhausted = False
        try:
            while True:
                while not exhausted and len(inflight) + len(queue) < self.window:
                    job = next(pending, None)
                    if job is None:
                        exhausted = True
                    else:
                        queue.append(_Task(*job))
                while queue:
                    task = queue.popleft()
                    inflight[self._submit(task.request)] = task
                if not inflight:
                    return
                finished, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
                worker_died = False
                for future in finished:
                    task = inflight.pop(future)
                    try:
                        executed, raw = future.result()
                        outcome = ExecutionOutcome.from_dict(raw)
                    except cf.BrokenExecutor:
                        worker_died = True
                        task.attempts += 1
                        if task.attempts <= self.retries:
                            queue.append(task)
                            continue
                        executed, outcome = None, ExecutionOutcome.failed("a grading worker crashed")
                    except Exception as error:  # noqa: BLE001 - the execution failed: that notebook's outcome
                        executed, outcome = None, ExecutionOutcome.failed(f"{type(error).__name__}: {error}")
                    yield Finished(task.key, executed, outcome)
                if worker_died:  # the other executions of the dead pool are lost too: again, in a new one
                    queue.extend(inflight.values())
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
