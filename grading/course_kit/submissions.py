"""Build synthetic student submissions by filling the release's answer cells by grade id."""

import copy
import re
from pathlib import Path
from textwrap import dedent

import nbformat

ROOT = Path(__file__).resolve().parents[2]  # the course: grading/course_kit/ is two levels down
ASSIGNMENT = "backprop"
SOURCE_NOTEBOOK = ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
RELEASE_NOTEBOOK = ROOT / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"

_MARKER = re.compile(r"^\s*#*\s*(BEGIN|END) SOLUTION\s*$")


def training_loop(learning_rate, steps, body=None):
    """Question 4's answer as the solution writes it, with the given learning rate and number of steps (and, if
    given, another body of train_sgd)."""
    body = (
        body
        or """
            losses, weights = [], []
            for t in range(steps):
                sample = np.random.randint(0, len(x), batch_size)
                loss = sgd_step(w, x[sample], y[sample], learning_rate)
                if t % 10 == 0:
                    losses.append(loss)
                    weights.append(w.detach().reshape(-1).tolist())
            return losses, weights
    """
    )
    return f"""
        def train_sgd(x, y, w, learning_rate, steps, batch_size):
            {dedent(body).strip().replace(chr(10), chr(10) + " " * 12)}

        learning_rate = {learning_rate}
        steps = {steps}
    """


def grade_id(cell):
    """The nbgrader grade id of a cell, or None."""
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def solution_answers(source_notebook=SOURCE_NOTEBOOK):
    """The instructor's answers: grade id -> source of each solution cell, markers removed."""
    nb = nbformat.read(str(source_notebook), as_version=4)
    return {
        grade_id(cell): "\n".join(line for line in cell.source.splitlines() if not _MARKER.match(line))
        for cell in nb.cells
        if cell.metadata.get("nbgrader", {}).get("solution")
    }


def build_submission(answers, release_notebook=RELEASE_NOTEBOOK):
    """The release notebook with the answer cells named in `answers` replaced by their text."""
    nb = copy.deepcopy(nbformat.read(str(release_notebook), as_version=4))
    unknown = set(answers) - {grade_id(cell) for cell in nb.cells}
    if unknown:
        raise KeyError(f"no cell with grade id {sorted(unknown)} in {release_notebook}")
    for cell in nb.cells:
        if grade_id(cell) in answers:
            cell.source = answers[grade_id(cell)]
    return nb


def write_submission(course_root, student, nb):
    """Write nb as `student`'s submission of the assignment under course_root/submitted."""
    path = Path(course_root) / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path
