"""Hand the executions of `make autograde` to an existing Dask cluster (`make autograde DASK=tcp://host:8786`).

Only the execute step leaves this machine: each Dask worker runs
grading.engine.execute_sandboxed.execute_in_sandbox (student code in its own bubblewrap sandbox, on the worker's
machine) and sends back the executed notebook as text. Sanitizing, grading and every gradebook write stay
in the coordinator. A worker therefore needs the course checked out and its virtual environment (`make setup`
installs the `grading` package there) and bubblewrap; it never needs the gradebook, the submissions or the
solutions. The scheduler needs the same virtual environment: it unpickles every task, so it imports `grading`.

DaskExecutor checks the cluster, then hands each task to Dask's own concurrent.futures.Executor
(distributed's Client.get_executor), so the coordinator's loop is the same for its local process pool and for a
cluster: submit returns a concurrent.futures.Future that Dask settles (its result, the task's exception, or
cancelled), and cancelling that future cancels the task.
"""

import concurrent.futures as cf
from collections.abc import Callable
from typing import Any

# the task every worker runs; the scheduler, which unpickles tasks, imports it through this module (_check_scheduler)
from .execute_sandboxed import execute_in_sandbox  # noqa: F401
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
        # pure=False: two students' identical notebooks are two executions, each in its own sandbox
        self._executor = self.client.get_executor(pure=False)
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
        """fn(*args) on some worker, as a concurrent.futures.Future."""
        return self._executor.submit(fn, *args)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """End the executor and close the client; cancel_futures cancels the tasks not finished, else wait
        waits for them."""
        self._executor.shutdown(wait=wait and not cancel_futures)
        self.close()

    def close(self) -> None:
        if self._own_client:
            self.client.close()
