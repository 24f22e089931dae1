"""The LMS connections (grading/reports/lms.py): Canvas's submissions zip through `make collect-lms` (nbgrader
zip_collect with the course's collector), and the Canvas and Moodle grade uploads through `nbgrader export
--exporter=...`, read as the importers read them (tests/support/lms_importers.py models their code)."""

import csv
import io
import os
import re
import shutil
import sys
import zipfile
from datetime import datetime
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook
from traitlets import TraitError

from conftest import copy_course, run
from grading.course_kit.submissions import ASSIGNMENT, RELEASE_NOTEBOOK, ROOT, build_submission
from grading.reports.lms import (
    CANVAS_FILE_NAME,
    CanvasCollector,
    CanvasExport,
    MoodleExport,
    Roster,
    RosterStudent,
    canvas_name,
    format_points,
)
from support.lms_importers import (
    CanvasAssignment,
    CanvasCourse,
    CanvasUser,
    MoodleItem,
    canvas_import,
    canvas_unique_name,
    canvas_zip_name,
    moodle_import,
)

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # from nbgrader's add_submission


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def upload(course, lms):
    """The text of an upload file as the LMS receives it, line ends included."""
    return (course / "build" / "lms" / f"{lms}_grades.csv").read_bytes().decode("utf-8")


# ---------------------------------------------------------------------------------------- file names, roster

# Names of Canvas's download as lib/content_zipper.rb writes them today, and what the collector reads in each:
# (Canvas's name, late, Canvas user id, anonymous id, Canvas file id, the file as uploaded)
CANVAS_NAMES = {
    "perfectada_12345_67890_backprop.ipynb": (("Perfect, Ada", 12345, 67890, "backprop.ipynb"), {}),
    "perfectada_LATE_12345_67890_backprop.ipynb": (("Perfect, Ada", 12345, 67890, "backprop.ipynb"), {"late": True}),
    "obrienmary_jane_106_9007_backprop.ipynb": (("O'Brien, Mary_Jane", 106, 9007, "backprop.ipynb"), {}),
    "smith2jo_7_8_my notebook_v2.ipynb": (("Smith_2_, Jo", 7, 8, "my notebook_v2.ipynb"), {}),
    "müllerjürgen_7_8_12_backprop.ipynb": (("Müller, Jürgen", 7, 8, "12_backprop.ipynb"), {}),
    "sumcara_LATE_103_9003_my_notes_.ipynb": (("Sum, Cara", 103, 9003, "my:notes?.ipynb"), {"late": True}),
    "anon_aB3xY_67890_backprop.ipynb": (("Fay Seed", 0, 67890, "backprop.ipynb"), {"anonymous_id": "aB3xY"}),
    "LATE_anon_aB3xY_67890_backprop-1.ipynb": (
        ("Fay Seed", 0, 67890, "backprop-1.ipynb"),
        {"anonymous_id": "aB3xY", "late": True},
    ),
}
PARSED = {
    "perfectada_12345_67890_backprop.ipynb": ("perfectada", False, "12345", None, "67890", "backprop.ipynb"),
    "perfectada_LATE_12345_67890_backprop.ipynb": ("perfectada", True, "12345", None, "67890", "backprop.ipynb"),
    "perfectada_late_12345_67890_backprop.ipynb": ("perfectada", True, "12345", None, "67890", "backprop.ipynb"),
    "obrienmary_jane_106_9007_backprop.ipynb": ("obrienmary_jane", False, "106", None, "9007", "backprop.ipynb"),
    "smith2jo_7_8_my notebook_v2.ipynb": ("smith2jo", False, "7", None, "8", "my notebook_v2.ipynb"),
    "müllerjürgen_7_8_12_backprop.ipynb": ("müllerjürgen", False, "7", None, "8", "12_backprop.ipynb"),
    "sumcara_LATE_103_9003_my_notes_.ipynb": ("sumcara", True, "103", None, "9003", "my_notes_.ipynb"),
    "anon_aB3xY_67890_backprop.ipynb": (None, False, None, "aB3xY", "67890", "backprop.ipynb"),
    "LATE_anon_aB3xY_67890_backprop-1.ipynb": (None, True, None, "aB3xY", "67890", "backprop-1.ipynb"),
    "/course/extracted/subs/perfectada_12345_67890_backprop.ipynb": (
        "perfectada",
        False,
        "12345",
        None,
        "67890",
        "backprop.ipynb",
    ),
}


@pytest.mark.parametrize("name", CANVAS_NAMES)
def test_the_names_the_tests_use_are_the_names_canvas_writes(name):
    args, options = CANVAS_NAMES[name]
    assert canvas_zip_name(*args, **options) == name


@pytest.mark.parametrize("name", PARSED)
def test_canvas_file_names_parse(name):
    match = re.match(CANVAS_FILE_NAME, name)
    late = bool(match["late"] or match["late_anonymous"])
    parsed = (match["student_id"], late, match["lms_user_id"], match["anonymous_id"], match["lms_file_id"])
    assert (*parsed, match["file_id"]) == PARSED[name]


@pytest.mark.parametrize(
    "name", ["backprop.ipynb", "perfectada_backprop.ipynb", "12345_67890_backprop.ipynb", "anon_ab_1_backprop.ipynb"]
)
def test_other_file_names_do_not_parse(name):
    assert re.match(CANVAS_FILE_NAME, name) is None


def test_canvas_renames_a_reupload_and_the_collector_takes_the_release_name_back():
    taken = {"backprop.ipynb"}
    assert canvas_unique_name("backprop.ipynb", taken) == "backprop-1.ipynb"
    taken |= {f"backprop-{n}.ipynb" for n in range(1, 8)}
    with_uuid = canvas_unique_name("backprop.ipynb", taken)
    assert re.fullmatch(r"backprop-[0-9a-f-]{36}\.ipynb", with_uuid)
    collector = OfflineCollector([])
    for uploaded in ("backprop-1.ipynb", "backprop-7.ipynb", with_uuid, "backprop.ipynb"):
        assert collector.notebook_name(uploaded) == "backprop.ipynb"
    assert collector.notebook_name("notes-1.ipynb") == "notes-1.ipynb"  # not a notebook of the release


def test_canvas_name_keeps_letters_and_digits_lowercased():
    assert canvas_name("Perfect, Ada") == "perfectada"
    assert canvas_name("O'Brien-Smith, Mary Jane") == "obriensmithmaryjane"
    assert canvas_name("Müller, Jürgen") == canvas_name("Mu\u0308ller, Ju\u0308rgen") == "müllerjürgen"
    assert canvas_name("O'Brien, Mary_Jane") == canvas_name("obrienmary_jane")


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


def test_roster_finds_anonymous_files_by_the_roster_column_or_says_how_to_map_them():
    fay, gus = RosterStudent("fay", "Fay", "Seed"), RosterStudent("gus", "Gus", "Absent")
    roster = Roster([fay, gus], {"aB3xY": ["fay"], "Twice": ["fay", "gus"], "Ghost": ["nobody"]})
    assert roster.find(None, "", "aB3xY") == (fay, None)
    student, why = roster.find(None, "", "Zq7Rk")
    assert student is None
    assert why.startswith("Canvas's anonymous grading does not say whose file this is (anon_Zq7Rk)")
    assert "put Zq7Rk in a column canvas_anonymous_id of students.csv, on the student's row" in why
    assert "2 students (fay, gus)" in roster.find(None, "", "Twice")[1]
    assert "nobody, who is not in the gradebook" in roster.find(None, "", "Ghost")[1]


# ------------------------------------------------------------------------- the collector, in this process


class OfflineCollector(CanvasCollector):
    """The course's collector without nbgrader's zip_collect around it: its roster, release and due date given."""

    def __init__(self, students, due=None, anonymous=None, **kwargs):
        super().__init__(**kwargs)
        self._given = (students, due, anonymous or {})

    def load_roster(self):
        return Roster(self._given[0], self._given[2])

    def due_date(self):
        return self._given[1]

    def released_notebooks(self):
        return {f"{ASSIGNMENT}.ipynb"}


def downloaded(folder, *names):
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_text("{}")
    return [str(folder / name) for name in names]


def test_a_late_file_gets_a_timestamp_one_second_after_the_due_date(tmp_path):
    cara = RosterStudent("cara", "Cara", "Sum")
    late, on_time = downloaded(tmp_path, "sumcara_LATE_103_9003_backprop.ipynb", "sumcara_103_9004_notes.ipynb")
    collector = OfflineCollector([cara], due=datetime(2026, 3, 2, 17, 0, 0))
    assert collector.collect(late) == {
        "student_id": "cara",
        "file_id": "backprop.ipynb",
        "timestamp": "2026-03-02 17:00:01",
    }
    assert "timestamp" not in collector.collect(on_time)


def test_a_late_file_without_a_due_date_in_the_gradebook_is_collected_and_reported(tmp_path, caplog):
    cara = RosterStudent("cara", "Cara", "Sum")
    (late,) = downloaded(tmp_path, "sumcara_late_103_9003_backprop.ipynb")
    assert OfflineCollector([cara]).collect(late) == {"student_id": "cara", "file_id": "backprop.ipynb"}
    assert any(
        "Canvas marks cara's submission late, but the gradebook has no due date" in r.getMessage()
        for r in caplog.records
    )


def test_of_two_uploads_of_a_notebook_the_later_is_collected_whatever_the_order_of_names(tmp_path):
    ada = RosterStudent("ada", "Ada", "Perfect")
    # Canvas file 10001 was uploaded after 9001, though its name sorts first
    later, earlier = downloaded(tmp_path, "perfectada_101_10001_backprop-1.ipynb", "perfectada_101_9001_backprop.ipynb")
    collector = OfflineCollector([ada])
    assert collector.collect(later) == {"student_id": "ada", "file_id": "backprop.ipynb"}
    assert collector.collect(earlier) is None


# ------------------------------------------------------------------------------- make collect-lms

DUE = "2026-03-02 17:00:00"
CANVAS_ZIP = {  # file in Canvas's download -> the roster student it belongs to (None: skipped)
    "perfectada_101_9001_backprop.ipynb": None,  # an earlier upload: Ada's later one is collected
    "perfectada_101_9005_backprop-1.ipynb": "perfect",  # uploaded again, renamed by Canvas
    "sumcara_LATE_103_9003_backprop.ipynb": "sum-instead-of-product",  # late
    "reversedevon_104_9004_backprop.ipynb": "reverse-mode-in-forward-question",  # by lms_user_id, whatever the name
    "obrienmary_jane_106_9007_backprop.ipynb": "o-brien",  # a name with an underscore
    "anon_aB3xY_9008_backprop.ipynb": "seed-learning-rate",  # anonymous grading, mapped in students.csv
    "LATE_anon_Zq7Rk_9009_backprop.ipynb": None,  # anonymous grading, not mapped
    "doejane_199_9099_backprop.ipynb": None,  # no such student on the roster
    "blankben_102_9002_notes.txt": None,  # not a notebook
}
ZIP_SOURCES = {  # how Canvas made each name (lib/content_zipper.rb)
    "perfectada_101_9001_backprop.ipynb": (("Perfect, Ada", 101, 9001, "backprop.ipynb"), {}),
    "perfectada_101_9005_backprop-1.ipynb": (("Perfect, Ada", 101, 9005, "backprop-1.ipynb"), {}),
    "sumcara_LATE_103_9003_backprop.ipynb": (("Sum, Cara", 103, 9003, "backprop.ipynb"), {"late": True}),
    "reversedevon_104_9004_backprop.ipynb": (("Reverse, Devon", 104, 9004, "backprop.ipynb"), {}),
    "obrienmary_jane_106_9007_backprop.ipynb": (("O'Brien, Mary_Jane", 106, 9007, "backprop.ipynb"), {}),
    "anon_aB3xY_9008_backprop.ipynb": (("", 0, 9008, "backprop.ipynb"), {"anonymous_id": "aB3xY"}),
    "LATE_anon_Zq7Rk_9009_backprop.ipynb": (("", 0, 9009, "backprop.ipynb"), {"anonymous_id": "Zq7Rk", "late": True}),
    "doejane_199_9099_backprop.ipynb": (("Doe, Jane", 199, 9099, "backprop.ipynb"), {}),
    "blankben_102_9002_notes.txt": (("Blank, Ben", 102, 9002, "notes.txt"), {}),
}
ROSTER_EXTRA = {  # the course's students.csv, with these columns and one more student
    "reverse-mode-in-forward-question": {"lms_user_id": "104"},
    "seed-learning-rate": {"canvas_anonymous_id": "aB3xY"},
}
O_BRIEN = {"id": "o-brien", "first_name": "Mary_Jane", "last_name": "O'Brien", "email": "mj.obrien@example.edu"}


def test_the_zip_holds_names_as_canvas_writes_them():
    assert {name: canvas_zip_name(*args, **options) for name, (args, options) in ZIP_SOURCES.items()} == {
        name: name for name in CANVAS_ZIP
    }


def write_roster(course):
    """The course's students.csv with an lms_user_id, a canvas_anonymous_id and a student named with "_"."""
    with open(ROOT / "students.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f)) + [O_BRIEN]
    columns = ["id", "first_name", "last_name", "email", "lms_user_id", "canvas_anonymous_id"]
    with open(course / "students.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns, restval="")
        writer.writeheader()
        writer.writerows({**row, **ROSTER_EXTRA.get(row["id"], {})} for row in rows)
    return rows


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    """A course (roster, Makefile, a due date) after `make collect-lms ZIP=...` of a Canvas download."""
    course = copy_course(tmp_path_factory.mktemp("collect"))
    shutil.copy(ROOT / "Makefile", course)
    write_roster(course)
    run(["nbgrader", "db", "assignment", "add", ASSIGNMENT, f"--duedate={DUE} UTC", "--log-level=WARN"], cwd=course)
    download = course.parent / "submissions.zip"
    with zipfile.ZipFile(download, "w") as zf:
        for name in CANVAS_ZIP:
            nb = build_submission({})
            nb.metadata["canvas_file"] = name  # which file of the download each submission came from
            zf.writestr(name, nbformat.writes(nb) if name.endswith(".ipynb") else "notes")
    result = run(["make", "--no-print-directory", "collect-lms", f"ZIP={download}"], cwd=course, timeout=1200)
    return course, result


def test_each_canvas_file_lands_in_its_students_submission(collected):
    course, _ = collected
    submitted = sorted(
        p.relative_to(course / "submitted").as_posix()
        for p in (course / "submitted").rglob("*")
        if p.is_file() and p.name != "timestamp.txt"
    )
    expected = {name: student for name, student in CANVAS_ZIP.items() if student}
    assert submitted == sorted(f"{student}/{ASSIGNMENT}/{ASSIGNMENT}.ipynb" for student in expected.values())
    for name, student in expected.items():
        nb = nbformat.read(str(course / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"), as_version=4)
        assert nb.metadata["canvas_file"] == name


def test_the_late_file_carries_its_late_mark_as_a_timestamp_after_the_due_date(collected):
    course, _ = collected
    stamps = {p.parent.parent.name: p.read_text() for p in (course / "submitted").rglob("timestamp.txt")}
    assert stamps == {"sum-instead-of-product": "2026-03-02 17:00:01"}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        assert str(gb.find_assignment(ASSIGNMENT).duedate) == DUE  # so nbgrader counts it 1 second late


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
        "Skipped perfectada_101_9001_backprop.ipynb: perfect uploaded backprop.ipynb again later in this submission "
        "(perfectada_101_9005_backprop-1.ipynb, Canvas file 9005), which is collected instead"
    ) in log
    assert (
        "Skipped LATE_anon_Zq7Rk_9009_backprop.ipynb: Canvas's anonymous grading does not say whose file this is "
        "(anon_Zq7Rk); to collect it, put Zq7Rk in a column canvas_anonymous_id of students.csv"
    ) in log
    extracted = course / "build" / "downloaded" / ASSIGNMENT / "extracted"
    assert sorted(p.name for p in extracted.rglob("*") if p.is_file()) == sorted(CANVAS_ZIP)  # nothing lost


def test_collected_csv_says_what_became_of_each_file(collected):
    course, _ = collected
    rows = read_csv(course / "build" / "downloaded" / ASSIGNMENT / "collected.csv")
    assert rows[0] == ["file", "student_id", "lms_user_id", "anonymous_id", "late", "result"]
    by_file = {row[0]: row for row in rows[1:]}
    assert set(by_file) == set(CANVAS_ZIP)
    assert by_file["sumcara_LATE_103_9003_backprop.ipynb"] == [
        "sumcara_LATE_103_9003_backprop.ipynb",
        "sum-instead-of-product",
        "103",
        "",
        "late",
        "collected as sum-instead-of-product/backprop.ipynb, late: timestamp 2026-03-02 17:00:01 "
        "(due 2026-03-02 17:00:00 UTC)",
    ]
    assert by_file["anon_aB3xY_9008_backprop.ipynb"][1:5] == ["seed-learning-rate", "", "aB3xY", ""]
    assert by_file["LATE_anon_Zq7Rk_9009_backprop.ipynb"][3:5] == ["Zq7Rk", "late"]
    assert by_file["doejane_199_9099_backprop.ipynb"][5].startswith("skipped: no student of the roster matches")


def test_the_roster_is_in_the_gradebook_after_collecting(collected):
    course, _ = collected
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        students = {s.id: (s.first_name, s.last_name, s.email, s.lms_user_id) for s in gb.students}
    with open(course / "students.csv", newline="", encoding="utf-8") as f:
        assert students == {
            row["id"]: (row["first_name"], row["last_name"], row["email"], row["lms_user_id"] or None)
            for row in csv.DictReader(f)
        }


# ------------------------------------------------------------------------------------------------ exports

CELLS = {"q1_test": ("code", 2.0), "q2_test": ("code", 3.0), "q6_answer": ("markdown", 2.0)}
MAX_POINTS = sum(points for _, points in CELLS.values())
GRADED = {  # student -> grade cell -> score (None: manual grade still to give); students not here submitted nothing
    "perfect": {"q1_test": 2, "q2_test": 3, "q6_answer": 2},
    "blank": {"q1_test": 0, "q2_test": 0, "q6_answer": 0},
    "graph-not-kept": {"q1_test": 2, "q2_test": 3, "q6_answer": 1},  # late: 1 point off
    "sum-instead-of-product": {"q1_test": 0, "q2_test": 3, "q6_answer": None},
    "walk-in": {"q1_test": 2, "q2_test": 0, "q6_answer": 0},  # submitted, but not on the roster: no name, no email
}
LATE_PENALTY = {"graph-not-kept": 1.0}
LMS_USER_ID = {"perfect": "4242"}  # the Canvas user id of one roster student


def roster_rows():
    with open(ROOT / "students.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def final_points(student):
    """The student's final points as the tests expect them, or None while Question 6 waits for its manual grade."""
    scores = GRADED.get(student)
    if scores is None:
        return 0.0  # no submission: 0, as nbgrader's grades.csv
    if None in scores.values():
        return None
    return sum(scores.values()) - LATE_PENALTY.get(student, 0.0)


def new_gradebook(path):
    with pytest.MonkeyPatch.context() as mp:  # a new gradebook runs alembic, from the virtual environment
        mp.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        return Gradebook(f"sqlite:///{path}")


def add_assignment(gb, name, graded, penalty=None):
    gb.add_assignment(name)
    gb.add_notebook(name, name)
    for cell, (cell_type, points) in CELLS.items():
        gb.add_grade_cell(cell, name, name, max_score=points, cell_type=cell_type)
    for student, scores in graded.items():
        gb.update_or_create_student(student)
        gb.add_submission(name, student)
        for cell, score in scores.items():
            grade = gb.find_grade(cell, name, name, student)
            if cell == "q6_answer":
                grade.manual_score = score
            else:
                grade.auto_score = score
        gb.find_submission_notebook(name, name, student).late_submission_penalty = (penalty or {}).get(student)
        gb.db.commit()


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory):
    """A course whose gradebook holds the roster and a tiny graded class, filled through nbgrader's Gradebook API."""
    course = tmp_path_factory.mktemp("exports")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    with new_gradebook(course / "gradebook.db") as gb:
        for row in roster_rows():
            gb.update_or_create_student(row.pop("id"), **row)
        for student, lms_user_id in LMS_USER_ID.items():
            gb.update_or_create_student(student, lms_user_id=lms_user_id)
        add_assignment(gb, ASSIGNMENT, GRADED, LATE_PENALTY)
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
    ["Perfect, Ada", "4242", "", "ada.perfect@example.edu", "", "7"],
    ["Reverse, Dev", "", "", "dev.reverse@example.edu", "", "0"],
    ["Seed, Fay", "", "", "fay.seed@example.edu", "", "0"],
]  # Sum, Cara is left out: Question 6 not graded yet


def test_canvas_upload_has_canvas_columns_and_every_student_with_a_final_grade(graded_course):
    assert read_csv(graded_course / "build" / "lms" / "canvas_grades.csv") == CANVAS_ROWS


def test_moodle_upload_is_keyed_by_email_for_every_student_with_a_final_grade(graded_course):
    rows = read_csv(graded_course / "build" / "lms" / "moodle_grades.csv")
    assert rows == [["First name", "Last name", "Email address", "backprop"]] + [
        [row[0].split(", ")[1], row[0].split(", ")[0], row[3], row[5]] for row in CANVAS_ROWS[3:]
    ]  # no walk-in, no Cara


@pytest.mark.parametrize("lms", ["canvas", "moodle"])
def test_no_grade_cell_of_the_uploads_is_blank(graded_course, lms):
    rows = read_csv(graded_course / "build" / "lms" / f"{lms}_grades.csv")
    grade_columns = slice(5, None) if lms == "canvas" else slice(3, None)
    assert rows[1:] and all(cell.strip() for row in rows[1:] for cell in row[grade_columns])


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


def test_exports_name_the_students_they_leave_out(graded_course, tmp_path, caplog):
    with Gradebook(f"sqlite:///{graded_course / 'gradebook.db'}") as gb:
        MoodleExport(to=str(tmp_path / "moodle.csv")).export(gb)
        CanvasExport(to=str(tmp_path / "canvas.csv")).export(gb)
    messages = [record.getMessage() for record in caplog.records]
    assert "Left out of the Moodle file, no email address in the roster: walk-in" in messages
    for lms in ("Moodle", "Canvas"):
        assert (
            f"Left out of the {lms} file, no final grade to upload ({lms} keeps the grade it has): "
            "sum-instead-of-product (backprop: manual grade to give)"
        ) in messages
    assert any("No email or Canvas user id (lms_user_id) for walk-in" in m for m in messages)


def test_students_without_submission_can_be_left_to_the_lms(graded_course, tmp_path):
    with Gradebook(f"sqlite:///{graded_course / 'gradebook.db'}") as gb:
        CanvasExport(to=str(tmp_path / "canvas.csv"), no_submission="").export(gb)
        MoodleExport(to=str(tmp_path / "moodle.csv"), no_submission="").export(gb)
    canvas = {row[0] for row in read_csv(tmp_path / "canvas.csv")[2:]}
    moodle = {row[2] for row in read_csv(tmp_path / "moodle.csv")[1:]}
    assert "Absent, Gus" not in canvas and "Blank, Ben" in canvas  # Ben submitted, and scored 0
    assert "gus.absent@example.edu" not in moodle and "ben.blank@example.edu" in moodle


@pytest.mark.parametrize("value", ["-", "none", "-1"])
def test_no_submission_is_a_number_or_nothing(value):
    with pytest.raises(TraitError):
        CanvasExport(no_submission=value)
    assert CanvasExport(no_submission=" 0.50 ").no_submission == "0.5"


@pytest.mark.parametrize(
    "points, text", [(7.0, "7"), (6.5, "6.5"), (1 / 3, "0.33"), (12345.6789, "12345.68"), (0, "0")]
)
def test_points_are_plain_decimals(points, text):
    assert format_points(points) == text
    assert float(text) == pytest.approx(points, abs=0.005)


# ------------------------------------------------------------- the uploads, read as Canvas's importer reads them


def canvas_course(logins="email", scores=None, assignments=None):
    """The demo class in Canvas: one Canvas user per roster student (Ada's id as the roster's lms_user_id),
    logins their email addresses (or usernames), and the Canvas assignment backprop worth 7 points."""
    users = []
    for number, row in enumerate(roster_rows()):
        first, last = row["first_name"], row["last_name"]
        login = row["email"] if logins == "email" else f"{first[0]}{last}".lower()
        user_id = int(LMS_USER_ID.get(row["id"], 1000 + number))
        users.append(CanvasUser(user_id, f"{first} {last}", f"{last}, {first}", login))
    if assignments is None:
        assignments = [CanvasAssignment(555, ASSIGNMENT, MAX_POINTS)]
    return CanvasCourse(users, assignments, dict(scores or {}))


def canvas_user_ids():
    return {row["id"]: int(LMS_USER_ID.get(row["id"], 1000 + n)) for n, row in enumerate(roster_rows())}


def test_canvas_reads_the_header_the_points_possible_row_and_the_assignment_column(graded_course):
    text = upload(graded_course, "canvas")
    existing = canvas_import(text, canvas_course())
    assert [a.id for a in existing.assignments] == [555] and existing.points == {555: "7"}
    created = canvas_import(text, canvas_course(assignments=[]))  # no assignment of that title: Canvas creates it
    assert [(a.id < 0, a.title, a.points_possible) for a in created.assignments] == [(True, ASSIGNMENT, "7")]
    by_id = canvas_import(
        text.replace(",backprop\r\n", ",backprop (555)\r\n", 1),
        canvas_course(assignments=[CanvasAssignment(555, "Backprop homework", MAX_POINTS)]),
    )
    assert [a.id for a in by_id.assignments] == [555]


def test_canvas_import_of_the_upload_sets_exactly_the_final_grades(graded_course):
    text = upload(graded_course, "canvas")
    ids = canvas_user_ids()
    before = {  # a missing-submission policy's 0, and a grade of an earlier upload
        (ids["sum-instead-of-product"], 555): 0.0,
        (ids["absent"], 555): 0.0,
        (ids["perfect"], 555): 6.0,
    }
    imported = canvas_import(text, canvas_course(scores=before))
    assert imported.unmatched == ["walk-in"]  # not a student of the Canvas course: Canvas asks the instructor
    expected = {
        (ids[s], 555): final_points(s) if final_points(s) is not None else before.get((ids[s], 555)) for s in ids
    }
    assert {key: imported.scores.get(key) for key in expected} == expected
    assert imported.scores[(ids["sum-instead-of-product"], 555)] == 0.0  # left to Canvas, not erased
    assert all(sent.get("posted_grade", "") is not None for sent in imported.sent.values())


def test_the_canvas_importer_model_would_catch_a_blank_cell(graded_course):
    text = upload(graded_course, "canvas")
    blanked = text.replace("ada.perfect@example.edu,,7", "ada.perfect@example.edu,,")
    ada = canvas_user_ids()["perfect"]
    imported = canvas_import(blanked, canvas_course(scores={(ada, 555): 6.0}))
    assert imported.sent[(ada, 555)] == {"posted_grade": None} and imported.scores[(ada, 555)] is None  # erased


def test_canvas_matches_students_by_user_id_then_login_then_name(graded_course):
    text = upload(graded_course, "canvas")
    emails = canvas_import(text, canvas_course(logins="email"))
    how = {student.id: column for student, column in emails.matched.values()}
    ids = canvas_user_ids()
    assert how[ids["perfect"]] == "ID"  # lms_user_id, when the roster has it
    assert {how[ids[s]] for s in ids if s not in ("perfect", "sum-instead-of-product")} == {"SIS Login ID"}
    usernames = canvas_course(logins="username")
    usernames.users[1].login = "Ben.Blank@example.edu"  # a login that differs in case only does not match
    usernames.users[4].sortable_name = "Graph, Elias"  # a name that differs: the instructor picks Eli by hand
    imported = canvas_import(text, usernames)
    how = {student.id: column for student, column in imported.matched.values()}
    assert how[ids["perfect"]] == "ID" and how[ids["blank"]] == "Student" and how[ids["absent"]] == "Student"
    assert imported.unmatched == ["walk-in", "Graph, Eli"]


# ------------------------------------------------------------- the uploads, read as Moodle's importer reads them


def moodle_users():
    return {row["email"]: 2000 + n for n, row in enumerate(roster_rows())}


def test_moodle_import_into_a_manual_item_sets_exactly_the_final_grades(graded_course):
    text = upload(graded_course, "moodle")
    users = moodle_users()
    item = MoodleItem(77, ASSIGNMENT, grademax=MAX_POINTS)  # created first, with the assignment's maximum
    (item,) = moodle_import(text, users=users, map_from="Email address", mapping={ASSIGNMENT: 77}, items=[item])
    expected = {users[row["email"]]: final_points(row["id"]) for row in roster_rows()}
    assert item.grades == {user: points for user, points in expected.items() if points is not None}
    assert not item.overridden


def test_moodle_new_grade_item_gets_the_final_grades_but_a_maximum_of_100(graded_course):
    text = upload(graded_course, "moodle")
    users = moodle_users()
    (new,) = moodle_import(text, users=users, map_from="Email address", mapping={ASSIGNMENT: "new"}, items=[])
    assert new.grades == {
        users[r["email"]]: final_points(r["id"]) for r in roster_rows() if final_points(r["id"]) is not None
    }
    assert new.grademax == 100  # so README says to create the item first, with the assignment's maximum


def test_the_moodle_importer_model_would_catch_a_blank_cell(graded_course):
    text = upload(graded_course, "moodle")
    blanked = text.replace("ada.perfect@example.edu,7", "ada.perfect@example.edu,")
    ada = moodle_users()["ada.perfect@example.edu"]
    (new,) = moodle_import(
        blanked, users=moodle_users(), map_from="Email address", mapping={"backprop": "new"}, items=[]
    )
    assert new.grades[ada] == 0.0  # invented
    item = MoodleItem(77, ASSIGNMENT, grademax=MAX_POINTS, grades={ada: 7.0})
    moodle_import(blanked, users=moodle_users(), map_from="Email address", mapping={"backprop": 77}, items=[item])
    assert item.grades[ada] is None  # erased


def test_readme_tells_the_moodle_maximum_of_the_release():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Roster and LMS", 1)[1].split("\n## ", 1)[0]
    release = nbformat.read(str(RELEASE_NOTEBOOK), as_version=4)
    points = sum(
        c.metadata.get("nbgrader", {}).get("points", 0)
        for c in release.cells
        if c.metadata.get("nbgrader", {}).get("grade")
    )
    assert re.findall(r"maximum grade (\d+)", section) == [format_points(points)]


# -------------------------------------------------------- two assignments: a row with final and pending grades


@pytest.fixture(scope="module")
def two_assignments(graded_course, tmp_path_factory):
    """The demo gradebook (a copy) with a second assignment, extra: Ada and Cara final, Ben's Question 6 to grade."""
    path = tmp_path_factory.mktemp("two") / "gradebook.db"
    shutil.copy(graded_course / "gradebook.db", path)
    full, pending = {"q1_test": 2, "q2_test": 3, "q6_answer": 2}, {"q1_test": 1, "q2_test": 0, "q6_answer": None}
    with Gradebook(f"sqlite:///{path}") as gb:
        add_assignment(gb, "extra", {"perfect": full, "sum-instead-of-product": full, "blank": pending})
    return path


def test_a_row_with_a_grade_not_final_stays_out_of_canvas_and_gets_moodles_dash(two_assignments, tmp_path):
    with Gradebook(f"sqlite:///{two_assignments}") as gb:
        CanvasExport(to=str(tmp_path / "canvas.csv"), no_submission="").export(gb)
        MoodleExport(to=str(tmp_path / "moodle.csv"), no_submission="").export(gb)
    assert [row[0] for row in read_csv(tmp_path / "canvas.csv")] == ["Student", "Points Possible", "Perfect, Ada"]
    assert read_csv(tmp_path / "moodle.csv") == [
        ["First name", "Last name", "Email address", "backprop", "extra"],
        ["Ben", "Blank", "ben.blank@example.edu", "0", "-"],
        ["Eli", "Graph", "eli.graph@example.edu", "5", "-"],
        ["Ada", "Perfect", "ada.perfect@example.edu", "7", "7"],
        ["Cara", "Sum", "cara.sum@example.edu", "-", "7"],
    ]  # Gus, Dev, Fay: nothing final (no submission, uploaded as no grade), left out
    text = (tmp_path / "moodle.csv").read_bytes().decode("utf-8")
    users = moodle_users()
    ben, eli, ada, cara = (users[f"{n}@example.edu"] for n in ("ben.blank", "eli.graph", "ada.perfect", "cara.sum"))
    backprop, extra = MoodleItem(10, ASSIGNMENT, grademax=7), MoodleItem(11, "extra", grademax=7)
    mapping = {"backprop": 10, "extra": 11}
    moodle_import(text, users=users, map_from="Email address", mapping=mapping, items=[backprop, extra])
    assert backprop.grades == {ben: 0.0, eli: 5.0, ada: 7.0, cara: None}  # '-': no grade in an existing item
    assert extra.grades == {ben: None, eli: None, ada: 7.0, cara: 7.0}
    mapping = {"backprop": 10, "extra": "new"}
    (_, new_extra) = moodle_import(text, users=users, map_from="Email address", mapping=mapping, items=[backprop])
    assert new_extra.grades == {ada: 7.0, cara: 7.0}  # '-' imports no grade into a new item


def test_every_moodle_row_names_its_user(graded_course):
    """Moodle gives a row with an empty user cell the previous row's user: the walk-in, without email, is left out."""
    buffer = io.StringIO()
    with Gradebook(f"sqlite:///{graded_course / 'gradebook.db'}") as gb:
        exporter = MoodleExport()
        exporter.write(csv.writer(buffer), *exporter.grades(gb))
    rows = list(csv.reader(io.StringIO(buffer.getvalue())))
    assert len(rows) == len(CANVAS_ROWS) - 2 and all(row[2] for row in rows)
