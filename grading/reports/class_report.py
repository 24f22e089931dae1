"""The class report: grades.csv (student × question) and report.html with its charts, from the gradebook.

report.html is self-contained (charts embedded as PNG); each chart is also written as a PNG file.
The checks that failed most come from the autograded notebooks: the error output of each test cell,
which is the text students see in their feedback. Students of the roster (the gradebook's students, imported from
students.csv) who submitted nothing are listed with 0 and "no submission"; charts and statistics count submissions.
"""

import argparse
import base64
import csv
import io
import re
import statistics
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import cast

import jinja2
import markupsafe
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402 (the axes' default locator, AutoLocator, is one)

from grading.course_kit.submissions import ASSIGNMENT, ROOT, grade_id  # noqa: E402

from .class_grades import class_scores, question_points, students_without_submission  # noqa: E402

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PASS_COLOUR, MEAN_COLOUR, FAIL_COLOUR = "#2e7d32", "#1565c0", "#c62828"


# ---------------------------------------------------------------------------------------------- data


def feedback_text(output):
    """The text a student sees for an error output: our one-sentence "✗ ..." message, or the error's last line."""
    lines = [_ANSI.sub("", line).strip() for line in "\n".join(output.get("traceback", [])).splitlines()]
    lines = [line for line in lines if line]
    for line in lines:
        if line.startswith("✗"):
            return line
    if lines:
        return lines[-1]
    return f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".strip()


def failed_checks(autograded_dir, assignment=ASSIGNMENT):
    """Test cells that failed, most failed first: [{check, feedback, students}], one entry per distinct message."""
    failures = defaultdict(set)
    for path in sorted(Path(autograded_dir).glob(f"*/{assignment}/*.ipynb")):
        student = path.parent.parent.name
        for cell in nbformat.read(str(path), as_version=4).cells:
            if cell.cell_type != "code" or not cell.metadata.get("nbgrader", {}).get("grade"):
                continue
            for output in cell.get("outputs", []):
                if output.output_type == "error":
                    failures[(grade_id(cell), feedback_text(output))].add(student)
    checks = [
        {"check": check, "feedback": text, "students": sorted(students)} for (check, text), students in failures.items()
    ]
    return sorted(checks, key=lambda c: (-len(c["students"]), c["check"], c["feedback"]))


def total(scores_of_student):
    """Points of a student over the questions graded so far."""
    return sum(s for s in scores_of_student.values() if s is not None)


def question_stats(scores, points):
    """question -> {points, mean, pass_rate, graded}: mean score and share of full marks among graded students."""
    stats = {}
    for question, max_points in points.items():
        graded = [s[question] for s in scores.values() if s.get(question) is not None]
        stats[question] = {
            "points": max_points,
            "graded": len(graded),
            "mean": statistics.fmean(graded) if graded else None,
            "pass_rate": sum(1 for g in graded if g >= max_points) / len(graded) if graded else None,
        }
    return stats


def write_grades_csv(path, scores, points, absent=()):
    """One row per student, one column per question (empty: not graded yet), the total, and a note: "no submission"
    for the students in `absent` (0 everywhere), "manual grading pending" for those not fully graded."""
    rows = []
    for student in scores:
        row = [student]
        for question in points:
            score = scores[student].get(question)
            row.append("" if score is None else f"{score:g}")
        pending = any(scores[student].get(q) is None for q in points)
        rows.append(row + [f"{total(scores[student]):g}", "manual grading pending" if pending else ""])
    rows += [[student, *["0"] * len(points), "0", "no submission"] for student in absent]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", *points, "total", "note"])
        writer.writerows(sorted(rows))


# -------------------------------------------------------------------------------------------- charts


def totals_histogram(scores, points):
    """Histogram of the students' totals on a 0..maximum axis, median marked."""
    maximum = sum(points.values())
    totals = [total(s) for s in scores.values()]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    bins = [i for i in range(int(maximum) + 2)]
    ax.hist(totals, bins=bins, color=MEAN_COLOUR, edgecolor="white", align="left")
    if totals:
        median = statistics.median(totals)
        ax.axvline(median, color="black", linestyle="--", linewidth=1.2)
        ax.annotate(
            f"median {median:g}",
            (median, 1),
            xycoords=("data", "axes fraction"),
            xytext=(4, -14),
            textcoords="offset points",
            fontsize=9,
        )
    ax.set_xlim(-0.7, maximum + 0.7)
    ax.set_xlabel(f"total points (out of {maximum:g})")
    ax.set_ylabel("students")
    cast(MaxNLocator, ax.xaxis.get_major_locator()).set_params(integer=True)
    cast(MaxNLocator, ax.yaxis.get_major_locator()).set_params(integer=True)
    ax.set_title(f"Totals of {len(totals)} students")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def questions_chart(stats, students):
    """Per question: mean score as a share of its points, and its pass rate (share of students with full marks)."""
    questions = list(stats)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(questions) + 1.6))
    height = 0.38
    for offset, key, colour, label in (
        (-height / 2, "mean", MEAN_COLOUR, "mean score (% of points)"),
        (height / 2, "pass_rate", PASS_COLOUR, "pass rate (% with full marks)"),
    ):
        values = []
        for q in questions:
            v = stats[q][key]
            values.append(0 if v is None else (v / stats[q]["points"] if key == "mean" else v) * 100)
        ys = [i + offset for i in range(len(questions))]
        ax.barh(ys, values, height=height, color=colour, label=label)
        for y, v, q in zip(ys, values, questions):
            text = "not graded" if stats[q][key] is None else f"{v:.0f}%"
            ax.text(v + 1, y, text, va="center", fontsize=8)
    ax.set_yticks(
        range(len(questions)),
        [
            f"{q} ({stats[q]['points']:g} pt"
            + (f", {stats[q]['graded']}/{students} graded)" if stats[q]["graded"] < students else ")")
            for q in questions
        ],
    )
    ax.invert_yaxis()
    ax.set_xlim(0, 112)
    ax.set_xticks(range(0, 101, 20))
    ax.set_xlabel("%")
    ax.set_title("Questions: mean score and pass rate", pad=24)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def failed_checks_chart(checks, students, top=10):
    """The test cells that failed for the most students (all their messages together)."""
    by_check = defaultdict(set)
    for c in checks:
        by_check[c["check"]].update(c["students"])
    shown = sorted(by_check.items(), key=lambda item: (-len(item[1]), item[0]))[:top]
    fig, ax = plt.subplots(figsize=(7, 0.42 * max(len(shown), 1) + 1.4))
    if shown:
        counts = [len(who) for _, who in shown]
        ax.barh(range(len(shown)), counts, color=FAIL_COLOUR)
        for i, n in enumerate(counts):
            ax.text(n + 0.05, i, str(n), va="center", fontsize=8)
        ax.set_yticks(range(len(shown)), [check for check, _ in shown])
        ax.invert_yaxis()
        ax.set_xlim(0, max(students, max(counts)) + 0.5)
        cast(MaxNLocator, ax.xaxis.get_major_locator()).set_params(integer=True)
    else:
        ax.text(0.5, 0.5, "no check failed", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_xlabel(f"students (of {students}) who failed the check")
    ax.set_title("Checks that failed most")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def save_chart(fig, path):
    """Write fig as PNG at path and return the PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    Path(path).write_bytes(buffer.getvalue())
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------- html

# the page's template, beside this file; autoescape: every value put in the page is escaped
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def _png_url(png):
    return f"data:image/png;base64,{base64.b64encode(png).decode()}"


def _pct(value):
    return "–" if value is None else f"{value * 100:.0f}%"


REPORT_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def render_html(scores, points, stats, checks, charts, assignment=ASSIGNMENT, absent=()):
    """The report as one HTML page (class_report.html.j2); charts: name -> PNG bytes; absent: students of the roster
    with no submission."""
    maximum = sum(points.values())
    ungraded = sorted(s for s, by_q in scores.items() if any(by_q.get(q) is None for q in points))
    students = f"{len(scores)} students"
    if absent:
        students = f"{len(scores) + len(absent)} students ({len(scores)} submitted, {len(absent)} no submission)"
    questions = [
        {
            "name": q,
            "points": f"{s['points']:g}",
            "mean": "–" if s["mean"] is None else f"{s['mean']:.2g}",
            "pass_rate": _pct(s["pass_rate"]),
            "graded": s["graded"],
        }
        for q, s in stats.items()
    ]
    grades = []
    for student in sorted(scores):
        cells = []
        for q, p in points.items():
            score = scores[student].get(q)
            kind = "" if score is None else "full" if score >= p else "zero" if score == 0 else ""
            cells.append({"score": None if score is None else f"{score:g}", "kind": kind})
        grades.append({"student": student, "cells": cells, "total": f"{total(scores[student]):g}"})
    return _TEMPLATES.get_template("class_report.html.j2").render(
        # a constant of this module, not a value from the class: written as it is (its quotes are single)
        policy=markupsafe.Markup(REPORT_POLICY),
        assignment=assignment,
        students=students,
        maximum=f"{maximum:g}",
        today=date.today().isoformat(),
        absent=sorted(absent),
        ungraded=ungraded,
        charts={name: _png_url(png) for name, png in charts.items()},
        questions=questions,
        checks=checks,
        points={q: f"{p:g}" for q, p in points.items()},
        grades=grades,
    )


def write_report(out_dir, db_url, autograded_dir, points=None, assignment=ASSIGNMENT):
    """Write grades.csv, report.html and the charts' PNG files into out_dir; returns the path of report.html."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    points = points if points is not None else question_points()
    scores = class_scores(db_url, assignment)
    absent = students_without_submission(db_url, assignment)
    stats = question_stats(scores, points)
    checks = failed_checks(autograded_dir, assignment)
    write_grades_csv(out / "grades.csv", scores, points, absent)
    charts = {
        "totals_histogram": save_chart(totals_histogram(scores, points), out / "totals_histogram.png"),
        "questions": save_chart(questions_chart(stats, len(scores)), out / "questions.png"),
        "failed_checks": save_chart(failed_checks_chart(checks, len(scores)), out / "failed_checks.png"),
    }
    report = out / "report.html"
    report.write_text(render_html(scores, points, stats, checks, charts, assignment, absent), encoding="utf-8")
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=f"sqlite:///{ROOT / 'gradebook.db'}", help="gradebook URL")
    parser.add_argument("--autograded", type=Path, default=ROOT / "autograded", help="autograded notebooks")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "report", help="output folder")
    args = parser.parse_args()
    report = write_report(args.out, args.db, args.autograded)
    print(f"wrote {report} and grades.csv, totals_histogram.png, questions.png, failed_checks.png beside it")


if __name__ == "__main__":
    main()
