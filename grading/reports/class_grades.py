"""Scores per student and question, read from the nbgrader gradebook, and printed as a table."""

import argparse
from collections import OrderedDict

import nbformat
from nbgrader.api import Gradebook, MissingEntry

from grading.course_kit.submissions import ASSIGNMENT, ROOT, SOURCE_NOTEBOOK, grade_id


def question_of(cell_name):
    """The question a grade cell belongs to: its grade id up to the first underscore (q1a_test_graph -> q1a)."""
    return cell_name.split("_")[0]


def question_points(source_notebook=SOURCE_NOTEBOOK):
    """Questions in notebook order with their maximum points."""
    points: OrderedDict[str, float] = OrderedDict()
    for cell in nbformat.read(str(source_notebook), as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            question = question_of(grade_id(cell))
            points[question] = points.get(question, 0) + float(meta["points"])
    return points


def class_scores(db_url, assignment=ASSIGNMENT):
    """student id -> question -> score (None where a manual grade is still to be given)."""
    scores = {}
    with Gradebook(db_url) as gradebook:
        for student in gradebook.students:
            try:
                notebook = gradebook.find_submission_notebook(assignment, assignment, student.id)
            except MissingEntry:
                continue
            by_question: dict[str, float | None] = {}
            for grade in notebook.grades:
                question = question_of(grade.name)
                ungraded = grade.manual_score is None and grade.auto_score is None
                if ungraded or by_question.get(question, 0) is None:
                    by_question[question] = None
                else:
                    by_question[question] = by_question.get(question, 0) + grade.score
            scores[student.id] = by_question
    return scores


def students_without_submission(db_url, assignment=ASSIGNMENT):
    """Ids of the gradebook's students (the roster, imported from students.csv) who submitted nothing, sorted."""
    with Gradebook(db_url) as gradebook:
        try:
            submitted = {s.student.id for s in gradebook.find_assignment(assignment).submissions}
        except MissingEntry:
            submitted = set()
        return sorted(student.id for student in gradebook.students if student.id not in submitted)


def format_table(scores, points, absent=()):
    """A plain-text table: one row per student, one column per question, then the total; students in `absent`
    (no submission) score 0 everywhere and say so."""
    header = ["student"] + list(points) + ["total"]
    rows = []
    for student in sorted(scores):
        row = [student]
        for question in points:
            score = scores[student].get(question)
            row.append("–" if score is None else f"{score:g}")
        known = [s for s in scores[student].values() if s is not None]
        row.append(f"{sum(known):g}/{sum(points.values()):g}")
        rows.append(row)
    for student in sorted(absent):
        rows.append([f"{student} (no submission)"] + ["0"] * len(points) + [f"0/{sum(points.values()):g}"])
    rows.insert(0, ["max"] + [f"{p:g}" for p in points.values()] + [f"{sum(points.values()):g}"])
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)) for r in [header] + rows]
    lines.append("(– : manually graded question not graded yet)")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default=f"sqlite:///{ROOT / 'gradebook.db'}", help="gradebook URL")
    args = parser.parse_args()
    print(format_table(class_scores(args.db), question_points(), students_without_submission(args.db)))


if __name__ == "__main__":
    main()
