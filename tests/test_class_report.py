"""The class report on a small synthetic gradebook: grades.csv, the statistics, the failed checks, report.html; a
student of the roster who submitted nothing is listed with 0 and "no submission"."""

import csv
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output
from nbgrader.api import Gradebook

from grading.reports.class_grades import class_scores, format_table, students_without_submission
from grading.reports.class_report import failed_checks, feedback_text, question_stats, write_report

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # from nbgrader's add_submission

POINTS = {"q1": 2.0, "q2": 3.0, "q6": 2.0}  # q6: manually graded
SCORES = {  # student -> question -> score, None: not graded yet
    "ada": {"q1": 2, "q2": 3, "q6": 2},
    "bob": {"q1": 0, "q2": 3, "q6": None},
    "cy": {"q1": 0, "q2": 0, "q6": 0},
}
ABSENT = "dee"  # on the roster, submitted nothing
FAILURES = {  # student -> grade id of the failed test cell -> traceback the student saw
    "bob": {"q1_test": ["✗ F does not equal c multiplied by s (F = c · s, not c + s)."]},
    "cy": {
        "q1_test": ["✗ F does not equal c multiplied by s (F = c · s, not c + s)."],
        "q2_test": ["\x1b[0;31m---------\x1b[0m", "\x1b[0;31mNotImplementedError\x1b[0m: "],
    },
}


def cell_name(question):
    return f"{question}_answer" if question == "q6" else f"{question}_test"


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("report")
    db_url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    with pytest.MonkeyPatch.context() as mp:  # a new gradebook runs alembic, from the virtual environment
        mp.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        gb = Gradebook(db_url)
    with gb:
        gb.add_assignment("backprop")
        gb.add_notebook("backprop", "backprop")
        for question, points in POINTS.items():
            gb.add_grade_cell(
                cell_name(question),
                "backprop",
                "backprop",
                max_score=points,
                cell_type="markdown" if question == "q6" else "code",
            )
        for student, scores in SCORES.items():
            gb.add_student(student)
            gb.add_submission("backprop", student)
            for question, score in scores.items():
                grade = gb.find_grade(cell_name(question), "backprop", "backprop", student)
                if question == "q6":
                    grade.manual_score = score
                else:
                    grade.auto_score = score
            gb.db.commit()
        gb.add_student(ABSENT, first_name="Dee", last_name="Absent", email="dee@example.edu")
    for student in SCORES:
        cells = []
        for question in ("q1", "q2"):
            traceback = FAILURES.get(student, {}).get(f"{question}_test")
            outputs = [new_output("error", ename="Feedback", evalue="", traceback=traceback)] if traceback else []
            cells.append(
                new_code_cell(
                    "pass", outputs=outputs, metadata={"nbgrader": {"grade": True, "grade_id": f"{question}_test"}}
                )
            )
        path = tmp_path / "autograded" / student / "backprop" / "backprop.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(new_notebook(cells=cells), str(path))
    return db_url, tmp_path / "autograded", tmp_path / "report"


def test_scores_read_back_from_the_synthetic_gradebook(graded_class):
    db_url, _, _ = graded_class
    assert class_scores(db_url) == SCORES
    assert students_without_submission(db_url) == [ABSENT]


def test_class_table_lists_the_student_without_submission_with_0(graded_class):
    db_url, _, _ = graded_class
    lines = format_table(class_scores(db_url), POINTS, students_without_submission(db_url)).splitlines()
    assert lines[-2].split() == ["dee", "(no", "submission)", "0", "0", "0", "0/7"]
    assert lines[-3].split() == ["cy", "0", "0", "0", "0/7"]


def test_grades_csv_has_one_row_per_student_and_a_column_per_question(graded_class):
    db_url, autograded, out = graded_class
    write_report(out, db_url, autograded, points=POINTS)
    with open(out / "grades.csv") as f:
        rows = list(csv.reader(f))
    assert rows == [
        ["student", "q1", "q2", "q6", "total", "note"],
        ["ada", "2", "3", "2", "7", ""],
        ["bob", "0", "3", "", "3", "manual grading pending"],
        ["cy", "0", "0", "0", "0", ""],
        ["dee", "0", "0", "0", "0", "no submission"],
    ]


def test_mean_score_and_pass_rate_count_graded_students_only():
    stats = question_stats(SCORES, POINTS)
    assert stats["q1"] == {"points": 2.0, "graded": 3, "mean": pytest.approx(2 / 3), "pass_rate": pytest.approx(1 / 3)}
    assert stats["q6"] == {"points": 2.0, "graded": 2, "mean": 1.0, "pass_rate": 0.5}


def test_failed_checks_most_frequent_first_with_the_text_students_saw(graded_class):
    _, autograded, _ = graded_class
    assert failed_checks(autograded) == [
        {
            "check": "q1_test",
            "feedback": "✗ F does not equal c multiplied by s (F = c · s, not c + s).",
            "students": ["bob", "cy"],
        },
        {"check": "q2_test", "feedback": "NotImplementedError:", "students": ["cy"]},
    ]


def test_feedback_text_prefers_the_one_sentence_message():
    output = new_output("error", ename="Feedback", evalue="x", traceback=["noise", "✗ x should be a tensor.", "more"])
    assert feedback_text(output) == "✗ x should be a tensor."


def test_report_html_is_self_contained_with_every_chart(graded_class):
    db_url, autograded, out = graded_class
    report = write_report(out, db_url, autograded, points=POINTS)
    page = report.read_text(encoding="utf-8")
    sources = re.findall(r'<img[^>]* src="([^"]*)"', page)
    assert len(sources) == 3 and all(src.startswith("data:image/png;base64,") for src in sources)
    assert "F does not equal c multiplied by s" in page and "not fully graded yet (1): bob" in page.lower()
    assert "4 students (3 submitted, 1 no submission)" in page and "No submission (1): dee." in page
    dee = re.search(r"<tr><td class='l'>dee</td>(.*?)</tr>", page).group(1)
    assert "no submission" in dee and dee.endswith("<td>0</td>")
    for chart in ("totals_histogram", "questions", "failed_checks"):
        assert (out / f"{chart}.png").read_bytes().startswith(b"\x89PNG"), chart


def test_report_shows_a_students_text_as_text_under_a_policy_that_runs_nothing():
    from grading.reports.class_report import render_html

    hostile = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    page = render_html(
        {"eve": {"q1": 0}},
        {"q1": 2.0},
        question_stats({"eve": {"q1": 0}}, {"q1": 2.0}),
        [{"check": "q1_test", "feedback": hostile, "students": ["eve"]}],
        {name: b"\x89PNG" for name in ("totals_histogram", "questions", "failed_checks")},
    )
    assert "<script>" not in page and "<img src=x" not in page and "&lt;img src=x onerror" in page
    policy = re.search(r"<meta http-equiv='Content-Security-Policy' content=\"([^\"]+)\">", page).group(1)
    assert "default-src 'none'" in policy and "script-src" not in policy
