"""`make autograde DASK=...` on a cluster started as README's *Grading on several machines* says: a `dask scheduler`
and two `dask worker` processes started from the command line on 127.0.0.1, from a folder outside the course and
without PYTHONPATH, so that they (and the scheduler, which unpickles the tasks) import `grading` only as the
package `make setup` installed. One worker is killed while the class is being graded; every student is still
graded, with the scores the demo class must get."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from grading.course_kit.demo_class import MISTAKES, demo_submissions
from grading.course_kit.submission_catalogue import AUTOGRADED
from grading.course_kit.submissions import ASSIGNMENT, ROOT, write_submission
from grading.reports.class_grades import class_scores, question_points
from support.dask_cluster import Cluster, alive, environment_outside_the_course

pytest.importorskip("distributed")

GRADING_OUTPUTS = ("submitted", "autograded", "feedback", "build", "autograde_report.txt")
GRADING_TIMEOUT = 1800  # seconds for the demo class: generous (a run takes about a minute on 2 busy cores)


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


def expected_scores():
    """student -> autograded question -> score, for the demo class: the solution gets every point, the blank
    release none, and each mistake costs its own question only (as `make demo` shows)."""
    points = question_points()
    expected = {"perfect": {q: points[q] for q in AUTOGRADED}, "blank": {q: 0 for q in AUTOGRADED}}
    for student, answers in MISTAKES.items():
        wrong = {cell.split("_")[0] for cell in answers}  # q1a_answer: question q1a
        expected[student] = {q: 0 if q in wrong else points[q] for q in AUTOGRADED}
    return expected


def graded(course, students):
    """Students whose autograded notebook exists: the grader writes it last, so they are graded."""
    return [s for s in students if (course / "autograded" / s / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").exists()]


def still_alive(processes, timeout=120):
    """Those of {pid: start time} still running after waiting up to timeout seconds for them to end."""
    deadline = time.monotonic() + timeout
    while alive(processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive(processes)


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and two workers (w0, w1) started in a folder outside the course; stopped after the test,
    whatever happens, with everything they started."""
    folder = tmp_path / "cluster"
    folder.mkdir()
    with Cluster(folder) as started:
        yield started


CALLS = []  # what _called ran, in this process (the test's cluster runs its workers here)


def _called(name):
    CALLS.append(name)
    return name


def _fails(message):
    raise ValueError(message)


def test_the_executor_settles_each_future_with_its_tasks_result_error_or_cancellation():
    """DaskExecutor on a cluster in this process, without the sandbox: what the coordinator's loop relies on."""
    from distributed import LocalCluster

    from grading.engine.dask_executor import DaskExecutor

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as local:
        executor = DaskExecutor(local.scheduler_address, check_workers=False)
        try:
            assert executor.threads == 1
            assert executor.submit(_called, "alice").result(timeout=120) == "alice"
            with pytest.raises(ValueError, match="no answer"):
                executor.submit(_fails, "no answer").result(timeout=120)
            twins = [executor.submit(_called, "twin") for _ in range(2)]  # two students' identical notebooks
            assert [twin.result(timeout=120) for twin in twins] == ["twin", "twin"]
            assert CALLS.count("twin") == 2  # two executions, not one result shared
            busy = executor.submit(time.sleep, 3)  # the only thread is busy, so the next one waits
            waiting = executor.submit(_called, "cancelled")
            assert waiting.cancel() and waiting.cancelled()
            busy.result(timeout=120)
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
    assert "cancelled" not in CALLS


@pytest.mark.slow
@pytest.mark.usefixtures("bubblewrap")  # skipped without bubblewrap, failed in CI (conftest.py)
def test_a_worker_killed_mid_run_costs_no_grade(course, cluster, tmp_path):
    submissions = demo_submissions()  # README's example: the solution, a blank release and four mistakes
    students = sorted(submissions)

    # the scheduler and the workers import grading as installed, from outside the course
    def where_grading_comes_from():  # defined here, so that it is sent by value: they cannot import this module
        import os
        import sys

        import grading

        return {
            "cwd": os.path.realpath(os.getcwd()),
            "PYTHONPATH": os.environ.get("PYTHONPATH"),
            "sys.path": [os.path.realpath(p or os.getcwd()) for p in sys.path],
            "grading": os.path.realpath(grading.__file__),
        }

    with cluster.client() as client:
        origins = {
            "scheduler": client.run_on_scheduler(where_grading_comes_from),
            **client.run(where_grading_comes_from),
        }
        assert len(origins) == 3
        for who, origin in origins.items():
            assert origin["cwd"] == os.path.realpath(cluster.folder) and origin["PYTHONPATH"] is None, (who, origin)
            assert not {os.path.realpath(ROOT), os.path.realpath(ROOT / "tests")} & set(origin["sys.path"]), (
                who,
                origin,
            )
            assert origin["grading"] == os.path.realpath(ROOT / "grading" / "__init__.py"), (who, origin)

    # README step 4, in the course: `make autograde DASK=... FORCE=1` runs exactly this
    course_copy = class_copy(course, tmp_path / "dask", submissions)
    command = [
        sys.executable,
        "-m",
        "grading.coordinator.autograde_class",
        ASSIGNMENT,
        "--force",
        "--dask",
        cluster.address,
    ]
    env = environment_outside_the_course(cluster.tmpdir)
    with open(tmp_path / "grader.log", "wb") as log:
        grader = subprocess.Popen(
            command,
            cwd=course_copy,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        started = time.monotonic()
        deadline = started + GRADING_TIMEOUT
        victim = None
        with cluster.client() as client:
            # kill a worker while it executes a notebook, once some students are graded and others are not
            while victim is None:
                assert grader.poll() is None, (
                    "the grader ended before a worker could be killed mid-run:\n"
                    + (tmp_path / "grader.log").read_text(errors="replace")[-3000:]
                )
                assert time.monotonic() < deadline, "no student graded in time"
                if 0 < len(graded(course_copy, students)) < len(students):
                    names = {address: info["name"] for address, info in client.scheduler_info()["workers"].items()}
                    executing = sorted(
                        (names[w], sorted(tasks)) for w, tasks in client.call_stack().items() if tasks and w in names
                    )
                    if executing:
                        victim, tasks = executing[0]
                        graded_before = graded(course_copy, students)
                        killed = cluster.kill_worker(victim)
                        print(
                            f"killed {victim} after {time.monotonic() - started:.1f} s, executing {tasks}, with "
                            f"{len(graded_before)}/{len(students)} students graded: {len(killed)} processes"
                        )
                        break
                time.sleep(0.1)
            try:
                status = grader.wait(timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(
                    "the grader did not finish after a worker was killed:\n"
                    + (tmp_path / "grader.log").read_text(errors="replace")[-3000:]
                )
            survivors = [info["name"] for info in client.scheduler_info()["workers"].values()]
            print(f"cluster: {time.monotonic() - started:.1f} s")
    finally:
        if grader.poll() is None:
            os.killpg(grader.pid, signal.SIGKILL)
            grader.wait()

    output = (tmp_path / "grader.log").read_text(errors="replace")
    assert status == 0, output[-3000:]
    assert len(graded_before) < len(students)
    assert survivors == [name for name in ("w0", "w1") if name != victim]
    assert not still_alive(killed), f"processes of the killed worker still alive: {alive(killed)}"
    report = (course_copy / "autograde_report.txt").read_text()
    assert sorted(line.split()[0] for line in report.splitlines()) == students, report
    assert "NOT GRADED" not in report, report
    scores = class_scores(f"sqlite:///{course_copy / 'gradebook.db'}")
    assert {s: {q: scores[s][q] for q in AUTOGRADED} for s in students} == expected_scores()

    assert not cluster.stop(), "processes the cluster started are still alive after it stopped"
