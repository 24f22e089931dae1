"""Every gradebook access of `make autograde`'s coordinator, the only process that writes gradebook.db while it runs.

Each call opens and closes its own session, so that nothing stays open while notebooks execute, and a grader killed
between two calls leaves a sound gradebook.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import nbgrader.api
from nbgrader.api import Gradebook, MissingEntry


@contextmanager
def one_engine_per_database() -> Iterator[None]:
    """Within it, every nbgrader Gradebook of this process that opens the same database shares one SQLAlchemy engine.

    nbgrader's preprocessors open a Gradebook of their own for each notebook (about seven per notebook, with this
    module's), and each made a new engine, whose cache of compiled statements starts empty: each notebook compiled
    every statement again (about 1.3 of the coordinator's 5.5 core-seconds in a class of 32). nbgrader names
    SQLAlchemy's create_engine in its module nbgrader.api; that name is what this replaces, and puts back on leaving.
    Gradebook.close() still disposes the engine's connections (the engine and its compiled statements stay), so no
    connection is kept open between two gradebook accesses."""
    create_engine = nbgrader.api.create_engine
    engines: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}

    def shared_engine(url: Any, **options: Any) -> Any:
        key = (str(url), tuple(sorted(options.items())))
        try:
            hash(key)
        except TypeError:  # options that cannot be told apart: an engine of their own
            return create_engine(url, **options)
        if key not in engines:
            engines[key] = create_engine(url, **options)
        return engines[key]

    nbgrader.api.create_engine = shared_engine
    try:
        yield
    finally:
        nbgrader.api.create_engine = create_engine
        for engine in engines.values():
            engine.dispose()


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
