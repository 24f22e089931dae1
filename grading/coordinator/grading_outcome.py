"""What happened to one notebook and one student of `make autograde`, as types.

The coordinator (grading/coordinator/autograde_class.py) decides from these, never from the words of a note, whether a
student's grading met a fault, whether the run is incomplete (its exit status) and what the report says. Notes
stay the instructor's words; statuses are what the code acts on.

    GradingStatus     what happened to a notebook, or to a student (the worst of their notebooks); after(status):
                      what an execution's ending (grading.engine.execution_outcome.ExecutionStatus) means for it
    NotebookOutcome   one notebook's status and notes
    StudentOutcome    one student's status, notes, score and time: one line of autograde_report.txt
    ExitStatus        the exit status of `python -m grading.coordinator.autograde_class`
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

import nbformat

from grading.engine.execution_outcome import CellError, ExecutionOutcome, ExecutionStatus


class GradingStatus(enum.Enum):
    """What happened to a notebook, or to a student (the worst of their notebooks). Later members are worse."""

    ALREADY_GRADED = "already graded"  # skipped: an earlier run graded it (resume); --force regrades
    GRADED = "graded"  # ran to its end; each test cell scored on its own
    LIMIT_HIT = "limit hit"  # a cell ran out of memory or processes and failed; the kernel went on
    TIMED_OUT = "timed out"  # a cell was interrupted, or the kernel stopped, for running too long
    KILLED = "killed"  # the kernel was killed at the memory limit; cells after it scored 0
    CRASHED = "crashed"  # the kernel exited, crashed or stopped responding; cells after it scored 0
    SCORED_ZERO = "scored 0"  # the notebook could not be graded at all (missing, renamed, not a notebook)
    NOT_GRADED = "not graded"  # grading failed: nothing was written for it, and the next run grades it

    @property
    def is_fault(self) -> bool:
        """Whether something out of the ordinary happened (the progress bar counts these)."""
        return self not in (GradingStatus.ALREADY_GRADED, GradingStatus.GRADED)

    @staticmethod
    def after(execution: ExecutionStatus) -> GradingStatus:
        """What an execution's ending means for the notebook's grading."""
        return _AFTER_EXECUTION[execution]

    @staticmethod
    def worst(statuses: Iterable[GradingStatus], default: GradingStatus | None = None) -> GradingStatus:
        """The worst of statuses (default, or GRADED, when there are none)."""
        order = list(GradingStatus)
        return max(statuses, key=order.index, default=default or GradingStatus.GRADED)


_AFTER_EXECUTION = {
    ExecutionStatus.OK: GradingStatus.GRADED,
    ExecutionStatus.CELL_TIMEOUT: GradingStatus.TIMED_OUT,
    ExecutionStatus.NOTEBOOK_TIMEOUT: GradingStatus.TIMED_OUT,
    ExecutionStatus.OUT_OF_MEMORY: GradingStatus.KILLED,
    ExecutionStatus.KERNEL_CRASHED: GradingStatus.CRASHED,
    ExecutionStatus.KERNEL_EXITED: GradingStatus.CRASHED,
    ExecutionStatus.KERNEL_DIED: GradingStatus.CRASHED,
    ExecutionStatus.SANDBOX_ERROR: GradingStatus.NOT_GRADED,
}

# errors a cell can end with that are the sandbox's limits, not the student's mistakes: (words, status)
NOTABLE_ERRORS: dict[str, tuple[str, GradingStatus]] = {
    CellError.CELL_TIMEOUT.value: ("ran out of time", GradingStatus.TIMED_OUT),
    MemoryError.__name__: ("ran out of memory", GradingStatus.LIMIT_HIT),
    BlockingIOError.__name__: ("hit a resource limit", GradingStatus.LIMIT_HIT),
}


@dataclass(frozen=True)
class NotebookOutcome:
    """What happened to one notebook of a submission, with the notes the report says about it."""

    notebook: str
    status: GradingStatus
    notes: tuple[str, ...] = ()

    @classmethod
    def executed(
        cls, notebook: str, nb: nbformat.NotebookNode, outcome: ExecutionOutcome, notes: Iterable[str] = ()
    ) -> NotebookOutcome:
        """A notebook executed and graded: how its execution ended, and each cell stopped at a limit."""
        status, said = GradingStatus.after(outcome.status), list(notes)
        if outcome.status is not ExecutionStatus.OK:
            said.append(
                f"{outcome.detail}; {outcome.cells_not_run} cells after it scored 0"
                if outcome.cells_not_run
                else outcome.detail
            )
        elif outcome.output_truncated:
            said.append(outcome.detail)
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id", "a cell")
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error" and out.get("ename") in NOTABLE_ERRORS:
                    words, limit = NOTABLE_ERRORS[out["ename"]]
                    said.append(f"{gid} {words} ({out['ename']})")
                    status = GradingStatus.worst([status, limit])
                    break
        return cls(notebook, status, tuple(said))

    @classmethod
    def unreadable(cls, notebook: str, why: str) -> NotebookOutcome:
        """A notebook that cannot be graded at all: every question scores 0."""
        return cls(notebook, GradingStatus.SCORED_ZERO, (f"{why}; scored 0",))

    @classmethod
    def not_graded(cls, notebook: str, why: str, notes: Iterable[str] = ()) -> NotebookOutcome:
        """A notebook whose grading failed; why is said inside "NOT GRADED (...)"."""
        return cls(notebook, GradingStatus.NOT_GRADED, (*notes, not_graded_note(why)))


def not_graded_note(why: str) -> str:
    """The report's words for grading that failed and is left to the next run."""
    return f"NOT GRADED ({why}); run again"


def error_words(error: BaseException, limit: int = 200) -> str:
    """An exception as the report says it: its type and the start of its message."""
    return f"{type(error).__name__}: {str(error)[:limit]}"


ALREADY_GRADED_NOTE = "already graded (autograded notebook newer than the submission); --force regrades"


@dataclass
class StudentOutcome:
    """What happened to one student: the status and notes of each notebook, and the student's own."""

    student: str
    notebooks: list[NotebookOutcome] = field(default_factory=list)  # in the assignment's order
    notes: list[str] = field(default_factory=list)  # about the submission as a whole (said first)
    own_status: GradingStatus | None = None  # decided for the whole submission (skipped, or could not be opened)
    score: str | None = None  # "12/19" from the gradebook; None: the student has no submission there
    seconds: float = 0.0

    @classmethod
    def already_graded(cls, student: str) -> StudentOutcome:
        return cls(student, notes=[ALREADY_GRADED_NOTE], own_status=GradingStatus.ALREADY_GRADED)

    @property
    def status(self) -> GradingStatus:
        statuses = [nb.status for nb in self.notebooks]
        if self.own_status is not None:
            statuses.append(self.own_status)
        return GradingStatus.worst(statuses)

    @property
    def all_notes(self) -> list[str]:
        return [*self.notes, *(note for nb in self.notebooks for note in nb.notes)]

    @property
    def line(self) -> str:
        """The student's line of the report, after the student's name."""
        return f"{self.score or '-'}  {'; '.join(self.all_notes) or 'graded normally'}"


def report_text(outcomes: Iterable[StudentOutcome], unsafe: bool = False) -> str:
    """autograde_report.txt: one line per student, sorted by name."""
    header = "UNSAFE: graded without the sandbox\n" if unsafe else ""
    lines = [f"{o.student}  {o.line}" for o in sorted(outcomes, key=lambda o: o.student)]
    return header + "\n".join(lines) + "\n"


class ExitStatus(enum.IntEnum):
    """The exit status of `python -m grading.coordinator.autograde_class` (and so of `make autograde`)."""

    COMPLETE = 0  # every student graded (or already graded, or scored 0 for an unreadable notebook)
    INCOMPLETE = 1  # some student is NOT GRADED: run again (also when the assignment or the cluster is missing)
    NO_SANDBOX = 3  # refused: bubblewrap cannot run here, and nobody asked to grade without it

    @classmethod
    def of(cls, outcomes: Iterable[StudentOutcome]) -> ExitStatus:
        incomplete = any(o.status is GradingStatus.NOT_GRADED for o in outcomes)
        return cls.INCOMPLETE if incomplete else cls.COMPLETE
