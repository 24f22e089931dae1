"""A grading worker that dies costs only the submission that killed it: LocalExecutor's real process pool, whose
workers run a stand-in for execute_in_sandbox that kills its own process for a poisoned request (as the kernel's output
can make a worker die of memory); every other execution in flight is lost with the pool and executed again."""

import os
import signal
import time

from grading.engine.execution_outcome import ExecutionOutcome, ExecutionStatus
from grading.engine.executions import KILLED_ITS_WORKER, ExecutionRequest, ExecutionScheduler, LocalExecutor
from grading.engine.limits import Limits

POISON = "poison"


def execute_or_die(notebook_json, files, limits, questions, probe_setup=""):
    """What the workers run instead of execute_in_sandbox: the poisoned request kills its worker process at once;
    the others take a moment, so that they are in flight when it dies."""
    if notebook_json == POISON:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.5)
    return notebook_json, ExecutionOutcome(ExecutionStatus.OK, f"executed in {os.getpid()}")


def test_a_worker_process_killed_by_one_request_costs_no_other_request():
    requests = {name: ExecutionRequest(name, {}, Limits(), {}) for name in ("a", POISON, "c", "d", "e")}
    executor = LocalExecutor(2, execute=execute_or_die)
    try:
        finished = {f.key: f for f in ExecutionScheduler(executor, window=4).run(requests.items())}
    finally:
        executor.shutdown()
    assert sorted(finished) == sorted(requests)
    poisoned = finished.pop(POISON)
    assert {key: (f.executed_json, f.outcome.status) for key, f in finished.items()} == {
        key: (key, ExecutionStatus.OK) for key in ("a", "c", "d", "e")
    }
    assert poisoned.executed_json is None and poisoned.outcome.status is ExecutionStatus.SANDBOX_ERROR
    assert poisoned.outcome.detail == KILLED_ITS_WORKER
