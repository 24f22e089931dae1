"""Feedback for a class in which nbgrader cannot render some student's page: the others' pages are written, that
student is reported with the reason and what to do, and `make feedback` (grading/reports/feedback_pages.py) finishes.
A student's own text cannot break the page: a `### BEGIN HIDDEN TESTS` line in an answer cell is their text, shown as
it is; only the instructor's test cells lose their hidden tests.

A tiny assignment (whose test cell has hidden tests) is graded in-process with tests/test_coordinator.py's fake
executor, then nbgrader writes the feedback as `make feedback` runs it, in a subprocess."""

import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.apps import NbGraderAPI

from grading.coordinator.autograde_class import ClassGrader
from grading.coordinator.course_layout import CourseAssignment, load_config
from grading.course_kit.course_copy import course_command
from grading.course_kit.submissions import ROOT
from grading.reports.feedback_pages import ClearHiddenTestsOfTestCells
from test_coordinator import FakeExecutor

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # nbgrader's gradebook, harmless

ASSIGNMENT = "tiny"
SECRET = "secret check"  # the hidden test says so: never in a page
PUBLIC = "public check"  # the rest of the test cell says so: in every page
MARKER = "### BEGIN HIDDEN TESTS"


def _cell(source, grade_id, cell_type="code", **flags):
    meta = {"grade_id": grade_id, "grade": False, "solution": False, "task": False, "locked": False, **flags}
    new = nbformat.v4.new_code_cell if cell_type == "code" else nbformat.v4.new_markdown_cell
    return new(source, metadata={"nbgrader": {**meta, "schema_version": 3}})


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A course with the course's configuration and a tiny assignment, released (its gradebook made by nbgrader)."""
    root = tmp_path_factory.mktemp("feedback-course")
    shutil.copy(ROOT / "nbgrader_config.py", root)
    source = root / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    nb = nbformat.v4.new_notebook(
        cells=[
            _cell(
                "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
                "q1_answer",
                solution=True,
            ),
            _cell(
                f"assert double(2) == 4  # {PUBLIC}\n"
                f"### BEGIN HIDDEN TESTS\nassert double(21) == 42  # {SECRET}\n### END HIDDEN TESTS",
                "q1_test",
                grade=True,
                locked=True,
                points=2,
            ),
            _cell("YOUR ANSWER HERE", "q2_answer", "markdown", solution=True, grade=True, points=1),
        ]
    )
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(source / f"{ASSIGNMENT}.ipynb"))
    result = NbGraderAPI(config=load_config(root)).generate_assignment(ASSIGNMENT)
    assert result["success"], result
    return root


@pytest.fixture
def graded(released, tmp_path):
    """A fresh copy of the course where `graded(**{student: (code answer, markdown answer)})` grades that class."""
    course = Path(shutil.copytree(released, tmp_path / "course"))

    def grade(**answers):
        release = course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        for student, (code, text) in answers.items():
            nb = nbformat.read(str(release), as_version=4)
            nb.cells[0].source, nb.cells[2].source = f"# fake: right\n{code}", text
            path = course / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, str(path))
        ClassGrader(CourseAssignment.load(course, ASSIGNMENT), FakeExecutor()).run()
        return course

    return grade


HONEST = ("def double(x):\n    return 2 * x", "Because the chain rule says so.")
HOSTILE = (f"def double(x):\n    {MARKER}\n    return 2 * x", f"My notes:\n\n{MARKER}\n\nno end")


def page(course, student):
    path = course / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html"
    return path.read_text() if path.exists() else None


def feedback(course, *args, module=True):
    """`make feedback` in course (module=False: nbgrader's own command); the finished process."""
    command = [sys.executable, "-m", "grading.reports.feedback_pages"] if module else ["nbgrader", "generate_feedback"]
    return course_command([*command, ASSIGNMENT, "--force", "--log-level=WARN", *args], course, timeout=1200)


def test_a_hidden_tests_marker_in_an_answer_is_the_students_text(graded):
    """nbgrader's own generate_feedback, with the course's configuration: both pages written, the hidden test left out
    of both, and the hostile student's marker lines shown as they wrote them."""
    course = graded(honest=HONEST, hostile=HOSTILE)
    done = feedback(course, module=False)
    assert done.returncode == 0, done.stderr
    honest, hostile = page(course, "honest"), page(course, "hostile")
    assert honest and hostile and "Because the chain rule says so." in honest
    assert "My notes:" in hostile and hostile.count("BEGIN HIDDEN TESTS") == 2  # the student's two lines
    assert PUBLIC in honest and PUBLIC in hostile
    assert SECRET not in honest + hostile and "END HIDDEN TESTS" not in honest + hostile


def test_hidden_tests_are_taken_out_of_test_cells_only():
    test = _cell(
        f"assert x\n### BEGIN HIDDEN TESTS\nassert y  # {SECRET}\n### END HIDDEN TESTS", "t", grade=True, points=1
    )
    answer = _cell(f"x = 1\n{MARKER}", "a", solution=True)
    graded_answer = _cell(f"{MARKER}\nsecret\n### END HIDDEN TESTS", "m", "markdown", solution=True, grade=True)
    plain = nbformat.v4.new_markdown_cell(f"{MARKER}\n### BEGIN HIDDEN TESTS")
    nb = nbformat.v4.new_notebook(cells=[test, answer, graded_answer, plain])
    nb.metadata.celltoolbar = "Create Assignment"
    sources = [cell.source for cell in nb.cells]
    nb, _ = ClearHiddenTestsOfTestCells().preprocess(nb, {})
    assert [cell.source for cell in nb.cells] == ["assert x", *sources[1:]]
    assert "celltoolbar" not in nb.metadata


def test_a_student_nbgrader_cannot_render_is_reported_and_the_others_get_their_feedback(graded):
    course = graded(a_first=HONEST, b_damaged=HONEST, c_hostile=HOSTILE, d_last=HONEST)
    (course / "autograded" / "b_damaged" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").write_text('{"cells": [')
    shutil.copy(ROOT / "Makefile", course)
    done = course_command(["make", "--no-print-directory", "feedback", f"ASSIGNMENT={ASSIGNMENT}", "MATHJAX="], course)
    assert done.returncode == 0, done.stderr  # every failure is a student's, each reported
    assert [s for s in ("a_first", "b_damaged", "c_hostile", "d_last") if page(course, s)] == [
        "a_first",
        "c_hostile",
        "d_last",
    ]
    report = done.stderr[done.stderr.index("Feedback was not written for 1 student") :]
    assert "b_damaged: tiny.ipynb: NotJSONError" in report
    assert "not a readable notebook" in report and "make autograde" in report and "--student b_damaged" in report
    assert "a_first" not in report and "c_hostile" not in report

    again = feedback(course, "--student", "a_first")  # a class with no failure: nothing reported
    assert again.returncode == 0 and "Feedback was not written" not in again.stderr and "ERROR" not in again.stderr


def test_when_nbgrader_itself_stops_the_feedback_is_incomplete(graded):
    """The gradebook cannot be opened: nbgrader stops at the first student; that is no student's failure (exit 1).
    Nor is finding no graded notebook at all."""
    course = graded(a_first=HONEST, b_second=HONEST)
    nobody = feedback(course, "--student", "nobody")
    assert nobody.returncode == 1 and "No notebooks were matched" in nobody.stderr
    (course / "gradebook.db").unlink()
    (course / "gradebook.db").mkdir()
    done = feedback(course)
    assert done.returncode == 1
    assert "nbgrader stopped before it finished the class" in done.stderr
    assert not page(course, "a_first") and not page(course, "b_second")
