"""What a question is: one declaration each, from which its test cell, its points and every total follow.

An assignment's questions are declared in grading/checks/<assignment>_questions.py as QUESTIONS, in notebook order.
`make release` writes each autograded question's test cell into the instructor notebook from its declaration
(grading/course_kit/question_cells.py); the judge, the catalogues and the tests read the declarations.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

from .answer_data import Student

Check = Callable[[Student], str]  # a check: returns the sentence shown when it passes, or raises Feedback

TEST_CELL = '''"""{title}: {states}"""
from {public_module} import check_here, {public}
check_here({public}, globals())
### BEGIN HIDDEN TESTS
# Graded by the judge, outside the student's kernel (grading/checks/judge.py); here it checks this notebook itself.
from {hidden_module} import {hidden}
from grading.checks.judge import NotebookStudent
print("\\u2713", {hidden}(NotebookStudent(globals())))
### END HIDDEN TESTS'''
# the line of a test cell that runs its public check. Grading leaves it out: the judge's check supersedes it, and
# it would run the student's code again in the kernel for a sentence the judge writes anyway (its own, after it).
PUBLIC_CHECK_CALL = re.compile(r"^check_here\([A-Za-z_]\w*, globals\(\)\)[ \t]*(?:\r?\n|\Z)", re.M)


@dataclass(frozen=True)
class Question:
    """One question: its cells' grade ids, its points, what its test cell states, and its checks."""

    key: str  # "q1a": its answer cell's grade id is "q1a_answer"
    title: str  # "Question 1a", as the notebook names it
    points: int
    states: str = ""  # what its test cell checks, in one sentence (the cell's docstring)
    test: str = ""  # the end of its test cell's grade id ("graph": "q1a_test_graph"); "" for a manual question
    public: Check | None = None  # run in the student's kernel by the test cell (shipped with the release)
    hidden: Check | None = None  # run by the judge, outside the kernel, at points the notebook never shows
    defines: tuple[str, ...] = ()  # the names its answer cell defines
    builds_on: tuple[str, ...] = ()  # questions whose answers it uses: a wrong one there may cost this one too

    @property
    def autograded(self) -> bool:
        return self.hidden is not None

    @property
    def answer_id(self) -> str:
        return f"{self.key}_answer"

    @property
    def grade_id(self) -> str:
        """The grade id of the cell that holds its points: the test cell, or a manual question's answer cell."""
        return f"{self.key}_test_{self.test}" if self.autograded else self.answer_id

    def __post_init__(self) -> None:
        if (self.public is None) != (self.hidden is None) or (self.hidden is not None) != bool(self.test):
            raise ValueError(f"{self.key}: an autograded question has a test, a public and a hidden check")
        if self.autograded and not self.states:
            raise ValueError(f"{self.key}: say what its test cell checks (states=...)")

    def test_cell_source(self) -> str:
        """The source of its test cell: the public check where the student sees it, the judge's check hidden."""
        assert self.public is not None and self.hidden is not None
        return TEST_CELL.format(
            title=self.title,
            states=self.states,
            public_module=self.public.__module__.rsplit(".", 1)[-1],  # shipped beside the notebook under this name
            public=self.public.__name__,
            hidden_module=self.hidden.__module__,
            hidden=self.hidden.__name__,
        )


def checks_of(questions: tuple[Question, ...]) -> dict[str, Check]:
    """grade id -> the judge's check, for every autograded question."""
    return {q.grade_id: q.hidden for q in questions if q.hidden is not None}


def public_checks_of(questions: tuple[Question, ...]) -> dict[str, Check]:
    """grade id -> the public check its test cell runs."""
    return {q.grade_id: q.public for q in questions if q.public is not None}
