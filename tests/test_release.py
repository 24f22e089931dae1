"""The student release: generated from source/, in sync, clean, and free of solutions and hidden tests."""

import filecmp
import re

import nbformat
import pytest

from grading.checks.backprop_questions import CHECKS, QUESTIONS
from grading.checks.questions import Question
from grading.course_kit.question_cells import with_declared_cells
from grading.course_kit.submissions import ASSIGNMENT, RELEASE_NOTEBOOK, ROOT, SOURCE_NOTEBOOK


def cells(path):
    return nbformat.read(str(path), as_version=4).cells


def strip_ids(path):
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        cell.pop("id", None)
    return nb


@pytest.mark.parametrize("path", [SOURCE_NOTEBOOK, RELEASE_NOTEBOOK], ids=["source", "release"])
def test_notebooks_are_stored_without_outputs(path):
    for cell in cells(path):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]


def solution_lines():
    """Lines written between BEGIN SOLUTION and END SOLUTION in the instructor notebook."""
    lines, inside = [], False
    for cell in cells(SOURCE_NOTEBOOK):
        for line in cell.source.splitlines():
            if "BEGIN SOLUTION" in line or "END SOLUTION" in line:
                inside = "BEGIN" in line
            elif inside and line.strip():
                lines.append(line.strip())
    return lines


def test_release_has_no_solution_code():
    release = cells(RELEASE_NOTEBOOK)
    assert not any("BEGIN SOLUTION" in cell.source for cell in release)
    code = [line.strip() for cell in release if cell.cell_type == "code" for line in cell.source.splitlines()]
    leaked = [line for line in solution_lines() if line in code]
    assert not leaked, f"solution lines in the release: {leaked}"


def test_release_has_no_hidden_tests():
    release = "\n".join(cell.source for cell in cells(RELEASE_NOTEBOOK))
    assert "HIDDEN TESTS" not in release
    assert "forward_only" not in release and "reference_step" not in release


SHIPPED = (
    "answer_data.py",
    "kernel_questions.py",
    "backprop_public_checks.py",
    "backprop_graph.py",
    "gradient_check.py",
)  # beside the notebook


def test_every_test_cell_runs_its_questions_public_check_and_says_what_it_checks():
    tests = [
        c for c in cells(RELEASE_NOTEBOOK) if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"
    ]
    assert [c.metadata["nbgrader"]["grade_id"] for c in tests] == list(CHECKS)
    for cell in tests:
        assert cell.source.startswith('"""Question ') and "check_here(" in cell.source, cell.source[:200]


def test_release_ships_the_public_checks_as_they_are_in_the_grading_package():
    for name in SHIPPED:
        package_file = (ROOT / "source" / ASSIGNMENT / name).resolve()  # source/ links to the grading package
        assert package_file.parent.parent == ROOT / "grading", package_file
        assert filecmp.cmp(ROOT / "release" / ASSIGNMENT / name, package_file, shallow=False), name


def test_release_states_nothing_beyond_the_questions():
    """No hidden check, hidden point, expected formula or unseen data in anything a student receives."""
    shipped = "\n".join(cell.source for cell in cells(RELEASE_NOTEBOOK))
    shipped += "\n".join((ROOT / "release" / ASSIGNMENT / name).read_text() for name in SHIPPED)
    for hidden in (
        "HIDDEN TESTS",
        "backprop_checks import",
        "check_q1fwd",
        "check_q2fwd",
        "check_q3",
        "check_q4",
        "check_q5",
        "fresh_targets",
        "least_squares",
        "NOTEBOOK_START",
        "start_like_the_notebook",
        "3 * x0",
        "x0 * x0",
        "1 / x0",
        "NotebookStudent(globals())",
    ):
        assert hidden not in shipped, hidden


def test_committed_release_equals_a_fresh_generation(course):
    fresh = course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert strip_ids(fresh) == strip_ids(RELEASE_NOTEBOOK), "release/ is stale: run `make release` and commit it"


def test_release_ships_the_question_1_figure_it_shows():
    figure = ROOT / "release" / ASSIGNMENT / "images" / "computational_graph.svg"
    assert 'src="images/computational_graph.svg"' in "".join(c.source for c in cells(RELEASE_NOTEBOOK))
    assert figure.exists() and "<svg" in figure.read_text()
    built = ROOT / "images" / "computational_graph.svg"
    assert filecmp.cmp(figure, built, shallow=False), "the release's figure differs from images/: run `make release`"


def test_test_cells_and_points_are_what_the_questions_declare():
    """make release writes them from grading/checks/backprop_questions.py; a hand edit, or a declaration changed
    without make release, fails here."""
    nb = nbformat.read(str(SOURCE_NOTEBOOK), as_version=4)
    assert with_declared_cells(nb) == nb
    release_points = {
        c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
        for c in cells(RELEASE_NOTEBOOK)
        if c.metadata.get("nbgrader", {}).get("grade")
    }
    assert release_points == {q.grade_id: q.points for q in QUESTIONS}


def test_each_questions_answer_cell_in_the_release_names_what_it_defines():
    answer_cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in cells(RELEASE_NOTEBOOK)}
    for question in QUESTIONS:
        for name in question.defines:
            assert re.search(rf"\b{re.escape(name)}\b", answer_cells[question.answer_id]), (question.key, name)


def test_a_question_without_an_answer_cell_is_refused_with_its_name():
    nb = nbformat.read(str(SOURCE_NOTEBOOK), as_version=4)
    extra = Question("q9", "Question 9", points=1, test="x", states="s", public=len, hidden=len)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Question 9"):
        with_declared_cells(nb, QUESTIONS + (extra,))
