"""`nbgrader autograde` (and the formgrader's Autograde button) grading the way `make autograde` does.

SandboxedJudgedExecute takes the place of nbgrader's Execute in `c.Autograde.autograde_preprocessors`
(nbgrader_config.py): it executes the notebook in the sandbox, kernel forked from this process's template, with
only the assignment's own files beside it, its judged test cells stripped of their hidden tests, and the judge's
probes asked after those cells; then the judge writes the test cells' graded outputs, and nbgrader's next
preprocessors (SaveAutoGrades, ...) score them as usual. Where bubblewrap cannot run it refuses, unless the
environment says UNSAFE_NO_SANDBOX=1, and then it says loudly that student code runs as the grader.
"""

import fnmatch
import json
import os
from pathlib import Path

import nbformat
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute, NbGraderPreprocessor

from grading.checks.judge import Judgement
from grading.engine.execute_sandboxed import execute_in_sandbox
from grading.engine.sandbox import Limits, Sandbox, bwrap_problem

MAX_CELLS = 2000  # the release has about 60; every cell costs grading, feedback and the formgrader

UNSAFE_BANNER = (
    "!" * 78 + "\n!! UNSAFE: grading WITHOUT the sandbox. Student code runs as you, can read the\n"
    "!! solutions and the gradebook, change any grade and reach the network.\n" + "!" * 78
)


class SandboxRefused(RuntimeError):
    """Student code would run without its sandbox, and nobody asked for that."""


def assignment_files(coursedir, assignment):
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


def sandbox_limits(config, unsafe):
    """The limits of one execution, as a plain dict (grading.engine.sandbox.Limits), from the course's configuration."""
    limits = Sandbox(config=config).limits(cell_timeout=Execute(config=config).timeout)
    return {**limits, "sandbox": not unsafe}


_PROBLEMS: dict[str, str | None] = {}  # limits -> what bwrap_problem said: asked once per process


def refusal(limits):
    """Why student code cannot run sandboxed here (with what to do), or None."""
    key = json.dumps(limits, sort_keys=True, default=str)
    if key not in _PROBLEMS:
        _PROBLEMS[key] = bwrap_problem(Limits(**limits))
    problem = _PROBLEMS[key]
    if problem is None:
        return None
    return (
        f"the course refuses to run student code without its sandbox: {problem}. Install bubblewrap "
        "(apt-get install bubblewrap) and allow user namespaces, or run as root. To grade WITHOUT protection "
        "(student code runs as you): UNSAFE_NO_SANDBOX=1"
    )


class SandboxedJudgedExecute(NbGraderPreprocessor):
    """nbgrader's Execute step, sandboxed and judged (see the module's docstring)."""

    def preprocess(self, nb, resources):
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
        judgement, runnable = Judgement.prepare(nb, assignment)
        executed, outcome = execute_in_sandbox(
            nbformat.writes(runnable), assignment_files(coursedir, assignment), limits, judgement.probes
        )
        if outcome["status"] == "sandbox-error":
            raise RuntimeError(f"the notebook could not be executed: {outcome['detail']}")
        if outcome["status"] != "ok" or outcome.get("output_truncated"):
            self.log.warning("%s: %s", resources["nbgrader"].get("student"), outcome["detail"])
        nb = nbformat.reads(executed, as_version=4)
        judgement.apply(nb, outcome)
        return nb, resources
