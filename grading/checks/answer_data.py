"""Reading a kernel's answers (kernel_questions.py): every field's type is checked here. Shipped with the release.

An answer is untrusted plain data. These helpers turn it into the floats, shapes and flags a check compares,
or raise Feedback (the student's answer is wrong, said in one sentence) or Unanswered (there is no usable
answer at all). Numbers are compared with plain arithmetic on floats. A check asks through a Student: the
judge's (grading/checks/judge.py), or NotebookStudent, which asks the notebook's own globals in this process, as the
public checks beside the notebook and the instructor notebook's hidden blocks do.
"""

import json
import math
import os
import random

if __package__:  # the course's grading package
    from . import kernel_questions
else:  # beside the notebook, as shipped with the release
    import kernel_questions  # type: ignore[no-redef]

MAX_ANSWER_CHARS = 8 << 20

LOW_PRECISION_EPS = {"float16": 9.765625e-04, "bfloat16": 7.8125e-03}


class Feedback(AssertionError):
    """One sentence for the student: what is wrong, and what to try."""

    def _render_traceback_(self):  # IPython shows this instead of a traceback (in the instructor notebook)
        return [f"\u2717 {self}"]


class Unanswered(Exception):
    """The kernel gave no usable answer (missing, unreadable, or not of the expected form)."""


def _field(data, key, kinds, default=None):
    value = data.get(key, default) if isinstance(data, dict) else default
    if value is not None and not isinstance(value, kinds):
        raise Unanswered(f"the answer's {key} was not of the expected type")
    return value


def failure(answer):
    """(error type, message) of an answer that failed, else None."""
    failed = _field(answer, "failed", dict)
    if failed is None:
        return None
    return str(_field(failed, "type", str, "Error")), str(_field(failed, "message", str, ""))


def value_of(answer, name):
    """The description of global `name` from a describe answer; Feedback if it is not defined."""
    failed = failure(answer)
    if failed is not None:
        kind, message = failed
        if kind == "KeyError":
            raise Feedback(
                f"{name} is not defined: run the cell that defines it (and keep the name the question asks for)."
            )
        raise Feedback(f"Reading {name} raised {kind}: {message}")
    value = _field(answer, "value", dict)
    if value is None:
        raise Unanswered(f"the answer about {name} was missing")
    return value


def kind(value):
    """The type of a described value: tensor, number, bool, array, list, dict, module, function, none or other."""
    return str(_field(value, "type", str, "other"))


def kind_in_words(value):
    return {
        "tensor": "a torch tensor",
        "number": "a Python number",
        "bool": "a bool",
        "array": "a NumPy array",
        "list": "a list or tuple",
        "dict": "a dict",
        "module": "a torch module",
        "function": "a function",
        "none": "None",
    }.get(kind(value), f"a {_field(value, 'class', str, 'object')}")


def _float(number):
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise Unanswered("a number in the answer was not a number")
    return float(number)


def numbers(value):
    """All the numbers a described value holds (tensor, number, array, or a list of them), or None."""
    if not isinstance(value, dict):
        return None
    if kind(value) == "number":
        return [_float(value.get("value"))]
    if kind(value) in ("tensor", "array"):
        values = _field(value, "values", list)
        return None if values is None else [_float(v) for v in values]
    if kind(value) == "list":
        parts = [numbers(item) for item in _field(value, "items", list, [])]
        return None if any(p is None for p in parts) else [n for p in parts for n in p]
    return None


def finite(values):
    return all(math.isfinite(v) for v in values)


def number(value, name):
    """The one finite number a described value holds; Feedback otherwise."""
    found = numbers(value)
    if found is None or len(found) != 1:
        raise Feedback(
            f"{name} should be one number (a float or a one-element tensor); it is {kind_in_words(value)}"
            + ("" if found is None else f" holding {len(found)} numbers")
            + "."
        )
    if not finite(found):
        raise Feedback(f"{name} is {found[0]}, not a finite number.")
    return found[0]


def is_tensor(value):
    return kind(value) == "tensor"


def shape(value):
    return [int(_float(n)) for n in _field(value, "shape", list, [])]


def flag(value, key):
    """A boolean field of a described tensor (requires_grad, is_leaf, is_parameter, stepped_by_optimizer)."""
    return _field(value, key, bool, False)


def grad_fn(value):
    return _field(value, "grad_fn", str)


def grad(value):
    """The described .grad of a tensor, or None."""
    return _field(value, "grad", dict)


def tolerance(value, tol):
    """tol, or more for a tensor of low precision (float16, bfloat16) that cannot hold tol."""
    eps = LOW_PRECISION_EPS.get(_field(value, "dtype", str, ""), 0.0) if isinstance(value, dict) else 0.0
    return max(tol, 4 * eps)


def near(got, want, tol=1e-5):
    """got within tol of want, relative to want (absolute near 0)."""
    return math.isfinite(got) and abs(got - want) <= tol * (1 + abs(want))


def all_near(got, want, tol=1e-5):
    return len(got) == len(want) and all(near(g, w, tol) for g, w in zip(got, want))


class Student:
    """What a check knows of a submission: a random generator for its points, and a way to ask questions."""

    def __init__(self, seed, grade_id):
        self.rng = random.Random(f"{seed}:{grade_id}")
        self.asked = False

    def ask(self, requests):
        """Answers to requests (a list of dicts, see grading/checks/kernel_questions.py), one per request."""
        if self.asked:
            raise RuntimeError("a check asks the kernel once")
        self.asked = True
        return self._answers(requests)

    def _answers(self, requests):
        raise NotImplementedError


# nbgrader's runs of a notebook (autograde, Validate): a new kernel, each cell once, in order. There, a model a given
# cell kept, once an optimizer stepped it, is what that cell's call returned at this point of the notebook; in a
# session where cells run again, in any order, it may be stale, and checks call again.
RUNS_IN_ORDER = ("autograde", "validate")


class NotebookStudent(Student):
    """The notebook's own globals, asked in this process: for the hidden test blocks of the instructor notebook."""

    def __init__(self, namespace, seed=None, grade_id=""):
        super().__init__(os.urandom(8).hex() if seed is None else seed, grade_id)
        self.namespace = namespace
        if os.environ.get("NBGRADER_EXECUTION") in RUNS_IN_ORDER:
            try:
                kernel_questions.watch_optimizer_steps()  # from the first check on: what a call's "or_kept" reads
            except Exception:  # noqa: BLE001 - without the watch, a call with "or_kept" calls again: no check is lost
                pass

    def _answers(self, requests):
        return parse_answers(kernel_questions.answer(self.namespace, requests), len(requests))


def _constant(name):
    return float(name.replace("Infinity", "inf"))  # NaN, Infinity, -Infinity: kept, so checks can name them


def parse_answers(text, count):
    """The kernel's JSON answers as plain Python data, or Unanswered if they are not a list of `count` dicts."""
    if not isinstance(text, str) or len(text) > MAX_ANSWER_CHARS:
        raise Unanswered("the answer of your notebook to the grader's questions was too long")
    try:
        data = json.loads(text, parse_constant=_constant)
    except (ValueError, RecursionError):
        raise Unanswered("the answer of your notebook to the grader's questions was not readable") from None
    if not (isinstance(data, list) and len(data) == count and all(isinstance(item, dict) for item in data)):
        raise Unanswered("the answer of your notebook to the grader's questions was not in the expected form")
    return data


def check_here(check, namespace):
    """Run a check on the notebook's own globals, in this process: print its sentence, or raise Feedback with it.

    Warnings are off and what is written to stderr meanwhile (by Python or C++ code) is discarded, because
    nbgrader and Validate count a check cell with output on stderr as failed."""
    import contextlib
    import io
    import sys

    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            sentence = check(NotebookStudent(namespace))
    except Unanswered as missing:
        raise Feedback(f"This could not be checked: {missing}.") from None
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    print(f"\u2713 {sentence}")
