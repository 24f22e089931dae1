"""Grade the submission catalogue and say how the hidden tests did, in one line:

    correct accepted A/B; wrong caught C/D; collateral E

It runs tests/test_grading_pipeline.py, so the catalogue is graded by the same grader as in the test suite,
keeps the scores that test module graded, and judges them with the same function (submission_catalogue.verdicts).
Collateral counts questions that lost points although their answers were right and build on no wrong answer.
Run from the course directory: `make catalogue` (or python tests/support/catalogue_report.py [extra pytest options]).
"""

import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS.parent), str(TESTS)]


class KeepGradedScores:
    """pytest plugin: keeps the value of the `graded` fixture of the pipeline tests."""

    def __init__(self):
        self.graded = None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        outcome = yield
        if fixturedef.argname == "graded" and outcome.excinfo is None:
            self.graded = outcome.get_result()


def main(pytest_args):
    keep = KeepGradedScores()
    start = time.monotonic()
    pytest.main(["-q", "-p", "no:cacheprovider", str(TESTS / "test_grading_pipeline.py"), *pytest_args], plugins=[keep])
    seconds = time.monotonic() - start
    if keep.graded is None:
        print("The catalogue was not graded: see the errors above.")
        return 2
    from grading.course_kit.submission_catalogue import summary, verdicts
    from grading.reports.class_grades import question_points

    judged = verdicts(keep.graded, question_points())
    print(f"\nGraded {len(keep.graded)} submissions in {seconds:.0f} s.")
    for v in judged:
        if not v.ok:
            print("  MISSED", v.describe())
        elif v.explained:
            print(f"  {v.name}: also lost {', '.join(v.explained)}, which builds on {v.question}")
    print(summary(judged))
    return 0 if all(v.ok for v in judged) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
