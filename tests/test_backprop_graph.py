"""draw_backprop / describe_backprop: the numbers they show are autograd's; the student's tensors stay as they were."""

import math
import os
import subprocess

import pytest
import torch

from conftest import missing_here
from grading.course_kit.backprop_graph import MAX_NODES, backprop_nodes, describe_backprop, draw_backprop

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # torch.func


def leaves(x0, y0):
    return torch.tensor(float(x0), requires_grad=True), torch.tensor(float(y0), requires_grad=True)


def q1(x, y):
    c = x**2
    s = x + y
    return {"c": c, "s": s, "F": c * s}


def q2(x, y):
    a = torch.log(x)
    b = x**2 * y
    c = y**2
    return {"a": a, "b": b, "c": c, "F": a + b + c}


def by_name(F, inputs, names=None, tangent=None):
    nodes, notes = backprop_nodes(F, inputs, names, tangent)
    return {node.text: node for node in nodes}, notes


def expected(build, x0, y0, seed):
    """Values, gradients dF/d(node) (torch.autograd.grad) and tangents d(node)/d(seed) (torch.func.jvp) of every
    named tensor of build, computed here independently of the helper."""
    x, y = leaves(x0, y0)
    named = {"x": x, "y": y, **build(x, y)}
    keys = list(named)
    gradients = torch.autograd.grad(named["F"], [named[k] for k in keys])
    point = (torch.tensor(float(x0)), torch.tensor(float(y0)))
    direction = (torch.tensor(1.0), torch.tensor(0.0)) if seed == "x" else (torch.tensor(0.0), torch.tensor(1.0))
    _, tangents = torch.func.jvp(lambda a, b: tuple({"x": a, "y": b, **build(a, b)}.values()), point, direction)
    return {k: (named[k].item(), gradients[i].item(), tangents[i].item()) for i, k in enumerate(keys)}


def assert_close(shown, exact):
    assert math.isclose(shown, exact, rel_tol=1e-5, abs_tol=1e-6), (shown, exact)


@pytest.mark.parametrize("build", [q1, q2], ids=["Q1", "Q2"])
@pytest.mark.parametrize("point", [(2, 3), (0.5, -1.25), (3.5, 0.2)])
@pytest.mark.parametrize("seed", ["x", "y"])
def test_values_gradients_and_tangents_are_autograds(build, point, seed):
    x, y = leaves(*point)
    named = build(x, y)
    nodes, notes = by_name(named["F"], {"x": x, "y": y}, names=named, tangent=seed)
    assert notes == []
    for key, (value, gradient, tangent) in expected(build, *point, seed).items():
        assert_close(nodes[key].value, value)
        assert_close(nodes[key].gradient, gradient)
        assert_close(nodes[key].tangent, tangent)


def test_q1_at_2_3_gives_the_numbers_of_the_question():
    x, y = leaves(2, 3)
    named = q1(x, y)
    nodes, _ = by_name(named["F"], {"x": x, "y": y}, names=named)
    assert [(nodes[k].value, nodes[k].tangent, nodes[k].gradient) for k in ("x", "y", "c", "s", "F")] == [
        (2, 1, 24),
        (3, 0, 4),
        (4, 4, 5),
        (5, 1, 4),
        (20, 24, 1),
    ]
    assert [term for _, term in nodes["x"].paths] == [20, 4]  # via c: 5 * 4, via s: 4 * 1
    assert nodes["c"].local == [4] and nodes["s"].local == [1, 1] and nodes["F"].local == [5, 4]
    text = describe_backprop(named["F"], {"x": x, "y": y}, names=named)
    for words in (
        "F = c * s at x = 2, y = 3",
        "gradient dF/dx = 24 = 20 + 4",
        "via c: dF/dc × dc/dx = 5 × 4 = 20",
        "via s: dF/ds × ds/dx = 4 × 1 = 4",
        "Input y: value 3, tangent dy/dx = 0, gradient dF/dy = 4",
        "c = x ** 2: value 4, tangent dc/dx = 4, gradient dF/dc = 5",
        "F = c * s: value 20, tangent dF/dx = 24",
    ):
        assert words in text
    assert len(text.splitlines()) == 6


def test_unnamed_intermediates_are_labelled_by_their_operation():
    x, y = leaves(2, 3)
    nodes, _ = by_name(q1(x, y)["F"], {"x": x, "y": y})
    assert {"x ** 2", "x + y", "F"} <= set(nodes) and nodes["F"].formula == "(x ** 2) * (x + y)"
    assert "gradient dF/d(x ** 2) = 5" in describe_backprop(q1(x, y)["F"], {"x": x, "y": y})


def test_a_wrong_graph_shows_its_own_numbers():
    x, y = leaves(2, 3)
    c, s = x**2, x + y
    F = c + s  # instead of c * s
    nodes, _ = by_name(F, {"x": x, "y": y}, names={"c": c, "s": s})
    assert (nodes["F"].value, nodes["x"].gradient, nodes["y"].gradient, nodes["F"].tangent) == (9, 5, 1, 5)
    assert [term for _, term in nodes["x"].paths] == [4, 1]
    assert "F = c + s: value 9" in describe_backprop(F, {"x": x, "y": y}, names={"c": c, "s": s})


CASES = {
    "log10": lambda x, y: torch.log10(x) * y,
    "x*x": lambda x, y: x * x + y,
    "3*x": lambda x, y: 3 * x + y,
    "x+1": lambda x, y: (x + 1) * y,
    "1-x": lambda x, y: (1 - x) * y,
    "sub-div": lambda x, y: (x - y) / x,
    "2/x": lambda x, y: 2 / x + y,
    "exp-sin-cos-tanh": lambda x, y: torch.exp(x) * torch.sin(y) + torch.cos(x) * torch.tanh(y),
    "sigmoid-sqrt-neg": lambda x, y: torch.sigmoid(x) * torch.sqrt(y) - (-x),
    "pow-tensor-exponent": lambda x, y: x**y,
    "pow-constant-tensor": lambda x, y: x ** torch.tensor(3.0) + y,
    "2**x": lambda x, y: 2**x * y,
    "sum-of-0d": lambda x, y: (x * y).sum(),
    "mean-view-type": lambda x, y: (x * y).view(1).mean() + x.double().float(),
    "constant-tensor": lambda x, y: x / torch.tensor(4.0) + torch.tensor(5.0) * y,
    "add-alpha": lambda x, y: torch.add(x, y, alpha=2) * x,
}


@pytest.mark.parametrize("f", CASES.values(), ids=CASES.keys())
def test_operations_and_constants_give_autograds_numbers(f):
    x, y = leaves(1.5, 2.5)
    F = f(x, y)
    gx, gy = torch.autograd.grad(F, (x, y), retain_graph=True, allow_unused=True)
    nodes, notes = by_name(F, {"x": x, "y": y})
    assert notes == []
    assert_close(nodes["F"].value, F.item())
    assert_close(nodes["F"].tangent, gx.item())
    assert_close(nodes["x"].gradient, gx.item())
    assert_close(nodes["y"].gradient, 0.0 if gy is None else gy.item())
    for node in nodes.values():
        assert_close(node.gradient, sum(term for _, term in node.paths) if node.paths else 1.0)
    assert "?" not in describe_backprop(F, {"x": x, "y": y})


def test_the_students_tensors_and_graph_are_left_as_they_were():
    x, y = leaves(2, 3)
    named = q1(x, y)
    draw_backprop(named["F"], {"x": x, "y": y}, names=named).pipe(format="svg")
    describe_backprop(named["F"], {"x": x, "y": y}, names=named)
    assert x.grad is None and y.grad is None and x._version == 0 and y._version == 0
    named["F"].backward(retain_graph=True)
    draw_backprop(named["F"], {"x": x, "y": y}, names=named)
    assert (x.grad.item(), y.grad.item()) == (24, 4)
    named["F"].backward()  # the graph was kept: a second backward still works, and adds up
    assert (x.grad.item(), y.grad.item()) == (48, 8)


def test_a_graph_freed_by_backward_is_replayed_from_the_leaves():
    x, y = leaves(2, 3)
    named = q2(x, y)
    named["F"].backward()  # no retain_graph: PyTorch frees the saved values
    nodes, notes = by_name(named["F"], {"x": x, "y": y}, names=named)
    assert notes == [] and (nodes["x"].gradient, nodes["y"].gradient, nodes["F"].tangent) == (12.5, 10, 12.5)
    assert (x.grad.item(), y.grad.item()) == (12.5, 10)


def test_a_constant_freed_by_backward_is_shown_as_unknown():
    x, y = leaves(2, 3)
    F = 3 * x + y
    F.backward()
    nodes, notes = by_name(F, {"x": x, "y": y})
    assert math.isnan(nodes["x"].gradient) and nodes["y"].gradient == 1 and nodes["F"].value == 9
    assert any("retain_graph=True" in note for note in notes)
    assert "Note: x * const: PyTorch freed" in describe_backprop(F, {"x": x, "y": y})
    draw_backprop(F, {"x": x, "y": y}).pipe(format="svg")


def test_a_constant_pytorch_does_not_keep_is_taken_from_names_or_from_a_saved_copy():
    x, y = leaves(2, 3)
    s = x + 1
    F = s * y
    nodes, notes = by_name(F, {"x": x, "y": y})  # the multiplication saved a copy of s
    assert (nodes["x + const"].value, nodes["y"].gradient, notes) == (3, 3, [])
    F.backward()
    nodes, notes = by_name(F, {"x": x, "y": y})
    assert math.isnan(nodes["x + const"].value) and math.isnan(nodes["y"].gradient) and nodes["x"].gradient == 3
    assert "Pass its tensor in names" in notes[0]
    nodes, notes = by_name(F, {"x": x, "y": y}, names={"s": s})
    assert (nodes["s"].value, nodes["y"].gradient, notes) == (3, 3, [])


class Twice(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a):
        return 2 * a

    @staticmethod
    def backward(ctx, grad):
        return 2 * grad


@pytest.mark.parametrize(
    "f", [lambda x, y: torch.maximum(x, y) * x, lambda x, y: Twice.apply(x) * y], ids=["maximum", "custom-function"]
)
def test_an_unknown_operation_still_draws_and_says_why(f):
    x, y = leaves(2, 3)
    F = f(x, y)
    nodes, notes = by_name(F, {"x": x, "y": y})
    assert math.isnan(nodes["x"].gradient) and "not in this helper's tables" in notes[0]
    svg = draw_backprop(F, {"x": x, "y": y}).pipe(format="svg").decode()
    assert "not in this helper&#39;s tables" in svg or "not in this helper's tables" in svg
    assert "= ?" in svg


def test_a_tensor_changed_after_F_was_computed_is_noted():
    x, y = leaves(2, 3)
    F = x * y
    with torch.no_grad():
        x.add_(1)
    nodes, notes = by_name(F, {"x": x, "y": y})
    assert nodes["F"].value == 9 and "your tensor holds 6" in notes[0]
    assert x.item() == 3 and x.grad is None


def test_names_outside_the_graph_are_noted_and_inputs_may_be_named_twice():
    x, y = leaves(2, 3)
    other = torch.tensor(1.0, requires_grad=True) * 2
    F = x * y
    nodes, notes = by_name(F, {"x": x, "y": y}, names={"old": other, "x": x, "F": F})
    assert set(nodes) == {"x", "y", "F"} and notes == ["names['old'] is not part of F's graph, so it is not shown."]


def test_works_inside_no_grad_and_leaves_the_mode_as_it_was():
    x, y = leaves(2, 3)
    F = q1(x, y)["F"]
    with torch.no_grad():
        nodes, _ = by_name(F, {"x": x, "y": y})
        assert not torch.is_grad_enabled()
    assert nodes["x"].gradient == 24


def bad_arguments():
    x, y = leaves(2, 3)
    z = torch.tensor(1.0, requires_grad=True)
    F = q1(x, y)["F"]
    return {
        "F-not-a-tensor": (20.0, {"x": x}, {}),
        "F-without-grad_fn": (x, {"x": x}, {}),
        "F-detached": (F.detach(), {"x": x}, {}),
        "F-not-scalar": (torch.stack([x, y]) * 2, {"x": x}, {}),
        "inputs-not-a-dict": (F, [x, y], {}),
        "inputs-empty": (F, {}, {}),
        "input-not-a-tensor": (F, {"x": 2.0}, {}),
        "input-not-a-leaf": (F, {"c": x**2}, {}),
        "input-not-in-graph": (F, {"x": x, "z": z}, {}),
        "input-given-twice": (F, {"x": x, "also x": x}, {}),
        "names-not-tensors": (F, {"x": x}, {"names": {"c": 4.0}}),
        "tangent-not-an-input": (F, {"x": x, "y": y}, {"tangent": "c"}),
    }


@pytest.mark.parametrize("case", bad_arguments().keys())
def test_bad_arguments_raise_a_one_sentence_value_error(case):
    F, inputs, options = bad_arguments()[case]
    for function in (draw_backprop, describe_backprop):
        with pytest.raises(ValueError) as raised:
            function(F, inputs, **options)
        message = str(raised.value)
        assert message.endswith(".") and "\n" not in message and message.count(". ") == 0


def test_a_graph_too_big_to_read_raises_value_error():
    x, y = leaves(1, 1)
    F = x
    for _ in range(MAX_NODES):
        F = F * y
    with pytest.raises(ValueError, match="too many for a readable picture"):
        draw_backprop(F, {"x": x, "y": y})


def test_the_digraph_renders_to_svg_with_its_description_as_tooltip():
    x, y = leaves(2, 3)
    named = q1(x, y)
    graph = draw_backprop(named["F"], {"x": x, "y": y}, names=named)
    assert graph.graph_attr["rankdir"] == "LR"
    assert graph.graph_attr["tooltip"] == describe_backprop(named["F"], {"x": x, "y": y}, names=named)
    svg = graph.pipe(format="svg").decode()
    assert svg.lstrip().startswith("<?xml") and "</svg>" in svg
    for words in (
        "gradient dF/dx = 24 = 20 + 4",
        "tangent dc/dx = 4",
        "gradient dF/dc = 5",
        "value 20",
        "dc/dx = 4",
        "reverse mode (backprop)",
        "Backpropagation through F = c * s at x = 2, y = 3",
    ):
        assert words in svg, words
    assert svg.count('class="node"') == 5 and svg.count('class="edge"') == 5


def _text_scale(graph):
    """How much the notebook's picture shrinks its text: the drawing's own width against MAX_WIDTH (1 = not at all)."""
    import re

    from grading.course_kit.backprop_graph import MAX_WIDTH

    graph = graph.copy()
    graph.graph_attr.pop("size")
    width = float(re.search(r'width="([\d.]+)pt"', graph.pipe(format="svg").decode()).group(1))
    return min(1.0, MAX_WIDTH * 72 / width)


@pytest.fixture
def arial_metrics():
    """The graphs name Helvetica and Arial: their widths are measured with Liberation Sans, which has Arial's metrics
    (Debian's fonts-liberation, which make setup installs); DejaVu Sans in their place is a fifth wider."""
    try:
        font = subprocess.run(["fc-match", "Arial"], capture_output=True, text=True, timeout=60).stdout
    except OSError as error:
        font = str(error)
    if "Liberation Sans" not in font:
        missing_here(f"Arial is not Liberation Sans here ({font.strip()})", os.environ.get("CI"), "layout tests")


@pytest.mark.usefixtures("arial_metrics")
def test_question_2s_picture_fits_the_notebook_with_text_as_large_as_question_1s():
    pictures = {}
    for build in (q1, q2):
        x, y = leaves(2, 3)
        named = build(x, y)
        pictures[build] = _text_scale(draw_backprop(named["F"], {"x": x, "y": y}, names=named))
    assert pictures[q2] >= pictures[q1] > 0.9, pictures


def test_a_node_used_twice_shows_how_its_two_local_derivatives_add_up():
    x = torch.tensor(2.0, requires_grad=True)
    u = 3 * x
    F = u * u
    source = draw_backprop(F, {"x": x}, names={"u": u, "F": F}).source
    assert source.count("dF/du = 6 + 6 = 12") == 1 and "dF/du = 6 " not in source.replace("6 + 6", ""), source
    assert "(input 1 of 2)" in describe_backprop(F, {"x": x}, names={"u": u, "F": F})


def test_a_vector_intermediate_is_said_plainly_to_be_beyond_the_helper():
    x, y = leaves(2, 3)
    v = torch.stack([x, y])
    F = (v * v).sum()
    nodes, notes = by_name(F, {"x": x, "y": y}, names={"v": v, "F": F})
    assert any(note.startswith("v holds 2 numbers (a vector") for note in notes), notes
    assert not any("Pass its tensor in names" in note for note in notes), notes
    assert nodes["F"].value == 13.0
