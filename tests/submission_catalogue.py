"""Synthetic submissions, each named by what is in it: answers that differ from the solution, by grade id.

CORRECT answers must get every point; each WRONG answer must lose the points of the question it names,
while every other question keeps its points, except a question that builds on the wrong one (BUILDS_ON).
"""
from textwrap import dedent

AUTOGRADED = ["q1a", "q1fwd", "q1b", "q2", "q2fwd", "q3", "q4", "q5"]
BUILDS_ON = {"q1b": {"q1a"}, "q4": {"q3"}}


def answers(**cells):
    """grade id -> dedented code, from keyword arguments named like the answer cells (q1a=... -> q1a_answer)."""
    return {f"{key}_answer": dedent(code).strip() for key, code in cells.items()}


TRAINING_LOOP = """
    w = torch.randn(D_in, D_out, dtype=dtype, requires_grad=True)
    weights = np.empty((epochs // 10, 2))
    losses = np.empty(epochs // 10)
    for t in range(epochs):
        sample = np.random.randint(0, N, B)
        loss = sgd_step(w, x[sample], y[sample], learning_rate)
        if t % 10 == 0:
            losses[t // 10] = loss
            weights[t // 10, :] = w.detach().reshape(-1).numpy()
"""

CORRECT = {
    "variable-wrapper-and-functional-ops": answers(q1a="""
        x = Variable(torch.tensor(2.), requires_grad=True)
        y = Variable(torch.tensor(3.), requires_grad=True)
        c = torch.pow(x, 2)
        s = torch.add(x, y)
        F = torch.mul(c, s)
    """),
    "forward-mode-by-hand-with-value-tangent-pairs": answers(q1fwd="""
        def dF_dx_forward(x0, y0):
            x, dx = x0, 1.0
            y, dy = y0, 0.0
            c, dc = x ** 2, 2 * x * dx
            s, ds = x + y, dx + dy
            return dc * s + c * ds
    """),
    "sgd-with-mse-loss-and-grad-set-to-none": answers(q3="""
        def sgd_step(w, x_B, y_B, learning_rate):
            loss = torch.nn.functional.mse_loss(torch.matmul(x_B, w), y_B)
            loss.backward()
            with torch.no_grad():
                w.sub_(learning_rate * w.grad)
            w.grad = None
            return loss.item()
    """),
}

WRONG = {
    "q1a-sum-instead-of-product": ("q1a", answers(q1a="""
        x = torch.tensor(2.0, requires_grad=True)
        y = torch.tensor(3.0, requires_grad=True)
        c = x ** 2
        s = x + y
        F = c + s
    """)),
    "q1a-no-requires-grad": ("q1a", answers(q1a="""
        x = torch.tensor(2.0)
        y = torch.tensor(3.0)
        c = x ** 2
        s = x + y
        F = c * s
    """)),
    "q1fwd-reverse-mode-backward": ("q1fwd", answers(q1fwd="""
        def dF_dx_forward(x0, y0):
            x = torch.tensor(float(x0), requires_grad=True)
            F = x ** 2 * (x + y0)
            F.backward()
            return x.grad.item()
    """)),
    "q1fwd-hard-coded-24": ("q1fwd", answers(q1fwd="""
        def dF_dx_forward(x0, y0):
            return 24.0
    """)),
    "q1b-graph-not-kept": ("q1b", answers(q1b="F.backward()")),
    "q1b-backward-twice": ("q1b", answers(q1b="""
        F.backward(retain_graph=True)
        F.backward(retain_graph=True)
    """)),
    "q2-log10-instead-of-ln": ("q2", answers(q2="""
        x = torch.tensor(2.0, requires_grad=True)
        y = torch.tensor(3.0, requires_grad=True)
        a = torch.log10(x)
        b = x ** 2 * y
        c = y ** 2
        F = a + b + c
        F.backward()
    """)),
    "q2-reuses-question-1-tensors": ("q2", answers(q2="""
        a = torch.log(x)
        b = x ** 2 * y
        c = y ** 2
        F = a + b + c
        F.backward()
    """)),
    "q2fwd-swapped-outputs": ("q2fwd", answers(q2fwd="""
        def grad_forward(x0, y0):
            return x0 ** 2 + 2 * y0, 1 / x0 + 2 * x0 * y0
    """)),
    "q2fwd-reverse-mode-autograd-grad": ("q2fwd", answers(q2fwd="""
        def grad_forward(x0, y0):
            x = torch.tensor(float(x0), requires_grad=True)
            y = torch.tensor(float(y0), requires_grad=True)
            F = torch.log(x) + x ** 2 * y + y ** 2
            gx, gy = torch.autograd.grad(F, (x, y))
            return gx.item(), gy.item()
    """)),
    "q3-sum-instead-of-mean": ("q3", answers(q3="""
        def sgd_step(w, x_B, y_B, learning_rate):
            loss = (x_B.mm(w) - y_B).pow(2).sum()
            loss.backward()
            with torch.no_grad():
                w -= learning_rate * w.grad
                w.grad.zero_()
            return loss.item()
    """)),
    "q3-gradient-not-zeroed": ("q3", answers(q3="""
        def sgd_step(w, x_B, y_B, learning_rate):
            loss = (x_B.mm(w) - y_B).pow(2).mean()
            loss.backward()
            with torch.no_grad():
                w -= learning_rate * w.grad
            return loss.item()
    """)),
    "q4-seed-learning-rate-and-epochs": ("q4", answers(q4="learning_rate = 1e-2\nepochs = 500" + TRAINING_LOOP)),
    "q4-hard-coded-weights": ("q4", answers(q4="""
        learning_rate = 0.5
        epochs = 2000
        w = torch.tensor([[0.4], [0.2]], requires_grad=True)
        losses = np.zeros(epochs // 10)
        weights = np.tile([0.4, 0.2], (epochs // 10, 1))
    """)),
    "q5-no-optimizer-step": ("q5", answers(q5="""
        model = torch.nn.Linear(2, 1, bias=False)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        for t in range(2000):
            sample = np.random.randint(0, N, B)
            optimizer.zero_grad()
            loss = func.mse_loss(model(x[sample]), y[sample])
            loss.backward()
    """)),
    "q5-with-bias": ("q5", answers(q5="""
        model = torch.nn.Linear(2, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        for t in range(2000):
            sample = np.random.randint(0, N, B)
            optimizer.zero_grad()
            func.mse_loss(model(x[sample]), y[sample]).backward()
            optimizer.step()
    """)),
}
