"""Prepare, execute, judge: one notebook's way through the sandbox, the same for `make autograde` and nbgrader's.

JudgedExecution.prepare lets the judge draw the notebook's points and probes and take out its hidden tests and its
public checks' calls (Judgement.prepare): what is left is the ExecutionRequest to execute, here (execute) or in a
worker process or on Dask (make autograde's scheduler). judge takes what came back and has the judge write each test
cell's graded output. Both graders call these three steps and nothing else between sanitizing and nbgrader's
post-execution preprocessors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import nbformat

from grading.checks.judge import Judgement
from grading.engine.execute_sandboxed import execute_in_sandbox
from grading.engine.execution_outcome import ExecutionOutcome, ExecutionStatus
from grading.engine.executions import ExecutionRequest
from grading.engine.limits import Limits


class NotExecuted(Exception):
    """The notebook could not be executed at all: nothing of it is graded. detail says why, in words."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class JudgedExecution:
    """One sanitized notebook: what to execute (request), and the judgement that grades what comes back."""

    request: ExecutionRequest
    judgement: Judgement

    @classmethod
    def prepare(
        cls, nb: nbformat.NotebookNode, assignment: str, files: Mapping[str, bytes], limits: Limits
    ) -> JudgedExecution:
        """nb ready to execute with the assignment's files: the cells the judge checks without their hidden tests
        and public checks' calls (judge.as_executed), with the judge's probes to ask after them."""
        judgement, runnable = Judgement.prepare(nb, assignment)
        request = ExecutionRequest(nbformat.writes(runnable), files, limits, judgement.probes, judgement.probe_setup)
        return cls(request, judgement)

    def execute(self) -> tuple[str, ExecutionOutcome]:
        """Execute the request in this process: (executed notebook as JSON text, outcome)."""
        return execute_in_sandbox(*self.request.arguments())

    def judge(self, executed_json: str, outcome: ExecutionOutcome) -> nbformat.NotebookNode:
        """The executed notebook with its judged test cells' graded outputs; NotExecuted if nothing of it ran."""
        if outcome.status is ExecutionStatus.SANDBOX_ERROR:
            raise NotExecuted(outcome.detail)
        nb = nbformat.reads(executed_json, as_version=4)
        self.judgement.apply(nb, outcome)  # the judge, not the kernel, writes the graded outputs
        return nb
