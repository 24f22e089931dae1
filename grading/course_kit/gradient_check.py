"""Gradient checking: a function's gradient three ways, side by side. Shipped beside the notebook.

    gradient_check(function, sweep=None, at=(2.0, 3.0))

`function(x, y)` computes a scalar from two tensors (any PyTorch operations). The table gives, for x and y:
your own reverse sweep (`sweep(x0, y0)`, a dict with the keys "x" and "y", if you give one), PyTorch's
`backward()`, and a central finite difference, (f(x + h) - f(x - h)) / 2h, which needs no derivative at all. When
the three agree to several digits, your sweep is very likely right; when the finite difference disagrees with
both, the function may not be smooth at that point.
"""

import torch

STEP = 1e-6  # h of the finite difference, in float64: small enough to be accurate, large enough not to round off


def backward_gradient(function, x0, y0):
    """(df/dx, df/dy) at (x0, y0) by PyTorch's reverse mode, in float64."""
    x, y = (torch.tensor(float(v), dtype=torch.float64, requires_grad=True) for v in (x0, y0))
    function(x, y).backward()
    return tuple(float(v.grad) if v.grad is not None else 0.0 for v in (x, y))


def finite_difference(function, x0, y0, h=STEP):
    """(df/dx, df/dy) at (x0, y0) by central differences, in float64, with PyTorch's autograd off."""

    def f(x, y):
        with torch.no_grad():
            return float(function(torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)))

    x0, y0 = float(x0), float(y0)
    return ((f(x0 + h, y0) - f(x0 - h, y0)) / (2 * h), (f(x0, y0 + h) - f(x0, y0 - h)) / (2 * h))


def _sweep_gradient(sweep, x0, y0):
    """(df/dx, df/dy) from a sweep's dict of adjoints, or a sentence saying why there is none."""
    try:
        adjoints = sweep(x0, y0)
    except NotImplementedError:
        return f"write {getattr(sweep, '__name__', 'your sweep')} first"
    except Exception as error:  # noqa: BLE001 - the student's error is what the table shows
        return f"{getattr(sweep, '__name__', 'your sweep')} raised {type(error).__name__}: {error}"
    if not isinstance(adjoints, dict) or "x" not in adjoints or "y" not in adjoints:
        return "the sweep should return a dict with the keys 'x' and 'y'"
    try:
        return tuple(float(v.detach() if isinstance(v, torch.Tensor) else v) for v in (adjoints["x"], adjoints["y"]))
    except (TypeError, ValueError, RuntimeError):
        return "the sweep's 'x' and 'y' should be numbers"


def gradient_check(function, sweep=None, at=(2.0, 3.0), name="f"):
    """Print df/dx and df/dy at `at` from your sweep (if given), from backward() and by finite differences."""
    x0, y0 = at
    columns = {}
    if sweep is not None:
        columns["your sweep"] = _sweep_gradient(sweep, x0, y0)
    columns["backward()"] = backward_gradient(function, x0, y0)
    columns["finite difference"] = finite_difference(function, x0, y0)
    label = f"{name} at (x, y) = ({x0:g}, {y0:g})"
    width = max(24, len(label) + 2)
    print(label.ljust(width) + "".join(f"{title:>20}" for title in columns))
    for index, variable in enumerate("xy"):
        cells = [f"{value[index]:20.6f}" if isinstance(value, tuple) else f"{'-':>20}" for value in columns.values()]
        print(f"d{name}/d{variable}".ljust(width) + "".join(cells))
    for value in columns.values():
        if isinstance(value, str):
            print(f"(your sweep: {value})")
    print(verdict({title: value for title, value in columns.items() if isinstance(value, tuple)}, sweep is not None))


def _same(a, b):
    return all(abs(u - v) <= 1e-4 * (1 + abs(v)) for u, v in zip(a, b, strict=True))


def verdict(columns, sweep_given):
    """One sentence on which of the columns agree, and where to look when they do not."""
    sweep, backward, difference = (columns.get(t) for t in ("your sweep", "backward()", "finite difference"))
    if not _same(backward, difference):
        return (
            "backward() and the finite difference disagree: the function may use operations autograd cannot see "
            "(math or NumPy functions, .item(), typed-in numbers) or not be smooth at this point."
        )
    if sweep is None:
        return "backward() and the finite difference agree" if sweep_given else "they agree"
    if _same(sweep, backward):
        return "they agree"
    wrong = " and ".join(f"d/d{v}" for i, v in enumerate("xy") if not _same(sweep[i : i + 1], backward[i : i + 1]))
    return f"your sweep disagrees with both in {wrong}: look for the step whose local derivative differs"
