"""The real pipeline on the submission catalogue: correct answers keep every point, wrong ones lose their question."""

import pytest

from grading.course_kit.submission_catalogue import AUTOGRADED, CORRECT, WRONG, verdicts
from grading.course_kit.submissions import build_submission, solution_answers
from grading.reports.class_grades import question_points

pytestmark = pytest.mark.slow

POINTS = question_points()


def catalogue_submissions():
    """student id -> notebook: the solution, the blank release, and every catalogue entry on top of the solution."""
    solution = solution_answers()
    submissions = {"perfect": build_submission(solution), "blank-release": build_submission({})}
    for name, answers in CORRECT.items():
        submissions[name] = build_submission({**solution, **answers})
    for name, (_, answers) in WRONG.items():
        submissions[name] = build_submission({**solution, **answers})
    return submissions


@pytest.fixture(scope="module")
def graded(autograde):
    return autograde(catalogue_submissions())


@pytest.fixture(scope="module")
def verdict(graded):
    return {v.name: v for v in verdicts(graded, POINTS)}


def test_perfect_submission_gets_every_autograded_point(graded):
    assert {q: graded["perfect"][q] for q in AUTOGRADED} == {q: POINTS[q] for q in AUTOGRADED}


def test_blank_release_scores_zero(graded):
    assert all(graded["blank-release"][q] == 0 for q in POINTS)


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_correct_answer_written_differently_gets_full_marks(verdict, name):
    assert verdict[name].accepted, verdict[name].describe()


@pytest.mark.parametrize("name", sorted(WRONG))
def test_wrong_answer_loses_its_question(verdict, name):
    assert verdict[name].caught, verdict[name].describe()


@pytest.mark.parametrize("name", sorted(WRONG))
def test_wrong_answer_costs_no_question_that_does_not_build_on_it(verdict, name):
    assert not verdict[name].collateral, verdict[name].describe()


def test_catalogue_covers_every_autograded_question():
    assert len(CORRECT) >= 12 and len(WRONG) >= 40
    for question in AUTOGRADED:
        assert sum(1 for q, _ in WRONG.values() if q == question) >= 4, question
