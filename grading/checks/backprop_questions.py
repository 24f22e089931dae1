"""The questions of the assignment "backprop", each declared once, in notebook order (grading/checks/questions.py).

Not shipped. Everything else follows from here: each test cell's source and points (`make release` writes them),
the judge's checks (CHECKS), the public checks (PUBLIC), the points of each question and the assignment's total,
and what the catalogues expect. Adding a question: README, "Adding a question".
"""

from .backprop_checks import check_q1fwd, check_q1rev, check_q2fwd, check_q3, check_q4, check_q5
from .backprop_public_checks import (
    check_q1a,
    check_q1b,
    check_q2,
    public_q1fwd,
    public_q1rev,
    public_q2fwd,
    public_q3,
    public_q4,
    public_q5,
)
from .questions import Question, checks_of, public_checks_of

QUESTIONS = (
    Question(
        "q1a",
        "Question 1a",
        points=2,
        test="graph",
        states="x and y are leaf tensors holding 2 and 3 that require grad, and c = x², s = x + y, F = c · s are "
        "computed from them (values 4, 5, 20 and their gradients).",
        public=check_q1a,
        hidden=check_q1a,  # the question states every value it asks for
        defines=("x", "y", "c", "s", "F"),
    ),
    Question(
        "q1rev",
        "Question 1, reverse mode by hand",
        points=3,
        test="adjoints",
        states="adjoints_F and adjoints_G give every node's adjoint at (2, 3) and (-2, 1), as PyTorch's backward() "
        "does, without reverse mode (the grader also tries other points).",
        public=public_q1rev,
        hidden=check_q1rev,
        defines=("adjoints_F", "adjoints_G"),
    ),
    Question(
        "q1fwd",
        "Question 1, forward mode",
        points=2,
        test="values",
        states="dF_dx_forward(2, 3) gives dF/dx = 24 without reverse mode (the grader also tries other points).",
        public=public_q1fwd,
        hidden=check_q1fwd,
        defines=("dF_dx_forward",),
    ),
    Question(
        "q1b",
        "Question 1b",
        points=2,
        test="gradients",
        states="one backward pass on F filled x.grad and y.grad with dF/dx and dF/dy of your F (24 and 4), and "
        "kept its graph.",
        public=check_q1b,
        hidden=check_q1b,
        builds_on=("q1a",),
    ),
    Question(
        "q2",
        "Question 2",
        points=2,
        test="gradients",
        states="a = ln x, b = x²y, c = y², F = a + b + c from new leaves (2, 3), and one backward gave dF/dx = 12.5 "
        "and dF/dy = 10.",
        public=check_q2,
        hidden=check_q2,
        defines=("x", "y", "a", "b", "c", "F"),
    ),
    Question(
        "q2fwd",
        "Question 2, forward mode",
        points=2,
        test="values",
        states="grad_forward(2, 3) gives (12.5, 10) without reverse mode (the grader also tries other points).",
        public=public_q2fwd,
        hidden=check_q2fwd,
        defines=("grad_forward",),
    ),
    Question(
        "q3",
        "Question 3",
        points=3,
        test="sgd_step",
        states="sgd_step returns the mean squared error before the update and moves w in place by one gradient "
        "step, twice in a row, on two mini-batches shown in backprop_public_checks.py (the grader also tries others).",
        public=public_q3,
        hidden=check_q3,
        defines=("sgd_step",),
    ),
    Question(
        "q4",
        "Question 4",
        points=2,
        test="training",
        states="learning_rate and steps are set, and training brought w within 0.05 of (0.4, 0.2), recording "
        "losses and weights every 10 steps (the grader also trains on other data).",
        public=public_q4,
        hidden=check_q4,
        defines=("train_sgd", "learning_rate", "steps"),
        builds_on=("q3",),
    ),
    Question(
        "q5",
        "Question 5",
        points=2,
        test="training",
        states="train_model(x, y) on the notebook's data returns a torch.nn.Linear(2, 1) without bias that a "
        "torch.optim optimizer trained to within 0.05 of (0.4, 0.2) (the grader also trains it on other data).",
        public=public_q5,
        hidden=check_q5,
        defines=("train_model",),
    ),
    Question("q6", "Question 6", points=2),  # written, graded by hand in the formgrader
)

CHECKS = checks_of(QUESTIONS)
PUBLIC = public_checks_of(QUESTIONS)
AUTOGRADED = [q.key for q in QUESTIONS if q.autograded]
BUILDS_ON = {q.key: set(q.builds_on) for q in QUESTIONS if q.builds_on}
POINTS = {q.key: q.points for q in QUESTIONS}
TOTAL_POINTS = sum(POINTS.values())
