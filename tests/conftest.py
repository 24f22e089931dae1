"""Fixtures: a temporary copy of the course, and grading of synthetic submissions in it."""

import os
import shutil
import sys

import pytest

from grading.course_kit.course_copy import BIN, copy_course, course_command  # noqa: F401 (BIN, copy_course: for tests)
from grading.course_kit.submissions import ASSIGNMENT, ROOT, write_submission
from grading.engine.sandbox import Limits, allocator_library, bwrap_problem
from grading.reports.class_grades import class_scores


def run(args, cwd, timeout=1800):
    """Run a course command with the virtual environment first on PATH; fail the test with its output."""
    result = course_command(args, cwd, timeout)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, args))} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def missing_here(message, ci, what):
    """What a test does where something it needs is missing (`message` says what): in CI (`ci`, the environment
    variable CI, set and not "0" or "false") it fails, so that a CI without it does not pass; elsewhere it is
    skipped. `what`: the tests that need it."""
    if ci and ci.strip().lower() not in ("0", "false"):
        pytest.fail(f"{message} (CI={ci}: {what} must run in CI)", pytrace=False)
    pytest.skip(message)


def without_bubblewrap(problem, ci):
    """What a test that needs the sandbox does where bubblewrap cannot run (`problem` says why)."""
    missing_here(f"bubblewrap cannot run here: {problem}", ci, "the tests that need the sandbox")


@pytest.fixture(scope="session")
def bubblewrap():
    """For the tests that run the sandbox (`pytestmark = pytest.mark.usefixtures("bubblewrap")`): where bubblewrap
    cannot run they are skipped, saying why; in CI (the environment variable CI set, as .ci/run sets it) they fail."""
    problem = bwrap_problem(Limits())
    if problem:
        without_bubblewrap(problem, os.environ.get("CI"))


@pytest.fixture(scope="session")
def jemalloc():
    """For the tests of the kernels' malloc (c.Sandbox.allocator, Debian's libjemalloc2): skipped where it cannot be
    preloaded, failed in CI."""
    if allocator_library(Limits().allocator) is None:
        message = f"{Limits().allocator} cannot be preloaded here (Debian's libjemalloc2; make setup installs it)"
        missing_here(message, os.environ.get("CI"), "the tests of the kernels' malloc")


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


def pytest_collection_modifyitems(items):
    """Slow tests first, the hub's first of all. `make test` runs the test modules in two processes (pytest-xdist,
    --dist loadscope: each module whole in one process, in this order): the hub's tests, which mostly wait on servers
    and a browser, then run beside the tests that keep the cores busy, and the quick modules fill in at the end."""
    items.sort(key=lambda item: (item.get_closest_marker("hub") is None, item.get_closest_marker("slow") is None))
