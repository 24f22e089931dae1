"""The public checks of Questions 1 and 2 stay right when students run cells again, in the orders they are likely to
use: each check passes when the state is right, and otherwise names the cell to run again. Question 5's check reads
the model its given cell trained instead of training it again only in nbgrader's runs, where each cell runs once, in
order: in a student's session it trains again, so that a fixed train_model passes without the given cell run again.

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

CHECK = {
    "check q1a": "q1a_test_graph",
    "check q1b": "q1b_test_gradients",
    "check q2": "q2_test_gradients",
    "check q5": "q5_test_training",
}
# after Question 5's answer cell: train_model counts its calls in `calls` (the step "count calls" reports them)
COUNT_CALLS = """calls = []
_train_model = train_model
def train_model(x, y):
    calls.append(1)
    return _train_model(x, y)"""


def _cells():
    nb = nbformat.read(str(SOURCE_NOTEBOOK), as_version=4)
    return {grade_id(c): HIDDEN.sub("", c.source) for c in nb.cells if c.cell_type == "code" and grade_id(c)}


def _run(steps, run, pipe):
    """In a forked child: run the steps and send the (passed, sentence) of each check step (and of each "count
    calls": True and the number of calls). `run`: nbgrader's NBGRADER_EXECUTION ("autograde", "validate"), or None
    for a student's own session."""
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    os.environ.pop("NBGRADER_EXECUTION", None)
    if run is not None:
        os.environ["NBGRADER_EXECUTION"] = run
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
            elif step == "count calls":
                verdicts.append((True, str(len(shell.user_ns["calls"]))))
            else:
                shell.run_cell(cells.get(step, step), silent=True, store_history=False)
        pipe.send(verdicts)
    except BaseException as error:  # noqa: BLE001 - reported to the parent
        pipe.send([(False, f"the scenario failed: {error!r}")])
    finally:
        pipe.close()
        os._exit(0)


def checks_along(*steps, run=None):
    """The (passed, sentence) of each check step, running the steps in order in a new shell (in nbgrader's `run`)."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_run, args=(steps, run, send))
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


# Question 5, as a notebook runs it: the first check (Question 1a's test cell) before the given training cell
Q5_BEFORE = ("q1a_answer", "check q1a", "sgd_data")
Q5_SETUP = """_solution = train_model
def _not_reaching(x, y):
    model = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(model.weight)  # an optimizer too slow to take it near (0.4, 0.2)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    for t in range(50):
        optimizer.zero_grad()
        func.mse_loss(model(x), y).backward()
        optimizer.step()
    return model"""
Q5_NOT_REACHING = ("q5_answer", Q5_SETUP, "train_model = _not_reaching")
BY_HAND = """def train_model(x, y):
    model = torch.nn.Linear(2, 1, bias=False)
    for t in range(500):
        model.zero_grad()
        func.mse_loss(model(x), y).backward()
        with torch.no_grad():
            model.weight -= 0.5 * model.weight.grad
    return model"""


@pytest.mark.parametrize("run, calls", [("autograde", "2"), ("validate", "2"), (None, "3")])
def test_question_5_check_reads_the_given_cells_model_only_in_nbgraders_runs(run, calls):
    verdicts = checks_along(*Q5_BEFORE, "q5_answer", COUNT_CALLS, "q5_train", "check q5", "count calls", run=run)
    assert verdicts[1:] == [(True, verdicts[1][1]), (True, calls)], verdicts
    assert "on the notebook's data" in verdicts[1][1]


def test_question_5_check_passes_a_fixed_train_model_without_the_given_cell_run_again():
    verdicts = checks_along(
        *Q5_BEFORE,
        *Q5_NOT_REACHING,
        "q5_train",
        "check q5",
        "train_model = _solution",  # fixed: the answer cell run again, not the given cell
        "check q5",
    )
    assert [passed for passed, _ in verdicts[1:]] == [False, True], verdicts
    assert "On the notebook's data" in verdicts[1][1], verdicts


@pytest.mark.parametrize(
    "after, says, calls",
    [
        # never stepped by an optimizer: trained again, the same sentence
        (BY_HAND, "not updated by a torch.optim optimizer", "3"),
        # stepped: the given cell's model is read, not trained again, and the sentence is a new call's
        (Q5_SETUP + "\ntrain_model = _not_reaching", "On the notebook's data", "2"),
    ],
    ids=["by-hand", "not-reaching"],
)
def test_question_5_check_in_nbgraders_run_says_what_a_new_call_would(after, says, calls):
    steps = (*Q5_BEFORE, "q5_answer", after, COUNT_CALLS, "q5_train", "check q5", "count calls")
    kept, again = checks_along(*steps, run="autograde"), checks_along(*steps)
    assert kept[1] == again[1] and not kept[1][0] and says in kept[1][1], (kept, again)
    assert (kept[2][1], again[2][1]) == (calls, "3"), (kept, again)


def test_question_5_check_trains_again_when_the_kept_model_lost_its_stepped_weight():
    verdicts = checks_along(
        *Q5_BEFORE,
        "q5_answer",
        COUNT_CALLS,
        "q5_train",
        "model.weight = torch.nn.Parameter(torch.zeros(1, 2))",
        "check q5",
        "count calls",
        run="autograde",
    )
    assert verdicts[1:] == [(True, verdicts[1][1]), (True, "3")], verdicts
