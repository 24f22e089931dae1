"""Write each declared question's test cell and points into the instructor notebook (run by `make release`).

    python -m grading.course_kit.question_cells [--check]

For every autograded question of grading/checks/backprop_questions.py the test cell (grade id `<key>_test_<test>`)
gets the source and points its declaration gives; a question whose test cell is missing gets one, placed right
after its answer cell. A manual question's answer cell gets its points. --check changes nothing and exits 1 when
the notebook differs from the declarations (the tests run it so).
"""

import argparse
import copy
import sys
from pathlib import Path

import nbformat

from grading.checks.backprop_questions import QUESTIONS
from grading.checks.questions import Question
from grading.course_kit.submissions import SOURCE_NOTEBOOK, grade_id


def test_cell_metadata(question: Question) -> dict:
    return {
        "grade": True,
        "grade_id": question.grade_id,
        "locked": True,
        "points": question.points,
        "schema_version": 3,
        "solution": False,
        "task": False,
    }


def with_declared_cells(nb, questions=QUESTIONS):
    """A copy of nb whose test cells and points are those the declarations give; ValueError for a question whose
    answer cell is missing."""
    nb = copy.deepcopy(nb)
    for question in questions:
        ids = [grade_id(cell) for cell in nb.cells]
        if question.answer_id not in ids:
            raise ValueError(f"{question.title} ({question.key}) has no answer cell with grade id {question.answer_id}")
        if not question.autograded:
            nb.cells[ids.index(question.answer_id)].metadata["nbgrader"]["points"] = question.points
            continue
        if question.grade_id in ids:
            cell = nb.cells[ids.index(question.grade_id)]
        else:
            cell = nbformat.v4.new_code_cell()
            cell.id = question.grade_id.replace("_", "-")
            nb.cells.insert(ids.index(question.answer_id) + 1, cell)
        cell.source = question.test_cell_source()
        cell.metadata["nbgrader"] = test_cell_metadata(question)
    return nb


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if the notebook differs")
    parser.add_argument("--notebook", type=Path, default=SOURCE_NOTEBOOK)
    args = parser.parse_args(argv)
    nb = nbformat.read(str(args.notebook), as_version=4)
    declared = with_declared_cells(nb)
    if declared == nb:
        return 0
    if args.check:
        print(f"{args.notebook}: test cells differ from grading/checks/backprop_questions.py; run make release")
        return 1
    nbformat.write(declared, str(args.notebook))
    print(f"wrote the declared test cells into {args.notebook}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
