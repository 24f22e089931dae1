"""See backpropagation on your own graph: values, tangents and gradients drawn on every node.

    from backprop_graph import draw_backprop
    draw_backprop(F, {"x": x, "y": y}, names={"c": c, "s": s, "F": F})

Each box shows three numbers, for a node v of the graph, an input x and the output F:
  value              v itself, computed forward from the inputs;
  tangent dv/dx      forward mode: how v moves when x moves (it starts at dx/dx = 1, dy/dx = 0);
  gradient dF/dv     reverse mode (backpropagation): how F moves when v moves (it starts at dF/dF = 1).
Each arrow child -> parent carries the local derivative d(parent)/d(child). The chain rule then gives:
  tangent of a node   = sum over its arrows in     of  local derivative * tangent of the child,
  gradient of a node  = sum over its arrows out    of  gradient of the parent * local derivative.

How: the graph is read from F.grad_fn (each node lists its inputs in .next_functions; a leaf tensor is
reached through an AccumulateGrad node, whose .variable is the tensor). Each operation is then replayed on
plain float64 numbers, and torch.autograd.grad on that one small replay gives its local derivatives.
Constants, such as the 3 in 3 * x, are read from what PyTorch saved in the node (its _saved_... attributes).
Your tensors are only read: no backward runs on your graph and no .grad changes.
A number that cannot be found (an operation missing from the table below, or a value PyTorch freed when
backward ran without retain_graph=True) is shown as ?, and a note under the picture says why.
"""
import html
import math
import re

import graphviz
import torch

UNKNOWN = float("nan")  # a number that could not be found; it spreads to everything computed from it
MAX_NODES = 60  # this is for small graphs: a bigger picture would not be readable

# Operations with one input: the name of PyTorch's backward node -> (label, function).
_ONE_INPUT = {
    "NegBackward0": ("-{0}", torch.neg), "ExpBackward0": ("exp({0})", torch.exp),
    "Exp2Backward0": ("exp2({0})", torch.exp2), "LogBackward0": ("log({0})", torch.log),
    "Log10Backward0": ("log10({0})", torch.log10), "Log2Backward0": ("log2({0})", torch.log2),
    "Log1PBackward0": ("log1p({0})", torch.log1p), "SqrtBackward0": ("sqrt({0})", torch.sqrt),
    "RsqrtBackward0": ("rsqrt({0})", torch.rsqrt), "ReciprocalBackward0": ("1 / {0}", torch.reciprocal),
    "SinBackward0": ("sin({0})", torch.sin), "CosBackward0": ("cos({0})", torch.cos),
    "TanBackward0": ("tan({0})", torch.tan), "TanhBackward0": ("tanh({0})", torch.tanh),
    "SigmoidBackward0": ("sigmoid({0})", torch.sigmoid), "AbsBackward0": ("abs({0})", torch.abs),
    "ReluBackward0": ("relu({0})", torch.relu),
    # on a single number these change only the shape or the type, so they keep the value
    "SumBackward0": ("sum({0})", torch.clone), "MeanBackward0": ("mean({0})", torch.clone),
    "CloneBackward0": ("{0}", torch.clone), "ToCopyBackward0": ("{0}", torch.clone),
    "ViewBackward0": ("{0}", torch.clone), "UnsqueezeBackward0": ("{0}", torch.clone),
    "SqueezeBackward0": ("{0}", torch.clone), "SqueezeBackward1": ("{0}", torch.clone),
}
# Other operations -> (label, function of the node and its inputs); {fn...} reads a number the node saved.
_MORE_INPUTS = {
    "AddBackward0": ("{0} + {1}", lambda fn, a, b: a + fn._saved_alpha * b),
    "SubBackward0": ("{0} - {1}", lambda fn, a, b: a - fn._saved_alpha * b),
    "RsubBackward1": ("const - {0}", lambda fn, a: UNKNOWN - fn._saved_alpha * a),  # 1 - x: the 1 is not kept
    "MulBackward0": ("{0} * {1}", lambda fn, a, b: a * b),
    "DivBackward0": ("{0} / {1}", lambda fn, a, b: a / b),
    "PowBackward0": ("{0} ** {fn._saved_exponent}", lambda fn, a: a ** fn._saved_exponent),
    "PowBackward1": ("{0} ** {1}", lambda fn, a, b: a ** b),
    "PowBackward2": ("{fn._saved_self} ** {0}", lambda fn, a: fn._saved_self ** a),
}
# Where a node keeps a copy of each of its inputs (for a constant, or an input whose value is unknown).
# Addition and subtraction keep none: their derivatives do not need the values.
_SAVED_INPUTS = {
    "MulBackward0": ("_saved_self", "_saved_other"), "DivBackward0": ("_saved_self", "_saved_other"),
    "PowBackward0": ("_saved_self",), "PowBackward1": ("_saved_self", "_saved_exponent"),
    "LogBackward0": ("_saved_self",), "Log10Backward0": ("_saved_self",), "Log2Backward0": ("_saved_self",),
    "Log1PBackward0": ("_saved_self",), "SinBackward0": ("_saved_self",), "CosBackward0": ("_saved_self",),
    "AbsBackward0": ("_saved_self",),
}
FREED = "PyTorch freed the values saved in the graph when backward ran (keep them with retain_graph=True)"

COLOURS = {"value": "#222222", "tangent": "#1a56b0", "gradient": "#b8430f", "edge": "#2e7031"}
FONT = "Helvetica,Arial,sans-serif"


class Node:
    """One box of the picture: a leaf tensor or an operation, with its three numbers."""

    def __init__(self, fn):
        self.fn = fn  # the backward node PyTorch recorded (an AccumulateGrad node for a leaf)
        self.op = type(fn).__name__
        self.leaf = getattr(fn, "variable", None) if self.op == "AccumulateGrad" else None
        self.inputs = []  # one per input of the operation: a Node, or None for a constant
        self.parents = []  # (parent Node, which input of the parent this node is)
        self.name, self.tensor = None, None  # the name and tensor given for it, if any
        self.formula, self.text = "", ""  # the operation written out, such as x ** 2; the label
        self.value, self.tangent, self.gradient = UNKNOWN, UNKNOWN, UNKNOWN
        self.local = []  # per input: the local derivative d(this node)/d(input)
        self.paths = []  # per parent: its share of the gradient, dF/d(parent) * d(parent)/d(this node)


def backprop_nodes(F, inputs, names=None, tangent=None):
    """The nodes of F's graph (inputs first, F last) with their numbers, and a list of notes."""
    if not isinstance(F, torch.Tensor) or F.grad_fn is None or F.numel() != 1:
        raise ValueError("F must be a single-number tensor computed from inputs that require grad (it has a grad_fn).")
    if not isinstance(inputs, dict) or not inputs or not all(isinstance(t, torch.Tensor) for t in inputs.values()):
        raise ValueError("inputs must be a non-empty dict of names to tensors, such as {'x': x, 'y': y}.")
    for name, t in inputs.items():
        if t.grad_fn is not None or t.numel() != 1 or sum(u is t for u in inputs.values()) > 1:
            raise ValueError(f"inputs[{name!r}] must be a leaf tensor holding one number, given once (pass computed tensors in names).")
    names = {} if names is None else names
    if not isinstance(names, dict) or not all(isinstance(t, torch.Tensor) for t in names.values()):
        raise ValueError("names must be a dict of names to tensors, such as {'c': c, 's': s, 'F': F}.")
    tangent = next(iter(inputs)) if tangent is None else tangent
    if tangent not in inputs:
        raise ValueError(f"tangent must be the name of one of the inputs ({', '.join(map(str, inputs))}).")

    order, by_fn = [], {}  # the nodes, each after its inputs; node of each backward node, by id
    def visit(fn):
        if id(fn) not in by_fn:
            if len(by_fn) >= MAX_NODES:
                raise ValueError(f"F's graph has more than {MAX_NODES} nodes: draw_backprop is for small graphs.")
            node = by_fn[id(fn)] = Node(fn)
            for slot, (child_fn, _) in enumerate(fn.next_functions):
                child = None if child_fn is None else visit(child_fn)
                node.inputs.append(child)
                if child is not None:
                    child.parents.append((node, slot))
            order.append(node)
        return by_fn[id(fn)]
    output = visit(F.grad_fn)

    leaves = {id(node.leaf): node for node in order if node.leaf is not None}
    notes = []
    for name, t in list(inputs.items()) + list(names.items()) + [("F", F)]:
        node = by_fn.get(id(t.grad_fn)) if t.grad_fn is not None else leaves.get(id(t))
        if node is None and name in inputs:
            raise ValueError(f"inputs[{name!r}] is not a leaf of F's graph (does it require grad, and was F computed from it?).")
        if node is None:
            notes.append(f"names[{name!r}] is not part of F's graph, so it is not shown.")
        elif node.name is None:
            node.name, node.tensor = str(name), t
    seed = leaves[id(inputs[tangent])]
    for node in order:
        node.formula = _expression(node)
        node.text = node.name or node.formula
    _values_and_local_derivatives(order, notes)

    for node in order:  # forward mode, inputs first
        if node.leaf is not None:
            node.tangent = 1.0 if node is seed else 0.0
        else:
            node.tangent = sum(_times(d, child.tangent) for child, d in zip(node.inputs, node.local) if child)
    output.gradient = 1.0
    for node in reversed(order):  # reverse mode, F first
        node.paths = [(parent, _times(parent.gradient, parent.local[slot])) for parent, slot in node.parents]
        if node is not output:
            node.gradient = sum(share for _, share in node.paths)
    nodes = [n for n in order if n.leaf is not None] + [n for n in order if n.leaf is None]
    return nodes, notes


def _values_and_local_derivatives(order, notes):
    """Replay each operation forward from its inputs' values; fill in .value and .local."""
    for node in order:
        if node.leaf is not None:
            value, node.local, why = _number(node.leaf), [], "a leaf that holds more than one number"
        else:
            value, node.local, why = _replay(node)
        found = node.tensor is not None and node.tensor.numel() == 1
        given = float(node.tensor.detach().reshape(())) if found else UNKNOWN
        if math.isnan(value):
            value = given if not math.isnan(given) else _value_saved_by_pytorch(node)
        elif not math.isnan(given) and not math.isclose(value, given, rel_tol=1e-4, abs_tol=1e-6):
            notes.append(f"{node.text}: the replay gives {_fmt(value)} but your tensor holds {_fmt(given)} "
                         "(was a tensor changed after F was computed?).")
        node.value = value
        if why and (math.isnan(value) or any(math.isnan(d) for d in node.local)):
            notes.append(f"{node.text}: {why}." + (" Name its tensor in names to show its value." if math.isnan(value) else ""))


def _replay(node):
    """(value, local derivatives, why the value is unknown or "") of one operation, on fresh tensors."""
    if node.op not in _ONE_INPUT and node.op not in _MORE_INPUTS:
        return UNKNOWN, [UNKNOWN] * len(node.inputs), f"its operation {node.op} is not in this helper's table"
    numbers, why = [], ""
    for slot, child in enumerate(node.inputs):
        if child is not None:
            numbers.append(child.value)
        else:
            number, why = _saved_input(node, slot)  # a constant, such as the 3 in 3 * x
            numbers.append(number)
    xs = [torch.tensor(number, dtype=torch.float64, requires_grad=True) for number in numbers]
    try:
        with torch.enable_grad():
            if node.op in _ONE_INPUT:
                out = _ONE_INPUT[node.op][1](xs[0])
            else:
                out = _MORE_INPUTS[node.op][1](node.fn, *xs)
            local = torch.autograd.grad(out, xs, allow_unused=True)
    except Exception as error:  # for example a saved number that has an unexpected form
        return UNKNOWN, [UNKNOWN] * len(xs), f"its replay failed: {type(error).__name__}"
    value = float(out.detach())
    if math.isnan(value) and not why:
        inputs_known = not any(math.isnan(number) for number in numbers)
        why = "it is not a number at this point (log of a negative number?)" if inputs_known else ""
    if node.op == "RsubBackward1":
        why = "PyTorch does not keep the constant it subtracts from"
    return value, [0.0 if d is None else float(d) for d in local], why


def _saved_input(node, slot):
    """(number, why it is unknown) of input `slot` of node, from the copy the node saved, if any."""
    attributes = _SAVED_INPUTS.get(node.op, ())
    if slot >= len(attributes):
        return UNKNOWN, "PyTorch does not keep the constant it adds or subtracts"
    try:
        saved = getattr(node.fn, attributes[slot])
    except RuntimeError:
        return UNKNOWN, FREED
    return _number(saved), "" if saved is not None else "PyTorch did not keep its constant"


def _value_saved_by_pytorch(node):
    """The node's value from a copy PyTorch saved: its own result, or a parent's copy of its input."""
    for fn, attribute in [(node.fn, "_saved_result")] + [
            (parent.fn, _SAVED_INPUTS.get(parent.op, ())[slot]) for parent, slot in node.parents
            if slot < len(_SAVED_INPUTS.get(parent.op, ()))]:
        try:
            value = _number(getattr(fn, attribute, None))
        except RuntimeError:  # freed
            continue
        if not math.isnan(value):
            return value
    return UNKNOWN


def _number(saved):
    """A saved tensor or number as a float (UNKNOWN for None or a tensor of several numbers)."""
    if isinstance(saved, torch.Tensor):
        return float(saved.detach().reshape(())) if saved.numel() == 1 else UNKNOWN
    return UNKNOWN if saved is None else float(saved)


def _node_of(nodes, leaf):
    """The node of a leaf tensor."""
    return next(node for node in nodes if node.leaf is leaf)


def _times(a, b):
    """a * b, where zero times an unknown number is still zero."""
    return 0.0 if a == 0 or b == 0 else a * b


def _expression(node):
    """The label of an unnamed node: its operation written with its inputs, such as x ** 2."""
    if node.leaf is not None:
        return "leaf"
    texts = []
    for slot, child in enumerate(node.inputs):
        if child is None:
            number = _saved_input(node, slot)[0]
            texts.append("const" if math.isnan(number) else _fmt(number))
        elif child.name is None and len(child.text) > 12:
            texts.append("…")  # keep labels short: a long input is written …
        else:
            texts.append(child.text if child.name or " " not in child.text else f"({child.text})")
    if node.op in ("AddBackward0", "SubBackward0") and node.fn._saved_alpha != 1:
        texts[1] = f"{node.fn._saved_alpha} * {texts[1]}"
    template = (_ONE_INPUT.get(node.op) or _MORE_INPUTS.get(node.op) or (None,))[0]
    if template is None:  # an operation this helper does not know: its name, from PyTorch's class name
        return re.sub(r"Backward\d*$", "", node.op).lower() + "(" + ", ".join(texts) + ")"
    return template.format(*texts, fn=node.fn)


def _fmt(number):
    """A short form of a number: 24, 12.5, 0.6931; ? when unknown."""
    return "?" if math.isnan(number) else f"{number + 0.0:.4g}"  # + 0.0 turns -0 into 0


def _d(node):
    """d followed by the node's label, as in dc or d(x ** 2)."""
    return "d" + node.text if node.text.isidentifier() else f"d({node.text})"


def _lines(node, output, seed):
    """(title, value, tangent, gradient) texts of a node, as drawn and described."""
    title = node.text if node.name is None or node.leaf is not None else f"{node.name} = {node.formula}"
    gradient = f"gradient {_d(output)}/{_d(node)} = {_fmt(node.gradient)}"
    if len(node.paths) > 1:
        gradient += " = " + " + ".join(_fmt(share) for _, share in node.paths)
    return (title, f"value {_fmt(node.value)}", f"tangent {_d(node)}/{_d(seed)} = {_fmt(node.tangent)}", gradient)


def describe_backprop(F, inputs, names=None, tangent=None):
    """The same numbers as draw_backprop, as a few lines of plain text (for reading aloud)."""
    nodes, notes = backprop_nodes(F, inputs, names, tangent)
    output, seed = nodes[-1], _node_of(nodes, inputs[tangent or next(iter(inputs))])
    at = ", ".join(f"{n.text} = {_fmt(n.value)}" for n in nodes if n.leaf is not None)
    lines = [f"Backpropagation through {_lines(output, output, seed)[0]} at {at}. For each node: its value, "
             f"its tangent d(node)/{_d(seed)} (forward mode) and its gradient {_d(output)}/d(node) (reverse mode)."]
    for node in nodes:
        title, value, tangent_text, gradient = _lines(node, output, seed)
        ways = [f"via {parent.text}: {_d(output)}/{_d(parent)} × {_d(parent)}/{_d(node)} = "
                f"{_fmt(parent.gradient)} × {_fmt(parent.local[slot])} = {_fmt(share)}"
                for (parent, slot), (_, share) in zip(node.parents, node.paths)]
        if ways and (node.leaf is not None or len(ways) > 1):
            gradient += f" ({'; '.join(ways)})"
        kind = "Input " if node.leaf is not None and node.name in inputs else ""
        lines.append(f"{kind}{title}: {value}, {tangent_text}, {gradient}.")
    return "\n".join(lines + [f"Note: {note}" for note in notes])


def draw_backprop(F, inputs, names=None, tangent=None):
    """A graphviz.Digraph of F's graph (inputs on the left, F on the right) with every node's
    value, tangent d(node)/d(tangent input) and gradient dF/d(node), and each arrow's local derivative."""
    nodes, notes = backprop_nodes(F, inputs, names, tangent)
    output, seed = nodes[-1], _node_of(nodes, inputs[tangent or next(iter(inputs))])
    text = describe_backprop(F, inputs, names, tangent)
    legend = [("value", "value: computed forward, from the inputs"),
              ("tangent", f"tangent d(node)/{_d(seed)}: forward mode, starting from {_d(seed)}/{_d(seed)} = 1"),
              ("gradient", f"gradient {_d(output)}/d(node): reverse mode (backprop), starting from "
                           f"{_d(output)}/{_d(output)} = 1; it sums the paths to {output.text}"),
              ("edge", "arrow: local derivative d(parent)/d(child);  ? = could not be computed")]
    caption = "<br/>".join(f'<font color="{COLOURS[kind]}">{html.escape(line)}</font>' for kind, line in legend)
    caption += "".join(f"<br/>Note: {html.escape(note)}" for note in notes)
    graph = graphviz.Digraph(
        name="Backpropagation through " + output.text,
        graph_attr={"rankdir": "LR", "label": f"<{caption}>", "labelloc": "b", "labeljust": "l",
                    "fontname": FONT, "fontsize": "14", "tooltip": text, "nodesep": "0.4", "ranksep": "1.1"},
        node_attr={"shape": "box", "style": "rounded,filled", "fillcolor": "white", "fontname": FONT,
                   "fontsize": "14", "margin": "0.15,0.08"},
        edge_attr={"fontname": FONT, "fontsize": "14", "fontcolor": COLOURS["edge"], "color": "#555555"})
    ids = {id(node): f"n{i}" for i, node in enumerate(nodes)}
    with graph.subgraph(name="inputs") as left:  # all leaves in the first column
        left.attr(rank="min")
        for node in nodes:
            if node.leaf is not None:
                left.node(ids[id(node)], _html(node, output, seed), fillcolor="#eaf1fb")
    for node in nodes:
        if node.leaf is None:
            graph.node(ids[id(node)], _html(node, output, seed),
                       fillcolor="#fdf0e6" if node is output else "white", penwidth="2" if node is output else "1")
            for child, d in zip(node.inputs, node.local):
                if child is not None:
                    graph.edge(ids[id(child)], ids[id(node)], label=f" {_d(node)}/{_d(child)} = {_fmt(d)} ")
    return graph


def _html(node, output, seed):
    """The label of a box: its title in bold, then value, tangent and gradient in their colours."""
    title, *rows = (html.escape(line) for line in _lines(node, output, seed))
    return f"<<b>{title}</b>" + "".join(f'<br/><font color="{COLOURS[kind]}">{row}</font>'
                                        for kind, row in zip(("value", "tangent", "gradient"), rows)) + ">"
