"""Feedback a student gets (nbgrader generate_feedback): the one-sentence reason a check failed, and no hidden tests
unless the instructor asks for them with FEEDBACK_SHOWS_HIDDEN_TESTS=1; one HTML file that needs no network."""

import re

import nbformat
import pytest

from conftest import run
from grading.checks.backprop_questions import QUESTIONS
from grading.checks.questions import PUBLIC_CHECK_CALL
from grading.course_kit.submission_catalogue import WRONG
from grading.course_kit.submissions import ASSIGNMENT, build_submission, solution_answers
from grading.reports import offline_pages
from support.html_page import PLACEHOLDER, Page, external

pytestmark = pytest.mark.slow

STUDENT = "feedback-q1a-sum-instead-of-product"
MESSAGE = "F does not equal c multiplied by s"  # what the failing hidden check says
HIDDEN_CODE = ("BEGIN HIDDEN TESTS", "backprop_checks", "NotebookStudent")  # what the hidden blocks say


@pytest.fixture(scope="module")
def feedback_html(course, autograde):
    """shows hidden tests (False, True) -> feedback HTML of one graded submission whose Question 1a is wrong."""
    _, answers = WRONG["q1a-sum-instead-of-product"]
    scores = autograde({STUDENT: build_submission({**solution_answers(), **answers})})
    assert scores[STUDENT]["q1a"] == 0
    html = {}
    for shows in (False, True):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("FEEDBACK_SHOWS_HIDDEN_TESTS", "1" if shows else "0")
            run(
                ["nbgrader", "generate_feedback", ASSIGNMENT, "--student", STUDENT, "--force", "--log-level=ERROR"],
                cwd=course,
            )
        html[shows] = (course / "feedback" / STUDENT / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    return html


def error_outputs(html):
    """The text of every error output in a feedback page."""
    return [text.strip() for text in re.findall(r'output_error">\s*<pre>(.*?)</pre>', html, re.S)]


def test_feedback_gives_the_failing_check_one_sentence_without_traceback(feedback_html):
    errors = error_outputs(feedback_html[False])
    assert any(MESSAGE in error for error in errors), errors
    for error in errors:
        assert error.startswith("\u2717 ") and "\n" not in error, error


def test_feedback_leaves_hidden_tests_out(feedback_html):
    html = feedback_html[False]
    assert "check_here" in html  # the test cell's public part is shown
    assert [code for code in HIDDEN_CODE if code in html] == []


def test_each_test_cell_shows_the_judges_verdict_alone_under_the_source_the_student_saw(course, feedback_html):
    """Grading leaves a test cell's public check out (the judge's check of the same question supersedes it): the
    graded cell keeps its source, public check included, and its one output is the judge's verdict."""
    nb = nbformat.read(course / "autograded" / STUDENT / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    cells = {cell.metadata.get("nbgrader", {}).get("grade_id"): cell for cell in nb.cells}
    for question in (q for q in QUESTIONS if q.autograded):
        cell = cells[question.grade_id]
        assert PUBLIC_CHECK_CALL.search(cell.source) and "BEGIN HIDDEN TESTS" in cell.source
        verdicts = [out.get("text") or out.get("evalue") for out in cell.outputs]
        assert len(verdicts) == 1, (question.key, verdicts)
        assert (MESSAGE in verdicts[0]) == (question.key == "q1a"), (question.key, verdicts)


def test_feedback_shows_hidden_tests_when_the_instructor_asks(feedback_html):
    html = feedback_html[True]
    assert MESSAGE in html
    assert [code for code in HIDDEN_CODE if code not in html] == []


def test_feedback_is_one_file_with_mathjax_inlined_and_nothing_from_the_network(feedback_html):
    """A student opens the page wherever they saved it, offline: MathJax and the figures are inside it."""
    html = feedback_html[False]
    page = Page(html)
    assert [ref for ref in page.references() if external(ref[2])] == []
    assert [ref for ref in page.references() if not ref[2].startswith(("#", "data:"))] == []  # no file beside it
    assert [attrs for tag, attrs in page.elements if tag == "script" and attrs.get("src")] == []
    assert offline_pages.inline_mathjax(offline_pages.MATHJAX_COMPONENT) in html  # the installed package, whole
    assert not re.search(r"url\(\s*['\"]?(?:https?:)?//", html)  # nor in its style sheets


def test_feedback_says_that_the_plots_the_grader_does_not_draw_are_drawn_in_the_notebook(feedback_html):
    html = feedback_html[False]
    for what in ("The loss curve", "The path of the weights"):
        assert f"{what} is drawn when you run this cell in your notebook; the grader does not draw it." in html


def test_every_figure_of_the_feedback_has_alt_text(feedback_html):
    images = Page(feedback_html[False]).images()
    assert len(images) >= 5  # the Question 1 figure and the two pictures of each graph of F (plots: below)
    assert [img["src"][:30] for img in images if img.get("alt", PLACEHOLDER) == PLACEHOLDER] == []
