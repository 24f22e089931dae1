"""What tests/test_worker_start.py's workers run: it reports a value the coordinator may have changed after importing
this module (a forked worker sees the change, a spawned one imports the module again)."""

from grading.engine.execution_outcome import ExecutionOutcome, ExecutionStatus

MARK = {"value": "as imported"}


def report_mark(notebook_json, files, limits, questions, probe_setup=""):
    return MARK["value"], ExecutionOutcome(ExecutionStatus.OK, "")
