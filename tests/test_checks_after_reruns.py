"""The public checks of Questions 1 and 2 stay right when students run cells again, in the orders they are likely to
use: each check passes when the state is right, and otherwise names the cell to run again.

Each scenario runs the solution's cells, by grade id (or a cell of code), in a forked IPython shell, and runs a
question's public check where the scenario says, as a student's test cell does.
"""

import multiprocessing
import os
import sys

import nbformat
import pytest

from grading.checks.backprop_questions import PUBLIC
from grading.checks.judge import HIDDEN, NotebookStudent, grade_id, run_check
from grading.course_kit.submissions import SOURCE_NOTEBOOK

CHECK = {"check q1a": "q1a_test_graph", "check q1b": "q1b_test_gradients", "check q2": "q2_test_gradients"}


def _cells():
    nb = nbformat.read(str(SOURCE_NOTEBOOK), as_version=4)
    return {grade_id(c): HIDDEN.sub("", c.source) for c in nb.cells if c.cell_type == "code" and grade_id(c)}


def _run(steps, pipe):
    """In a forked child: run the steps and send the (passed, sentence) of each check step."""
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    try:
        from IPython.core.interactiveshell import InteractiveShell

        os.chdir(SOURCE_NOTEBOOK.parent)
        sys.path.insert(0, "")
        shell = InteractiveShell.instance()
        cells, verdicts = _cells(), []
        shell.run_cell(cells["imports"].replace("%matplotlib inline", ""), silent=True, store_history=False)
        for step in steps:
            if step in CHECK:
                gid = CHECK[step]
                verdicts.append(run_check(PUBLIC[gid], NotebookStudent(shell.user_ns, "rerun", gid)))
            else:
                shell.run_cell(cells.get(step, step), silent=True, store_history=False)
        pipe.send(verdicts)
    except BaseException as error:  # noqa: BLE001 - reported to the parent
        pipe.send([(False, f"the scenario failed: {error!r}")])
    finally:
        pipe.close()
        os._exit(0)


def checks_along(*steps):
    """The (passed, sentence) of each check step, running the steps in order in a new shell."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_run, args=(steps, send))
    child.start()
    send.close()
    try:
        return receive.recv()
    finally:
        child.join()


@pytest.mark.parametrize(
    "steps, says",
    [
        # Question 2's cell rebinds x, y, c and F
        (("q1a_answer", "check q1a", "q2_answer", "check q1a", "q1a_answer", "check q1a"), "Question 1a's answer cell"),
        # after the given demo: a second backward, then the gradients zeroed
        (
            ("q1a_answer", "q1b_answer", "check q1b", "q1b_retain_graph_demo", "check q1b")
            + ("q1a_answer", "q1b_answer", "check q1b"),
            "Question 1a's answer cell",
        ),
        # Question 1b's cell run twice
        (("q1a_answer", "q1b_answer", "q1b_answer", "check q1b", "q1a_answer", "q1b_answer", "check q1b"), "once"),
        # first without retain_graph, then the fixed cell run on the freed graph (PyTorch raises)
        (
            ("q1a_answer", "F.backward()", "q1b_answer", "check q1b", "q1a_answer", "q1b_answer", "check q1b"),
            "run Question 1a's answer cell again",
        ),
        # Question 1 run again after Question 2
        (
            ("q1a_answer", "check q1a", "q2_answer", "check q2", "q1a_answer", "check q1a", "check q2")
            + ("q2_answer", "check q2"),
            "run Question 2's answer cell again",
        ),
    ],
    ids=[
        "q1a-after-question-2",
        "q1b-after-the-demo",
        "q1b-after-two-backward-passes",
        "q1b-after-a-backward-without-retain-graph",
        "q2-after-question-1-again",
    ],
)
def test_a_check_after_a_rerun_names_the_cell_to_run_again_and_passes_once_it_ran(steps, says):
    verdicts = checks_along(*steps)
    assert [passed for passed, _ in verdicts] == [True] * (len(verdicts) - 2) + [False, True], verdicts
    assert says in verdicts[-2][1], verdicts


def test_question_1a_check_after_question_2_does_not_blame_question_1a_answer():
    (_, _), (passed, sentence) = checks_along("q1a_answer", "check q1a", "q2_answer", "check q1a")
    assert not passed and "x squared" not in sentence and "Question 2" in sentence, sentence
