"""The judge's checks, in-process: the submission catalogue's verdicts, and how unusable answers are scored.

The same checks and parser that grade submissions run here on notebooks executed in a forked IPython shell
(tests/support/in_process.py); the slow pipeline tests prove the same verdicts through the sandbox and nbgrader.
"""

import json
import math
import random
import re

import pytest

from grading.checks import backprop_checks
from grading.checks.answer_data import Unanswered
from grading.checks.backprop_public_checks import sweep_order, torch_adjoints
from grading.checks.backprop_questions import CHECKS
from grading.checks.judge import Answered, parse_answers, questions_for, run_check
from grading.course_kit.submission_catalogue import AUTOGRADED, BUILDS_ON, CORRECT, WRONG
from grading.course_kit.submissions import build_submission, solution_answers
from support.in_process import judged_all

QUESTION = {gid: gid.split("_")[0] for gid in CHECKS}
SOLUTION = solution_answers()


@pytest.fixture(scope="module")
def catalogue_verdicts(catalogue_all):
    return catalogue_all[0]


@pytest.fixture(scope="module")
def catalogue_all():
    """(hidden, public): name -> {question: (passed, sentence)} for the solution, the blank release and every
    catalogue entry, from the hidden checks and from the public checks students run."""
    notebooks = {"perfect": build_submission(SOLUTION), "blank-release": build_submission({})}
    notebooks.update({name: build_submission({**SOLUTION, **answers}) for name, answers in CORRECT.items()})
    notebooks.update({name: build_submission({**SOLUTION, **answers}) for name, (_, answers) in WRONG.items()})
    results = judged_all(notebooks)
    return {
        name: {QUESTION.get(gid, gid): verdict for gid, verdict in verdicts.items() if ":" not in gid}
        for name, verdicts in results.items()
    }, {
        name: {QUESTION[gid.split(":")[1]]: verdict for gid, verdict in verdicts.items() if gid.startswith("public:")}
        for name, verdicts in results.items()
    }


@pytest.fixture(scope="module")
def public_verdicts(catalogue_all):
    return catalogue_all[1]


def test_checks_pass_the_solution_and_fail_the_blank_release(catalogue_verdicts):
    assert {q: v[0] for q, v in catalogue_verdicts["perfect"].items()} == {q: True for q in AUTOGRADED}, (
        catalogue_verdicts["perfect"]
    )
    assert {q: v[0] for q, v in catalogue_verdicts["blank-release"].items()} == {q: False for q in AUTOGRADED}


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_check_accepts_a_correct_answer_written_differently(catalogue_verdicts, name):
    failed = {q: v[1] for q, v in catalogue_verdicts[name].items() if not v[0]}
    assert not failed, failed


@pytest.mark.parametrize("name", sorted(WRONG))
def test_check_catches_the_wrong_answer_and_only_it(catalogue_verdicts, name):
    question = WRONG[name][0]
    verdicts = catalogue_verdicts[name]
    assert not verdicts[question][0], f"{name} passed {question}"
    collateral = {
        q: v[1] for q, v in verdicts.items() if not v[0] and q != question and question not in BUILDS_ON.get(q, set())
    }
    assert not collateral, collateral


def test_public_checks_pass_the_solution_and_fail_the_blank_release(public_verdicts):
    assert {q: v[0] for q, v in public_verdicts["perfect"].items()} == {q: True for q in AUTOGRADED}, public_verdicts[
        "perfect"
    ]
    assert {q: v[0] for q, v in public_verdicts["blank-release"].items()} == {q: False for q in AUTOGRADED}


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_public_checks_never_flag_a_correct_answer(public_verdicts, name):
    failed = {q: v[1] for q, v in public_verdicts[name].items() if not v[0]}
    assert not failed, failed


def test_public_checks_flag_nine_in_ten_wrong_answers_before_submission(public_verdicts):
    """What Validate says: most mistakes show at the questions' own values; the rest only at the grader's points."""
    missed = sorted(name for name, (question, _) in WRONG.items() if public_verdicts[name][question][0])
    assert len(missed) <= len(WRONG) // 10, missed


@pytest.mark.parametrize("name", sorted(WRONG))
def test_public_checks_flag_no_question_a_wrong_answer_does_not_touch(public_verdicts, name):
    question = WRONG[name][0]
    collateral = {
        q: v[1]
        for q, v in public_verdicts[name].items()
        if not v[0] and q != question and question not in BUILDS_ON.get(q, set())
    }
    assert not collateral, collateral


@pytest.mark.parametrize(
    "name, fix",
    [
        ("q5-no-zero-grad", "optimizer.zero_grad()"),
        ("q1rev-overwrites-the-adjoint-of-a-node-used-twice", "adds one term per edge, with +="),
        ("q1rev-G-keeps-only-the-direct-edge-of-u", "one term per edge"),
        ("q1rev-sweep-by-backward-and-retain-grad", "do the sweep yourself"),
        ("q1rev-local-derivatives-of-the-product-swapped", "the other factor"),
        ("q1rev-adjoints-typed-in-at-2-3", "compute them from x0 and y0"),
        ("q4-learning-rate-diverges", "smaller learning rate"),
        ("q4-trains-the-global-data-not-its-arguments", "the x and y passed to train_sgd"),
        ("q4-hard-coded-weights-with-invented-records", "record a copy of w"),
        ("q5-weights-typed-in-with-a-no-op-optimizer-step", "rather than typing them in"),
        ("q4-seed-learning-rate-and-epochs", "larger learning rate"),
    ],
)
def test_hints_point_toward_the_fix_before_and_after_submission(catalogue_verdicts, public_verdicts, name, fix):
    question = WRONG[name][0]
    for verdicts in (catalogue_verdicts, public_verdicts):
        passed, sentence = verdicts[name][question]
        assert not passed and fix in sentence, sentence


def test_a_given_training_cell_that_crashed_is_reported_as_a_crash(public_verdicts):
    passed, sentence = public_verdicts["q4-mini-batch-indexes-past-the-end-of-the-data"]["q4"]
    assert not passed and "stopped with an error" in sentence and "IndexError" in sentence, sentence
    assert "not defined" not in sentence


def test_failure_messages_state_no_value_the_questions_do_not_give(catalogue_verdicts):
    """Messages may name 2, 3, 24, 12.5, 10, 0.05, (0.4, 0.2) and the like; never a hidden point or expected value."""
    for name, verdicts in catalogue_verdicts.items():
        for _, sentence in verdicts.values():
            decimals = set(re.findall(r"\d+\.\d+", sentence)) - {"2.0", "3.0", "0.05", "0.4", "0.2", "12.5"}
            assert not decimals, (name, sentence)


def test_each_check_asks_plain_json_and_draws_new_points_per_submission():
    nb = build_submission(SOLUTION)
    first, second = questions_for(nb, "seed-a", CHECKS), questions_for(nb, "seed-b", CHECKS)
    assert set(first) == set(CHECKS)
    for gid in CHECKS:
        json.dumps(first[gid], allow_nan=False)
    changed = [gid for gid in CHECKS if first[gid] != second[gid]]
    assert set(changed) >= {
        "q1fwd_test_values",
        "q2fwd_test_values",
        "q3_test_sgd_step",
        "q4_test_training",
        "q5_test_training",
        "q1rev_test_adjoints",
    }


@pytest.mark.parametrize("function", ["adjoints_F", "adjoints_G"])
def test_the_graders_adjoints_are_pytorchs_at_random_points(function):
    rng = random.Random(function)
    for _ in range(20):
        x0, y0 = rng.uniform(-3, 3), rng.uniform(-3, 3)
        exact, reference = backprop_checks.exact_adjoints(function, x0, y0), torch_adjoints(function, x0, y0)
        assert set(exact) == set(reference) == set(sweep_order(function))
        assert all(math.isclose(exact[n], reference[n], rel_tol=1e-9, abs_tol=1e-12) for n in exact), (x0, y0)


@pytest.mark.parametrize(
    "text, why",
    [
        (None, "no answer"),
        ("x" * (9 << 20), "too long"),
        ("{not json", "not readable"),
        ("[" * 100000, "not readable"),
        ("[]", "expected form"),
        ('[{"value": 1}, 2]', "expected form"),
        ('{"a": 1}', "expected form"),
    ],
)
def test_a_missing_or_malformed_answer_scores_zero_with_a_reason(text, why):
    passed, sentence = run_check(CHECKS["q1a_test_graph"], Answered("s", "q1a_test_graph", text, "no answer"))
    assert not passed and why in sentence, sentence


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", '"2.0"', "true", '{"a": 1}', "[2.0]"])
def test_a_value_that_is_not_a_finite_number_fails_its_question(value):
    answer = (
        f'[{{"result": {{"type": "number", "value": {value}}}, "error": null, "reverse_mode": false, "refs": {{}}}}]'
    )
    student = Answered("s", "q1fwd_test_values", None)
    requests = []

    def one_call(asked):
        requests.extend(asked)
        return parse_answers(
            json.dumps(json.loads(answer, parse_constant=lambda c: c) * len(asked))
            .replace('"NaN"', "NaN")
            .replace('"Infinity"', "Infinity")
            .replace('"-Infinity"', "-Infinity"),
            len(asked),
        )

    student._answers = one_call
    passed, sentence = run_check(CHECKS["q1fwd_test_values"], student)
    assert not passed, sentence


def test_json_constants_parse_to_floats_that_checks_refuse():
    data = parse_answers('[{"v": NaN}, {"v": Infinity}]', 2)
    assert math.isnan(data[0]["v"]) and data[1]["v"] == math.inf
    with pytest.raises(Unanswered):
        parse_answers('[{"v": NaN}]', 2)


def test_notebook_start_is_the_notebooks_first_random_weights():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    assert torch.randn(2, 1).reshape(-1).tolist() == list(backprop_checks.NOTEBOOK_START)


def test_notebook_data_is_what_the_notebooks_data_cell_makes(capsys):
    """The instructor notebook's data cell (grade id sgd_data), run as the notebook runs it (numpy and torch imported
    before it), makes the inputs and targets the checks take for the notebook's."""
    import nbformat
    import numpy as np
    import torch

    from grading.course_kit.submissions import SOURCE_NOTEBOOK

    nb = nbformat.read(str(SOURCE_NOTEBOOK), as_version=4)
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "sgd_data"]
    namespace = {"np": np, "torch": torch}
    exec(compile(cell.source, "sgd_data", "exec"), namespace)
    capsys.readouterr()  # what the cell prints
    inputs, targets = backprop_checks.notebook_data()
    assert inputs.shape == (20, 2) and targets.shape == (20,)
    assert (namespace["X_train"].numpy() == inputs).all()
    assert (namespace["y_train"].numpy()[:, 0] == targets).all()


def test_fresh_targets_are_never_those_of_the_notebook():
    import random

    for seed in range(200):
        _, _, best = backprop_checks.fresh_targets(random.Random(seed))
        assert max(abs(best[0] - 0.4), abs(best[1] - 0.2)) > 0.1


def _records(path):
    """Described losses, weights and final w of a training that recorded the weights `path` (rows of two)."""
    torch = pytest.importorskip("torch")
    from grading.checks.kernel_questions import describe

    losses = [1.0 / (i + 1) for i in range(len(path))]
    return describe(losses), describe(path), describe(torch.tensor([[path[-1][0]], [path[-1][1]]], requires_grad=True))


@pytest.mark.parametrize(
    "path, fix",
    [
        # steps that overshoot the valley: w jumps back and forth around (0.4, 0.2) and ends at (0.40, 0.125)
        (
            [[1.5, -0.3]] + [[0.4 + 0.2 * (-1) ** i, 0.2 - 0.15 * (-1) ** i] for i in range(40)] + [[0.4, 0.125]],
            "smaller",
        ),
        # steps too small: w creeps towards (0.4, 0.2) and is still on its way
        ([[1.5 - 0.01 * i, -0.3 + 0.004 * i] for i in range(60)], "larger learning rate"),
    ],
    ids=["jumps-back-and-forth", "creeps"],
)
def test_training_that_ends_short_is_told_which_way_to_change_the_learning_rate(path, fix):
    from grading.checks.answer_data import Feedback
    from grading.checks.backprop_public_checks import TRUE_WEIGHTS, judge_records

    with pytest.raises(Feedback) as told:
        judge_records(*_records(path), None, TRUE_WEIGHTS, "On the notebook's data")
    assert fix in str(told.value), told.value
