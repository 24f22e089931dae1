"""Every gradebook access of `make autograde`'s coordinator, the only process that writes gradebook.db while it runs.

Each call opens and closes its own session, so that nothing stays open while notebooks execute, and a grader killed
between two calls leaves a sound gradebook.
"""

from __future__ import annotations

from typing import Any

from nbgrader.api import Gradebook, MissingEntry


class MissingAssignment(SystemExit):
    """The assignment is not in the gradebook (it was never released); says what to do."""


class ClassGradebook:
    """One assignment's part of an nbgrader gradebook."""

    def __init__(self, db_url: str, course_id: str, assignment: str) -> None:
        self.db_url, self.course_id, self.assignment = db_url, course_id, assignment

    def _open(self) -> Gradebook:
        return Gradebook(self.db_url, self.course_id)

    def notebook_names(self) -> list[str]:
        """The assignment's notebooks, in the gradebook's order; MissingAssignment if it was never released."""
        with self._open() as gb:
            try:
                return [nb.name for nb in gb.find_assignment(self.assignment).notebooks]
            except MissingEntry:
                raise MissingAssignment(
                    f"No assignment '{self.assignment}' in the gradebook: run `make release` first."
                ) from None

    def has_every_grade(self, student: str) -> bool:
        """Whether each grade of the student's submission has a score or waits for a manual grade."""
        with self._open() as gb:
            try:
                return all(
                    g.auto_score is not None or g.needs_manual_grade
                    for nb in gb.find_submission(self.assignment, student).notebooks
                    for g in nb.grades
                )
            except MissingEntry:
                return False

    def open_submission(self, student: str, timestamp: Any = None) -> None:
        """The student, and their submission (with its timestamp if it has one), made or updated."""
        with self._open() as gb:
            gb.update_or_create_student(student)
            if timestamp:
                gb.update_or_create_submission(self.assignment, student, timestamp=timestamp)
            else:
                gb.update_or_create_submission(self.assignment, student)

    def zero(self, student: str, notebook: str) -> None:
        """Every grade of one notebook of the student's submission set to 0 (the notebook cannot be graded)."""
        with self._open() as gb:
            for grade in gb.find_submission_notebook(notebook, self.assignment, student).grades:
                grade.auto_score = 0
                grade.needs_manual_grade = False
            gb.db.commit()

    def score(self, student: str) -> str | None:
        """The student's "score/max score", or None when the gradebook has no submission of theirs."""
        with self._open() as gb:
            try:
                submission = gb.find_submission(self.assignment, student)
            except MissingEntry:
                return None
            return f"{submission.score:g}/{submission.max_score:g}"
