"""A small demo class: the solution, a blank release, and the solution with one deliberate mistake each."""

import argparse
import shutil
from pathlib import Path
from textwrap import dedent

from .submissions import ROOT, build_submission, solution_answers, training_loop, write_submission

MISTAKES = {
    "sum-instead-of-product": {
        "q1a_answer": """
x = torch.tensor(2.0, requires_grad=True)
y = torch.tensor(3.0, requires_grad=True)
c = x ** 2
s = x + y
F = c + s
"""
    },
    "reverse-mode-in-forward-question": {
        "q1fwd_answer": """
def dF_dx_forward(x0, y0):
    x = torch.tensor(float(x0), requires_grad=True)
    F = x ** 2 * (x + y0)
    F.backward()
    return x.grad.item()
"""
    },
    "graph-not-kept": {"q1b_answer": "F.backward()\nprint(x.grad)"},
    "seed-learning-rate": {"q4_answer": dedent(training_loop("1e-2", 500))},  # the seed's rate: too small here
}


def demo_submissions():
    """student id -> notebook of the demo class."""
    solution = solution_answers()
    class_ = {"perfect": build_submission(solution), "blank": build_submission({})}
    for name, answers in MISTAKES.items():
        class_[name] = build_submission({**solution, **{k: v.strip() for k, v in answers.items()}})
    return class_


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--course", type=Path, default=ROOT, help="course directory")
    args = parser.parse_args()
    shutil.rmtree(args.course / "submitted", ignore_errors=True)
    for student, nb in demo_submissions().items():
        print("submitted", write_submission(args.course, student, nb).relative_to(args.course))


if __name__ == "__main__":
    main()
