"""The questions the judge asks a student's kernel, answered as plain data. This module's text runs IN the kernel.

    answer(namespace, requests) -> JSON text: one answer per request

The judge (grading/checks/judge.py) sends this file's source to the kernel once, run as a module of its own, and after
each test cell a list of requests: the kernel answers them from the notebook's globals and prints the JSON answers
between two markers. Nothing
here is secret: no expected value, tolerance or check is in it, only ways of reading the student's objects.
Whatever comes back is untrusted data that the judge parses and type-checks; a kernel that lies can only lie
about values the question states. Requests (plain JSON):

    {"op": "describe", "name": "x.grad"}                      a global (dotted attributes allowed), as data
    {"op": "call", "function": "f", "args": [...],            call a global function; args are numbers,
     "forward_only": true, "tensor_retry": true,                {"tensor": [...], "dtype": "float32",
     "watch_optimizers": true, "refs": ["w"]}                   "requires_grad": true, "as": "w"} or {"ref": "w"}
                                                                or {"global": "name"}
    {"op": "call", ..., "or_kept": "model"}                    the same, unless the global `model` is a module
                                                                an optimizer stepped since watch_optimizer_steps():
                                                                then that is the answer (the notebook's own call,
                                                                kept), and the function is not called again
    {"op": "grad", "outputs": ["F"], "inputs": ["x", "y"]}     d(output.sum())/d(inputs), graph kept
    {"op": "reaches", "output": "F", "inputs": ["x", "y"]}     whether output's graph reaches each input, and
                                                                the names of the operations in it
    {"op": "count_backward", "inputs": ["x", "y"]}             from now on, count backward passes reaching them
    {"op": "backward_count"}                                    how many passes were counted
    {"op": "remember", "names": ["x", "y"], "key": "q1"}       keep these objects, to tell them apart later
    {"op": "same_as", "names": ["x", "y"], "key": "q1"}        whether each is one of the objects kept then
"""

import json
import sys
import warnings

MAX_NUMBERS = 100_000  # values listed per tensor or array
MAX_ITEMS = 1_000  # items listed per list or tuple
MAX_TEXT = 300  # characters of an error message
BEGIN, END = "\u27e6judge-answer\u27e7", "\u27e6/judge-answer\u27e7"
_COUNTER = "__judge_backward_passes__"  # in the notebook's globals: the passes counted by count_backward
_REMEMBERED = "__judge_remembered__"  # in the notebook's globals: objects kept by remember
_PAUSED = "__judge_counting_paused__"  # set while the checks' own gradients are computed: those are not counted
_STEPPED = None  # id -> tensor, of those torch.optim optimizers stepped since watch_optimizer_steps() (weak values)


def watch_optimizer_steps():
    """From now on, remember each tensor a torch.optim optimizer steps, in this process (once; later calls do
    nothing): what a call's "or_kept" reads."""
    global _STEPPED
    if _STEPPED is not None:
        return
    import weakref

    from torch.optim.optimizer import register_optimizer_step_post_hook

    # by id: tensors compare element by element, so they cannot be keys themselves
    stepped: weakref.WeakValueDictionary[int, object] = weakref.WeakValueDictionary()

    def remember(optimizer, *_):
        stepped.update((id(p), p) for group in optimizer.param_groups for p in group["params"])

    register_optimizer_step_post_hook(remember)
    _STEPPED = stepped


def answer(namespace, requests):
    """The answers to requests, in order, as JSON text (an answer that failed says why instead)."""
    refs: dict = {}
    answers = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for request in requests:
            try:
                answers.append(_OPS[request["op"]](namespace, refs, request))
            except Exception as error:  # noqa: BLE001 - every failure is an answer the judge reads
                answers.append({"failed": _error(error)})
    return json.dumps(answers, allow_nan=True)


def print_answer(namespace, requests_json, nonce):
    """answer() to the JSON list of requests, printed between the markers the judge looks for (with this probe's
    nonce, so that an answer printed for another probe, or copied from another run, is not taken)."""
    text = answer(namespace, json.loads(requests_json))
    sys.stdout.write(BEGIN + nonce + text + END + "\n")
    sys.stdout.flush()


def _error(error):
    return {"type": type(error).__name__, "message": str(error)[:MAX_TEXT]}


def _lookup(namespace, dotted):
    """namespace[first].attr... for 'first.attr...'; KeyError when the global does not exist."""
    first, *attrs = dotted.split(".")
    if first not in namespace:
        raise KeyError(f"{first} is not defined")
    value = namespace[first]
    for attr in attrs:
        value = getattr(value, attr)
    return value


def describe(value, stepped=frozenset(), depth=0):
    """value as plain data: tensors with their values and autograd state, numbers, lists, dicts, arrays, modules."""
    import numpy as np
    import torch

    if value is None:
        return {"type": "none"}
    if isinstance(value, bool):
        return {"type": "bool", "value": value}
    if isinstance(value, (int, float, np.integer, np.floating)):
        return {"type": "number", "value": float(value)}
    if isinstance(value, torch.Tensor):
        return _describe_tensor(value, stepped, depth)
    if isinstance(value, np.ndarray):
        if value.size > MAX_NUMBERS:
            return {"type": "array", "shape": list(value.shape), "values": None}
        try:
            values = np.asarray(value, dtype=np.float64).reshape(-1).tolist()
        except (TypeError, ValueError):
            values = None
        return {"type": "array", "shape": list(value.shape), "values": values}
    if isinstance(value, dict) and depth < 3:
        items = list(value.items())[:MAX_ITEMS]
        return {
            "type": "dict",
            "length": len(value),
            "items": {str(k): describe(v, stepped, depth + 1) for k, v in items},
        }
    if isinstance(value, (list, tuple)) and depth < 3:
        items = [describe(item, stepped, depth + 1) for item in list(value)[:MAX_ITEMS]]
        return {"type": "list", "length": len(value), "items": items}
    if isinstance(value, torch.nn.Module):
        weight, bias = getattr(value, "weight", None), getattr(value, "bias", None)
        return {
            "type": "module",
            "class": type(value).__name__,
            "in_features": getattr(value, "in_features", None),
            "out_features": getattr(value, "out_features", None),
            "weight": describe(weight, stepped, depth + 1) if isinstance(weight, torch.Tensor) else None,
            "bias": describe(bias, stepped, depth + 1) if isinstance(bias, torch.Tensor) else None,
        }
    if callable(value):
        return {"type": "function"}
    if hasattr(type(value), "__float__"):  # other kinds of number: fractions, decimals, sympy's numbers
        try:
            return {"type": "number", "value": float(value)}
        except (TypeError, ValueError, ArithmeticError):
            pass
    return {"type": "other", "class": type(value).__name__}


def _describe_tensor(tensor, stepped, depth):
    import torch

    numel = tensor.numel()
    values = None
    if numel <= MAX_NUMBERS:
        plain = tensor.detach()
        if torch.is_complex(plain):
            plain = plain.real
        values = plain.cpu().to(torch.float64).reshape(-1).tolist()
    grad = None
    if tensor.is_leaf and depth < 2 and tensor.grad is not None:
        grad = _describe_tensor(tensor.grad, stepped, depth + 1)
    return {
        "type": "tensor",
        "shape": list(tensor.shape),
        "dtype": str(tensor.dtype).replace("torch.", ""),
        "values": values,
        "requires_grad": bool(tensor.requires_grad),
        "is_leaf": bool(tensor.is_leaf),
        "grad_fn": None if tensor.grad_fn is None else type(tensor.grad_fn).__name__,
        "grad": grad,
        "is_parameter": isinstance(tensor, torch.nn.Parameter),
        "stepped_by_optimizer": id(tensor) in stepped,
    }


def _op_describe(namespace, refs, request):
    return {"value": describe(_lookup(namespace, request["name"]))}


def _argument(namespace, refs, spec, as_tensors):
    import torch

    if isinstance(spec, dict) and "tensor" in spec:
        dtype = getattr(torch, spec.get("dtype", "float32"))
        tensor = torch.tensor(spec["tensor"], dtype=dtype, requires_grad=bool(spec.get("requires_grad")))
        if "as" in spec:
            refs[spec["as"]] = tensor
        return tensor
    if isinstance(spec, dict) and "ref" in spec:
        return refs[spec["ref"]]
    if isinstance(spec, dict) and "global" in spec:
        value = _lookup(namespace, spec["global"])
        if "at_most" in spec and isinstance(value, (int, float)) and value > spec["at_most"]:
            raise ValueError(f"{spec['global']} is above {spec['at_most']}")
        return value
    if as_tensors and isinstance(spec, float):
        return torch.tensor(spec, dtype=torch.float64)
    return spec


def _kept(namespace, name):
    """The global `name`, if it is a torch.nn.Module with parameters, each stepped by an optimizer since
    watch_optimizer_steps(); else None."""
    import torch

    value = namespace.get(name)
    if _STEPPED is None or not isinstance(value, torch.nn.Module):
        return None
    parameters = list(value.parameters())
    return value if parameters and all(_STEPPED.get(id(p)) is p for p in parameters) else None


def _op_call(namespace, refs, request):
    kept = _kept(namespace, request["or_kept"]) if "or_kept" in request else None
    if kept is not None:
        stepped = frozenset(id(p) for p in kept.parameters())
        return {"result": describe(kept, stepped), "error": None, "reverse_mode": False, "refs": {}, "kept": True}
    function = _lookup(namespace, request["function"])
    if not callable(function):
        raise TypeError(f"{request['function']} is not a function")
    result = _attempt(namespace, refs, request, function, as_tensors=False)
    if (
        request.get("tensor_retry")
        and result["error"] is not None
        and not result["reverse_mode"]
        and result["error"]["type"] != "NotImplementedError"
    ):
        retry = _attempt(namespace, refs, request, function, as_tensors=True)
        if retry["error"] is None or retry["reverse_mode"]:
            result = retry
    return result


def _attempt(namespace, refs, request, function, as_tensors):
    """One call of function: its result, error, whether it used reverse mode, and the tensors named in refs."""
    import torch

    args = [_argument(namespace, refs, spec, as_tensors) for spec in request.get("args", [])]
    stepped: set = set()
    tried, undo = [], []
    if request.get("forward_only"):
        engine = torch.autograd.Variable._execution_engine

        class ReverseModeOff:
            """PyTorch's autograd engine with reverse mode refused (backward, autograd.grad, func.grad, ...)."""

            def run_backward(self, *a, **k):
                tried.append(True)
                raise RuntimeError("reverse mode (backward, autograd.grad) is switched off in this check")

            def __getattr__(self, name):
                return getattr(engine, name)

        refusing = ReverseModeOff()
        torch.autograd.Variable._execution_engine = refusing  # type: ignore[assignment] # the engine, but for one method

        def restore():
            if torch.autograd.Variable._execution_engine is not refusing:  # the function put another engine in
                tried.append(True)
            torch.autograd.Variable._execution_engine = engine

        undo.append(restore)
    if request.get("watch_optimizers"):
        from torch.optim.optimizer import register_optimizer_step_post_hook

        def remember(optimizer, *_):
            stepped.update(id(p) for group in optimizer.param_groups for p in group["params"])

        undo.append(register_optimizer_step_post_hook(remember).remove)
    result = error = None
    try:
        result = function(*args)
    except (Exception, KeyboardInterrupt) as failure:  # noqa: BLE001 - the student's error is part of the answer
        error = _error(failure)
    finally:
        for step in reversed(undo):
            step()
    return {
        "result": None if error else describe(result, frozenset(stepped)),
        "error": error,
        "reverse_mode": bool(tried),
        "refs": {name: describe(refs[name], frozenset(stepped)) for name in request.get("refs", []) if name in refs},
    }


def _op_grad(namespace, refs, request):
    import torch

    inputs = [_lookup(namespace, name) for name in request["inputs"]]
    answers = []
    namespace[_PAUSED] = True
    try:
        for name in request["outputs"]:
            try:
                grads = torch.autograd.grad(
                    _lookup(namespace, name).sum(), inputs, retain_graph=True, allow_unused=True
                )
                answers.append({"grads": [None if g is None else describe(g) for g in grads]})
            except Exception as error:  # noqa: BLE001
                answers.append({"failed": _error(error)})
    finally:
        namespace[_PAUSED] = False
    return {"outputs": answers}


def _op_reaches(namespace, refs, request):
    output = _lookup(namespace, request["output"])
    leaves = [_lookup(namespace, name) for name in request["inputs"]]
    found: set = set()
    stack, seen, names = [output.grad_fn], set(), set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        names.add(type(node).__name__)
        variable = getattr(node, "variable", None)
        found.update(i for i, leaf in enumerate(leaves) if variable is leaf)
        stack.extend(n for n, _ in node.next_functions)
    return {"reaches": [i in found for i in range(len(leaves))], "operations": sorted(names)}


def _op_count_backward(namespace, refs, request):
    passes = namespace.setdefault(_COUNTER, [])

    def count(grad):
        if not namespace.get(_PAUSED):
            passes.append(1)

    for name in request["inputs"]:
        _lookup(namespace, name).register_hook(count)
    return {"counting": True}


def _op_backward_count(namespace, refs, request):
    passes = namespace.get(_COUNTER)
    return {"count": None if passes is None else len(passes)}


def _op_remember(namespace, refs, request):
    kept = namespace.setdefault(_REMEMBERED, {})
    kept[request["key"]] = [_lookup(namespace, name) for name in request["names"]]
    return {"remembered": True}


def _op_same_as(namespace, refs, request):
    kept = namespace.get(_REMEMBERED, {}).get(request["key"], [])
    return {"same": [any(_lookup(namespace, name) is old for old in kept) for name in request["names"]]}


_OPS = {
    "describe": _op_describe,
    "call": _op_call,
    "grad": _op_grad,
    "reaches": _op_reaches,
    "count_backward": _op_count_backward,
    "backward_count": _op_backward_count,
    "remember": _op_remember,
    "same_as": _op_same_as,
}
