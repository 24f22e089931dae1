"""The notebook's gradient check: a sweep, backward() and finite differences side by side, saying whether they agree."""

import math

import torch

from grading.course_kit.gradient_check import backward_gradient, finite_difference, gradient_check


def F(x, y):
    return x**2 * (x + y)


def right_sweep(x0, y0):
    return {"x": 3 * x0 * x0 + 2 * x0 * y0, "y": x0 * x0}


def test_backward_and_finite_differences_agree_on_a_smooth_function():
    def f(x, y):
        return torch.sin(x * y) + x

    exact = (1.0 * torch.cos(torch.tensor(0.5)).item() + 1, 0.5 * torch.cos(torch.tensor(0.5)).item())
    for found in (backward_gradient(f, 0.5, 1.0), finite_difference(f, 0.5, 1.0)):
        assert all(abs(a - b) < 1e-6 for a, b in zip(found, exact)), found


def test_a_right_sweep_agrees_and_a_wrong_one_is_told_so(capsys):
    gradient_check(F, right_sweep, at=(2.0, 3.0), name="F")
    table = capsys.readouterr().out
    assert "24.000000" in table and table.rstrip().endswith("they agree"), table
    gradient_check(F, lambda x0, y0: {"x": 20.0, "y": 4.0}, at=(2.0, 3.0), name="F")
    assert "your sweep disagrees with both in d/dx: look for the step" in capsys.readouterr().out


def test_a_function_autograd_cannot_see_is_told_apart_from_a_wrong_sweep(capsys):
    gradient_check(lambda x, y: math.sin(x * y) + x, at=(0.5, 1.0))
    out = capsys.readouterr().out
    assert "backward() and the finite difference disagree" in out and "math or NumPy" in out, out


def test_a_sweep_of_tensors_that_carry_history_is_read_without_a_warning(recwarn, capsys):
    def sweep(x0, y0):
        x = torch.tensor(float(x0), requires_grad=True)
        return {"x": 3 * x * x + 2 * x * y0, "y": x * x}

    gradient_check(F, sweep, at=(2.0, 3.0))
    assert capsys.readouterr().out.rstrip().endswith("they agree")
    assert not [w for w in recwarn if "requires_grad" in str(w.message)]


def test_a_sweep_not_written_yet_or_broken_leaves_the_other_columns(capsys):
    def not_written(x0, y0):
        raise NotImplementedError()

    gradient_check(F, not_written, at=(2.0, 3.0), name="F")
    table = capsys.readouterr().out
    assert "write not_written first" in table and "24.000000" in table, table
    assert table.rstrip().endswith("backward() and the finite difference agree"), table
    gradient_check(F, lambda x0, y0: [1, 2], at=(2.0, 3.0))
    assert "a dict with the keys 'x' and 'y'" in capsys.readouterr().out
