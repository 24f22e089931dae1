"""The tamper catalogue (grading/course_kit/tamper_catalogue.py) graded as one class, once by `make autograde`'s grader
and once by `nbgrader autograde`: tricks played on the kernel, IPython, builtins, torch and nbgrader's scoring win no
point, cost an honest answer nothing, put no hidden check text into any output or feedback page, and stop no class
run."""

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from conftest import BIN, copy_course, run
from grading.course_kit.submissions import ASSIGNMENT, ROOT, write_submission
from grading.course_kit.tamper_catalogue import (
    AUTOGRADED,
    BLANK,
    HIDDEN_TEXT,
    ON_SOLUTION,
    STATED,
    STATED_QUESTIONS,
    submissions,
)
from grading.reports.class_grades import class_scores, question_points

pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("bubblewrap"),  # skipped without bubblewrap, failed in CI (conftest.py)
]

GRADERS = {  # name -> (argv, working folder) that grades the class of a course
    "make autograde": lambda course: (
        [
            sys.executable,
            "-m",
            "grading.coordinator.autograde_class",
            ASSIGNMENT,
            "--course",
            str(course),
            "--force",
            "--workers",
            "2",
        ],
        ROOT,
    ),
    "nbgrader autograde": lambda course: (
        ["nbgrader", "autograde", ASSIGNMENT, "--force", "--log-level=ERROR"],
        course,
    ),
}
POINTS = question_points()
# what a tamper that tried to reach hidden code must show it did try (student -> text in its outputs)
TRIED = {
    "pre-run-cell-hook-prints-the-source-of-every-cell": "print_answer",
    "input-transformer-logs-lines-and-history-is-printed": "history:",
    "imports-the-grading-package-and-searches-the-disk": "grading.checks.backprop_checks failed: ModuleNotFoundError",
}


@dataclass
class Graded:
    grader: str
    course: Path
    students: list
    returncode: int
    output: str
    seconds: float
    scores: dict

    def autograded_path(self, student):
        return self.course / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"

    def was_graded(self, student):
        return self.autograded_path(student).is_file()

    def notebook(self, student):
        return nbformat.read(str(self.autograded_path(student)), as_version=4)

    def outputs(self, student):
        return json.dumps([cell.get("outputs", []) for cell in self.notebook(student).cells], ensure_ascii=False)

    def feedback(self, student):
        return (self.course / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()


@pytest.fixture(scope="module", params=sorted(GRADERS))
def graded(request, tmp_path_factory):
    """The whole tamper class graded once by one grader, in a course of its own, and its feedback generated."""
    grader = request.param
    course = copy_course(tmp_path_factory.mktemp("tamper"))
    with open(course / "nbgrader_config.py", "a") as config:
        config.write("\nc.Execute.timeout = 30\n")
    run(["nbgrader", "generate_assignment", ASSIGNMENT, "--force", "--log-level=ERROR"], cwd=course)
    notebooks = submissions()
    for student, nb in notebooks.items():
        write_submission(course, student, nb)
    args, cwd = GRADERS[grader](course)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONWARNINGS": "ignore"}
    started = time.monotonic()
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=3600)
    seconds = time.monotonic() - started
    print(f"\n{grader}: {len(notebooks)} submissions graded in {seconds:.0f} s (exit status {result.returncode})")
    feedback = subprocess.run(
        ["nbgrader", "generate_feedback", ASSIGNMENT, "--force", "--log-level=ERROR"],
        cwd=course,
        env={**env, "FEEDBACK_SHOWS_HIDDEN_TESTS": "0"},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert feedback.returncode == 0, feedback.stderr[-3000:]
    scores = class_scores(f"sqlite:///{course / 'gradebook.db'}")
    return Graded(
        grader,
        course,
        sorted(notebooks),
        result.returncode,
        result.stdout[-5000:] + result.stderr[-5000:],
        seconds,
        scores,
    )


def autograded(graded, student):
    return {q: graded.scores.get(student, {}).get(q) for q in AUTOGRADED}


@pytest.mark.parametrize("student", sorted(BLANK))
def test_tamper_on_the_blank_release_wins_no_point(graded, student):
    assert autograded(graded, student) == {q: 0 for q in AUTOGRADED}, graded.grader


@pytest.mark.parametrize("student", sorted(STATED))
def test_tamper_that_states_given_values_wins_nothing_beyond_them(graded, student):
    scores = autograded(graded, student)
    assert {q: scores[q] for q in AUTOGRADED if q not in STATED_QUESTIONS} == {
        q: 0 for q in AUTOGRADED if q not in STATED_QUESTIONS
    }, graded.grader


@pytest.mark.parametrize("student", sorted(ON_SOLUTION))
def test_tamper_on_a_real_answer_scores_what_its_untampered_twin_scores(graded, student):
    twin = ON_SOLUTION[student][1]
    assert None not in autograded(graded, twin).values()
    assert autograded(graded, student) == autograded(graded, twin), f"{graded.grader}: twin {twin}"


def test_no_hidden_check_text_reaches_an_output_or_a_feedback_page(graded):
    leaks = {}
    for student in graded.students:
        if not graded.was_graded(student):
            continue  # test_the_class_run_finishes_and_grades_every_student says so
        for where, text in (("outputs", graded.outputs(student)), ("feedback", graded.feedback(student))):
            found = [hidden for hidden in HIDDEN_TEXT if hidden in text]
            if found:
                leaks[f"{student} ({where})"] = found
    assert leaks == {}, graded.grader
    for student, evidence in TRIED.items():  # the tampers did try
        assert evidence in graded.outputs(student), f"{graded.grader}: {student} did not run as written"


def test_the_class_run_finishes_and_grades_every_student(graded):
    assert [student for student in graded.students if not graded.was_graded(student)] == [], graded.output
    assert [student for student in graded.students if None in autograded(graded, student).values()] == []
    if graded.grader == "make autograde":
        report = (graded.course / "autograde_report.txt").read_text()
        lines = dict(line.split("  ", 1) for line in report.splitlines() if "  " in line)
        assert sorted(lines) == graded.students
        assert [student for student, line in lines.items() if "NOT GRADED" in line] == []
    assert graded.returncode == 0, graded.output
    assert autograded(graded, "perfect") == {q: POINTS[q] for q in AUTOGRADED}, "the honest student lost points"
