"""Fixtures: a temporary copy of the course, and grading of synthetic submissions in it."""

import shutil
import sys

import pytest

from grading.course_kit.course_copy import BIN, copy_course, course_command  # noqa: F401 (BIN, copy_course: for tests)
from grading.course_kit.submissions import ASSIGNMENT, ROOT, write_submission
from grading.reports.class_grades import class_scores


def run(args, cwd, timeout=900):
    """Run a course command with the virtual environment first on PATH; fail the test with its output."""
    result = course_command(args, cwd, timeout)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, args))} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


@pytest.fixture(scope="session")
def course(tmp_path_factory):
    """A temporary course whose release was generated afresh from source/ (and so has a gradebook)."""
    return copy_course(tmp_path_factory.mktemp("course"), fresh_release=True)


@pytest.fixture(scope="session")
def autograde(course):
    """Grade {student: notebook} in the temporary course; returns {student: {question: score}}."""

    def grade(submissions, stock=False):
        """stock=True grades with plain `nbgrader autograde` (no sandbox) instead of the course's grader."""
        shutil.rmtree(course / "submitted", ignore_errors=True)
        for student, nb in submissions.items():
            write_submission(course, student, nb)
        if stock:
            run(["nbgrader", "autograde", ASSIGNMENT, "--force", "--log-level=ERROR"], cwd=course)
        else:
            run(
                [
                    sys.executable,
                    "-m",
                    "grading.coordinator.autograde_class",
                    ASSIGNMENT,
                    "--course",
                    course,
                    "--force",
                ],
                cwd=ROOT,
            )
        scores = class_scores(f"sqlite:///{course / 'gradebook.db'}")
        return {student: scores[student] for student in submissions}

    return grade
