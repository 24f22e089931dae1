"""The roster, students.csv: what `nbgrader db student import` reads; the demo class and its student who submits
nothing."""

import csv
import re

from nbgrader.api import Student

from grading.course_kit.demo_class import demo_submissions
from grading.course_kit.submissions import ROOT
from grading.reports.lms import canvas_name


def roster_rows():
    with open(ROOT / "students.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_roster_columns_are_ones_nbgrader_imports():
    with open(ROOT / "students.csv", newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    assert header == ["id", "first_name", "last_name", "email"]
    assert set(header) <= set(Student.__table__.c.keys())  # `nbgrader db student import` skips other columns


def test_every_student_has_a_unique_id_email_and_canvas_name():
    rows = roster_rows()
    for key in ("id", "email"):
        values = [row[key] for row in rows]
        assert all(values) and len(set(values)) == len(values), key
    names = [canvas_name(f"{row['last_name']}, {row['first_name']}") for row in rows]
    assert len(set(names)) == len(names)  # so that the Canvas collector can tell every student by name


def test_roster_is_the_demo_class_and_one_student_who_submits_nothing():
    roster_ids = {row["id"] for row in roster_rows()}
    demo = set(demo_submissions())
    assert demo <= roster_ids
    assert roster_ids - demo == {"absent"}


def test_make_demo_imports_the_roster_before_grading():
    makefile = (ROOT / "Makefile").read_text()
    demo = re.search(r"^demo:.*?\n((?:\t.*\n)+)", makefile, re.M).group(1).splitlines()
    roster_step = next(i for i, line in enumerate(demo) if re.search(r"\broster\b", line))
    autograde_step = next(i for i, line in enumerate(demo) if "autograde" in line)
    assert roster_step < autograde_step
    assert re.search(r"^roster:.*\n\tnbgrader db student import students\.csv", makefile, re.M)
