"""The hidden checks of the assignment "backprop": one function per autograded test cell, run by the judge.

Not shipped: they hold the points and data the notebook never shows and what is expected there. Questions 1a, 1b
and 2 state every value they ask for, so their checks are the public ones (grading/checks/backprop_public_checks.py);
the judging functions the public checks share are imported from there too.

Each check draws its points from `student.rng`, asks the student's kernel once (`student.ask`), and judges the
plain data that comes back (grading/checks/judge.py). It returns the sentence shown when it passes, or raises Feedback
with the sentence shown when it fails. Checks call the student's functions at points and on data the notebook
never shows; messages name only values the questions state.
"""

import math

import numpy as np

from .answer_data import Feedback, kind, kind_in_words, near, number, numbers, tolerance
from .backprop_public_checks import (
    MAX_STEPS,
    SHOWN_SWEEP_POINTS,
    SWEEP_GRAPHS,
    _call,
    _called,
    _describe,
    _f32,
    _forward_result,
    gradient_pair,
    judge_model,
    judge_records,
    judge_sgd_steps,
    judge_sweep,
    learning_choices,
    sgd_step_requests,
    sweep_requests,
)


def _point(rng, low, high, avoid=()):
    """A point coordinate with two decimals in [low, high], away from the values in `avoid`."""
    while True:
        value = round(rng.uniform(low, high), 2)
        if all(abs(value - a) > 0.2 for a in avoid):
            return value


# --- Question 1, forward mode --------------------------------------------------------------------------------------
def _forward_answers(student, function, count, low_x, high_x):
    points = [
        (_point(student.rng, low_x, high_x, avoid=(0.0, 2.0)), _point(student.rng, -2.5, 4.5, avoid=(3.0,)))
        for _ in range(count)
    ]
    answers = student.ask([_call(function, x0, y0, forward_only=True, tensor_retry=True) for x0, y0 in points])
    return points, answers


def check_q1fwd(student):
    """dF_dx_forward(x0, y0) gives dF/dx of F = x²(x + y) at new points, by forward mode only."""
    points, answers = _forward_answers(student, "dF_dx_forward", 3, -2.5, 2.5)
    for (x0, y0), answer in zip(points, answers):
        result = _forward_result(answer, "dF_dx_forward")
        got = numbers(result)
        if got is None or len(got) != 1:
            raise Feedback(
                "dF_dx_forward should return one number (a float or a one-element tensor); at a point "
                f"other than (2, 3) it returned {kind_in_words(result)}."
            )
        got, tol = number(result, "dF_dx_forward's result"), tolerance(result, 1e-4)
        if near(got, 3 * x0 * x0 + 2 * x0 * y0, tol):
            continue
        if near(got, 24.0):
            raise Feedback(
                "dF_dx_forward returns 24 at every point: compute the derivative from x0 and y0 instead "
                "of typing in its value at (2, 3)."
            )
        if near(got, x0 * x0 * (x0 + y0), 1e-4):
            raise Feedback(
                "dF_dx_forward returns the value of F: return its tangent, the derivative carried along with the value."
            )
        if near(got, x0 * x0, 1e-4):
            raise Feedback("dF_dx_forward returns dF/dy: give x the tangent 1 and y the tangent 0.")
        raise Feedback(
            "dF_dx_forward gives a wrong dF/dx at points other than (2, 3): follow c = x², s = x + y, "
            "F = c · s, with the tangent of x set to 1 and that of y to 0, starting from x0 and y0."
        )
    return "dF_dx_forward gives dF/dx by forward mode at points other than (2, 3)."


# --- Question 2, forward mode --------------------------------------------------------------------------------------
def check_q2fwd(student):
    """grad_forward(x0, y0) gives (dF/dx, dF/dy) of F = ln x + x²y + y² at new points, by forward mode only."""
    points, answers = _forward_answers(student, "grad_forward", 3, 0.2, 3.5)
    for (x0, y0), answer in zip(points, answers):
        result = _forward_result(answer, "grad_forward")
        got = gradient_pair(result, "at a point other than (2, 3) ")
        dx, dy = 1 / x0 + 2 * x0 * y0, x0 * x0 + 2 * y0
        first = result.get("items", [result])[0] if kind(result) == "list" and result.get("items") else result
        tol = tolerance(first, 1e-4)
        if near(got[0], dx, tol) and near(got[1], dy, tol):
            continue
        if near(got[0], dy, 1e-4) and near(got[1], dx, 1e-4):
            raise Feedback("grad_forward returns (dF/dy, dF/dx): return dF/dx first.")
        if near(got[0], 12.5) and near(got[1], 10.0):
            raise Feedback(
                "grad_forward returns the derivatives at (2, 3) at every point: compute them from x0 and y0."
            )
        if near(got[0], dx + dy, 1e-4) or near(got[1], dx + dy, 1e-4):
            raise Feedback(
                "grad_forward returns dF/dx + dF/dy: one pass with the tangents (1, 1) adds the two "
                "derivatives; use (1, 0) for dF/dx and (0, 1) for dF/dy."
            )
        if near(got[0], 1 / (x0 * math.log(10)) + 2 * x0 * y0, 1e-4):
            raise Feedback("grad_forward differentiates log10: ln is the natural logarithm, torch.log.")
        wrong = "dF/dx" if not near(got[0], dx, 1e-4) else "dF/dy"
        raise Feedback(
            f"grad_forward gives a wrong {wrong} at points other than (2, 3): follow a = ln x, b = x²y, "
            "c = y², F = a + b + c from x0 and y0, and give the input you differentiate by the tangent 1 "
            "and the other 0."
        )
    return "grad_forward gives (dF/dx, dF/dy) by forward mode at points other than (2, 3)."


# --- Question 3 -----------------------------------------------------------------------------------------------------
def check_q3(student):
    """sgd_step(w, x_B, y_B, learning_rate) returns the MSE before the update and moves w in place, twice in a row,
    on mini-batches the notebook never shows."""
    rng = student.rng
    lr = round(rng.uniform(0.1, 0.4), 2)
    w0 = [_f32(rng.uniform(-1, 1)) for _ in range(2)]
    batches = [
        ([[_f32(rng.random()) for _ in range(2)] for _ in range(4)], [_f32(rng.random()) for _ in range(4)])
        for _ in range(2)
    ]
    judge_sgd_steps(student.ask(sgd_step_requests(w0, batches, lr)), w0, batches, lr, "on a new mini-batch")
    return "sgd_step returns the mean squared error and takes one gradient step in place, twice in a row."


# --- Questions 4 and 5: training on data the notebook never shows ------------------------------------------------
# Question 4's starting weights in the notebook: the first torch.randn(2, 1) after torch.manual_seed(0)
NOTEBOOK_START = (1.5409960746765137, -0.293428897857666)


def notebook_data():
    """The notebook's N = 20 inputs and targets (its data cell, NumPy's generator seeded 42), as float32 arrays."""
    state = np.random.RandomState(42)
    grid = np.meshgrid(np.arange(0.0, 1.0, 0.1), np.arange(0.0, 1.0, 0.1), sparse=False, indexing="ij")
    inputs = np.vstack(tuple(map(np.ravel, grid))).T
    targets = inputs.dot(np.array([[0.4], [0.2]])) + 1e-2 * (state.rand(inputs.shape[0], 1) - 0.5)
    sample = state.randint(0, 100, 20)
    return inputs[sample].astype(np.float32), targets[sample, 0].astype(np.float32)


def least_squares(inputs, targets):
    return [float(v) for v in np.linalg.lstsq(inputs.astype(np.float64), targets.astype(np.float64), rcond=None)[0]]


def fresh_targets(rng):
    """Targets for the notebook's inputs from weights the notebook never shows, and their least-squares weights.

    The inputs stay the notebook's, so that a learning rate and step count that converge there converge here."""
    inputs = notebook_data()[0]
    true_w = np.array([0.4, 0.2])
    while max(abs(true_w[0] - 0.4), abs(true_w[1] - 0.2)) < 0.15:  # far enough from the notebook's weights
        true_w = np.array([rng.uniform(0.1, 0.7), rng.uniform(-0.1, 0.5)])
    noise = np.array([rng.random() for _ in range(len(inputs))])
    targets = (inputs.astype(np.float64) @ true_w + 1e-2 * noise).astype(np.float32)
    return inputs, targets, least_squares(inputs, targets)


def start_like_the_notebook(best):
    """Starting weights as far from `best`, in the same direction, as the notebook's start is from its optimum:
    the same training problem as the notebook's, with other numbers."""
    inputs, targets = notebook_data()
    optimum = least_squares(inputs, targets)
    return [[_f32(b + s - o)] for b, s, o in zip(best, NOTEBOOK_START, optimum)]


def check_q4(student):
    """train_sgd with the notebook's learning_rate and steps brings w within 0.05 of the least-squares weights of
    data the notebook never shows, recording losses and weights as it goes."""
    inputs, targets, best = fresh_targets(student.rng)
    w0 = start_like_the_notebook(best)
    answers = student.ask(
        _describe("learning_rate", "steps")
        + [
            _call(
                "train_sgd",
                {"tensor": inputs.tolist()},
                {"tensor": [[float(t)] for t in targets]},
                {"tensor": w0, "requires_grad": True, "as": "w"},
                {"global": "learning_rate"},
                {"global": "steps", "at_most": MAX_STEPS},
                4,
                refs=["w"],
            )
        ]
    )
    learning_choices(answers[0], answers[1])
    result, error, _, refs = _called(answers[2], "train_sgd", "(x, y, w, learning_rate, steps, batch_size)")
    if error is not None:
        raise Feedback(f"train_sgd raised {error[0]} on data other than the notebook's: {error[1]}")
    items = result.get("items") if kind(result) == "list" else None
    if not (isinstance(items, list) and len(items) == 2):
        raise Feedback("train_sgd should return two things, losses and weights (the records made every 10 steps).")
    judge_records(items[0], items[1], refs.get("w"), [row[0] for row in w0], best, "On data other than the notebook's")
    return (
        "train_sgd, with your learning_rate and steps, trains w to the least-squares weights of data the "
        "notebook never shows."
    )


def check_q5(student):
    """train_model(x, y) returns a Linear(2, 1) without bias that a torch.optim optimizer trained to within 0.05 of
    the least-squares weights of data the notebook never shows."""
    inputs, targets, best = fresh_targets(student.rng)
    answers = student.ask(
        [
            _call(
                "train_model",
                {"tensor": inputs.tolist()},
                {"tensor": [[float(t)] for t in targets]},
                watch_optimizers=True,
            )
        ]
    )
    result, error, _, _ = _called(answers[0], "train_model", "(x, y)")
    if error is not None:
        raise Feedback(f"train_model raised {error[0]} on data other than the notebook's: {error[1]}")
    judge_model(result, best, "On data other than the notebook's")
    return "train_model trains the model with a torch.optim optimizer on data the notebook never shows."


# --- Question 1, reverse mode by hand ------------------------------------------------------------------------------
def exact_adjoints(function, x, y):
    """Every node's adjoint, from the derivatives worked out on paper (the tests compare them with PyTorch's)."""
    if function == "adjoints_F":  # F = x²(x + y)
        return {"F": 1.0, "c": x + y, "s": x * x, "x": 3 * x * x + 2 * x * y, "y": x * x}
    return {"G": 1.0, "v": x * y, "u": 2 * x * y + x, "x": 2 * x * y * y + 2 * x * y, "y": 2 * x * x * y + x * x}


def check_q1rev(student):
    """adjoints_F and adjoints_G give every node's adjoint at new points, by the student's own sweep."""
    shown = [v for point in SHOWN_SWEEP_POINTS for v in point]
    points = [
        (_point(student.rng, -2.5, 2.5, avoid=shown), _point(student.rng, -2.5, 2.5, avoid=shown)) for _ in range(2)
    ]
    answers = iter(student.ask(sweep_requests(points)))
    for x0, y0 in points:
        for function in SWEEP_GRAPHS:
            expected, stated = exact_adjoints(function, x0, y0), exact_adjoints(function, *SHOWN_SWEEP_POINTS[0])
            judge_sweep(next(answers), function, expected, x0, y0, "at a point the notebook never shows", stated)
    return (
        "adjoints_F and adjoints_G give every node's adjoint by your own reverse sweep at points the notebook "
        "never shows."
    )
