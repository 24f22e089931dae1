"""`make demo`, the main job, runs end to end in a copy of the course."""
import shutil
import subprocess

import pytest

from conftest import run
from grading.submissions import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A copy of the committed course (sharing this virtual environment) after `make demo`."""
    copy = tmp_path_factory.mktemp("demo")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in tracked.splitlines():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, copy / name, follow_symlinks=False)  # keeps times and links, so make finds the release up to date
    (copy / ".venv").symlink_to(ROOT / ".venv")
    return copy, run(["make", "demo"], cwd=copy)


def test_demo_prints_the_class_table_with_every_demo_student(demo):
    _, result = demo
    lines = result.stdout.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("student ")):]
    totals = {line.split()[0]: line.split()[-1] for line in table[1:] if "/" in line}
    for student in ("sum-instead-of-product", "reverse-mode-in-forward-question", "graph-not-kept", "seed-learning-rate"):
        assert totals[student] == "15/19", student
    assert totals["perfect"] == "17/19" and totals["blank"] == "0/19"  # question 6 waits for a manual grade


def test_demo_writes_feedback_grades_and_the_report(demo):
    course, _ = demo
    assert (course / "feedback" / "perfect" / "backprop" / "backprop.html").exists()
    assert "perfect" in (course / "grades.csv").read_text()
    assert (course / "build" / "report" / "report.html").exists()
