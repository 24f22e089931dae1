"""Hand the executions of `make autograde` to an existing Dask cluster (`make autograde DASK=tcp://host:8786`).

Only the execute step leaves this machine: each Dask worker runs
grading.engine.execute_sandboxed.execute_in_sandbox (student code in its own bubblewrap sandbox, on the worker's
machine) and sends back the executed notebook as text. Sanitizing, grading and every gradebook write stay
in the coordinator. A worker therefore needs the course checked out and its virtual environment (`make setup`
installs the `grading` package there) and bubblewrap; it never needs the gradebook, the submissions or the
solutions. The scheduler needs the same virtual environment: it unpickles every task, so it imports `grading`.

DaskExecutor has the part of the concurrent.futures.Executor interface the coordinator uses (submit,
shutdown) and returns concurrent.futures.Future objects, so the coordinator's loop is the same for its
local process pool and for a cluster. execute_as_completed is the same thing as a generator.
"""

import concurrent.futures as cf
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from .execute_sandboxed import execute_in_sandbox
from .execution_outcome import ExecutionOutcome
from .limits import Limits

CONNECT_TIMEOUT = "30s"


class ClusterUnusable(SystemExit):
    """The cluster cannot be reached, or some of its workers cannot execute submissions; says why, in words."""


NO_GRADING = (
    "could not run the course's check ({error}); it needs the course's grading package: run `make setup` "
    "in the course on that machine and start it with the course's .venv/bin/dask"
)


def _check_worker() -> str | None:
    """Run on a worker: None if it can execute submissions, else what is missing there, in words."""
    from grading.engine.sandbox import bwrap_problem, sweep_leftovers

    sweep_leftovers()
    return bwrap_problem(Limits())


def _check_scheduler() -> None:
    """Run on the scheduler, which unpickles every task and so imports grading.engine.execute_sandboxed: to unpickle
    this function it imports this module, which imports that one. None."""
    return None


class DaskExecutor:
    """Executes submissions on the Dask cluster at `address`, one task per submission."""

    def __init__(self, address: str, client: Any = None, check_workers: bool = True, sandbox: bool = True) -> None:
        from distributed import Client

        self._own_client = client is None
        try:
            self.client = client or Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except OSError as error:
            raise ClusterUnusable(f"cannot reach the Dask scheduler at {address}: {error}") from None
        self._futures: set[Any] = set()  # the cluster's futures not yet finished
        if check_workers:
            self._check(address, sandbox)

    def _check(self, address: str, sandbox: bool) -> None:
        """ClusterUnusable, saying why, unless the scheduler and every worker can run the course's tasks."""
        try:
            self.client.run_on_scheduler(_check_scheduler)
        except Exception as error:  # the scheduler could not unpickle the check: no grading package there
            self.close()
            raise ClusterUnusable(
                f"the Dask scheduler at {address} " + NO_GRADING.format(error=error) + " (nothing was graded)"
            ) from None
        try:
            from dask.utils import parse_timedelta

            self.client.wait_for_workers(1, timeout=parse_timedelta(CONNECT_TIMEOUT))
        except TimeoutError:
            self.close()
            raise ClusterUnusable(
                f"no Dask worker joined the scheduler at {address} within {CONNECT_TIMEOUT} (nothing was graded)"
            ) from None
        answers = self.client.run(_check_worker if sandbox else _check_scheduler, on_error="return")
        problems = {
            worker: NO_GRADING.format(error=answer) if isinstance(answer, BaseException) else answer
            for worker, answer in answers.items()
            if answer
        }
        if problems:
            self.close()
            raise ClusterUnusable(
                "Dask workers that cannot execute submissions (nothing was graded): "
                + "; ".join(f"{w}: {p}" for w, p in sorted(problems.items()))
            )

    @property
    def threads(self) -> int:
        """Executions the cluster runs at once (the sum of its workers' threads), at least 1."""
        return max(1, sum(self.client.nthreads().values()))

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        """fn(*args) on some worker, as a concurrent.futures.Future. pure=False: two students' identical
        notebooks are two executions, each in its own sandbox."""
        task = self.client.submit(fn, *args, pure=False)
        future: cf.Future[Any] = cf.Future()
        self._futures.add(task)

        def relay(task):
            self._futures.discard(task)
            if task.status == "finished":
                try:
                    future.set_result(task.result())
                except Exception as error:  # the result could not be fetched
                    future.set_exception(error)
            elif task.status == "cancelled":
                future.cancel()
                future.set_running_or_notify_cancel()
            else:
                future.set_exception(task.exception() or RuntimeError(f"task ended as {task.status}"))

        task.add_done_callback(relay)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        if cancel_futures and self._futures:
            self.client.cancel(list(self._futures))
        if wait and self._futures:
            from distributed import wait as wait_all

            wait_all(list(self._futures))
        self.close()

    def close(self) -> None:
        if self._own_client:
            self.client.close()


def execute_as_completed(
    address: str, notebooks: Iterable[tuple[Any, str]], files: Mapping[str, bytes], limits: Limits
) -> Iterator[tuple[Any, str | None, ExecutionOutcome]]:
    """Execute every (key, notebook_json) of `notebooks` on the cluster; yield (key, executed_json, outcome)
    as each finishes. A task that failed on the worker yields an outcome of status SANDBOX_ERROR."""
    executor = DaskExecutor(address, sandbox=limits.sandbox)
    try:
        futures = {executor.submit(execute_in_sandbox, nb, files, limits): key for key, nb in notebooks}
        for future in cf.as_completed(futures):
            try:
                executed, outcome = future.result()
            except Exception as error:
                executed, outcome = None, ExecutionOutcome.failed(f"{type(error).__name__}: {error}")
            yield futures[future], executed, outcome
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
