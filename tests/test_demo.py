"""`make demo`, the main job, runs end to end in a copy of the course."""

import csv
import os
import shutil
import subprocess

import pytest

from conftest import run
from grading.checks.backprop_questions import AUTOGRADED, POINTS, TOTAL_POINTS
from grading.course_kit.demo_class import MISTAKES
from grading.course_kit.submissions import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A copy of the course as checked out (committed files and new ones git does not ignore) after `make demo`, using
    this virtual environment without reinstalling anything into it."""
    copy = tmp_path_factory.mktemp("demo")
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in files.splitlines():
        if (ROOT / name).exists() or (ROOT / name).is_symlink():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            # keeps times and links, so make finds the release up to date
            shutil.copy2(ROOT / name, copy / name, follow_symlinks=False)
    (copy / ".venv").symlink_to(ROOT / ".venv")
    # make must not reinstall into the shared environment from the copy (an editable install made there would point
    # the environment's `grading` at the copy, deleted later): what the installation depends on dates from before it
    installed = (ROOT / ".venv" / ".installed").stat().st_mtime
    for name in ("requirements.txt", "constraints.txt", "pyproject.toml"):
        if (copy / name).exists():
            os.utime(copy / name, (installed - 1, installed - 1))
    return copy, run(["make", "demo"], cwd=copy)


def test_demo_prints_the_class_table_with_every_demo_student(demo):
    _, result = demo
    lines = result.stdout.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("student ")) :]
    totals = {line.split()[0]: line.split()[-1] for line in table[1:] if "/" in line}
    autograded = sum(POINTS[q] for q in AUTOGRADED)  # the written question waits for a manual grade
    for student, answers in MISTAKES.items():
        (question,) = {answer_id.removesuffix("_answer") for answer_id in answers}
        assert totals[student] == f"{autograded - POINTS[question]}/{TOTAL_POINTS}", student
    assert totals["perfect"] == f"{autograded}/{TOTAL_POINTS}" and totals["blank"] == f"0/{TOTAL_POINTS}"
    absent = next(line for line in table if line.startswith("absent "))  # on the roster, submitted nothing
    assert "(no submission)" in absent and totals["absent"] == f"0/{TOTAL_POINTS}"


def test_demo_writes_feedback_grades_and_the_report(demo):
    course, _ = demo
    assert (course / "feedback" / "perfect" / "backprop" / "backprop.html").exists()
    assert "perfect" in (course / "grades.csv").read_text()
    assert (course / "build" / "report" / "report.html").exists()


def test_demo_grades_and_report_list_the_student_who_submitted_nothing(demo):
    course, _ = demo
    with open(course / "grades.csv", newline="") as f:
        grades = {row["student_id"]: row for row in csv.DictReader(f)}
    assert len(grades) == 7 and grades["absent"]["score"] == "0.0"
    with open(course / "build" / "report" / "grades.csv", newline="") as f:
        report = {row["student"]: row for row in csv.DictReader(f)}
    assert (report["absent"]["total"], report["absent"]["note"]) == ("0", "no submission")
    assert "No submission (1): absent." in (course / "build" / "report" / "report.html").read_text(encoding="utf-8")
    for lms, key in (("canvas", "SIS Login ID"), ("moodle", "Email address")):
        with open(course / "build" / "lms" / f"{lms}_grades.csv", newline="") as f:
            rows = {row[key]: row for row in csv.DictReader(f) if row[key]}
        assert all(row["backprop"] for row in rows.values()), lms  # never a blank grade cell: it would erase one
        assert rows["gus.absent@example.edu"]["backprop"] == "0", lms
        assert "ada.perfect@example.edu" not in rows, lms  # question 6 waits for a manual grade: left to the LMS
