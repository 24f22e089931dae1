"""The real pipeline (nbgrader autograde) on synthetic submissions: full marks, zero, and one lost question."""
import pytest

from grading.class_grades import question_points
from grading.submissions import build_submission, solution_answers

from submission_catalogue import AUTOGRADED, BUILDS_ON, CORRECT, WRONG

pytestmark = pytest.mark.slow

POINTS = question_points()


@pytest.fixture(scope="module")
def graded(autograde):
    solution = solution_answers()
    submissions = {"perfect": build_submission(solution), "blank-release": build_submission({})}
    for name, answers in CORRECT.items():
        submissions[name] = build_submission({**solution, **answers})
    for name, (_, answers) in WRONG.items():
        submissions[name] = build_submission({**solution, **answers})
    return autograde(submissions)


def test_perfect_submission_gets_every_autograded_point(graded):
    assert {q: graded["perfect"][q] for q in AUTOGRADED} == {q: POINTS[q] for q in AUTOGRADED}


def test_blank_release_scores_zero(graded):
    assert all(graded["blank-release"][q] == 0 for q in POINTS)


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_correct_answer_written_differently_gets_full_marks(graded, name):
    assert {q: graded[name][q] for q in AUTOGRADED} == {q: POINTS[q] for q in AUTOGRADED}


@pytest.mark.parametrize("name", sorted(WRONG))
def test_wrong_answer_loses_its_question_and_only_that(graded, name):
    question, _ = WRONG[name]
    assert graded[name][question] == 0
    for other in AUTOGRADED:
        if other != question and question not in BUILDS_ON.get(other, set()):
            assert graded[name][other] == POINTS[other], f"collateral: {other} lost points"


def test_every_autograded_question_has_two_wrong_answers():
    for question in AUTOGRADED:
        assert sum(1 for q, _ in WRONG.values() if q == question) >= 2, question
