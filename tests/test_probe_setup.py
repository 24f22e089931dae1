"""The judge's probe setup: run in the kernel once, before its first probe, again if it did not end well, and none of
its output in the notebook."""

import json

import nbformat
import pytest

from grading.checks.judge import answer_in, probe_code, probe_setup
from support.sandbox_runs import run_json

pytestmark = pytest.mark.usefixtures("bubblewrap")  # skipped without bubblewrap, failed in CI (conftest.py)

SETUP = """
import builtins
builtins.setup_runs = getattr(builtins, "setup_runs", 0) + 1
print("printed by the setup")
if builtins.setup_runs == 1:
    raise RuntimeError("the first setup fails")
"""


def graded_cell(grade_id, source):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade_id": grade_id, "grade": True, "points": 1}
    return cell


def test_setup_runs_before_the_first_probe_and_again_only_after_it_failed():
    cells = [graded_cell(f"q{i}", f"x = {i}") for i in (1, 2, 3)]
    questions = {
        f"q{i}": f"import builtins; print('q{i} after', builtins.setup_runs, 'setups, x =', x)" for i in (1, 2, 3)
    }
    executed, outcome = run_json(*cells, questions=questions, probe_setup=SETUP)
    assert outcome.answers == {
        "q1": "q1 after 1 setups, x = 1\n",  # the setup failed, the probe is still asked
        "q2": "q2 after 2 setups, x = 2\n",  # so it runs again before the next probe, and ends well
        "q3": "q3 after 2 setups, x = 3\n",  # and never again
    }
    assert "printed by the setup" not in executed and "after" not in executed and "first setup" not in executed
    assert [c.outputs for c in nbformat.reads(executed, as_version=4).cells] == [[], [], []]


def test_the_judges_module_keeps_pythons_builtins_whatever_the_notebook_calls_builtins():
    cell = graded_cell(
        "q1", "import builtins\nx = [1, 2, 3]\n__builtins__ = dict(vars(builtins), len=lambda value: 99)"
    )
    questions = {"q1": probe_code([{"op": "describe", "name": "x"}], "nonce")}
    _, outcome = run_json(cell, questions=questions, probe_setup=probe_setup())
    (answer,) = json.loads(answer_in(outcome.answers["q1"], "nonce"))
    assert answer["value"]["type"] == "list" and answer["value"]["length"] == 3, answer
