"""`nbgrader autograde` (and the formgrader's Autograde button) grading the way `make autograde` does.

SandboxedJudgedExecute takes the place of nbgrader's Execute in `c.Autograde.autograde_preprocessors`
(nbgrader_config.py): it executes the notebook in the sandbox, kernel forked from this process's template, with
only the assignment's own files beside it, its judged test cells stripped of their hidden tests, and the judge's
probes asked after those cells; then the judge writes the test cells' graded outputs, and nbgrader's next
preprocessors (SaveAutoGrades, ...) score them as usual. Where bubblewrap cannot run it refuses, unless the
environment says UNSAFE_NO_SANDBOX=1, and then it says loudly that student code runs as the grader.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from pathlib import Path
from typing import Any

import nbformat
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets.config import Config

from grading.engine.execution_outcome import ExecutionStatus
from grading.engine.limits import Limits, Sandbox
from grading.engine.sandbox import bwrap_problem

from .judged_execution import JudgedExecution, NotExecuted

MAX_CELLS = 2000  # the release has about 60; every cell costs grading, feedback and the formgrader

UNSAFE_BANNER = (
    "!" * 78 + "\n!! UNSAFE: grading WITHOUT the sandbox. Student code runs as you, can read the\n"
    "!! solutions and the gradebook, change any grade and reach the network.\n" + "!" * 78
)


class SandboxRefused(RuntimeError):
    """Student code would run without its sandbox, and nobody asked for that."""


def assignment_files(coursedir: CourseDirectory, assignment: str) -> dict[str, bytes]:
    """What enters the sandbox besides the notebook: the assignment's own files from source/, never the student's."""
    source = Path(coursedir.format_path(coursedir.source_directory, ".", assignment))
    files = {}
    for dirpath, _, filenames in os.walk(source, followlinks=True):
        for name in filenames:
            path = Path(dirpath, name)
            rel = path.relative_to(source).as_posix()
            if name.endswith(".ipynb") or any(
                fnmatch.fnmatch(part, pat) for part in rel.split("/") for pat in coursedir.ignore
            ):
                continue
            files[rel] = path.read_bytes()
    return files


def sandbox_limits(config: Config, unsafe: bool) -> Limits:
    """The limits of one execution, from the course's configuration; unsafe: without the sandbox."""
    limits = Sandbox(config=config).limits(cell_timeout=Execute(config=config).timeout)
    return dataclasses.replace(limits, sandbox=not unsafe)


_PROBLEMS: dict[Limits, str | None] = {}  # limits -> what bwrap_problem said: asked once per process


def refusal(limits: Limits) -> str | None:
    """Why student code cannot run sandboxed here (with what to do), or None."""
    if limits not in _PROBLEMS:
        _PROBLEMS[limits] = bwrap_problem(limits)
    problem = _PROBLEMS[limits]
    if problem is None:
        return None
    return (
        f"the course refuses to run student code without its sandbox: {problem}. Install bubblewrap "
        "(apt-get install bubblewrap) and allow user namespaces, or run as root. To grade WITHOUT protection "
        "(student code runs as you): UNSAFE_NO_SANDBOX=1"
    )


class SandboxedJudgedExecute(NbGraderPreprocessor):
    """nbgrader's Execute step, sandboxed and judged (see the module's docstring)."""

    def preprocess(self, nb: nbformat.NotebookNode, resources: dict[str, Any]) -> tuple[nbformat.NotebookNode, dict]:
        unsafe = os.environ.get("UNSAFE_NO_SANDBOX") == "1"
        limits = sandbox_limits(self.config, unsafe)
        if unsafe:
            self.log.warning(UNSAFE_BANNER)
        elif (why := refusal(limits)) is not None:
            raise SandboxRefused(why)
        if len(nb.cells) > MAX_CELLS:  # as make autograde refuses it (notebook_steps.read_notebook)
            raise RuntimeError(f"the notebook has {len(nb.cells)} cells, more than {MAX_CELLS}; not graded")
        coursedir = CourseDirectory(config=self.config)
        assignment = resources["nbgrader"]["assignment"]
        execution = JudgedExecution.prepare(nb, assignment, assignment_files(coursedir, assignment), limits)
        executed, outcome = execution.execute()
        try:
            nb = execution.judge(executed, outcome)
        except NotExecuted as error:
            raise RuntimeError(f"the notebook could not be executed: {error.detail}") from None
        if outcome.status is not ExecutionStatus.OK or outcome.output_truncated:
            self.log.warning("%s: %s", resources["nbgrader"].get("student"), outcome.detail)
        return nb, resources
