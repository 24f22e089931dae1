"""A submitted notebook before and after its execution, in `make autograde`'s coordinator.

NotebookPreparer reads a submitted notebook (refusing what cannot be graded: Unreadable), restores its cell
flags from the gradebook, runs nbgrader's sanitize preprocessors and lets the judge take out its hidden tests
(JudgedExecution.prepare): a PreparedNotebook, ready to execute anywhere. NotebookFinisher takes the executed
notebook back: the judge writes each test cell's graded output (JudgedExecution.judge), nbgrader's post-execution
preprocessors (LimitOutput, SaveAutoGrades, late penalties, ...) grade it into the gradebook, and the autograded
notebook is written, atomically and last.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbgrader.utils import compute_checksum

from grading.engine.execution_outcome import ExecutionOutcome

from .course_layout import CourseAssignment
from .grading_outcome import NotebookOutcome
from .judged_execute import MAX_CELLS
from .judged_execution import JudgedExecution
from .restore_cell_flags import restore_cell_flags

MAX_NOTEBOOK_BYTES = 20 << 20

# nbgrader's preprocessors log here; what sanitizing says is collected for the report, the rest dropped
_LOG = logging.getLogger("grading.sanitize")
_LOG.propagate = False
_LOG.addHandler(logging.NullHandler())


class Unreadable(Exception):
    """A submitted notebook that cannot be graded at all; its message says why, in words."""


@dataclass
class PreparedNotebook:
    """One sanitized notebook of one student, ready to execute, and what grading it afterwards needs."""

    student: str
    notebook: str
    resources: dict[str, Any]  # nbgrader's resources for its preprocessors
    execution: JudgedExecution  # its request is without the hidden tests the judge checks: what the sandbox sees
    notes: list[str] = field(default_factory=list)  # what sanitizing restored, for the report


def read_notebook(folder: Path, name: str) -> nbformat.NotebookNode:
    """The notebook name.ipynb of a submission folder, validated; Unreadable says why it cannot be."""
    path = folder / f"{name}.ipynb"
    if folder.is_symlink() or folder.parent.is_symlink():
        raise Unreadable("the submission folder is a symbolic link; not graded")
    if not path.exists() and not path.is_symlink():
        others = sorted(p.name for p in folder.glob("*.ipynb"))
        found = f" (found {', '.join(others)}: renamed?)" if others else ""
        raise Unreadable(f"no {name}.ipynb in the submission{found}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        raise Unreadable(f"{name}.ipynb is a symbolic link or unreadable") from None
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_NOTEBOOK_BYTES + 1)
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise Unreadable(f"{name}.ipynb is larger than {MAX_NOTEBOOK_BYTES >> 20} MiB")
    try:
        nb = nbformat.reads(data.decode("utf-8"), as_version=4)
        nbformat.validate(nb)
    except Exception as error:
        raise Unreadable(
            f"{name}.ipynb is not a valid notebook ({type(error).__name__}: {str(error).splitlines()[0][:120]})"
        ) from None
    if len(nb.cells) > MAX_CELLS:
        raise Unreadable(f"{name}.ipynb has {len(nb.cells)} cells, more than {MAX_CELLS}; not graded")
    return nb


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _cell_of(message: str) -> str:
    return message.split("cell ")[1].split(" ")[0]


def plain_note(message: str) -> str:
    """nbgrader's sanitize warnings, said for an instructor."""
    if message.startswith("Attribute '"):
        attr, cell = message.split("'")[1], _cell_of(message)
        return {
            "checksum": f"locked cell {cell} was edited; original restored",
            "points": f"points of {cell} were changed; restored",
            "cell_type": f"cell {cell} changed type; restored",
            "locked": f"lock of {cell} changed; restored",
        }.get(attr, message)
    if message.startswith("Missing grade cell"):
        return f"test cell {message.split()[3]} was deleted; restored and run"
    return message


class NotebookPreparer:
    """Submitted notebooks made ready to execute (the steps before execution)."""

    def __init__(self, course: CourseAssignment) -> None:
        self.course = course

    def extra_files(self, student: str, names: list[str]) -> list[str]:
        """Files of the submission other than its notebooks and timestamp (never sent to the sandbox)."""
        folder = self.course.submitted(student)
        expected = {f"{n}.ipynb" for n in names} | {"timestamp.txt"}
        return sorted(
            p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.name not in expected and not p.is_dir()
        )

    def prepare(self, student: str, name: str) -> PreparedNotebook:
        """The student's notebook `name` ready to execute; Unreadable if it cannot be graded at all."""
        course = self.course
        nb = read_notebook(course.submitted(student), name)
        resources = {
            "unique_key": name,
            "output_files_dir": f"{name}_files",
            "nbgrader": {
                "student": student,
                "assignment": course.assignment,
                "notebook": name,
                "db_url": course.db_url,
            },
        }
        notes = restore_cell_flags(nb, course.db_url, course.course_id, course.assignment, name)
        # locked cells as released (hidden tests are put back into them: not an edit by the student)
        as_released = {
            cell.metadata.nbgrader["grade_id"]
            for cell in nb.cells
            if "nbgrader" in cell.metadata and cell.metadata.nbgrader.get("checksum") == compute_checksum(cell)
        }
        collected = _Collect()
        _LOG.addHandler(collected)
        try:
            for pp in course.sanitize_steps:
                nb, resources = pp(config=course.config, log=_LOG)(nb, resources)
        except Exception as error:
            raise Unreadable(f"{name}.ipynb could not be sanitized ({type(error).__name__}: {error})") from None
        finally:
            _LOG.removeHandler(collected)
        notes += [
            plain_note(m)
            for m in collected.messages
            if not (m.startswith("Attribute 'checksum'") and _cell_of(m) in as_released)
        ]
        execution = JudgedExecution.prepare(nb, course.assignment, course.files, course.limits)
        return PreparedNotebook(student, name, resources, execution, notes)


class NotebookFinisher:
    """Executed notebooks judged, graded into the gradebook and written to autograded/ (the steps after)."""

    def __init__(self, course: CourseAssignment) -> None:
        self.course = course

    def finish(self, prepared: PreparedNotebook, executed_json: str, outcome: ExecutionOutcome) -> NotebookOutcome:
        """Grade the executed notebook of `prepared`; what happened to it, with the notes for the report.
        NotExecuted (grading/coordinator/judged_execution.py) if nothing of it ran: nothing is written then."""
        course = self.course
        nb = prepared.execution.judge(executed_json, outcome)
        resources = prepared.resources
        for pp in course.after_execution:
            nb, resources = pp(config=course.config, log=_LOG)(nb, resources)
        dest = course.autograded(prepared.student)
        dest.mkdir(parents=True, exist_ok=True)
        for rel, data in course.files.items():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(data)
        stamp = course.submitted(prepared.student) / "timestamp.txt"
        if stamp.is_file() and not stamp.is_symlink():
            (dest / "timestamp.txt").write_bytes(stamp.read_bytes()[:1000])
        tmp = dest / f".{prepared.notebook}.ipynb.partial"
        tmp.write_text(nbformat.writes(nb), encoding="utf-8")
        os.replace(tmp, dest / f"{prepared.notebook}.ipynb")  # last: its presence means "graded"
        return NotebookOutcome.executed(prepared.notebook, nb, outcome, prepared.notes)
