"""`make feedback`: nbgrader generate_feedback for the class, where a student whose page nbgrader cannot write never
stops the others, and the instructor is told who, why and what to do.

    python -m grading.reports.feedback_pages backprop [generate_feedback's options: --force, --student ID, ...]

nbgrader goes on past a student whose notebook it cannot convert (it removes that student's feedback folder, so that
no stale page is left) and exits 1 at the end. This command does the same conversion, then names each such student
with the step that failed, the error in words and what to do, and exits 0 when every failure was one student's and is
named so (1 when nbgrader stopped for a reason of its own, e.g. the gradebook, or a failure was not named).

ClearHiddenTestsOfTestCells, in c.GenerateFeedback.preprocessors (nbgrader_config.py), is nbgrader's ClearHiddenTests
for the instructor's test cells only, so that a student's text can never break the page: nbgrader's removes hidden
test regions from every cell and fails on a `### BEGIN HIDDEN TESTS` line without its END, or in a cell that is not a
grade cell, wherever it is, an answer cell included.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from nbformat import NotebookNode
from nbgrader import utils
from nbgrader.apps.baseapp import NbGrader
from nbgrader.apps.generatefeedbackapp import GenerateFeedbackApp
from nbgrader.converters import GenerateFeedback, NbGraderException
from nbgrader.nbgraderformat import SchemaTooNewError, SchemaTooOldError
from nbgrader.preprocessors import ClearHiddenTests
from sqlalchemy.exc import OperationalError


class ClearHiddenTestsOfTestCells(ClearHiddenTests):
    """ClearHiddenTests applied to the instructor's test cells only (grade cells that are not answers: their source
    is the instructor's, put back from the gradebook when the notebook was autograded); every other cell, a
    student's answer above all, is left as it is."""

    def preprocess_cell(
        self, cell: NotebookNode, resources: dict[str, Any], cell_index: int
    ) -> tuple[NotebookNode, dict[str, Any]]:
        if utils.is_grade(cell) and not utils.is_solution(cell):
            return super().preprocess_cell(cell, resources, cell_index)
        return cell, resources


# errors on which nbgrader stops the whole conversion (converters/base.py): never one student's
STOPS_NBGRADER = (OperationalError, SchemaTooOldError, SchemaTooNewError)


@dataclass(frozen=True)
class Failure:
    """A student whose feedback nbgrader could not write: where it failed, and the error."""

    student: str
    step: str  # a notebook's file name, or the step of nbgrader's that failed
    error: Exception

    def words(self, assignment: str) -> str:
        """The report's lines for this student: the error, its likely cause and what to do."""
        error = f"{type(self.error).__name__}: {str(self.error).strip()[:300]}"
        autograded = os.path.join("autograded", self.student, assignment)
        again = f"python -m grading.reports.feedback_pages {assignment} --student {self.student} --force"
        text = str(self.error).lower()
        if "hidden tests" in text or "hidden test region" in text:
            cause = (
                "a test cell's `### BEGIN HIDDEN TESTS` / `### END HIDDEN TESTS` lines do not pair up, so nbgrader "
                "cannot tell which lines to leave out of the page"
            )
            action = (
                f"pair them in that test cell of source/{assignment}/ and grade again (make release, make autograde "
                "FORCE=1)"
            )
        elif "json" in type(self.error).__name__.lower() or "notebook" in text:
            cause = f"the graded notebook in {autograded}/ is not a readable notebook (damaged, or edited by hand?)"
            action = f"remove {autograded}/ and run make autograde: it grades that student again"
        else:
            cause = "nbgrader could not turn the graded notebook into a page (its traceback is above)"
            action = f"look at the notebook in {autograded}/ (the formgrader shows it), fix what the traceback names"
        return (
            f"  {self.student}: {self.step}: {error}\n    why: {cause}\n"
            f"    what to do: {action}; then make feedback, or for this student alone: {again}"
        )


class ReportingFeedback(GenerateFeedback):
    """nbgrader's GenerateFeedback converter (its configuration applies as is), which records which student each
    failure belongs to, and which students it finished."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failures: list[Failure] = []
        self.started: list[str] = []  # the students whose conversion began, in nbgrader's order
        self.ended: set[str] = set()  # those finished (written, or up to date and skipped)
        self._student = ""

    @contextmanager
    def _recorded(self, step: str) -> Iterator[None]:
        try:
            yield
        except STOPS_NBGRADER:
            raise
        except Exception as error:
            self.failures.append(Failure(self._student, step, error))
            raise

    def init_destination(self, assignment_id: str, student_id: str) -> bool:
        self._student = student_id
        self.started.append(student_id)
        with self._recorded("preparing its feedback folder"):
            wanted = bool(super().init_destination(assignment_id, student_id))
        if not wanted:
            self.ended.add(student_id)
        return wanted

    def init_assignment(self, assignment_id: str, student_id: str) -> None:
        with self._recorded("copying its files"):
            super().init_assignment(assignment_id, student_id)

    def convert_single_notebook(self, notebook_filename: str) -> None:
        with self._recorded(os.path.basename(notebook_filename)):
            super().convert_single_notebook(notebook_filename)

    def set_permissions(self, assignment_id: str, student_id: str) -> None:
        with self._recorded("setting its permissions"):
            super().set_permissions(assignment_id, student_id)

    def run_post_convert_hook(self) -> None:
        super().run_post_convert_hook()
        self.ended.add(self._student)

    def every_failure_named(self) -> bool:
        """After nbgrader failed: whether it went through every student, and each it did not finish has a recorded
        failure (not so when it found nothing to convert, or stopped)."""
        failed = {failure.student for failure in self.failures}
        went_through = len(self.started) == len(getattr(self, "assignments", {}))
        return bool(failed) and went_through and all(s in self.ended or s in failed for s in self.started)


class FeedbackApp(GenerateFeedbackApp):
    """`nbgrader generate_feedback` with ReportingFeedback, and the failures reported at the end."""

    name = "grading-feedback-pages"

    def start(self) -> None:
        NbGrader.start(self)  # GenerateFeedbackApp.start, with the converter below
        if len(self.extra_args) > 1:
            self.fail("Only one argument (the assignment id) may be specified")
        elif len(self.extra_args) == 1 and self.coursedir.assignment_id != "":
            self.fail("The assignment cannot both be specified in config and as an argument")
        elif len(self.extra_args) == 0 and self.coursedir.assignment_id == "":
            self.fail("An assignment id must be specified, either as an argument or with --assignment")
        elif len(self.extra_args) == 1:
            self.coursedir.assignment_id = self.extra_args[0]

        converter = ReportingFeedback(coursedir=self.coursedir, parent=self)
        try:
            converter.start()
        except NbGraderException:
            complete = converter.every_failure_named()
        else:
            complete = True
        print(report(converter.failures, self.coursedir.assignment_id, complete), end="", file=sys.stderr)
        sys.exit(0 if complete else 1)


def report(failures: list[Failure], assignment: str, complete: bool = True) -> str:
    """What the instructor reads after the conversion: each student without feedback, and what to do."""
    lines = []
    if failures:
        students = len({failure.student for failure in failures})
        lines.append(
            f"Feedback was not written for {students} student{'s' if students > 1 else ''} (nbgrader could not render "
            f"their page); every other student's feedback is in feedback/:"
        )
        lines += [failure.words(assignment) for failure in failures]
    if not complete:
        lines.append("nbgrader stopped before it finished the class (see its messages above): feedback is incomplete")
    return "".join(f"{line}\n" for line in lines)


if __name__ == "__main__":
    FeedbackApp.launch_instance()
