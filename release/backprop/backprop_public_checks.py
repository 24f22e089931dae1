"""The public checks of the assignment "backprop": what each question states, checked where the student sees it.

Shipped with the release (`make release` puts this file, answer_data.py and kernel_questions.py beside the
notebook), each test cell runs its question's public check on the notebook's own objects and says, in the
grader's own sentence, what is wrong. It reveals nothing beyond the questions: the values it compares are those
the questions state (x = 2 and y = 3, F = 20 and its gradients 24 and 4, 12.5 and 10, the weights (0.4, 0.2)
the notebook's data were made with), and the mini-batches and the second training data set it shows.
Questions 1a, 1b and 2 state every value they ask for, so their checks here are the grader's own; for the
others the grader (grading/checks/backprop_checks.py, not shipped) asks the same of points and data the notebook
never shows, judging with the same functions.
"""

import math
import struct

if __package__:  # the course's grading package
    from .answer_data import (
        Feedback,
        all_near,
        check_here,  # noqa: F401 (the notebook's test cells import it from here)
        failure,
        finite,
        flag,
        grad,
        grad_fn,
        is_tensor,
        kind,
        kind_in_words,
        near,
        number,
        numbers,
        shape,
        tolerance,
        value_of,
    )
else:  # beside the notebook
    from answer_data import (  # type: ignore[no-redef]
        Feedback,
        all_near,
        check_here,  # noqa: F401 (the notebook's test cells import it from here)
        failure,
        finite,
        flag,
        grad,
        grad_fn,
        is_tensor,
        kind,
        kind_in_words,
        near,
        number,
        numbers,
        shape,
        tolerance,
        value_of,
    )

TRUE_WEIGHTS = [0.4, 0.2]  # the weights the notebook's data were made with (its noise has mean zero)
MAX_STEPS = 20_000  # Question 4 states it


def _describe(*names):
    return [{"op": "describe", "name": name} for name in names]


def _call(function, *args, **options):
    return {"op": "call", "function": function, "args": list(args), **options}


def _called(answer, function, signature):
    """(result, error as (type, message) or None, whether reverse mode was used, refs) of a call answer."""
    failed = failure(answer)
    if failed is not None:
        kind_, message = failed
        if kind_ in ("KeyError", "TypeError") and ("not defined" in message or "not a function" in message):
            raise Feedback(f"{function} is not defined: define a function {function}{signature}, and run its cell.")
        raise Feedback(f"{function} could not be called ({kind_}: {message}).")
    error = answer.get("error")
    if error is not None:
        error = (
            (str(error.get("type", "Error")), str(error.get("message", "")))
            if isinstance(error, dict)
            else ("Error", "")
        )
        if error[0] == "NotImplementedError":
            raise Feedback(f"{function} is not written yet: replace `raise NotImplementedError()` with your code.")
    refs = answer.get("refs") if isinstance(answer.get("refs"), dict) else {}
    return answer.get("result"), error, answer.get("reverse_mode") is True, refs


def _scalar_tensor(value, name):
    """The one number a described tensor holds (Feedback if it is not a tensor of one number)."""
    if not is_tensor(value):
        raise Feedback(f"{name} should be a torch tensor; it is {kind_in_words(value)}.")
    found = numbers(value)
    if found is None or len(found) != 1:
        raise Feedback(f"{name} should hold one number; it has shape {tuple(shape(value))}.")
    return number(value, name)


def _holds_a_logarithm(answer):
    """Whether a reaches answer lists a logarithm among the operations of the graph (Question 2's F has one,
    Question 1's none)."""
    operations = answer.get("operations") if isinstance(answer, dict) else None
    return isinstance(operations, list) and any(isinstance(op, str) and op.startswith("Log") for op in operations)


REBOUND_BY_QUESTION_2 = (
    "x, y and F are now Question 2's (its answer cell gives these names new tensors, and F holds a logarithm): "
    "run Question 1a's answer cell again{then}, then this check."
)


# --- Question 1a ------------------------------------------------------------------------------------------------
def check_q1a(student):
    """x and y are leaf tensors (2, 3) that require grad; c = x², s = x + y and F = c·s are computed from them."""
    answers = student.ask(
        _describe("x", "y", "c", "s", "F")
        + [
            {"op": "grad", "outputs": ["c", "s", "F"], "inputs": ["x", "y"]},
            {"op": "reaches", "output": "F", "inputs": ["x", "y"]},
            # for Question 1b: count the backward passes that reach x or y from now on
            {"op": "count_backward", "inputs": ["x", "y"]},
            # for Question 2: tell Question 1's tensors from new ones
            {"op": "remember", "names": ["x", "y"], "key": "question 1"},
        ]
    )
    values = {name: value_of(answer, name) for name, answer in zip("x y c s F".split(), answers)}
    for name in values:
        _scalar_tensor(values[name], name)
    if _holds_a_logarithm(answers[6]):
        raise Feedback(REBOUND_BY_QUESTION_2.format(then=""))
    for name, want in (("x", 2.0), ("y", 3.0)):
        if not flag(values[name], "is_leaf"):
            raise Feedback(
                f"{name} must be a leaf tensor, made with torch.tensor(..., requires_grad=True), not computed "
                "from another tensor."
            )
        if not flag(values[name], "requires_grad"):
            raise Feedback(
                f"{name} does not require gradients: make it with requires_grad=True, so that backward can fill "
                f"{name}.grad."
            )
        if not near(number(values[name], name), want, tolerance(values[name], 1e-5)):
            raise Feedback(f"{name} should hold {want}.")
    for name in ("c", "s", "F"):
        if grad_fn(values[name]) is None:
            raise Feedback(
                f"{name} has no autograd history: compute it from x and y with torch operations, without "
                ".detach(), .item(), torch.tensor(...) or typed-in numbers."
            )
    for name, want, message in (
        ("c", 4.0, "c does not equal x squared."),
        ("s", 5.0, "s does not equal x + y."),
        ("F", 20.0, "F does not equal c multiplied by s (F = c * s, the product, not the sum)."),
    ):
        if not near(number(values[name], name), want, tolerance(values[name], 1e-5)):
            raise Feedback(message)
    outputs = answers[5].get("outputs") if isinstance(answers[5].get("outputs"), list) else []
    if len(outputs) != 3:
        raise Feedback("The gradients of c, s and F could not be computed.")
    for name, output, gradients, formula in (
        ("c", outputs[0], (4.0, 0.0), "x ** 2"),
        ("s", outputs[1], (1.0, 1.0), "x + y"),
        ("F", outputs[2], (24.0, 4.0), "c * s"),
    ):
        if failure(output) is not None:
            raise Feedback(
                "The graph of F was already freed by a backward() that ran after Question 1a's cell (in "
                "Question 1b's cell or a given cell): run Question 1a's answer cell again, then this check. "
                "Question 1a only builds F; backward comes in Question 1b."
            )
        grads = output.get("grads") if isinstance(output.get("grads"), list) else []
        got = [0.0 if g is None else number(g, f"the gradient of {name}") for g in grads]
        tol = tolerance(values["x"], 1e-5)
        if not all_near(got, list(gradients), tol):
            raise Feedback(
                f"{name} has the right value but is not computed as {formula} from x and y, so its gradients are wrong."
            )
    return "x, y, c, s and F build the graph of F = x²(x + y), with the right values and gradients."


# --- Question 1, forward mode --------------------------------------------------------------------------------------
def _forward_result(answer, function, where="at a point other than (2, 3)"):
    result, error, reverse, _ = _called(answer, function, "(x0, y0)")
    if reverse:
        raise Feedback(
            f"{function} uses reverse mode (backward(), torch.autograd.grad, torch.func.grad or "
            "torch.autograd.functional): compute the derivative by forward mode, with dual tensors, "
            "torch.func.jvp or (value, tangent) pairs."
        )
    if error is not None:
        raise Feedback(f"{function} raised {error[0]} {where}: {error[1]}")
    return result


def public_q1fwd(student):
    """dF_dx_forward(2, 3) gives dF/dx = 24 by forward mode only."""
    result = _forward_result(
        student.ask([_call("dF_dx_forward", 2.0, 3.0, forward_only=True, tensor_retry=True)])[0],
        "dF_dx_forward",
        "at (2, 3)",
    )
    got = numbers(result)
    if got is None or len(got) != 1:
        raise Feedback(
            "dF_dx_forward should return one number (a float or a one-element tensor); it returned "
            f"{kind_in_words(result)}."
        )
    got = number(result, "dF_dx_forward's result")
    if near(got, 20.0, 1e-4):
        raise Feedback(
            "dF_dx_forward returns the value of F: return its tangent, the derivative carried along with the value."
        )
    if near(got, 4.0, 1e-4):
        raise Feedback("dF_dx_forward returns dF/dy: give x the tangent 1 and y the tangent 0.")
    if not near(got, 24.0, tolerance(result, 1e-4)):
        raise Feedback(
            "dF_dx_forward(2, 3) is not dF/dx = 24 (the x.grad of Question 1b): follow c = x², s = x + y, "
            "F = c · s, with the tangent of x set to 1 and that of y to 0."
        )
    return "dF_dx_forward(2, 3) gives dF/dx = 24 by forward mode; the grader also tries other points."


# --- Question 1, reverse mode by hand -----------------------------------------------------------------------------
# The two graphs the question states: node -> (operation, the nodes it is computed from), inputs x and y first
SWEEP_GRAPHS: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "adjoints_F": {"c": ("square", ("x",)), "s": ("add", ("x", "y")), "F": ("mul", ("c", "s"))},
    "adjoints_G": {"u": ("mul", ("x", "y")), "v": ("add", ("u", "x")), "G": ("mul", ("u", "v"))},
}
SHOWN_SWEEP_POINTS = ((2.0, 3.0), (-2.0, 1.0))  # where the public check calls the functions


def sweep_order(function):
    """The nodes of a graph in the order the reverse sweep visits them: the output first, the inputs last."""
    return list(reversed(list(SWEEP_GRAPHS[function]))) + ["x", "y"]


def sweep_values(function, x, y):
    """Every node's value (numbers or tensors), computed as the question states the graph."""
    values = {"x": x, "y": y}
    for node, (operation, parents) in SWEEP_GRAPHS[function].items():
        a = values[parents[0]]
        values[node] = (
            a * a if operation == "square" else a + values[parents[1]] if operation == "add" else a * values[parents[1]]
        )
    return values


def torch_adjoints(function, x0, y0):
    """d(output)/d(node) of every node, by PyTorch's own reverse mode (in float64): the public check's reference."""
    import torch

    x, y = (torch.tensor(float(v), dtype=torch.float64, requires_grad=True) for v in (x0, y0))
    values = sweep_values(function, x, y)
    for node in values.values():
        node.retain_grad()
    values[sweep_order(function)[0]].backward()
    return {node: float(value.grad) for node, value in values.items()}


def _edges_into(function, node):
    """(child, local derivative's operation) for every edge leaving node: the nodes computed from it."""
    return [(child, op) for child, (op, parents) in SWEEP_GRAPHS[function].items() if node in parents]


def _edge_term(function, node, child, adjoints, values):
    """child's adjoint times the local derivative d(child)/d(node): one edge's term in node's adjoint."""
    operation, parents = SWEEP_GRAPHS[function][child]
    if operation == "square":
        local = 2 * values[node]
    elif operation == "add":
        local = 1.0
    else:
        local = values[parents[1] if parents[0] == node else parents[0]]
    return adjoints[child] * local


def judge_sweep(answer, function, expected, x0, y0, where, stated=None):
    """An answer of adjoints_F or adjoints_G at (x0, y0) against the expected adjoints; Feedback names the first
    node, in the sweep's order, whose adjoint is wrong, and why when the mistake is a common one (`stated`: the
    adjoints at (2, 3), which an answer typed in for that point returns everywhere)."""
    result, error, reverse, _ = _called(answer, function, "(x0, y0)")
    if reverse:
        raise Feedback(
            f"{function} uses PyTorch's reverse mode (backward() or autograd.grad): do the sweep yourself, "
            "one local derivative at a time, with plain arithmetic."
        )
    if error is not None:
        raise Feedback(f"{function} raised {error[0]} {where}: {error[1]}")
    order = sweep_order(function)
    keys = ", ".join(f"'{node}'" for node in [order[0], *list(SWEEP_GRAPHS[function])[:-1], "x", "y"])
    items = result.get("items") if kind(result) == "dict" else None
    if not isinstance(items, dict):
        raise Feedback(
            f"{function} should return a dict of adjoints with the keys {keys}; it returned {kind_in_words(result)}."
        )
    missing = [node for node in order if node not in items]
    if missing:
        found = ", ".join(f"'{key[:20]}'" for key in list(items)[:6]) or "none"
        raise Feedback(
            f"{function} should return a dict with the keys {keys}: '{missing[0]}' is missing (its keys: {found})."
        )
    got = {node: number(items[node], f"{function}'s '{node}'") for node in order}
    tol = {node: tolerance(items[node], 1e-5) for node in order}
    values = {node: float(value) for node, value in sweep_values(function, x0, y0).items()}
    output = order[0]
    if not near(got[output], 1.0, 1e-6):
        raise Feedback(
            f"The sweep starts with the adjoint of {output} itself, ∂{output}/∂{output} = 1: "
            f"{function}'s '{output}' is not 1."
        )
    if all(near(got[node], values[node], 1e-6) for node in order[1:]) and not all(
        near(expected[node], values[node], 1e-6) for node in order[1:]
    ):
        raise Feedback(f"{function} returns the nodes' values: return their adjoints, ∂{output}/∂(node).")
    if (
        stated is not None
        and all(near(got[node], stated[node], 1e-5) for node in order)
        and not all(near(expected[node], stated[node], 1e-5) for node in order)
    ):
        raise Feedback(f"{function} returns the adjoints at (2, 3) at every point: compute them from x0 and y0.")
    for node in order[1:]:
        if near(got[node], expected[node], tol[node]):
            continue
        edges = _edges_into(function, node)
        terms = {child: _edge_term(function, node, child, expected, values) for child, _ in edges}
        rule = f"{node}_bar = " + " + ".join(f"{child}_bar · ∂{child}/∂{node}" for child, _ in edges)
        if len(edges) > 1 and any(near(got[node], term, 1e-6) for term in terms.values()):
            kept = next(child for child, term in terms.items() if near(got[node], term, 1e-6))
            raise Feedback(
                f"{function} gives a wrong adjoint for {node} {where}: it keeps only the term through {kept}, but "
                f"{node} feeds {' and '.join(child for child, _ in edges)}, so its adjoint adds one term per edge, "
                f"with += ({rule})."
            )
        products = [child for child, op in edges if op == "mul"]
        if any(near(got[node], expected[child] * values[node], 1e-6) for child in products) and not near(
            values[node], expected[node], 1e-6
        ):
            raise Feedback(
                f"{function} gives a wrong adjoint for {node} {where}: the local derivative of a product with "
                f"respect to one factor is the other factor ({rule})."
            )
        raise Feedback(
            f"{function} gives a wrong adjoint for {node} {where}: {rule}, with the adjoints of the nodes after it."
        )
    return f"{function} gives every node's adjoint {where}"


def sweep_requests(points):
    """One call of adjoints_F and one of adjoints_G at each point, with PyTorch's reverse mode switched off."""
    return [_call(function, x0, y0, forward_only=True) for x0, y0 in points for function in SWEEP_GRAPHS]


def public_q1rev(student):
    """adjoints_F and adjoints_G give every node's adjoint at (2, 3) and (-2, 1), checked against PyTorch's own
    backward(), without reverse mode."""
    answers = iter(student.ask(sweep_requests(SHOWN_SWEEP_POINTS)))
    for x0, y0 in SHOWN_SWEEP_POINTS:
        for function in SWEEP_GRAPHS:
            expected, stated = torch_adjoints(function, x0, y0), torch_adjoints(function, *SHOWN_SWEEP_POINTS[0])
            judge_sweep(next(answers), function, expected, x0, y0, f"at ({x0:g}, {y0:g})", stated)
    return (
        "adjoints_F and adjoints_G give every node's adjoint at (2, 3) and (-2, 1), as PyTorch's backward() does; "
        "the grader also tries other points."
    )


# --- Question 1b ----------------------------------------------------------------------------------------------------
def check_q1b(student):
    """One backward pass on F filled x.grad and y.grad with dF/dx and dF/dy of the student's own F, graph kept."""
    answers = student.ask(
        [{"op": "backward_count"}]
        + _describe("x", "y", "F")
        + [
            {"op": "grad", "outputs": ["F"], "inputs": ["x", "y"]},
            {"op": "reaches", "output": "F", "inputs": ["x", "y"]},
        ]
    )
    count = answers[0].get("count")
    x, y, F = (value_of(answer, name) for name, answer in zip("xyF", answers[1:4]))
    for name, value in (("x", x), ("y", y), ("F", F)):
        if not is_tensor(value):
            raise Feedback(
                f"{name} is {kind_in_words(value)}, not Question 1a's tensor: if Question 1a's check passed, a "
                f"later cell gave {name} a new value (keep the work of 'Reverse mode by hand' inside its "
                "functions). Run Question 1a's answer cell again, then Question 1b's once, then this check."
            )
    if _holds_a_logarithm(answers[5]):
        raise Feedback(REBOUND_BY_QUESTION_2.format(then=" and Question 1b's once"))
    if grad(x) is None:
        raise Feedback("x.grad is None: call backward on F (Question 1b) after building F in Question 1a.")
    if grad(y) is None:
        raise Feedback(
            "y.grad is None: call backward on F itself, so that PyTorch fills the gradients of both x and y."
        )
    if isinstance(count, int) and not isinstance(count, bool) and count == 0:
        raise Feedback(
            "x.grad and y.grad were not filled by backpropagation: compute them by calling backward on F, "
            "not by assigning them."
        )
    if grad_fn(F) is None:
        raise Feedback("F has no autograd history any more: keep the F of Question 1a and call backward on it.")
    if numbers(grad(x)) == [0.0] and numbers(grad(y)) == [0.0]:
        raise Feedback(
            "x.grad and y.grad are zero. The given cell after this check runs backward again and then zeroes "
            "them: if you ran it, run Question 1a's answer cell, Question 1b's answer cell once, and this check "
            "again. Otherwise, do not zero the gradients in Question 1b."
        )
    outputs = answers[4].get("outputs") if isinstance(answers[4].get("outputs"), list) else []
    if len(outputs) != 1 or failure(outputs[0]) is not None:
        raise Feedback(
            "The graph of F was freed by backward(): pass retain_graph=True so that it is kept for further "
            "gradient computations. A graph that was freed cannot be kept afterwards (a second backward on it "
            "raises an error), so run Question 1a's answer cell again to build F anew, then Question 1b's "
            "answer cell once, then this check."
        )
    grads = outputs[0].get("grads") if isinstance(outputs[0].get("grads"), list) else []
    if len(grads) != 2:
        raise Feedback("The gradients of F could not be computed.")
    # the gradients of the student's own F, so that a mistake in Question 1a does not cost this question too
    want = [0.0 if g is None else number(g, "the gradient of F") for g in grads]
    got = [number(grad(x), "x.grad"), number(grad(y), "y.grad")]
    tol = tolerance(grad(x), 1e-5)
    times = next((k for k in range(2, 11) if all_near(got, [k * w for w in want], tol)), None)
    if times is not None and (want[0] != 0 or want[1] != 0):
        raise Feedback(
            f"x.grad and y.grad are {'twice' if times == 2 else f'{times} times'} dF/dx and dF/dy: backward ran "
            f"{'twice' if times == 2 else f'{times} times'} on F, and gradients add up each time backward runs. Run "
            "Question 1a's answer cell again (new x and y, with no gradient yet), then Question 1b's answer "
            "cell once, then this check."
        )
    if not all_near(got, want, tol):
        raise Feedback(
            "x.grad and y.grad are not dF/dx and dF/dy of your F: call backward on F (not on c, s, x or y), once."
        )
    return "One backward pass on F filled x.grad and y.grad, and the graph of F was kept."


# --- Question 2 -----------------------------------------------------------------------------------------------------
def check_q2(student):
    """a = ln x, b = x²y, c = y², F = a + b + c from new leaves (2, 3), and one backward gave dF/dx, dF/dy."""
    names = ["x", "y", "a", "b", "c", "F"]
    answers = student.ask(
        _describe(*names)
        + [
            {"op": "reaches", "output": "F", "inputs": ["x", "y"]},
            {"op": "same_as", "names": ["x", "y"], "key": "question 1"},
        ]
    )
    values = {name: value_of(answer, name) for name, answer in zip(names, answers)}
    for name in names:
        _scalar_tensor(values[name], name)
    if answers[7].get("same") not in ([False, False], None):
        raise Feedback(
            "x and y are Question 1's tensors. If you ran Question 1's cells again after Question 2, run "
            "Question 2's answer cell again, then this check; otherwise create new x and y tensors in Question "
            "2's answer cell, because gradients add up in the old ones."
        )
    for name, want in (("x", 2.0), ("y", 3.0)):
        if not (flag(values[name], "is_leaf") and flag(values[name], "requires_grad")):
            raise Feedback(f"{name} must be a new leaf tensor made with requires_grad=True.")
        if not near(number(values[name], name), want, tolerance(values[name], 1e-5)):
            raise Feedback(f"{name} should hold {want}.")
    for name in ("a", "b", "c", "F"):
        if grad_fn(values[name]) is None:
            raise Feedback(
                f"{name} has no autograd history: compute it from x and y with torch operations, without "
                ".detach(), .item(), math or numpy functions, or typed-in numbers."
            )
    a = number(values["a"], "a")
    if near(a, math.log10(2.0)):
        raise Feedback("a is the base-10 logarithm of x: ln is the natural logarithm, torch.log(x).")
    if near(a, 1.0):
        raise Feedback("a is the base-2 logarithm of x: ln is the natural logarithm, torch.log(x).")
    for name, want, formula in (
        ("a", math.log(2.0), "ln x"),
        ("b", 12.0, "x² · y"),
        ("c", 9.0, "y²"),
        ("F", math.log(2.0) + 21.0, "a + b + c"),
    ):
        if not near(number(values[name], name), want, tolerance(values[name], 1e-5)):
            raise Feedback(f"{name} does not equal {formula}.")
    reaches, operations = answers[6].get("reaches"), answers[6].get("operations")
    if not (isinstance(reaches, list) and reaches == [True, True]):
        raise Feedback(
            "F is not computed from this cell's x and y: build a, b and c from the new x and y, and F from a, b and c."
        )
    if not (isinstance(operations, list) and any(isinstance(op, str) and op.startswith("Log") for op in operations)):
        raise Feedback(
            "F's graph holds no logarithm: compute a = torch.log(x) from this cell's x, so that backward "
            "differentiates ln x."
        )
    gx, gy = grad(values["x"]), grad(values["y"])
    if gx is None or gy is None:
        raise Feedback("x.grad or y.grad is None: call F.backward() after computing F.")
    gx, gy, tol = number(gx, "x.grad"), number(gy, "y.grad"), tolerance(gx, 1e-5)
    if near(gx, 12.5 + 24.0, tol) or near(gy, 10.0 + 4.0, tol):
        raise Feedback(
            "x.grad still holds Question 1's gradient: create new x and y tensors in this cell, because "
            "gradients add up."
        )
    if near(gx, 25.0, tol) and near(gy, 20.0, tol):
        raise Feedback(
            "x.grad and y.grad are twice the gradient: backward ran twice and gradients add up; call F.backward() once."
        )
    if not near(gx, 12.5, tol):
        raise Feedback("x.grad is not dF/dx = 1/x + 2xy: check a and b, and call F.backward() once.")
    if not near(gy, 10.0, tol):
        raise Feedback("y.grad is not dF/dy = x² + 2y: check b and c, and call F.backward() once.")
    return "a, b, c and F follow F = ln x + x²y + y², and backward gave dF/dx = 12.5 and dF/dy = 10."


# --- Question 2, forward mode --------------------------------------------------------------------------------------
def gradient_pair(result, where=""):
    """The two finite numbers grad_forward returned (described), or Feedback; `where` says at which point, for the
    message (as "at a point other than (2, 3) ")."""
    got = numbers(result)
    if got is None or len(got) != 2:
        raise Feedback(
            f"grad_forward should return two numbers, (dF/dx, dF/dy); {where}it returned "
            + (
                kind_in_words(result)
                if got is None
                else "one number"
                if len(got) == 1
                else f"{kind_in_words(result)} of {len(got)} numbers"
            )
            + "."
        )
    if not finite(got):
        raise Feedback("grad_forward returned a number that is not finite (nan or inf).")
    return got


def public_q2fwd(student):
    """grad_forward(2, 3) gives (dF/dx, dF/dy) = (12.5, 10) by forward mode only."""
    result = _forward_result(
        student.ask([_call("grad_forward", 2.0, 3.0, forward_only=True, tensor_retry=True)])[0],
        "grad_forward",
        "at (2, 3)",
    )
    got = gradient_pair(result)
    if all_near(got, [10.0, 12.5], 1e-4):
        raise Feedback("grad_forward returns (dF/dy, dF/dx): return dF/dx first.")
    if near(got[0], 22.5, 1e-4) or near(got[1], 22.5, 1e-4):
        raise Feedback(
            "grad_forward returns dF/dx + dF/dy: one pass with the tangents (1, 1) adds the two "
            "derivatives; use (1, 0) for dF/dx and (0, 1) for dF/dy."
        )
    if not all_near(got, [12.5, 10.0], 1e-4):
        wrong = "dF/dx" if not near(got[0], 12.5, 1e-4) else "dF/dy"
        raise Feedback(
            f"grad_forward(2, 3) gives a wrong {wrong} (the question states 12.5 and 10): follow a = ln x "
            "(torch.log), b = x²y, c = y², F = a + b + c, and give the input you differentiate by the "
            "tangent 1 and the other 0."
        )
    return "grad_forward(2, 3) gives (12.5, 10) by forward mode; the grader also tries other points."


# --- Question 3 -----------------------------------------------------------------------------------------------------
def _mse_step(w, rows, targets, lr):
    """Loss, gradient and updated weights of one SGD step on the mean squared error, in plain Python."""
    errors = [sum(v * wj for v, wj in zip(row, w)) - t for row, t in zip(rows, targets)]
    loss = sum(e * e for e in errors) / len(errors)
    gradient = [2 / len(errors) * sum(e * row[j] for e, row in zip(errors, rows)) for j in range(len(w))]
    return loss, gradient, [wj - lr * gj for wj, gj in zip(w, gradient)]


def _f32(value):
    """value rounded to the nearest float32, as a tensor of the notebook's dtype holds it."""
    return struct.unpack("f", struct.pack("f", value))[0]


def sgd_step_requests(w0, batches, lr):
    """Questions that call sgd_step twice in a row on the same w (starting at w0), one mini-batch each."""
    w_arg = {"tensor": [[w] for w in w0], "requires_grad": True, "as": "w"}
    return [
        _call(
            "sgd_step",
            w_arg if step == 0 else {"ref": "w"},
            {"tensor": rows},
            {"tensor": [[t] for t in targets]},
            lr,
            refs=["w"],
        )
        for step, (rows, targets) in enumerate(batches)
    ]


def judge_sgd_steps(answers, w0, batches, lr, where):
    """Feedback unless each step returned the MSE before the update and moved w in place by one gradient step."""
    w_now, grad_before = w0, None
    for step, ((rows, targets), answer) in enumerate(zip(batches, answers), start=1):
        result, error, _, refs = _called(answer, "sgd_step", "(w, x_B, y_B, learning_rate)")
        if error is not None:
            if "in-place" in error[1] or "inplace" in error[1]:
                raise Feedback(
                    "Updating w raised an error about an in-place operation on a leaf that requires grad: "
                    "do the update inside `with torch.no_grad():`."
                )
            raise Feedback(f"sgd_step raised {error[0]} {where}: {error[1]}")
        loss_want, gradient, w_want = _mse_step(w_now, rows, targets, lr)
        got_loss = numbers(result)
        if got_loss is None or len(got_loss) != 1:
            raise Feedback("sgd_step should return the loss as one number (loss.item()).")
        w = refs.get("w")
        if not (is_tensor(w) and flag(w, "is_leaf") and flag(w, "requires_grad") and shape(w) == [2, 1]):
            raise Feedback(
                "After sgd_step, w is no longer a 2 x 1 leaf tensor that requires grad: update it in place "
                "inside torch.no_grad()."
            )
        w_got = numbers(w)
        if not finite(got_loss + w_got):
            raise Feedback("sgd_step gave a loss or weights that are not finite (nan or inf).")
        if not all_near(got_loss, [loss_want], 1e-4):
            if all_near(got_loss, [4 * loss_want], 1e-4):
                raise Feedback(
                    "The loss is the sum of the squared errors: use their mean, (y_pred - y_B).pow(2).mean()."
                )
            if all_near(got_loss, [loss_want / 2], 1e-4):
                raise Feedback(
                    "The loss is half the mean squared error: use (y_pred - y_B).pow(2).mean(), without the factor 1/2."
                )
            if all_near(got_loss, [_mse_step(w_want, rows, targets, lr)[0]], 1e-4):
                raise Feedback(
                    "sgd_step returns the loss after the update: return the loss computed before updating w."
                )
            raise Feedback(
                "sgd_step does not return the mean squared error of x_B.mm(w) against y_B: use the "
                "arguments w, x_B and y_B (not the global x and y) and compute the loss before the update."
            )
        if all_near(w_got, w_now, 1e-7):
            raise Feedback(
                "w did not change: subtract learning_rate * w.grad from the tensor passed in, in place "
                "(w -= ... inside torch.no_grad()), and zero the gradient only after that."
            )
        if all_near(w_got, [wj + lr * gj for wj, gj in zip(w_now, gradient)], 1e-4):
            raise Feedback(
                "w moved up the gradient: subtract learning_rate * w.grad (gradient descent), do not add it."
            )
        if grad_before is not None and all_near(
            w_got, [wj - lr * (gj + pj) for wj, gj, pj in zip(w_now, gradient, grad_before)], 1e-4
        ):
            raise Feedback(
                "The second step used the sum of both steps' gradients: zero w's gradient after the update "
                "(w.grad.zero_()), because backward adds to w.grad."
            )
        if not all_near(w_got, w_want, 1e-4):
            moved = [(a - b) / g for a, b, g in zip(w_got, w_now, gradient) if g * g > 1e-6]
            if moved and all(near(m, moved[0], 1e-3) for m in moved) and moved[0] < 0:
                raise Feedback(
                    "w moved along the gradient by a step other than learning_rate times it: use the "
                    "learning_rate argument, w -= learning_rate * w.grad."
                )
            if step == 2:
                raise Feedback(
                    "The second step is wrong although the first was right: zero w's gradient after the "
                    "update (w.grad.zero_()), because backward adds to w.grad."
                )
            raise Feedback("w is not w - learning_rate * (gradient of the mean squared error) after one step.")
        w_now, grad_before = w_got, gradient


SHOWN_W = [0.5, -0.5]
SHOWN_BATCHES = [
    ([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6], [0.7, 0.8]], [0.1, 0.2, 0.3, 0.4]),
    ([[0.9, 0.1], [0.2, 0.8], [0.6, 0.3], [0.4, 0.7]], [0.5, 0.2, 0.4, 0.3]),
]


def public_q3(student):
    """sgd_step on the mini-batches shown above, twice in a row from w = (0.5, -0.5) with learning rate 0.1."""
    w0 = [_f32(w) for w in SHOWN_W]
    batches = [
        ([[_f32(v) for v in row] for row in rows], [_f32(t) for t in targets]) for rows, targets in SHOWN_BATCHES
    ]
    judge_sgd_steps(student.ask(sgd_step_requests(w0, batches, 0.1)), w0, batches, 0.1, "on a shown mini-batch")
    return (
        "sgd_step returns the mean squared error and takes one gradient step in place, twice in a row; the "
        "grader also tries other mini-batches."
    )


# --- Questions 4 and 5 ----------------------------------------------------------------------------------------------
def _within(got, best, tol=0.05):
    return len(got) == len(best) and all(abs(g - b) <= tol for g, b in zip(got, best))


def _target(best):
    """The weights training should reach, in the words a message may use."""
    if best == TRUE_WEIGHTS:
        return "(0.4, 0.2)"
    if best == SHOWN_TRAINING_WEIGHTS:
        return "(0.1, 0.5), the weights its targets were made with"
    return "the best weights"


def _trained_elsewhere(final, best, function, name):
    """Feedback if training on data made from other weights ended at the notebook's weights (0.4, 0.2)."""
    if best != TRUE_WEIGHTS and _within(final, TRUE_WEIGHTS):
        raise Feedback(
            f"On data made from other weights, {function} ended with {name} at the notebook's (0.4, 0.2): "
            f"train on the x and y passed to {function} (not X_train and y_train), and compute the weights "
            "rather than typing them in."
        )


def _back_and_forth(path):
    """Whether the recorded weights (rows of two) jump back and forth over the second half of training instead
    of moving on: the sign of a learning rate too large for mini-batches, whose steps overshoot the valley."""
    half = path[len(path) // 2 :]
    if len(half) < 4:
        return False
    travelled = sum(math.dist(a, b) for a, b in zip(half, half[1:]))
    return travelled > 0.2 and travelled > 3 * math.dist(half[0], half[-1])


def learning_choices(lr_answer, steps_answer):
    """The notebook's learning_rate and steps, or Feedback."""
    lr = number(value_of(lr_answer, "learning_rate"), "learning_rate")
    steps = number(value_of(steps_answer, "steps"), "steps")
    if lr <= 0:
        raise Feedback("learning_rate should be a positive number.")
    if steps != int(steps) or not 1 <= steps <= MAX_STEPS:
        raise Feedback(f"steps should be a whole number from 1 to {MAX_STEPS:,}.")
    return lr, int(steps)


def judge_records(losses, weights, w, start, best, where):
    """Feedback unless w (described) was trained to within 0.05 of best, from start if known, with the losses and
    weights (described) recorded every 10 steps; `where` says on which data, for the messages."""
    losses, weights = numbers(losses), numbers(weights)
    if not losses or weights is None:
        raise Feedback(
            "losses and weights should be lists or arrays of the numbers recorded every 10 steps of training."
        )
    if len(weights) != 2 * len(losses):
        raise Feedback("weights should have one row of two numbers for each entry of losses.")
    if not (is_tensor(w) and shape(w) in ([2, 1], [2]) and flag(w, "is_leaf") and flag(w, "requires_grad")):
        raise Feedback("w should be the 2 x 1 leaf tensor passed to train_sgd, trained in place by sgd_step.")
    final = numbers(w)
    if not finite(losses + weights + final):
        raise Feedback("The training diverged (inf or nan): choose a smaller learning rate.")
    if start is not None and all_near(final, start, 1e-7):
        raise Feedback("train_sgd did not change w: call sgd_step on the w passed in, at every step.")
    if (len(losses) > 1 and all(v == losses[0] for v in losses)) or min(losses) < 0:
        raise Feedback(
            "losses does not hold the losses of training: record the loss that sgd_step returns, every 10 steps."
        )
    path = [weights[i : i + 2] for i in range(0, len(weights), 2)]
    if len(path) > 1 and all(row == path[0] for row in path):
        raise Feedback(
            "The recorded weights are all the same: record a copy of w every 10 steps "
            "(w.detach().clone() or w.tolist()), and let sgd_step update w."
        )
    if min(max(abs(a - b) for a, b in zip(row, final)) for row in path) > 0.1:
        raise Feedback(
            "None of the recorded weights is near the final w: record w inside the loop every 10 steps, up "
            "to the end of training."
        )
    if not _within(final, best):
        _trained_elsewhere(final, best, "train_sgd", "w")
        if _back_and_forth(path):
            raise Feedback(
                f"{where}, training with your learning_rate and steps does not bring w within 0.05 of "
                f"{_target(best)}: at the end of training w still jumps back and forth, so the learning rate "
                "is too large for mini-batches (each step overshoots the valley of the loss). Choose a "
                "smaller learning_rate."
            )
        raise Feedback(
            f"{where}, training with your learning_rate and steps does not bring w within 0.05 of "
            f"{_target(best)}: w is still on its way there, so choose a larger learning rate (below where "
            "the sweep before Question 4 diverges) or more steps (the original 1e-2 and 500 are not enough), "
            "and check that each step updates the w passed in."
        )


# A second data set, shown here: the notebook's inputs with targets made, without noise, from other weights, and
# a start as far from them as the notebook's start is from (0.4, 0.2). Training that ignores its arguments, or
# types in weights, shows here.
SHOWN_TRAINING_WEIGHTS = [0.1, 0.5]
SHOWN_INPUTS = [
    [0.6, 0.2], [0.9, 0.5], [0.5, 0.1], [0.9, 0.5], [0.0, 0.3], [0.9, 0.3], [0.2, 0.2], [0.1, 0.4], [0.4, 0.2],
    [0.2, 0.8], [0.3, 0.5], [0.1, 0.2], [0.3, 0.1], [0.7, 0.0], [0.5, 0.8], [0.8, 0.5], [0.2, 0.7], [0.6, 0.5],
    [0.4, 0.1], [0.4, 0.4],
]  # fmt: skip
SHOWN_START = [1.24, 0.01]
SHOWN_WHERE = "On the data set shown in backprop_public_checks.py"


def shown_training_data():
    """The shown inputs and targets, as float32 values (lists of rows)."""
    inputs = [[_f32(v) for v in row] for row in SHOWN_INPUTS]
    targets = [[_f32(sum(v * w for v, w in zip(row, SHOWN_TRAINING_WEIGHTS)))] for row in SHOWN_INPUTS]
    return inputs, targets


def _given_cell_stopped(call_answer, function):
    """Feedback for a given training cell that did not define its results: its crash, if the same call crashes."""
    error = call_answer.get("error") if isinstance(call_answer, dict) else None
    if isinstance(error, dict):
        raise Feedback(
            f"The given cell after your answer stopped with an error before it finished: {function} raises "
            f"{error.get('type', 'an error')} ({str(error.get('message', ''))[:200]}). Fix {function}, then run "
            "your answer cell, the given cell and this check again."
        )
    raise Feedback(
        f"The given cell after your answer, which trains with your {function}, has not run to the end: run it "
        "(after your answer cell), then this check."
    )


def public_q4(student):
    """The notebook's training reached (0.4, 0.2) within 0.05, recording losses and weights as it went, and
    train_sgd with the same choices trains on the data set shown above."""
    inputs, targets = shown_training_data()
    answers = student.ask(
        _describe("learning_rate", "steps", "losses", "weights", "w", "train_sgd")
        + [
            _call(
                "train_sgd",
                {"tensor": inputs},
                {"tensor": targets},
                {"tensor": [[_f32(v)] for v in SHOWN_START], "requires_grad": True, "as": "w"},
                {"global": "learning_rate"},
                {"global": "steps", "at_most": MAX_STEPS},
                4,
                refs=["w"],
            )
        ]
    )
    learning_choices(answers[0], answers[1])
    if kind(value_of(answers[5], "train_sgd")) != "function":
        raise Feedback("Define a function train_sgd(x, y, w, learning_rate, steps, batch_size).")
    if any(failure(answer) is not None for answer in answers[2:5]):
        _given_cell_stopped(answers[6], "train_sgd")
    judge_records(
        value_of(answers[2], "losses"),
        value_of(answers[3], "weights"),
        value_of(answers[4], "w"),
        None,
        TRUE_WEIGHTS,
        "On the notebook's data",
    )
    result, error, _, refs = _called(answers[6], "train_sgd", "(x, y, w, learning_rate, steps, batch_size)")
    if error is not None:
        raise Feedback(f"train_sgd raised {error[0]} on the data set shown in backprop_public_checks.py: {error[1]}")
    items = result.get("items") if kind(result) == "list" else None
    if not (isinstance(items, list) and len(items) == 2):
        raise Feedback("train_sgd should return two things, losses and weights (the records made every 10 steps).")
    judge_records(
        items[0], items[1], refs.get("w"), [_f32(v) for v in SHOWN_START], SHOWN_TRAINING_WEIGHTS, SHOWN_WHERE
    )
    return (
        "train_sgd brought w within 0.05 of (0.4, 0.2) on the notebook's data, and of (0.1, 0.5) on the data "
        "set shown in backprop_public_checks.py; the grader also trains it on other data."
    )


def judge_model(result, best, where):
    """Feedback unless result (described) is a Linear(2, 1) without bias that a torch.optim optimizer trained to
    within 0.05 of best; `where` says on which data, for the messages."""
    if kind(result) != "module" or result.get("class") != "Linear":
        raise Feedback(
            f"train_model should return the trained torch.nn.Linear(2, 1, bias=False); it returned "
            f"{kind_in_words(result)}."
        )
    if (result.get("in_features"), result.get("out_features")) != (2, 1) or result.get("bias") is not None:
        raise Feedback("The model should be torch.nn.Linear(2, 1, bias=False): two inputs, one output, no bias.")
    weight = result.get("weight")
    if not (is_tensor(weight) and flag(weight, "is_parameter") and flag(weight, "requires_grad")):
        raise Feedback("model.weight should stay a trainable Parameter; let the optimizer update it.")
    final = numbers(weight)
    if final is None or len(final) != 2:
        raise Feedback("model.weight should hold two weights.")
    if not finite(final) or max(abs(v) for v in final) > 100:
        raise Feedback(
            "model.weight holds inf, nan or huge values: the training diverged. Zero the gradients at every "
            "step (optimizer.zero_grad()), or backward adds each step's gradient to all the earlier ones; if "
            "you do, choose a smaller learning rate."
        )
    if weight.get("stepped_by_optimizer") is not True:
        raise Feedback(
            "model.weight was not updated by a torch.optim optimizer: make one over model.parameters() "
            "and call its step() after loss.backward()."
        )
    if not _within(final, best):
        _trained_elsewhere(final, best, "train_model", "model.weight")
        raise Feedback(
            f"{where}, train_model does not bring model.weight within 0.05 of "
            f"{_target(best)}: zero the gradients at every step (optimizer.zero_grad()), call backward() and "
            "optimizer.step(), and train on the x and y passed in. If all that is there, train longer, or with "
            "a larger learning rate if the weights still creep towards their target, or a smaller one if they "
            "jump around it."
        )


def public_q5(student):
    """train_model on the notebook's data, and on the data set shown above, returns a Linear(2, 1) without bias,
    trained by a torch.optim optimizer to within 0.05 of the weights the data were made with."""
    inputs, targets = shown_training_data()
    answers = student.ask(
        [
            # the model the given cell above trained on the notebook's data, if an optimizer stepped it since the
            # first check ran; else a call, as here
            _call("train_model", {"global": "X_train"}, {"global": "y_train"}, watch_optimizers=True, or_kept="model"),
            _call("train_model", {"tensor": inputs}, {"tensor": targets}, watch_optimizers=True),
        ]
    )
    for answer, data, best, where in (
        (answers[0], "the notebook's data", TRUE_WEIGHTS, "On the notebook's data"),
        (answers[1], "the data set shown in backprop_public_checks.py", SHOWN_TRAINING_WEIGHTS, SHOWN_WHERE),
    ):
        result, error, _, _ = _called(answer, "train_model", "(x, y)")
        if error is not None:
            raise Feedback(f"train_model raised {error[0]} on {data}: {error[1]}")
        judge_model(result, best, where)
    return (
        "train_model trains model.weight to within 0.05 of (0.4, 0.2) on the notebook's data, and of (0.1, 0.5) "
        "on the data set shown in backprop_public_checks.py, with a torch.optim optimizer; the grader also "
        "trains it on other data."
    )
