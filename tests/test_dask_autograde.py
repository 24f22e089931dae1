"""`make autograde DASK=...`: executions on a Dask cluster give the same grades as the local worker pool."""

import os
import shutil
import sys

import pytest

from conftest import run
from grading.class_grades import class_scores, question_points
from grading.sandbox import Limits, bwrap_problem
from grading.submissions import ASSIGNMENT, ROOT, build_submission, solution_answers, write_submission
from submission_catalogue import AUTOGRADED, WRONG

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bwrap_problem(Limits()) is not None, reason="bubblewrap cannot run here"),
]

GRADING_OUTPUTS = ("submitted", "autograded", "feedback", "build", "autograde_report.txt")


def class_copy(course, dest, submissions):
    """A copy of the course (configuration, release, gradebook) holding only `submissions`."""
    shutil.copytree(
        course,
        dest,
        symlinks=True,
        ignore=lambda folder, names: [n for n in names if folder == str(course) and n in GRADING_OUTPUTS],
    )
    for student, nb in submissions.items():
        write_submission(dest, student, nb)
    return dest


@pytest.fixture(scope="module")
def dask_address(tmp_path_factory):
    """A Dask cluster on loopback: two worker processes of one thread each, able to import the grading package."""
    distributed = pytest.importorskip("distributed")
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), old) if p)
    try:
        with distributed.LocalCluster(
            host="127.0.0.1",
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            local_directory=str(tmp_path_factory.mktemp("dask")),
        ) as cluster:
            yield cluster.scheduler_address
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def test_grades_from_a_dask_cluster_equal_the_local_run(course, dask_address, tmp_path):
    solution = solution_answers()
    wrong_name, (wrong_question, wrong_answers) = sorted(WRONG.items())[0]
    submissions = {
        "perfect": build_submission(solution),
        "blank-release": build_submission({}),
        wrong_name: build_submission({**solution, **wrong_answers}),
    }
    scores = {}
    for how, extra in (("local", ["--workers", "2"]), ("dask", ["--dask", dask_address])):
        copy = class_copy(course, tmp_path / how, submissions)
        run(
            [sys.executable, "-m", "grading.autograde_class", ASSIGNMENT, "--course", copy, "--force", *extra],
            cwd=ROOT,
            timeout=300,
        )
        every = class_scores(f"sqlite:///{copy / 'gradebook.db'}")
        scores[how] = {student: every[student] for student in submissions}

    assert scores["dask"] == scores["local"]
    points = question_points()
    assert {q: scores["dask"]["perfect"][q] for q in AUTOGRADED} == {q: points[q] for q in AUTOGRADED}
    assert all(scores["dask"]["blank-release"][q] == 0 for q in AUTOGRADED)
    assert scores["dask"][wrong_name][wrong_question] == 0
