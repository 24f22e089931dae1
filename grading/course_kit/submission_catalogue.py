"""Synthetic submissions, each named by what is in it: answers that differ from the solution, by grade id.

CORRECT answers must get every point; each WRONG answer must lose the points of the question it names,
while every other question keeps its points, except a question that builds on the wrong one (BUILDS_ON).
`verdicts` turns graded scores into these verdicts, for the tests and for `make catalogue` alike.
"""

from dataclasses import dataclass, field
from textwrap import dedent

from grading.checks.backprop_questions import AUTOGRADED, BUILDS_ON  # noqa: F401 (the tests read them from here)
from grading.course_kit.submissions import training_loop


def answers(**cells):
    """grade id -> dedented code, from keyword arguments named like the answer cells (q1a=... -> q1a_answer)."""
    return {f"{key}_answer": dedent(code).strip() for key, code in cells.items()}


def joined(*blocks):
    """Code blocks, each dedented, one after the other."""
    return "\n".join(dedent(block).strip() for block in blocks)


def sgd_step_with(
    loss="(x_B.mm(w) - y_B).pow(2).mean()",
    update="w -= learning_rate * w.grad",
    zero="w.grad.zero_()",
    result="loss.item()",
):
    """Question 3 as the solution writes it, with one line changed."""
    return f"""
        def sgd_step(w, x_B, y_B, learning_rate):
            loss = {loss}
            loss.backward()
            with torch.no_grad():
                {update}
                {zero}
            return {result}
    """


def sweeps(f_sweep, g_sweep):
    """Question 1's reverse sweeps, adjoints_F and adjoints_G, with the given bodies (after x and y are floats)."""
    return f"""
        def adjoints_F(x0, y0):
            x, y = float(x0), float(y0)
            {dedent(f_sweep).strip().replace(chr(10), chr(10) + " " * 12)}

        def adjoints_G(x0, y0):
            x, y = float(x0), float(y0)
            {dedent(g_sweep).strip().replace(chr(10), chr(10) + " " * 12)}
    """


SWEEP_F = """
    c, s = x ** 2, x + y
    F_bar = 1.0
    c_bar, s_bar = F_bar * s, F_bar * c
    x_bar = c_bar * 2 * x
    x_bar += s_bar
    y_bar = s_bar
    return {"F": F_bar, "c": c_bar, "s": s_bar, "x": x_bar, "y": y_bar}
"""
SWEEP_G = """
    u = x * y
    v = u + x
    G_bar = 1.0
    u_bar, v_bar = G_bar * v, G_bar * u
    u_bar += v_bar
    x_bar = u_bar * y
    x_bar += v_bar
    y_bar = u_bar * x
    return {"G": G_bar, "u": u_bar, "v": v_bar, "x": x_bar, "y": y_bar}
"""


def optimizer_loop(
    optimizer="torch.optim.SGD(model.parameters(), lr=0.5)",
    steps=1000,
    zero="optimizer.zero_grad()",
    step="optimizer.step()",
    model="torch.nn.Linear(2, 1, bias=False)",
):
    """Question 5 as the solution writes it, with one part changed."""
    return f"""
        def train_model(x, y):
            model = {model}
            optimizer = {optimizer}
            for t in range({steps}):
                sample = np.random.randint(0, len(x), B)
                {zero}
                loss = func.mse_loss(model(x[sample]), y[sample])
                loss.backward()
                {step}
            return model
    """


DUAL_CLASS = """
    class Dual:
        \"\"\"A value and its tangent, carried together through + * ** and log.\"\"\"
        def __init__(self, value, tangent=0.0):
            self.value, self.tangent = value, tangent
        @staticmethod
        def lift(other):
            return other if isinstance(other, Dual) else Dual(other)
        def __add__(self, other):
            other = Dual.lift(other)
            return Dual(self.value + other.value, self.tangent + other.tangent)
        __radd__ = __add__
        def __mul__(self, other):
            other = Dual.lift(other)
            return Dual(self.value * other.value, self.tangent * other.value + self.value * other.tangent)
        __rmul__ = __mul__
        def __pow__(self, n):
            return Dual(self.value ** n, n * self.value ** (n - 1) * self.tangent)
        def log(self):
            return Dual(math.log(self.value), self.tangent / self.value)

    def dF_dx_forward(x0, y0):
        x, y = Dual(x0, 1.0), Dual(y0, 0.0)
        c = x ** 2
        s = x + y
        return (c * s).tangent
"""

CORRECT = {
    "q1rev-micrograd-value-class-with-a-topological-sweep": answers(
        q1rev="""
        class Value:
            def __init__(self, data, parents=()):
                self.data, self.grad, self.parents, self.local = data, 0.0, parents, ()

            def __add__(self, other):
                out = Value(self.data + other.data, (self, other))
                out.local = (1.0, 1.0)
                return out

            def __mul__(self, other):
                out = Value(self.data * other.data, (self, other))
                out.local = (other.data, self.data)
                return out

            def backward(self):
                order, seen = [], set()

                def visit(node):
                    if id(node) not in seen:
                        seen.add(id(node))
                        for parent in node.parents:
                            visit(parent)
                        order.append(node)

                visit(self)
                self.grad = 1.0
                for node in reversed(order):
                    for parent, local in zip(node.parents, node.local):
                        parent.grad += node.grad * local

        def adjoints_F(x0, y0):
            x, y = Value(float(x0)), Value(float(y0))
            c = x * x
            s = x + y
            F = c * s
            F.backward()
            return {"F": F.grad, "c": c.grad, "s": s.grad, "x": x.grad, "y": y.grad}

        def adjoints_G(x0, y0):
            x, y = Value(float(x0)), Value(float(y0))
            u = x * y
            v = u + x
            G = u * v
            G.backward()
            return {"G": G.grad, "u": u.grad, "v": v.grad, "x": x.grad, "y": y.grad}
    """
    ),
    "q1rev-sweep-over-an-edge-list-with-float32-tensors": answers(
        q1rev="""
        def sweep(output, edges):
            adjoint = {output: torch.tensor(1.0)}
            for child, parent, local in edges:  # edges listed from the output back to the inputs
                adjoint[parent] = adjoint.get(parent, torch.tensor(0.0)) + adjoint[child] * local
            return adjoint

        def adjoints_F(x0, y0):
            x, y = torch.tensor(x0, dtype=torch.float32), torch.tensor(y0, dtype=torch.float32)
            c, s = x * x, x + y
            return sweep("F", [("F", "c", s), ("F", "s", c), ("c", "x", 2 * x), ("s", "x", 1.0), ("s", "y", 1.0)])

        def adjoints_G(x0, y0):
            x, y = torch.tensor(x0, dtype=torch.float32), torch.tensor(y0, dtype=torch.float32)
            u = x * y
            v = u + x
            return sweep(
                "G", [("G", "u", v), ("G", "v", u), ("v", "u", 1.0), ("v", "x", 1.0), ("u", "x", y), ("u", "y", x)]
            )
    """
    ),
    "q1rev-local-derivatives-by-sympy-and-sympy-numbers-returned": answers(
        q1rev="""
        import sympy

        def sympy_sweep(output, nodes, point):
            # nodes: name -> sympy expression of its parents' symbols, in forward order
            values = dict(point)
            for name, expression in nodes.items():
                values[name] = expression.subs({sympy.Symbol(k): v for k, v in values.items()})
            adjoints = {name: sympy.Integer(0) for name in values}
            adjoints[output] = sympy.Integer(1)
            for name, expression in reversed(list(nodes.items())):
                for parent in expression.free_symbols:
                    local = sympy.diff(expression, parent).subs({sympy.Symbol(k): v for k, v in values.items()})
                    adjoints[str(parent)] += adjoints[name] * local
            return adjoints

        def adjoints_F(x0, y0):
            x, y, c, s = sympy.symbols("x y c s")
            point = {"x": sympy.nsimplify(x0), "y": sympy.nsimplify(y0)}
            return sympy_sweep("F", {"c": x**2, "s": x + y, "F": c * s}, point)

        def adjoints_G(x0, y0):
            x, y, u, v = sympy.symbols("x y u v")
            point = {"x": sympy.nsimplify(x0), "y": sympy.nsimplify(y0)}
            return sympy_sweep("G", {"u": x * y, "v": u + x, "G": u * v}, point)
    """
    ),
    "q1rev-numpy-floats-and-keys-in-another-order": answers(
        q1rev=sweeps(
            """
            x, y = np.float64(x), np.float64(y)
            c, s = x * x, x + y
            return dict(y=c, x=3 * x * x + 2 * x * y, s=c, c=s, F=np.float64(1))
            """,
            """
            u, v = x * y, x * y + x
            u_bar = v + u
            return {"y": u_bar * x, "x": u_bar * y + u, "v": u, "u": u_bar, "G": 1}
            """,
        )
    ),
    "variable-wrapper-and-functional-ops": answers(
        q1a="""
        x = Variable(torch.tensor(2.), requires_grad=True)
        y = Variable(torch.tensor(3.), requires_grad=True)
        c = torch.pow(x, 2)
        s = torch.add(x, y)
        F = torch.mul(c, s)
    """,
        q1b="torch.autograd.backward(F, retain_graph=True)",
    ),
    "float64-one-element-tensors-and-log-method": answers(
        q1a="""
        x = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
        y = torch.tensor([3.0], dtype=torch.float64, requires_grad=True)
        c = x * x
        s = x + y
        F = x ** 2 * (x + y)
    """,
        q1b="""
        F.sum().backward(retain_graph=True)
        print(x.grad, y.grad)
    """,
        q2="""
        x = torch.tensor([[2.0]], dtype=torch.float64, requires_grad=True)
        y = torch.tensor([[3.0]], dtype=torch.float64, requires_grad=True)
        a = x.log()
        b = x * x * y
        c = torch.square(y)
        F = a + b + c
        F.backward(torch.ones_like(F))
    """,
    ),
    "parameters-and-square-with-explicit-gradient": answers(
        q1a="""
        x = torch.nn.Parameter(torch.tensor(2.0))
        y = torch.nn.Parameter(torch.tensor(3.0))
        c = torch.square(x)
        s = y + x
        F = s * c
    """,
        q1b="F.backward(gradient=torch.tensor(1.0), retain_graph=True)",
        q2="""
        x = torch.tensor(2.0).requires_grad_()
        y = torch.tensor(3.0).requires_grad_()
        a, b, c = torch.log(x), torch.mul(x.pow(2), y), y.pow(2)
        F = torch.add(torch.add(a, b), c)
        torch.autograd.backward(F)
    """,
    ),
    "forward-mode-by-hand-with-value-tangent-pairs": answers(
        q1fwd="""
        def dF_dx_forward(x0, y0):
            x, dx = x0, 1.0
            y, dy = y0, 0.0
            c, dc = x ** 2, 2 * x * dx
            s, ds = x + y, dx + dy
            return dc * s + c * ds
    """,
        q2fwd="""
        def grad_forward(x0, y0):
            def pass_with(dx, dy):
                a, da = math.log(x0), dx / x0
                b, db = x0 ** 2 * y0, 2 * x0 * y0 * dx + x0 ** 2 * dy
                c, dc = y0 ** 2, 2 * y0 * dy
                return da + db + dc
            return pass_with(1.0, 0.0), pass_with(0.0, 1.0)
    """,
    ),
    "value-tangent-class-with-operator-overloading": answers(
        q1fwd=DUAL_CLASS,
        q2fwd="""
        def grad_forward(x0, y0):
            def F(x, y):
                return x.log() + x ** 2 * y + y ** 2
            return F(Dual(x0, 1.0), Dual(y0, 0.0)).tangent, F(Dual(x0, 0.0), Dual(y0, 1.0)).tangent
    """,
    ),
    "dual-tensors-in-float64-returning-tensors": answers(
        q1fwd="""
        import torch.autograd.forward_ad as fwAD

        def dF_dx_forward(x0, y0):
            with fwAD.dual_level():
                x = fwAD.make_dual(torch.tensor(x0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
                F = x ** 2 * (x + y0)
                return fwAD.unpack_dual(F).tangent
    """,
        q2fwd="""
        import torch.autograd.forward_ad as fwAD

        def grad_forward(x0, y0):
            tangents = []
            for dx, dy in ((1.0, 0.0), (0.0, 1.0)):
                with fwAD.dual_level():
                    x = fwAD.make_dual(torch.tensor([x0], dtype=torch.float64), torch.tensor([dx], dtype=torch.float64))
                    y = fwAD.make_dual(torch.tensor([y0], dtype=torch.float64), torch.tensor([dy], dtype=torch.float64))
                    F = torch.log(x) + x ** 2 * y + y ** 2
                    tangents.append(fwAD.unpack_dual(F).tangent.clone())
            return tangents[0], tangents[1]
    """,
    ),
    "func-jvp-with-lambda-and-jacfwd": answers(
        q1fwd="""
        def dF_dx_forward(x0, y0):
            value, tangent = torch.func.jvp(lambda x: x ** 2 * (x + y0), (torch.tensor(float(x0)),),
                                            (torch.tensor(1.0),))
            return tangent.item()
    """,
        q2fwd="""
        def grad_forward(x0, y0):
            F = lambda x, y: torch.log(x) + x ** 2 * y + y ** 2
            return torch.func.jacfwd(F, argnums=(0, 1))(torch.tensor(float(x0)), torch.tensor(float(y0)))
    """,
    ),
    "forward-functions-written-for-tensor-inputs": answers(
        q1fwd="""
        import torch.autograd.forward_ad as fwAD

        def dF_dx_forward(x0, y0):
            with fwAD.dual_level():
                x = fwAD.make_dual(x0, torch.ones_like(x0))
                F = x ** 2 * (x + y0)
                return fwAD.unpack_dual(F).tangent

        print(dF_dx_forward(torch.tensor(2.0), torch.tensor(3.0)))
    """,
        q2fwd="""
        def grad_forward(x0, y0):
            f = lambda v: torch.log(v[0]) + v[0] ** 2 * v[1] + v[1] ** 2
            return torch.func.jacfwd(f)(torch.stack([x0, y0]))

        print(grad_forward(torch.tensor(2.0), torch.tensor(3.0)))
    """,
    ),
    "sgd-with-mse-loss-and-grad-set-to-none": answers(
        q3="""
        def sgd_step(w, x_B, y_B, learning_rate):
            loss = torch.nn.functional.mse_loss(torch.matmul(x_B, w), y_B)
            loss.backward()
            with torch.no_grad():
                w.sub_(learning_rate * w.grad)
            w.grad = None
            return loss.item()
    """
    ),
    "sgd-step-zeroing-before-backward-returning-a-tensor": answers(
        q3="""
        def sgd_step(w, x_B, y_B, learning_rate):
            if w.grad is not None:
                w.grad.zero_()
            loss = torch.mean((x_B @ w - y_B) ** 2)
            loss.backward()
            with torch.no_grad():
                w.copy_(w - learning_rate * w.grad)
            return loss.detach()
    """
    ),
    "sgd-step-on-w-data-with-lists-over-shuffled-passes": answers(
        q3="""
        def sgd_step(w, x_B, y_B, learning_rate):
            loss = torch.nn.MSELoss()(x_B.mm(w), y_B)
            loss.backward()
            w.data -= learning_rate * w.grad.data
            w.grad.data.zero_()
            return loss
    """,
        q4=training_loop(
            "0.3",
            300,
            body="""
        losses, weights = [], []
        step = 0
        while step < steps:  # passes over the data in a new order, len(x) // batch_size mini-batches each
            order = np.random.permutation(len(x))
            for start in range(0, len(x) - batch_size + 1, batch_size):
                if step == steps:
                    break
                sample = order[start:start + batch_size]
                loss = sgd_step(w, x[sample], y[sample], learning_rate)
                if step % 10 == 0:
                    losses.append(float(loss))
                    weights.append(w.detach().clone())
                step += 1
        return losses, weights
    """,
        ),
    ),
    "training-loop-recording-into-arrays-with-shadowed-builtins": answers(
        q4=joined(
            """
        sum = 0.0  # running total of the losses (shadows the builtin sum)
        max = None
    """,
            training_loop(
                "0.5",
                1000,
                body="""
        losses = np.empty(steps // 10)
        weights = np.empty((steps // 10, 2))
        for t in range(steps):
            sample = torch.randint(0, x.shape[0], (batch_size,))
            loss = sgd_step(w, x[sample], y[sample], learning_rate)
            if t % 10 == 0:
                losses[t // 10] = loss
                weights[t // 10, :] = w.detach().reshape(-1).numpy()
        return losses, weights
    """,
            ),
        )
    ),
    "adam-optimizer-with-mse-loss-module": answers(
        q5="""
        def train_model(x, y):
            model = torch.nn.Linear(2, 1, bias=False)
            optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
            criterion = torch.nn.MSELoss()
            for t in range(1000):
                sample = np.random.randint(0, N, B)
                model.zero_grad()
                criterion(model(x[sample]), y[sample]).backward()
                optimizer.step()
            return model
    """
    ),
    "sgd-with-momentum-over-shuffled-passes": answers(
        q5="""
        def train_model(inputs, targets):
            net = nn.Linear(D_in, D_out, bias=False)
            optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
            for epoch in range(100):
                for batch in torch.randperm(len(inputs)).split(B):
                    optimizer.zero_grad(set_to_none=True)
                    loss = ((net(inputs[batch]) - targets[batch]) ** 2).mean()
                    loss.backward()
                    optimizer.step()
            return net
    """
    ),
    # PyTorch warnings, in the answer cells and inside the functions the tests call, and text written to stderr
    # below Python (as C++ code does): none of it may cost a point.
    "correct-answers-that-trigger-pytorch-warnings-and-stderr": answers(
        q1a="""
        x = torch.tensor(torch.tensor(2.0), requires_grad=True)  # UserWarning: copy construct from a tensor
        y = torch.tensor(torch.tensor(3.0), requires_grad=True)
        c = x ** 2
        s = x + y
        F = c * s
    """,
        q1fwd="""
        def dF_dx_forward(x0, y0):
            x = torch.tensor(torch.as_tensor(x0, dtype=torch.float64))  # UserWarning when called
            value, tangent = torch.func.jvp(lambda v: v ** 2 * (v + y0), (x,), (torch.ones_like(x),))
            return tangent
    """,
        q3="""
        import os
        warned = []

        def sgd_step(w, x_B, y_B, learning_rate):
            loss = ((x_B.mm(w) - y_B) ** 2).mean()
            loss.backward()
            loss.grad  # UserWarning: .grad of a tensor that is not a leaf
            if not warned:  # once, straight to the file descriptor, as C++ code warns
                os.write(2, b"[W] a message on stderr, written below Python\\n")
                warned.append(True)
            with torch.no_grad():
                w -= torch.tensor(learning_rate * w.grad)  # UserWarning: copy construct from a tensor
                w.grad.zero_()
            return loss.item()
    """,
        q5=optimizer_loop(
            optimizer="torch.optim.SGD(model.parameters(), lr=0.5)\n"
            "            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 500)\n"
            "            scheduler.step()  # UserWarning: scheduler stepped before the optimizer"
        ),
    ),
}

# Answers that try to talk the tests round: they replace the comparison functions tests commonly use, or
# redefine builtins, or install a handler that swallows exceptions, before the test cells run.
REPLACE_TORCH_COMPARISONS = """
    torch.allclose = lambda *args, **kwargs: True
    torch.isclose = lambda a, b, *args, **kwargs: torch.ones_like(torch.as_tensor(a), dtype=torch.bool)
    torch.equal = lambda *args, **kwargs: True
    torch.testing.assert_close = lambda *args, **kwargs: None
"""
REPLACE_MATH_AND_NUMPY_COMPARISONS = """
    import sys, types
    math.isclose = lambda *args, **kwargs: True
    np.allclose = np.array_equal = lambda *args, **kwargs: True
    np.isclose = lambda a, b, *args, **kwargs: np.ones_like(np.asarray(a), dtype=bool)
    np.testing = sys.modules["numpy.testing"] = types.SimpleNamespace(
        **{name: (lambda *args, **kwargs: None) for name in dir(np.testing) if name.startswith("assert")})
"""
REDEFINE_BUILTINS = """
    abs = lambda value: 0
    all = any = lambda *args, **kwargs: True
    round = lambda value, *args: 0
    min = max = lambda *args, **kwargs: 0
"""
SWALLOW_EXCEPTIONS = """
    get_ipython().set_custom_exc((BaseException,), lambda shell, etype, value, tb, tb_offset=None: None)
"""

WRONG = {
    # Question 1, reverse mode by hand
    "q1rev-overwrites-the-adjoint-of-a-node-used-twice": (
        "q1rev",
        answers(q1rev=sweeps(SWEEP_F.replace("x_bar += s_bar", "x_bar = s_bar"), SWEEP_G)),
    ),
    "q1rev-G-keeps-only-the-direct-edge-of-u": (
        "q1rev",
        answers(q1rev=sweeps(SWEEP_F, SWEEP_G.replace("u_bar += v_bar", ""))),
    ),
    "q1rev-local-derivatives-of-the-product-swapped": (
        "q1rev",
        answers(q1rev=sweeps(SWEEP_F.replace("F_bar * s, F_bar * c", "F_bar * c, F_bar * s"), SWEEP_G)),
    ),
    "q1rev-sweep-by-backward-and-retain-grad": (
        "q1rev",
        answers(
            q1rev=sweeps(
                SWEEP_F,
                """
                x, y = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
                u = x * y
                v = u + x
                G = u * v
                for node in (u, v, G):
                    node.retain_grad()
                G.backward()
                return {"G": 1.0, "u": u.grad.item(), "v": v.grad.item(), "x": x.grad.item(), "y": y.grad.item()}
                """,
            )
        ),
    ),
    "q1rev-adjoints-typed-in-at-2-3": (
        "q1rev",
        answers(
            q1rev=sweeps(
                'return {"F": 1.0, "c": 5.0, "s": 4.0, "x": 24.0, "y": 4.0}',
                'return {"G": 1.0, "u": 14.0, "v": 6.0, "x": 48.0, "y": 28.0}',
            )
        ),
    ),
    "q1rev-returns-the-forward-values": (
        "q1rev",
        answers(
            q1rev=sweeps(
                'return {"F": 1.0, "c": x * x, "s": x + y, "x": x, "y": y}',
                'return {"G": 1.0, "u": x * y, "v": x * y + x, "x": x, "y": y}',
            )
        ),
    ),
    "q1rev-sweep-starts-from-zero": (
        "q1rev",
        answers(q1rev=sweeps(SWEEP_F.replace("F_bar = 1.0", "F_bar = 0.0"), SWEEP_G)),
    ),
    "q1rev-sign-of-a-local-derivative-flipped": (
        "q1rev",
        answers(q1rev=sweeps(SWEEP_F, SWEEP_G.replace("x_bar += v_bar", "x_bar -= v_bar"))),
    ),
    "q1rev-returns-a-list-not-a-dict": (
        "q1rev",
        answers(
            q1rev=sweeps(
                SWEEP_F.replace('{"F": F_bar, "c": c_bar, "s": s_bar, "x": x_bar, "y": y_bar}', "[x_bar, y_bar]"),
                SWEEP_G,
            )
        ),
    ),
    # Question 1a
    "q1a-sum-instead-of-product": (
        "q1a",
        answers(
            q1a="""
        x = torch.tensor(2.0, requires_grad=True)
        y = torch.tensor(3.0, requires_grad=True)
        c = x ** 2
        s = x + y
        F = c + s
    """
        ),
    ),
    "q1a-no-requires-grad": (
        "q1a",
        answers(
            q1a="""
        x = torch.tensor(2.0)
        y = torch.tensor(3.0)
        c = x ** 2
        s = x + y
        F = c * s
    """
        ),
    ),
    "q1a-graph-cut-by-detach": (
        "q1a",
        answers(
            q1a="""
        x = torch.tensor(2.0, requires_grad=True)
        y = torch.tensor(3.0, requires_grad=True)
        c = x.detach() ** 2
        s = x + y
        F = c * s
    """
        ),
    ),
    "q1a-inputs-swapped": (
        "q1a",
        answers(
            q1a="""
        x = torch.tensor(3.0, requires_grad=True)
        y = torch.tensor(2.0, requires_grad=True)
        c = x ** 2
        s = x + y
        F = c * s
    """
        ),
    ),
    "q1a-python-floats": (
        "q1a",
        answers(
            q1a="""
        x = 2.0
        y = 3.0
        c = x ** 2
        s = x + y
        F = c * s
    """
        ),
    ),
    "q1a-derivative-2x-instead-of-square": (
        "q1a",
        answers(
            q1a="""
        x = torch.tensor(2.0, requires_grad=True)
        y = torch.tensor(3.0, requires_grad=True)
        c = 2 * x
        s = x + y
        F = c * s
    """
        ),
    ),
    "q1a-F-typed-in": (
        "q1a",
        answers(
            q1a="""
        x = torch.tensor(2.0, requires_grad=True)
        y = torch.tensor(3.0, requires_grad=True)
        c = x ** 2
        s = x + y
        F = torch.tensor(20.0, requires_grad=True)
    """
        ),
    ),
    "q1a-inputs-computed-not-leaves": (
        "q1a",
        answers(
            q1a="""
        x = torch.tensor(1.0, requires_grad=True) * 2
        y = torch.tensor(1.0, requires_grad=True) * 3
        c = x ** 2
        s = x + y
        F = c * s
    """
        ),
    ),
    "q1a-vector-inputs-summed": (
        "q1a",
        answers(
            q1a="""
        x = torch.tensor([2.0, 2.0], requires_grad=True)
        y = torch.tensor([3.0, 3.0], requires_grad=True)
        c = x ** 2
        s = x + y
        F = (c * s).sum() / 2
    """
        ),
    ),
    "q1a-sum-instead-of-product-with-torch-comparisons-replaced": (
        "q1a",
        answers(
            q1a=joined(
                REPLACE_TORCH_COMPARISONS,
                """
        x = torch.tensor(2.0, requires_grad=True)
        y = torch.tensor(3.0, requires_grad=True)
        c = x ** 2
        s = x + y
        F = c + s
    """,
            )
        ),
    ),
    # Question 1, forward mode
    "q1fwd-reverse-mode-backward": (
        "q1fwd",
        answers(
            q1fwd="""
        def dF_dx_forward(x0, y0):
            x = torch.tensor(float(x0), requires_grad=True)
            F = x ** 2 * (x + y0)
            F.backward()
            return x.grad.item()
    """
        ),
    ),
    "q1fwd-reverse-mode-through-an-imported-grad": (
        "q1fwd",
        answers(
            q1fwd="""
        from torch.autograd import grad

        def dF_dx_forward(x0, y0):
            with torch.enable_grad():
                x = torch.tensor(float(x0), requires_grad=True)
                (dx,) = grad(x ** 2 * (x + y0), (x,))
            return dx.item()
    """
        ),
    ),
    "q1fwd-reverse-mode-torch-func-grad": (
        "q1fwd",
        answers(
            q1fwd="""
        def dF_dx_forward(x0, y0):
            return torch.func.grad(lambda x: x ** 2 * (x + y0))(torch.tensor(float(x0))).item()
    """
        ),
    ),
    "q1fwd-autograd-functional-jvp-is-reverse-mode": (
        "q1fwd",
        answers(
            q1fwd="""
        def dF_dx_forward(x0, y0):
            f = lambda x: x ** 2 * (x + y0)
            return torch.autograd.functional.jvp(f, torch.tensor(float(x0)), torch.tensor(1.0))[1].item()
    """
        ),
    ),
    "q1fwd-hard-coded-24": (
        "q1fwd",
        answers(
            q1fwd="""
        def dF_dx_forward(x0, y0):
            return 24.0
    """
        ),
    ),
    "q1fwd-tangent-seeded-on-y": (
        "q1fwd",
        answers(
            q1fwd="""
        def dF_dx_forward(x0, y0):
            _, tangent = torch.func.jvp(lambda x, y: x ** 2 * (x + y), (torch.tensor(x0), torch.tensor(y0)),
                                        (torch.tensor(0.0), torch.tensor(1.0)))
            return tangent.item()
    """
        ),
    ),
    "q1fwd-returns-the-value-not-the-tangent": (
        "q1fwd",
        answers(
            q1fwd="""
        import torch.autograd.forward_ad as fwAD

        def dF_dx_forward(x0, y0):
            with fwAD.dual_level():
                x = fwAD.make_dual(torch.tensor(x0), torch.tensor(1.0))
                return fwAD.unpack_dual(x ** 2 * (x + y0)).primal.item()
    """
        ),
    ),
    "q1fwd-make-dual-outside-dual-level-raises": (
        "q1fwd",
        answers(
            q1fwd="""
        import torch.autograd.forward_ad as fwAD

        def dF_dx_forward(x0, y0):
            x = fwAD.make_dual(torch.tensor(x0), torch.tensor(1.0))
            return fwAD.unpack_dual(x ** 2 * (x + y0)).tangent.item()
    """
        ),
    ),
    "q1fwd-hard-coded-with-builtins-redefined": (
        "q1fwd",
        answers(
            q1fwd=joined(
                REDEFINE_BUILTINS,
                """
        def dF_dx_forward(x0, y0):
            return 24.0
    """,
            )
        ),
    ),
    # Question 1b
    "q1b-graph-not-kept": ("q1b", answers(q1b="F.backward()")),
    "q1b-backward-twice": (
        "q1b",
        answers(
            q1b="""
        F.backward(retain_graph=True)
        F.backward(retain_graph=True)
    """
        ),
    ),
    "q1b-sum-then-backward-without-retain-graph": ("q1b", answers(q1b="F.sum().backward()")),
    "q1b-gradients-typed-in": (
        "q1b",
        answers(
            q1b="""
        x.grad = torch.tensor(24.0)
        y.grad = torch.tensor(4.0)
    """
        ),
    ),
    "q1b-autograd-grad-leaves-x-grad-empty": (
        "q1b",
        answers(
            q1b="""
        dF_dx, dF_dy = torch.autograd.grad(F, [x, y], retain_graph=True)
        print(dF_dx, dF_dy)
    """
        ),
    ),
    "q1b-backward-on-c": ("q1b", answers(q1b="c.backward(retain_graph=True)")),
    "q1b-gradient-argument-two": ("q1b", answers(q1b="F.backward(torch.tensor(2.0), retain_graph=True)")),
    # Question 2
    "q2-log10-instead-of-ln": (
        "q2",
        answers(
            q2="""
        x = torch.tensor(2.0, requires_grad=True)
        y = torch.tensor(3.0, requires_grad=True)
        a = torch.log10(x)
        b = x ** 2 * y
        c = y ** 2
        F = a + b + c
        F.backward()
    """
        ),
    ),
    "q2-reuses-question-1-tensors": (
        "q2",
        answers(
            q2="""
        a = torch.log(x)
        b = x ** 2 * y
        c = y ** 2
        F = a + b + c
        F.backward()
    """
        ),
    ),
    "q2-no-backward": (
        "q2",
        answers(
            q2="""
        x = torch.tensor(2.0, requires_grad=True)
        y = torch.tensor(3.0, requires_grad=True)
        a = torch.log(x)
        b = x ** 2 * y
        c = y ** 2
        F = a + b + c
    """
        ),
    ),
    "q2-backward-twice": (
        "q2",
        answers(
            q2="""
        x = torch.tensor(2.0, requires_grad=True)
        y = torch.tensor(3.0, requires_grad=True)
        a = torch.log(x)
        b = x ** 2 * y
        c = y ** 2
        F = a + b + c
        F.backward(retain_graph=True)
        F.backward()
    """
        ),
    ),
    "q2-log-from-math-module": (
        "q2",
        answers(
            q2="""
        x = torch.tensor(2.0, requires_grad=True)
        y = torch.tensor(3.0, requires_grad=True)
        a = torch.tensor(math.log(2.0))
        b = x ** 2 * y
        c = y ** 2
        F = a + b + c
        F.backward()
    """
        ),
    ),
    "q2-b-is-x-squared-plus-y": (
        "q2",
        answers(
            q2="""
        x = torch.tensor(2.0, requires_grad=True)
        y = torch.tensor(3.0, requires_grad=True)
        a = torch.log(x)
        b = x ** 2 + y
        c = y ** 2
        F = a + b + c
        F.backward()
    """
        ),
    ),
    "q2-log10-with-math-and-numpy-comparisons-replaced": (
        "q2",
        answers(
            q2=joined(
                REPLACE_MATH_AND_NUMPY_COMPARISONS,
                """
        x = torch.tensor(2.0, requires_grad=True)
        y = torch.tensor(3.0, requires_grad=True)
        a = torch.log10(x)
        b = x ** 2 * y
        c = y ** 2
        F = a + b + c
        F.backward()
    """,
            )
        ),
    ),
    # Question 2, forward mode
    "q2fwd-swapped-outputs": (
        "q2fwd",
        answers(
            q2fwd="""
        def grad_forward(x0, y0):
            return x0 ** 2 + 2 * y0, 1 / x0 + 2 * x0 * y0
    """
        ),
    ),
    "q2fwd-reverse-mode-autograd-grad": (
        "q2fwd",
        answers(
            q2fwd="""
        def grad_forward(x0, y0):
            x = torch.tensor(float(x0), requires_grad=True)
            y = torch.tensor(float(y0), requires_grad=True)
            F = torch.log(x) + x ** 2 * y + y ** 2
            gx, gy = torch.autograd.grad(F, (x, y))
            return gx.item(), gy.item()
    """
        ),
    ),
    "q2fwd-reverse-mode-func-jacrev": (
        "q2fwd",
        answers(
            q2fwd="""
        def grad_forward(x0, y0):
            F = lambda x, y: torch.log(x) + x ** 2 * y + y ** 2
            return torch.func.jacrev(F, argnums=(0, 1))(torch.tensor(float(x0)), torch.tensor(float(y0)))
    """
        ),
    ),
    "q2fwd-one-pass-with-both-tangents-one": (
        "q2fwd",
        answers(
            q2fwd="""
        def grad_forward(x0, y0):
            F = lambda x, y: torch.log(x) + x ** 2 * y + y ** 2
            x, y = torch.tensor(float(x0)), torch.tensor(float(y0))
            _, tangent = torch.func.jvp(F, (x, y), (torch.tensor(1.0), torch.tensor(1.0)))
            return tangent.item(), tangent.item()
    """
        ),
    ),
    "q2fwd-hard-coded-pair": (
        "q2fwd",
        answers(
            q2fwd="""
        def grad_forward(x0, y0):
            return 12.5, 10.0
    """
        ),
    ),
    "q2fwd-log10-instead-of-ln": (
        "q2fwd",
        answers(
            q2fwd="""
        def grad_forward(x0, y0):
            F = lambda x, y: torch.log10(x) + x ** 2 * y + y ** 2
            x, y = torch.tensor(float(x0)), torch.tensor(float(y0))
            dx = torch.func.jvp(F, (x, y), (torch.tensor(1.0), torch.tensor(0.0)))[1]
            dy = torch.func.jvp(F, (x, y), (torch.tensor(0.0), torch.tensor(1.0)))[1]
            return dx.item(), dy.item()
    """
        ),
    ),
    "q2fwd-returns-only-dF-dx": (
        "q2fwd",
        answers(
            q2fwd="""
        def grad_forward(x0, y0):
            F = lambda x, y: torch.log(x) + x ** 2 * y + y ** 2
            x, y = torch.tensor(float(x0)), torch.tensor(float(y0))
            return torch.func.jvp(F, (x, y), (torch.tensor(1.0), torch.tensor(0.0)))[1].item()
    """
        ),
    ),
    # Question 3
    "q3-sum-instead-of-mean": ("q3", answers(q3=sgd_step_with(loss="(x_B.mm(w) - y_B).pow(2).sum()"))),
    "q3-half-mean-squared-error": ("q3", answers(q3=sgd_step_with(loss="0.5 * (x_B.mm(w) - y_B).pow(2).mean()"))),
    "q3-gradient-not-zeroed": ("q3", answers(q3=sgd_step_with(zero="pass"))),
    "q3-gradient-zeroed-before-the-update": (
        "q3",
        answers(q3=sgd_step_with(update="w.grad.zero_()", zero="w -= learning_rate * w.grad")),
    ),
    "q3-gradient-ascent": ("q3", answers(q3=sgd_step_with(update="w += learning_rate * w.grad"))),
    "q3-new-tensor-instead-of-in-place-update": (
        "q3",
        answers(q3=sgd_step_with(update="w = w - learning_rate * w.grad")),
    ),
    "q3-hard-coded-learning-rate": ("q3", answers(q3=sgd_step_with(update="w -= 0.5 * w.grad"))),
    "q3-uses-global-data-not-the-mini-batch": ("q3", answers(q3=sgd_step_with(loss="(x.mm(w) - y).pow(2).mean()"))),
    "q3-returns-the-loss-after-the-update": (
        "q3",
        answers(
            q3="""
        def sgd_step(w, x_B, y_B, learning_rate):
            loss = (x_B.mm(w) - y_B).pow(2).mean()
            loss.backward()
            with torch.no_grad():
                w -= learning_rate * w.grad
                w.grad.zero_()
                return (x_B.mm(w) - y_B).pow(2).mean().item()
    """
        ),
    ),
    "q3-no-no-grad-in-place-update-of-a-leaf": (
        "q3",
        answers(
            q3="""
        def sgd_step(w, x_B, y_B, learning_rate):
            loss = (x_B.mm(w) - y_B).pow(2).mean()
            loss.backward()
            w -= learning_rate * w.grad
            w.grad.zero_()
            return loss.item()
    """
        ),
    ),
    "q3-gradient-ascent-printing-to-stderr-with-comparisons-replaced": (
        "q3",
        answers(
            q3=joined(
                REPLACE_TORCH_COMPARISONS,
                REPLACE_MATH_AND_NUMPY_COMPARISONS,
                """
        import sys

        def sgd_step(w, x_B, y_B, learning_rate):
            loss = (x_B.mm(w) - y_B).pow(2).mean()
            loss.backward()
            print("loss", loss.item(), file=sys.stderr)
            with torch.no_grad():
                w += learning_rate * w.grad
                w.grad.zero_()
            return loss.item()
    """,
            )
        ),
    ),
    # Question 4
    "q4-seed-learning-rate-and-epochs": ("q4", answers(q4=training_loop("1e-2", 500))),
    "q4-too-few-steps": ("q4", answers(q4=training_loop("0.05", 100))),
    "q4-learning-rate-diverges": ("q4", answers(q4=training_loop("5.0", 200))),
    "q4-hard-coded-weights-with-invented-records": (
        "q4",
        answers(
            q4=training_loop(
                "0.5",
                2000,
                body="""
        with torch.no_grad():
            w.copy_(torch.tensor([[0.4], [0.2]]))
        return np.linspace(1.0, 0.01, steps // 10), np.tile([0.4, 0.2], (steps // 10, 1))
    """,
            )
        ),
    ),
    "q4-weights-recorded-without-a-copy": (
        "q4",
        answers(
            q4=training_loop(
                "0.5",
                500,
                body="""
        losses, weights = [], []
        for t in range(steps):
            sample = np.random.randint(0, len(x), batch_size)
            loss = sgd_step(w, x[sample], y[sample], learning_rate)
            if t % 10 == 0:
                losses.append(loss)
                weights.append(w.detach())  # shares memory with w: every entry ends up as the final w
        return losses, weights
    """,
            )
        ),
    ),
    "q4-new-random-weights-every-step": (
        "q4",
        answers(
            q4=training_loop(
                "0.5",
                500,
                body="""
        losses, weights = [], []
        for t in range(steps):
            w = torch.randn(2, 1, requires_grad=True)
            sample = np.random.randint(0, len(x), batch_size)
            loss = sgd_step(w, x[sample], y[sample], learning_rate)
            if t % 10 == 0:
                losses.append(loss)
                weights.append(w.detach().reshape(-1).tolist())
        return losses, weights
    """,
            )
        ),
    ),
    "q4-loss-computed-but-no-step": (
        "q4",
        answers(
            q4=training_loop(
                "0.5",
                500,
                body="""
        losses, weights = [], []
        for t in range(steps):
            sample = np.random.randint(0, len(x), batch_size)
            loss = (x[sample].mm(w) - y[sample]).pow(2).mean().item()
            if t % 10 == 0:
                losses.append(loss)
                weights.append(w.detach().reshape(-1).tolist())
        return losses, weights
    """,
            )
        ),
    ),
    "q4-trains-the-global-data-not-its-arguments": (
        "q4",
        answers(
            q4=training_loop(
                "0.5",
                1000,
                body="""
        losses, weights = [], []
        for t in range(steps):
            sample = np.random.randint(0, N, B)
            loss = sgd_step(w, globals()["X_train"][sample], globals()["y_train"][sample], learning_rate)
            if t % 10 == 0:
                losses.append(loss)
                weights.append(w.detach().reshape(-1).tolist())
        return losses, weights
    """,
            )
        ),
    ),
    "q4-mini-batch-indexes-past-the-end-of-the-data": (
        "q4",
        answers(
            q4=training_loop(
                "0.5",
                1000,
                body="""
        losses, weights = [], []
        for t in range(steps):
            sample = np.random.randint(0, len(x), batch_size) + len(x)  # one past the last row, and beyond
            loss = sgd_step(w, x[sample], y[sample], learning_rate)
            if t % 10 == 0:
                losses.append(loss)
                weights.append(w.detach().reshape(-1).tolist())
        return losses, weights
    """,
            )
        ),
    ),
    # Question 5
    "q5-no-optimizer-step": ("q5", answers(q5=optimizer_loop(step="pass"))),
    "q5-no-zero-grad": ("q5", answers(q5=optimizer_loop(zero="pass"))),
    "q5-with-bias": ("q5", answers(q5=optimizer_loop(model="torch.nn.Linear(2, 1)"))),
    "q5-manual-update-without-an-optimizer": (
        "q5",
        answers(
            q5="""
        def train_model(x, y):
            model = torch.nn.Linear(2, 1, bias=False)
            for t in range(1000):
                sample = np.random.randint(0, len(x), B)
                model.zero_grad()
                func.mse_loss(model(x[sample]), y[sample]).backward()
                with torch.no_grad():
                    model.weight -= 0.5 * model.weight.grad
            return model
    """
        ),
    ),
    "q5-weights-typed-in-with-a-no-op-optimizer-step": (
        "q5",
        answers(
            q5="""
        def train_model(x, y):
            model = torch.nn.Linear(2, 1, bias=False)
            with torch.no_grad():
                model.weight.copy_(torch.tensor([[0.41, 0.19]]))
            optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
            func.mse_loss(model(x), y).backward()
            optimizer.step()
            return model
    """
        ),
    ),
    "q5-optimizer-over-a-previous-model": (
        "q5",
        answers(
            q5="""
        def train_model(x, y):
            model = torch.nn.Linear(2, 1, bias=False)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
            model = torch.nn.Linear(2, 1, bias=False)
            for t in range(1000):
                sample = np.random.randint(0, len(x), B)
                optimizer.zero_grad()
                func.mse_loss(model(x[sample]), y[sample]).backward()
                optimizer.step()
            return model
    """
        ),
    ),
    "q5-no-optimizer-step-with-an-exception-swallowing-handler": (
        "q5",
        answers(q5=joined(SWALLOW_EXCEPTIONS, optimizer_loop(step="pass"))),
    ),
}


@dataclass
class Verdict:
    """What grading did to one submission of the catalogue, against what it should have done."""

    name: str
    question: str | None  # the wrong question, None for a correct submission
    lost: dict = field(default_factory=dict)  # question -> (score, points) of every question that lost points

    @property
    def correct(self):
        return self.question is None

    @property
    def accepted(self):
        """A correct submission got every point."""
        return self.correct and not self.lost

    @property
    def caught(self):
        """A wrong submission got no point for its wrong question."""
        return not self.correct and self.question in self.lost and self.lost[self.question][0] == 0

    @property
    def collateral(self):
        """Questions that lost points although their answers were right and build on no wrong answer."""
        return sorted(q for q in self.lost if q != self.question and self.question not in BUILDS_ON.get(q, set()))

    @property
    def explained(self):
        """Questions that lost points because they build on the wrong answer."""
        return sorted(q for q in self.lost if q != self.question and self.question in BUILDS_ON.get(q, set()))

    @property
    def ok(self):
        return (self.accepted if self.correct else self.caught) and not self.collateral

    def describe(self):
        lost = ", ".join(f"{q} {s:g}/{p:g}" for q, (s, p) in self.lost.items()) or "nothing"
        expected = "every point" if self.correct else f"0 for {self.question} and nothing else"
        return f"{self.name}: lost {lost} (expected {expected})"


def verdicts(graded, points):
    """Verdicts on graded scores, {name: {question: score}}, for every catalogue entry graded."""
    expected = {**{name: None for name in CORRECT}, **{name: question for name, (question, _) in WRONG.items()}}
    result = []
    for name, question in expected.items():
        if name in graded:
            lost = {
                q: (graded[name].get(q) or 0, points[q]) for q in AUTOGRADED if (graded[name].get(q) or 0) < points[q]
            }
            result.append(Verdict(name, question, lost))
    return result


def summary(verdict_list):
    """One line: correct accepted A/B; wrong caught C/D; collateral E (questions lost without reason)."""
    correct = [v for v in verdict_list if v.correct]
    wrong = [v for v in verdict_list if not v.correct]
    collateral = sum(len(v.collateral) for v in verdict_list if not v.correct)
    return (
        f"correct accepted {sum(v.accepted for v in correct)}/{len(correct)}; "
        f"wrong caught {sum(v.caught for v in wrong)}/{len(wrong)}; collateral {collateral}"
    )
