"""See backpropagation on your own graph: the value, tangent and gradient of every node.

    from backprop_graph import draw_backprop
    draw_backprop(F, {"x": x, "y": y}, names={"c": c, "s": s, "F": F})

For a node v of the graph, the tangent input x (the first input unless you say otherwise) and the output F:
  value           v itself, computed forward from the inputs;
  tangent dv/dx   forward mode: how fast v changes when x changes (it starts with dx/dx = 1, dy/dx = 0);
  gradient dF/dv  reverse mode, backpropagation: how fast F changes when v changes (it starts with dF/dF = 1).
Each arrow child -> parent carries the local derivative d(parent)/d(child), and the chain rule gives
  tangent of v  = sum, over the arrows into v,    of  local derivative * tangent of the child;
  gradient of v = sum, over the arrows out of v,  of  gradient of the parent * local derivative.
Each term of the second sum is one path from v towards F.

How it works: the graph is read from F.grad_fn (each node lists its inputs in .next_functions; a leaf
tensor is reached through an AccumulateGrad node, whose .variable is the tensor). Each operation is replayed
on fresh float64 tensors, and torch.autograd.grad on that one small replay gives its local derivatives.
Constants, such as the 3 in 3 * x, are read from what PyTorch saved in the node (its _saved_... attributes).
Your tensors are only read: nothing runs backward through your graph and no .grad changes.
A number that cannot be found (an operation missing from the tables below, a constant PyTorch freed when
backward ran without retain_graph=True, or a node that holds a vector of numbers, which this helper does not
follow) is shown as ?, and a note under the picture says why.
"""

import html
import math
import re

import graphviz
import torch

UNKNOWN = float("nan")  # a number that could not be found: anything computed from it is unknown too
MAX_NODES = 60  # for small graphs only: a bigger picture would not be readable
MAX_WIDTH = 9.5  # inches: a wider picture is shrunk to fit a notebook, and its text with it

# Operations with one input: PyTorch's name for the node -> (label, function).
_ONE_INPUT = {
    "NegBackward0": ("-{0}", torch.neg),
    "ExpBackward0": ("exp({0})", torch.exp),
    "Exp2Backward0": ("exp2({0})", torch.exp2),
    "LogBackward0": ("log({0})", torch.log),
    "Log10Backward0": ("log10({0})", torch.log10),
    "Log2Backward0": ("log2({0})", torch.log2),
    "Log1PBackward0": ("log1p({0})", torch.log1p),
    "SqrtBackward0": ("sqrt({0})", torch.sqrt),
    "RsqrtBackward0": ("rsqrt({0})", torch.rsqrt),
    "ReciprocalBackward0": ("1 / {0}", torch.reciprocal),
    "SinBackward0": ("sin({0})", torch.sin),
    "CosBackward0": ("cos({0})", torch.cos),
    "TanBackward0": ("tan({0})", torch.tan),
    "TanhBackward0": ("tanh({0})", torch.tanh),
    "SigmoidBackward0": ("sigmoid({0})", torch.sigmoid),
    "AbsBackward0": ("abs({0})", torch.abs),
    "ReluBackward0": ("relu({0})", torch.relu),
    # on a single number, these change only the shape or the type: the value stays
    "SumBackward0": ("sum({0})", torch.clone),
    "MeanBackward0": ("mean({0})", torch.clone),
    "CloneBackward0": ("clone({0})", torch.clone),
    "ToCopyBackward0": ("to({0})", torch.clone),
    "ViewBackward0": ("view({0})", torch.clone),
    "UnsqueezeBackward0": ("unsqueeze({0})", torch.clone),
    "SqueezeBackward0": ("squeeze({0})", torch.clone),
    "SqueezeBackward1": ("squeeze({0})", torch.clone),
}
# Other operations -> (label, function of the node and its inputs); {fn._saved_...} is a number it saved.
_MORE_INPUTS: dict[str, tuple] = {
    "AddBackward0": ("{0} + {1}", lambda fn, a, b: a + fn._saved_alpha * b),
    "SubBackward0": ("{0} - {1}", lambda fn, a, b: a - fn._saved_alpha * b),
    "RsubBackward1": ("const - {0}", lambda fn, a: UNKNOWN - fn._saved_alpha * a),  # 1 - x: the 1 is not kept
    "MulBackward0": ("{0} * {1}", lambda fn, a, b: a * b),
    "DivBackward0": ("{0} / {1}", lambda fn, a, b: a / b),
    "PowBackward0": ("{0} ** {fn._saved_exponent}", lambda fn, a: a**fn._saved_exponent),
    "PowBackward1": ("{0} ** {1}", lambda fn, a, b: a**b),
    "PowBackward2": ("{fn._saved_self} ** {0}", lambda fn, a: fn._saved_self**a),
}
# Where a node keeps a copy of each of its inputs (read for a constant, or for an input of unknown value).
# Addition and subtraction keep none: their local derivatives do not depend on the values.
_SAVED_INPUTS = {
    "MulBackward0": ("_saved_self", "_saved_other"),
    "DivBackward0": ("_saved_self", "_saved_other"),
    "PowBackward0": ("_saved_self",),
    "PowBackward1": ("_saved_self", "_saved_exponent"),
    "LogBackward0": ("_saved_self",),
    "Log10Backward0": ("_saved_self",),
    "Log2Backward0": ("_saved_self",),
    "Log1PBackward0": ("_saved_self",),
    "SinBackward0": ("_saved_self",),
    "CosBackward0": ("_saved_self",),
}
FREED = "PyTorch freed the values saved in the graph when backward ran (retain_graph=True keeps them)"
COLOURS = {"value": "#222222", "tangent": "#1a56b0", "gradient": "#b8430f", "edge": "#2e7031"}
FONT = "Helvetica,Arial,sans-serif"


class Node:
    """One box of the picture: a leaf tensor or an operation, with its numbers."""

    def __init__(self, fn):
        self.fn = fn  # the node PyTorch recorded for the backward pass (AccumulateGrad for a leaf)
        self.op = type(fn).__name__
        self.leaf = fn.variable if self.op == "AccumulateGrad" else None
        self.inputs = []  # one per input of the operation: a Node, or None for a constant
        self.parents = []  # (parent Node, which of the parent's inputs this node is)
        self.name, self.tensor, self.formula, self.text = None, None, "", ""  # text: name or formula
        self.value, self.tangent, self.gradient = UNKNOWN, UNKNOWN, UNKNOWN
        self.local = []  # per input: the local derivative d(this node)/d(input)
        self.paths = []  # per parent: its term of the gradient, dF/d(parent) * d(parent)/d(this node)


def backprop_nodes(F, inputs, names=None, tangent=None):
    """(nodes, notes): the nodes of F's graph with their numbers (leaves first, F last), and what is unknown."""
    names, tangent = _check(F, inputs, names, tangent)
    order: list = []  # every node after its inputs
    by_fn: dict = {}  # the node of each recorded function, by id

    def visit(fn):
        if id(fn) not in by_fn:
            if len(by_fn) == MAX_NODES:
                raise ValueError(f"F's graph has more than {MAX_NODES} nodes, too many for a readable picture.")
            node = by_fn[id(fn)] = Node(fn)
            for slot, (child_fn, _) in enumerate(fn.next_functions):
                child = None if child_fn is None else visit(child_fn)
                node.inputs.append(child)
                if child is not None:
                    child.parents.append((node, slot))
            order.append(node)
        return by_fn[id(fn)]

    output = visit(F.grad_fn)

    leaves, notes = {id(node.leaf): node for node in order if node.leaf is not None}, []
    for name, t in [*inputs.items(), *names.items(), ("F", F)]:  # match by the identity of the tensor's node
        node = by_fn.get(id(t.grad_fn)) if t.grad_fn is not None else leaves.get(id(t))
        if node is None and t is inputs.get(name):
            raise ValueError(
                f"inputs[{name!r}] is not a leaf of F's graph (does it require grad, and was F computed from it?)."
            )
        if node is None:
            notes.append(f"names[{name!r}] is not part of F's graph, so it is not shown.")
        elif node.name is None:
            node.name, node.tensor = str(name), t
    for node in order:
        node.formula = _formula(node)
        node.text = node.name or node.formula
        _value_and_local_derivatives(node, notes)

    for node in order:  # forward mode, from the inputs to F
        if node.leaf is not None:
            node.tangent = 1.0 if node.leaf is inputs[tangent] else 0.0
        else:
            node.tangent = sum(_times(d, child.tangent) for child, d in zip(node.inputs, node.local) if child)
    output.gradient = 1.0
    for node in reversed(order):  # reverse mode, from F to the inputs
        node.paths = [(parent, _times(parent.gradient, parent.local[slot])) for parent, slot in node.parents]
        if node is not output:
            node.gradient = sum(term for _, term in node.paths)
    return [n for n in order if n.leaf is not None] + [n for n in order if n.leaf is None], notes


def _check(F, inputs, names, tangent):
    """(names, tangent) with their defaults, or ValueError for an argument draw_backprop cannot use."""
    if not isinstance(F, torch.Tensor) or F.grad_fn is None or F.numel() != 1:
        raise ValueError(
            "F must be a one-number tensor computed from inputs that require grad (so that it has a grad_fn)."
        )
    if not isinstance(inputs, dict) or not inputs or not all(isinstance(t, torch.Tensor) for t in inputs.values()):
        raise ValueError("inputs must be a non-empty dict of names to tensors, such as {'x': x, 'y': y}.")
    for name, t in inputs.items():
        if t.grad_fn is not None or t.numel() != 1 or sum(u is t for u in inputs.values()) > 1:
            raise ValueError(
                f"inputs[{name!r}] must be a leaf tensor holding one number, given once (computed tensors go in names)."
            )
    names = {} if names is None else names
    if not isinstance(names, dict) or not all(isinstance(t, torch.Tensor) for t in names.values()):
        raise ValueError("names must be a dict of names to tensors, such as {'c': c, 's': s, 'F': F}.")
    tangent = next(iter(inputs)) if tangent is None else tangent
    if tangent not in inputs:
        raise ValueError(f"tangent must be the name of one of the inputs: {', '.join(map(str, inputs))}.")
    return names, tangent


def _size(node):
    """How many numbers the node's result holds, from what PyTorch recorded of its shape (1 if unknown)."""
    try:
        return math.prod(int(n) for n in node.fn._input_metadata[0].shape) if node.leaf is None else node.leaf.numel()
    except (AttributeError, IndexError, TypeError, RuntimeError):
        return 1


def _value_and_local_derivatives(node, notes):
    """Set node.value and node.local by replaying its operation; say in notes what stays unknown."""
    size = _size(node)
    if size != 1:
        node.value, node.local = UNKNOWN, [UNKNOWN] * len(node.inputs)
        notes.append(
            f"{node.text} holds {size} numbers (a vector, from {node.op}): this helper follows graphs of single "
            "numbers only, so it shows ? for this node and for the numbers that depend on it."
        )
        return
    if node.leaf is not None:
        value, node.local, why = _number(node.leaf), [], ""
    else:
        value, node.local, why = _replay(node)
    given = _number(node.tensor) if node.tensor is not None else UNKNOWN  # the tensor named in the call
    if math.isnan(value):
        value = given if not math.isnan(given) else _value_saved_by_pytorch(node)
    elif not math.isnan(given) and not math.isclose(value, given, rel_tol=1e-4, abs_tol=1e-6):
        notes.append(
            f"{node.text}: the replay gives {_fmt(value)} but your tensor holds {_fmt(given)} "
            "(was a tensor changed after F was computed?)."
        )
    node.value = value
    if why and (math.isnan(value) or any(math.isnan(d) for d in node.local)):
        hint = " Pass its tensor in names to show its value." if math.isnan(value) else ""
        notes.append(f"{node.text}: {why}.{hint}")


def _replay(node):
    """(value, local derivatives, why something is unknown or "") of one operation, from its inputs' values."""
    if node.op not in _ONE_INPUT and node.op not in _MORE_INPUTS:
        return UNKNOWN, [UNKNOWN] * len(node.inputs), f"its operation {node.op} is not in this helper's tables"
    numbers, why = [], ""
    for slot, child in enumerate(node.inputs):
        if child is not None:
            numbers.append(child.value)
        else:  # a constant, such as the 3 in 3 * x
            number, why = _saved_input(node, slot)
            numbers.append(number)
    xs = [torch.tensor(number, dtype=torch.float64, requires_grad=True) for number in numbers]
    try:
        with torch.enable_grad():
            if node.op in _ONE_INPUT:
                out = _ONE_INPUT[node.op][1](xs[0])
            else:
                out = _MORE_INPUTS[node.op][1](node.fn, *xs)
            local = torch.autograd.grad(out, xs, allow_unused=True)
    except Exception as error:  # for example a saved number of an unexpected form
        return UNKNOWN, [UNKNOWN] * len(xs), f"its replay failed ({type(error).__name__})"
    value = float(out.detach())
    if node.op == "RsubBackward1":
        why = "PyTorch does not keep the constant it subtracts from"
    elif math.isnan(value) and not any(math.isnan(number) for number in numbers):
        why = "it is not a number at this point (the log of a negative number?)"
    return value, [0.0 if d is None else float(d) for d in local], why


def _saved_input(node, slot):
    """(number, why it is unknown or "") of the input `slot` of node, from the copy the node saved."""
    attributes = _SAVED_INPUTS.get(node.op, ())
    if slot >= len(attributes):
        return UNKNOWN, "PyTorch does not keep the constant it adds or subtracts"
    try:
        return _number(getattr(node.fn, attributes[slot])), ""
    except RuntimeError:
        return UNKNOWN, FREED


def _value_saved_by_pytorch(node):
    """The node's value from a copy PyTorch saved (its own result, or a parent's copy of it), else UNKNOWN."""
    copies = [(node.fn, "_saved_result")] + [
        (parent.fn, _SAVED_INPUTS[parent.op][slot])
        for parent, slot in node.parents
        if slot < len(_SAVED_INPUTS.get(parent.op, ()))
    ]
    for fn, attribute in copies:
        try:
            value = _number(getattr(fn, attribute, None))
        except RuntimeError:  # freed
            continue
        if not math.isnan(value):
            return value
    return UNKNOWN


def _number(saved):
    """A tensor of one number, or a number, as a float (UNKNOWN for anything else)."""
    if isinstance(saved, torch.Tensor):
        return float(saved.detach().reshape(())) if saved.numel() == 1 else UNKNOWN
    return float(saved) if isinstance(saved, (int, float)) else UNKNOWN


def _times(a, b):
    """a * b, where zero times an unknown number is still zero."""
    return 0.0 if a == 0 or b == 0 else a * b


def _formula(node):
    """The operation of a node written with its inputs, such as x ** 2 or (x ** 2) * y."""
    if node.leaf is not None:
        return "leaf"
    template = (_ONE_INPUT.get(node.op) or _MORE_INPUTS.get(node.op) or (None,))[0]
    brackets = template is not None and not template.endswith("({0})")  # (x ** 2) * y, but log(x + y)
    texts = []
    for slot, child in enumerate(node.inputs):
        if child is None:
            texts.append(_fmt(_saved_input(node, slot)[0]).replace("?", "const"))
        elif child.name is None and len(child.text) > 16:
            texts.append("…")  # keeps labels short
        else:
            texts.append(f"({child.text})" if brackets and child.name is None and " " in child.text else child.text)
    if node.op in ("AddBackward0", "SubBackward0") and getattr(node.fn, "_saved_alpha", 1) != 1:
        texts[1] = f"{node.fn._saved_alpha} * {texts[1]}"
    if template is not None:
        try:
            return template.format(*texts, fn=node.fn)
        except AttributeError:  # a number the node did not save under the expected name
            pass
    return re.sub(r"Backward\d*$", "", node.op).lower() + "(" + ", ".join(texts) + ")"  # as PyTorch names it


def _fmt(number):
    """A number in short: 24, 12.5, 0.6931; ? when unknown."""
    return "?" if math.isnan(number) else f"{number + 0.0:.4g}"  # + 0.0 turns -0 into 0


def _d(node):
    """d and the node's label: dc, or d(x ** 2)."""
    return "d" + node.text if node.text.isidentifier() else f"d({node.text})"


def _lines(node, output, seed):
    """The title, value, tangent and gradient of a node, in words."""
    title = f"{node.name} = {node.formula}" if node.name and node.leaf is None else node.text
    gradient = f"gradient {_d(output)}/{_d(node)} = {_fmt(node.gradient)}"
    if len(node.paths) > 1:
        gradient += " = " + " + ".join(_fmt(term) for _, term in node.paths)
    return title, f"value {_fmt(node.value)}", f"tangent {_d(node)}/{_d(seed)} = {_fmt(node.tangent)}", gradient


def describe_backprop(F, inputs, names=None, tangent=None):
    """The numbers of draw_backprop as a few lines of plain text (its alt text, for a screen reader)."""
    nodes, notes = backprop_nodes(F, inputs, names, tangent)
    return _describe(nodes, notes, inputs[next(iter(inputs)) if tangent is None else tangent])


def _describe(nodes, notes, seed_tensor):
    """The text of describe_backprop, from the nodes and notes of backprop_nodes."""
    output, seed = nodes[-1], next(node for node in nodes if node.leaf is seed_tensor)
    start = ", ".join(f"{node.text} = {_fmt(node.value)}" for node in nodes if node.leaf is not None)
    lines = [
        f"Backpropagation through {_lines(output, output, seed)[0]} at {start}. For each node: its value, "
        f"its tangent d(node)/{_d(seed)} (forward mode) and its gradient {_d(output)}/d(node) (reverse mode)."
    ]
    for node in nodes:
        title, value, tangent, gradient = _lines(node, output, seed)
        if node.leaf is not None or len(node.paths) > 1:  # the chain rule, one term per path
            gradient += (
                " ("
                + "; ".join(
                    f"via {parent.text}{_use(node, parent, slot)}: {_d(output)}/{_d(parent)} × "
                    f"{_d(parent)}/{_d(node)} = "
                    f"{_fmt(parent.gradient)} × {_fmt(parent.local[slot])} = {_fmt(term)}"
                    for (parent, slot), (_, term) in zip(node.parents, node.paths)
                )
                + ")"
            )
        kind = "Input " if node.leaf is not None and node.tensor is not None else ""
        lines.append(f"{kind}{title}: {value}, {tangent}, {gradient}.")
    return "\n".join(lines + [f"Note: {note}" for note in notes])


def _use(node, parent, slot):
    """For a node that is an input of `parent` more than once (u in u * u): which use, such as " (input 2 of 2)"."""
    slots = [s for p, s in node.parents if p is parent]
    return f" (input {slots.index(slot) + 1} of {len(slots)})" if len(slots) > 1 else ""


def draw_backprop(F, inputs, names=None, tangent=None):
    """A graphviz.Digraph of F's graph, inputs on the left and F on the right (or, for a graph of more columns
    than rows, inputs at the top and F at the bottom, so that it fits a notebook's width): each box shows its
    value, tangent d(node)/d(tangent input) and gradient dF/d(node), each arrow its local derivative."""
    nodes, notes = backprop_nodes(F, inputs, names, tangent)
    seed_tensor = inputs[next(iter(inputs)) if tangent is None else tangent]
    output, seed = nodes[-1], next(node for node in nodes if node.leaf is seed_tensor)
    legend = [
        ("value", "value: computed forward, from the inputs"),
        ("tangent", f"tangent d(node)/{_d(seed)}: forward mode, from {_d(seed)}/{_d(seed)} = 1"),
        ("gradient", f"gradient {_d(output)}/d(node): reverse mode (backprop), from {_d(output)}/{_d(output)} = 1;"),
        ("gradient", f"    a sum has one term per path to {output.text}"),
        ("edge", "arrow: local derivative d(parent)/d(child)"),
    ]
    if notes:
        legend.append(("value", "? = could not be computed (see the notes)"))
    caption = "".join(
        f'<font color="{COLOURS[kind]}">{html.escape(line)}</font><br align="left"/>' for kind, line in legend
    )  # <br align="left"/> ends a left-aligned line
    caption += "".join(f'Note: {html.escape(note)}<br align="left"/>' for note in notes)
    graph = graphviz.Digraph(
        name=f"Backpropagation through {output.text}",
        graph_attr={
            "rankdir": "LR",
            "label": f"<{caption}>",
            "labelloc": "b",
            "fontname": FONT,
            "fontsize": "14",
            "tooltip": _describe(nodes, notes, seed_tensor),
            "nodesep": "0.4",
            "ranksep": "0.9",
            "size": f"{MAX_WIDTH},16",
        },  # at most MAX_WIDTH inches wide: shrunk to fit a notebook, never enlarged
        node_attr={
            "shape": "box",
            "style": "rounded,filled",
            "fillcolor": "white",
            "fontname": FONT,
            "fontsize": "14",
            "margin": "0.15,0.08",
        },
        edge_attr={"fontname": FONT, "fontsize": "14", "fontcolor": COLOURS["edge"], "color": "#555555"},
    )
    layers = _layers(nodes)
    if len(layers) > max(3, max(len(layer) for layer in layers)):
        # more columns than rows: draw the steps from the top down, so that the picture fits a notebook's width
        graph.graph_attr["rankdir"] = "TB"
    ids = {id(node): f"n{i}" for i, node in enumerate(nodes)}
    with graph.subgraph(name="leaves") as left:  # all leaves in the first column
        left.attr(rank="min")
        for node in nodes:
            if node.leaf is not None:
                left.node(ids[id(node)], _html(node, output, seed), fillcolor="#eaf1fb")
    for node in nodes:
        if node.leaf is None:
            last = node is output
            graph.node(
                ids[id(node)],
                _html(node, output, seed),
                fillcolor="#fdf0e6" if last else "white",
                penwidth="2" if last else "1",
            )
            for child, terms in _arrows(node):
                label = f" {_d(node)}/{_d(child)} = {_fmt(sum(terms))} "
                if len(terms) > 1:  # a child used more than once, as in u * u: one term per use
                    label = (
                        f" {_d(node)}/{_d(child)} = {' + '.join(_fmt(t) for t in terms)} = {_fmt(sum(terms))} \n"
                        f" ({child.text} is used {len(terms)} times) "
                    )
                graph.edge(ids[id(child)], ids[id(node)], label=label)
    return graph


def _arrows(node):
    """(child, [local derivative for each use of the child]) for each distinct input of the node."""
    arrows: dict = {}
    for child, d in zip(node.inputs, node.local):
        if child is not None:
            arrows.setdefault(id(child), (child, []))[1].append(d)
    return list(arrows.values())


def _layers(nodes):
    """The nodes in columns, as the picture draws them: the leaves, then each node one column after its inputs."""
    column: dict = {}
    for node in nodes:  # every node after its inputs, leaves first
        inputs = [column[id(child)] for child in node.inputs if child is not None]
        column[id(node)] = 0 if node.leaf is not None else 1 + max(inputs, default=0)
    layers: list = [[] for _ in range(max(column.values()) + 1)]
    for node in nodes:
        layers[column[id(node)]].append(node)
    return layers


def _html(node, output, seed):
    """The label of a box: its title in bold, then its value, tangent and gradient in their colours."""
    title, *rows = (html.escape(line) for line in _lines(node, output, seed))
    return (
        f"<<b>{title}</b>"
        + "".join(
            f'<br/><font color="{COLOURS[kind]}">{row}</font>'
            for kind, row in zip(("value", "tangent", "gradient"), rows)
        )
        + ">"
    )
