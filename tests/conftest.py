"""Fixtures: a temporary copy of the course, and grading of synthetic submissions in it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grading.class_grades import class_scores
from grading.submissions import ASSIGNMENT, ROOT, write_submission

BIN = Path(sys.executable).parent


def run(args, cwd, timeout=900):
    """Run a course command with the virtual environment first on PATH; fail the test with its output."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, args))} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def copy_course(dest):
    """A course directory at dest holding this course's configuration, source, images and release."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "nbgrader_config.py", dest)
    for folder in ("images", "release"):
        shutil.copytree(ROOT / folder, dest / folder)
    shutil.copytree(ROOT / "source", dest / "source")  # links followed: the shipped modules live in grading/
    return dest


@pytest.fixture(scope="session")
def course(tmp_path_factory):
    """A temporary course whose release was generated afresh from source/ (and so has a gradebook)."""
    root = copy_course(tmp_path_factory.mktemp("course"))
    shutil.rmtree(root / "release")
    run(["nbgrader", "generate_assignment", ASSIGNMENT, "--force", "--log-level=ERROR"], cwd=root)
    return root


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
            run([sys.executable, "-m", "grading.autograde_class", ASSIGNMENT, "--course", course, "--force"], cwd=ROOT)
        scores = class_scores(f"sqlite:///{course / 'gradebook.db'}")
        return {student: scores[student] for student in submissions}

    return grade
