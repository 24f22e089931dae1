"""The LMS connections (grading/reports/lms.py): Canvas's submissions zip through `make collect-lms` (nbgrader
zip_collect with the course's collector), and the Canvas and Moodle grade uploads through `nbgrader export
--exporter=...`."""

import csv
import os
import re
import shutil
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from conftest import copy_course, run
from grading.course_kit.submissions import ASSIGNMENT, ROOT, build_submission
from grading.reports.lms import CANVAS_FILE_NAME, CanvasExport, MoodleExport, Roster, RosterStudent, canvas_name

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # from nbgrader's add_submission


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


# ---------------------------------------------------------------------------------------- file names, roster


@pytest.mark.parametrize(
    "name, expected",
    [
        ("perfectada_12345_67890_backprop.ipynb", ("perfectada", None, "12345", "backprop.ipynb")),
        ("perfectada_late_12345_67890_backprop.ipynb", ("perfectada", "late", "12345", "backprop.ipynb")),
        ("sumcara_late_12347_67893_backprop-1.ipynb", ("sumcara", "late", "12347", "backprop-1.ipynb")),
        ("mllerjrgen2_7_8_my notebook_v2.ipynb", ("mllerjrgen2", None, "7", "my notebook_v2.ipynb")),
        ("12345_67890_backprop.ipynb", (None, None, "12345", "backprop.ipynb")),  # no name (anonymous grading)
        (
            "/course/extracted/subs/perfectada_12345_67890_backprop.ipynb",
            ("perfectada", None, "12345", "backprop.ipynb"),
        ),
    ],
)
def test_canvas_file_names_parse(name, expected):
    match = re.match(CANVAS_FILE_NAME, name)
    assert (match["student_id"], match["late"], match["lms_user_id"], match["file_id"]) == expected


@pytest.mark.parametrize("name", ["backprop.ipynb", "perfect_ada_backprop.ipynb", "perfectada_backprop.ipynb"])
def test_other_file_names_do_not_parse(name):
    assert re.match(CANVAS_FILE_NAME, name) is None


def test_canvas_name_keeps_letters_and_digits_lowercased():
    assert canvas_name("Perfect, Ada") == "perfectada"
    assert canvas_name("O'Brien-Smith, Mary Jane") == "obriensmithmaryjane"
    assert canvas_name("Müller, Jürgen") == canvas_name("Mu\u0308ller, Ju\u0308rgen") == "müllerjürgen"


def test_roster_finds_by_canvas_user_id_first_then_by_unique_name():
    ada = RosterStudent("ada", "Ada", "Perfect", "ada@example.edu")
    twin1, twin2 = RosterStudent("t1", "Sam", "Twin"), RosterStudent("t2", "Sam", "Twin", lms_user_id="42")
    roster = Roster([ada, twin1, twin2])
    assert roster.find("perfectada", "7") == (ada, None)
    assert roster.find("twinsam", "42") == (twin2, None)  # the Canvas user id decides, whatever the name
    student, why = roster.find("twinsam", "43")
    assert student is None and "2 students of the roster are called 'twinsam' (t1, t2)" in why
    student, why = roster.find("doejane", "99")
    assert student is None and "no student of the roster matches 'doejane' (Canvas user 99)" in why
    student, why = Roster([]).find("perfectada", "7")
    assert student is None and "the gradebook has no students" in why


# ------------------------------------------------------------------------------------------ zip_collect

CANVAS_ZIP = {  # file in Canvas's download -> the roster student it belongs to (None: skipped)
    "perfectada_101_9001_backprop.ipynb": "perfect",
    "sumcara_late_103_9003_backprop-1.ipynb": "sum-instead-of-product",  # late, and a re-upload Canvas renamed
    "reversedev_104_9004_backprop.ipynb": "reverse-mode-in-forward-question",
    "perfectada_101_9005_backprop-2.ipynb": None,  # a second backprop.ipynb in Ada's submission
    "doejane_199_9099_backprop.ipynb": None,  # no such student on the roster
    "blankben_102_9002_notes.txt": None,  # not a notebook
}


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    """A course (roster, Makefile) after `make collect-lms ZIP=...` of a synthetic Canvas download."""
    course = copy_course(tmp_path_factory.mktemp("collect"))
    for name in ("students.csv", "Makefile"):
        shutil.copy(ROOT / name, course)
    download = course.parent / "submissions.zip"
    with zipfile.ZipFile(download, "w") as zf:
        for name in CANVAS_ZIP:
            nb = build_submission({})
            nb.metadata["canvas_file"] = name  # which file of the download each submission came from
            zf.writestr(name, nbformat.writes(nb) if name.endswith(".ipynb") else "notes")
    result = run(["make", "--no-print-directory", "collect-lms", f"ZIP={download}"], cwd=course, timeout=300)
    return course, result


def test_each_canvas_file_lands_in_its_students_submission(collected):
    course, _ = collected
    submitted = sorted(
        p.relative_to(course / "submitted").as_posix() for p in (course / "submitted").rglob("*") if p.is_file()
    )
    expected = {name: student for name, student in CANVAS_ZIP.items() if student}
    assert submitted == sorted(f"{student}/{ASSIGNMENT}/{ASSIGNMENT}.ipynb" for student in expected.values())
    for name, student in expected.items():
        nb = nbformat.read(str(course / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"), as_version=4)
        assert nb.metadata["canvas_file"] == name
    assert not list((course / "submitted").rglob("timestamp.txt"))  # Canvas's names carry no time


def test_skipped_files_are_named_with_the_reason_and_kept(collected):
    course, result = collected
    log = result.stdout + result.stderr
    assert re.search(
        r"Skipped doejane_199_9099_backprop\.ipynb: no student of the roster matches 'doejane' "
        r"\(Canvas user 199\); add the student to students\.csv",
        log,
    )
    assert "Skipped blankben_102_9002_notes.txt: not a notebook" in log
    assert (
        "Skipped perfectada_101_9005_backprop-2.ipynb: perfect already has backprop.ipynb from "
        "perfectada_101_9001_backprop.ipynb"
    ) in log
    assert "Canvas marks sum-instead-of-product's submission late" in log
    extracted = course / "build" / "downloaded" / ASSIGNMENT / "extracted"
    assert sorted(p.name for p in extracted.rglob("*") if p.is_file()) == sorted(CANVAS_ZIP)  # nothing lost


def test_collected_csv_says_what_became_of_each_file(collected):
    course, _ = collected
    rows = read_csv(course / "build" / "downloaded" / ASSIGNMENT / "collected.csv")
    assert rows[0] == ["file", "student_id", "lms_user_id", "late", "result"]
    by_file = {row[0]: row for row in rows[1:]}
    assert set(by_file) == set(CANVAS_ZIP)
    assert by_file["sumcara_late_103_9003_backprop-1.ipynb"] == [
        "sumcara_late_103_9003_backprop-1.ipynb",
        "sum-instead-of-product",
        "103",
        "late",
        "collected as sum-instead-of-product/backprop.ipynb",
    ]
    assert by_file["doejane_199_9099_backprop.ipynb"][4].startswith("skipped: no student of the roster matches")


def test_the_roster_is_in_the_gradebook_after_collecting(collected):
    course, _ = collected
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        students = {s.id: (s.first_name, s.last_name, s.email) for s in gb.students}
    with open(ROOT / "students.csv", newline="", encoding="utf-8") as f:
        assert students == {row["id"]: (row["first_name"], row["last_name"], row["email"]) for row in csv.DictReader(f)}


# ------------------------------------------------------------------------------------------------ exports

CELLS = {"q1_test": ("code", 2.0), "q2_test": ("code", 3.0), "q6_answer": ("markdown", 2.0)}
GRADED = {  # student -> grade cell -> score (None: manual grade still to give); students not here submitted nothing
    "perfect": {"q1_test": 2, "q2_test": 3, "q6_answer": 2},
    "blank": {"q1_test": 0, "q2_test": 0, "q6_answer": 0},
    "graph-not-kept": {"q1_test": 2, "q2_test": 3, "q6_answer": 1},  # late: 1 point off
    "sum-instead-of-product": {"q1_test": 0, "q2_test": 3, "q6_answer": None},
    "walk-in": {"q1_test": 2, "q2_test": 0, "q6_answer": 0},  # submitted, but not on the roster: no name, no email
}
LATE_PENALTY = {"graph-not-kept": 1.0}


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory):
    """A course whose gradebook holds the roster and a tiny graded class, filled through nbgrader's Gradebook API."""
    course = tmp_path_factory.mktemp("exports")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    with pytest.MonkeyPatch.context() as mp:  # a new gradebook runs alembic, from the virtual environment
        mp.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        gb = Gradebook(f"sqlite:///{course / 'gradebook.db'}")
    with gb, open(ROOT / "students.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            gb.update_or_create_student(row.pop("id"), **row)
        gb.add_assignment(ASSIGNMENT)
        gb.add_notebook(ASSIGNMENT, ASSIGNMENT)
        for name, (cell_type, points) in CELLS.items():
            gb.add_grade_cell(name, ASSIGNMENT, ASSIGNMENT, max_score=points, cell_type=cell_type)
        for student, scores in GRADED.items():
            gb.update_or_create_student(student)
            gb.add_submission(ASSIGNMENT, student)
            for cell, score in scores.items():
                grade = gb.find_grade(cell, ASSIGNMENT, ASSIGNMENT, student)
                if cell == "q6_answer":
                    grade.manual_score = score
                else:
                    grade.auto_score = score
            notebook = gb.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, student)
            notebook.late_submission_penalty = LATE_PENALTY.get(student)
            gb.db.commit()
    for exporter in ("", "--exporter=grading.reports.lms.CanvasExport", "--exporter=grading.reports.lms.MoodleExport"):
        run(["nbgrader", "export", "--log-level=WARN", *filter(None, [exporter])], cwd=course)
    return course


CANVAS_ROWS = [  # sorted by last name, first name: the walk-in has neither
    ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "backprop"],
    ["Points Possible", "", "", "", "", "7"],
    ["walk-in", "", "", "", "", "2"],
    ["Absent, Gus", "", "", "gus.absent@example.edu", "", "0"],
    ["Blank, Ben", "", "", "ben.blank@example.edu", "", "0"],
    ["Graph, Eli", "", "", "eli.graph@example.edu", "", "5"],
    ["Perfect, Ada", "", "", "ada.perfect@example.edu", "", "7"],
    ["Reverse, Dev", "", "", "dev.reverse@example.edu", "", "0"],
    ["Seed, Fay", "", "", "fay.seed@example.edu", "", "0"],
    ["Sum, Cara", "", "", "cara.sum@example.edu", "", ""],  # Question 6 not graded yet
]


def test_canvas_upload_has_canvas_columns_and_every_roster_student(graded_course):
    assert read_csv(graded_course / "build" / "lms" / "canvas_grades.csv") == CANVAS_ROWS


def test_moodle_upload_is_keyed_by_email_for_every_roster_student(graded_course):
    rows = read_csv(graded_course / "build" / "lms" / "moodle_grades.csv")
    assert rows == [["First name", "Last name", "Email address", "backprop"]] + [
        [row[0].split(", ")[1], row[0].split(", ")[0], row[3], row[5]] for row in CANVAS_ROWS[3:]
    ]  # no walk-in


def test_nbgrader_grades_csv_lists_the_absent_student_with_0(graded_course):
    with open(graded_course / "grades.csv", newline="") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f)}
    assert set(rows) == {
        "absent",
        "blank",
        "graph-not-kept",
        "perfect",
        "reverse-mode-in-forward-question",
        "seed-learning-rate",
        "sum-instead-of-product",
        "walk-in",
    }
    assert (rows["absent"]["score"], rows["absent"]["timestamp"]) == ("0.0", "")
    assert (rows["graph-not-kept"]["raw_score"], rows["graph-not-kept"]["score"]) == ("6.0", "5.0")


def test_canvas_column_can_name_the_canvas_assignment_and_students_be_chosen(graded_course, tmp_path):
    out = tmp_path / "canvas.csv"
    exporter = CanvasExport(
        to=str(out), student=["perfect", "absent"], assignment_columns={ASSIGNMENT: "backprop (4711)"}
    )
    with Gradebook(f"sqlite:///{graded_course / 'gradebook.db'}") as gb:
        exporter.export(gb)
    assert read_csv(out) == [CANVAS_ROWS[0][:5] + ["backprop (4711)"], CANVAS_ROWS[1], CANVAS_ROWS[3], CANVAS_ROWS[6]]


def test_moodle_export_warns_about_students_it_leaves_out(graded_course, tmp_path, caplog):
    with Gradebook(f"sqlite:///{graded_course / 'gradebook.db'}") as gb:
        MoodleExport(to=str(tmp_path / "moodle.csv")).export(gb)
    messages = [record.getMessage() for record in caplog.records]
    assert any("no email address in the roster: walk-in" in m for m in messages)
    assert any(
        "wait for a manual grade and are left blank in the Moodle file: sum-instead-of-product (backprop)" in m
        for m in messages
    )


def test_students_without_submission_can_be_left_blank_instead_of_0(graded_course, tmp_path):
    out = tmp_path / "canvas.csv"
    with Gradebook(f"sqlite:///{graded_course / 'gradebook.db'}") as gb:
        CanvasExport(to=str(out), no_submission="").export(gb)
    rows = {row[0]: row[5] for row in read_csv(out)[2:]}
    assert (rows["Absent, Gus"], rows["Blank, Ben"], rows["Sum, Cara"]) == ("", "0", "")
