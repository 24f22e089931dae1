"""The coordinator of `make autograde` (grading/coordinator/autograde_class.py) in-process, with fake executors: no
kernel, no sandbox. A tiny assignment of two questions is released once into a temporary course; each test grades a
class of it in a fresh copy, where what the fake executor does with a notebook is written in its first answer cell
(`# fake: <behaviour>`): return it executed with given outputs, raise, time out, be killed, crash, lose its worker,
or return something that is not a notebook."""

import concurrent.futures as cf
import inspect
import os
import random
import shutil
import threading
import time
import types
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook
from nbgrader.apps import NbGraderAPI

from grading.coordinator import autograde_class
from grading.coordinator.autograde_class import ClassGrader, main
from grading.coordinator.course_layout import CourseAssignment, load_config
from grading.coordinator.grading_outcome import (
    ALREADY_GRADED_NOTE,
    ExitStatus,
    GradingStatus,
    NotebookOutcome,
    StudentOutcome,
)
from grading.course_kit.submissions import ROOT
from grading.engine import sandbox
from grading.engine.execute_sandboxed import execute_in_sandbox
from grading.engine.execution_outcome import ExecutionOutcome, ExecutionStatus
from grading.engine.executions import ClusterExecutor, ExecutionRequest, ExecutionScheduler
from grading.engine.limits import Limits
from grading.reports.class_grades import class_scores

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # nbgrader's gradebook, harmless

ASSIGNMENT = "tiny"
FULL = {"q1": 2.0, "q2": 3.0}


def _cell(source, grade_id, **flags):
    meta = {
        "grade_id": grade_id,
        "grade": False,
        "solution": False,
        "task": False,
        "locked": False,
        "schema_version": 3,
        **flags,
    }
    return nbformat.v4.new_code_cell(source, metadata={"nbgrader": meta})


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A course with the course's configuration and the released tiny assignment (its gradebook made by nbgrader)."""
    root = tmp_path_factory.mktemp("tiny-course")
    shutil.copy(ROOT / "nbgrader_config.py", root)
    source = root / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# A tiny assignment"),
            _cell(
                "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
                "q1_answer",
                solution=True,
            ),
            _cell("assert double(2) == 4", "q1_test", grade=True, locked=True, points=2),
            _cell(
                "def half(x):\n    ### BEGIN SOLUTION\n    return x / 2\n    ### END SOLUTION",
                "q2_answer",
                solution=True,
            ),
            _cell("assert half(4) == 2", "q2_test", grade=True, locked=True, points=3),
        ]
    )
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(source / f"{ASSIGNMENT}.ipynb"))
    (source / "data.txt").write_text("given to every notebook")
    result = NbGraderAPI(config=load_config(root)).generate_assignment(ASSIGNMENT)
    assert result["success"], result
    return root


@pytest.fixture
def course(released, tmp_path):
    """A fresh copy of the released course, for one test."""
    return Path(shutil.copytree(released, tmp_path / "course"))


def submit(course, student, behaviour="right"):
    """Write a submission whose first answer tells the fake executor what to do."""
    nb = nbformat.read(str(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"), as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid == "q1_answer":
            cell.source = f"# fake: {behaviour}\ndef double(x):\n    return 2 * x"
        elif gid == "q2_answer":
            cell.source = "def half(x):\n    return x / 2"
    path = course / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


# --- the fake executor ---------------------------------------------------------------------------------------------
def _error(ename, evalue):
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _executed(request, errors=None, stopped_at=None, why=""):
    """The request's notebook as if executed: errors (grade id -> error output) in their cells; from the cell named
    stopped_at on, nothing ran (as grading.engine.execute_sandboxed marks it). Returns (JSON, cells not run)."""
    nb = nbformat.reads(request.notebook_json, as_version=4)
    errors, stopped, not_run = errors or {}, False, 0
    for count, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        stopped = stopped or gid == stopped_at
        if stopped:
            cell.outputs, not_run = [_error("KernelDied" if gid == stopped_at else "NotRun", why)], not_run + 1
            continue
        cell.execution_count = count + 1
        cell.outputs = [errors[gid]] if gid in errors else []
    return nbformat.writes(nb), not_run


def behaviour_of(request):
    nb = nbformat.reads(request.notebook_json, as_version=4)
    answer = next(c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "q1_answer")
    return answer.splitlines()[0].removeprefix("# fake: ")


def _raise(error):
    raise error


def _ok(executed, **fields):
    return executed, ExecutionOutcome(ExecutionStatus.OK, **fields)


def _stopped(request, status, detail):
    executed, not_run = _executed(request, stopped_at="q2_answer", why=detail)
    return executed, ExecutionOutcome(status, detail, cells_not_run=not_run)


BEHAVIOURS = {  # what the fake does -> (executed JSON, outcome), or raises
    "right": lambda r: _ok(_executed(r)[0]),
    "wrong": lambda r: _ok(_executed(r, {"q1_test": _error("AssertionError", "")})[0]),
    "times-out": lambda r: _stopped(
        r, ExecutionStatus.NOTEBOOK_TIMEOUT, "the notebook ran longer than 900 s and was stopped"
    ),
    "is-killed": lambda r: _stopped(
        r, ExecutionStatus.OUT_OF_MEMORY, "the kernel used more than 3072 MiB of memory and was stopped"
    ),
    "exits": lambda r: _stopped(
        r, ExecutionStatus.KERNEL_EXITED, "the kernel exited (exit code 0), e.g. by os._exit or sys.exit"
    ),
    "cell-interrupted": lambda r: _ok(_executed(r, {"q2_test": _error("CellTimeoutError", "120 s")})[0]),
    "memory-error": lambda r: _ok(_executed(r, {"q2_test": _error("MemoryError", "")})[0]),
    "floods": lambda r: _ok(_executed(r)[0], output_truncated=True, detail="output beyond 1048576 bytes was dropped"),
    "sandbox-error": lambda r: (_executed(r)[0], ExecutionOutcome.failed("TemplateError: no kernel")),
    "garbage": lambda r: _ok("this is not a notebook"),
    "raises": lambda r: _raise(RuntimeError("the worker lost its sandbox")),
    "worker-dies": lambda r: _raise(BrokenProcessPool("a process terminated abruptly")),
}


class FakeExecutor:
    """An Executor that runs nothing: each notebook's behaviour says what comes back. With threads, results
    arrive later and in any order, as from real workers."""

    def __init__(self, capacity=2, threads=False, behaviours=None):
        self.capacity = capacity
        self.behaviours = {**BEHAVIOURS, **(behaviours or {})}
        self.requests, self.restarts, self.shut_down, self.warmed_up = [], 0, False, None
        self.outstanding = self.most_outstanding = 0  # submitted and not finished
        self.lock = threading.Lock()
        self.pool = cf.ThreadPoolExecutor(capacity) if threads else None

    def _run(self, request):
        if self.pool:
            time.sleep(random.uniform(0, 0.02))
        return self.behaviours[behaviour_of(request)](request)

    def _finished(self, future):
        with self.lock:
            self.outstanding -= 1

    def submit(self, request):
        self.requests.append(request)
        if behaviour_of(request) == "cannot-be-submitted":
            raise RuntimeError("the scheduler is gone")
        with self.lock:
            self.outstanding += 1
            self.most_outstanding = max(self.most_outstanding, self.outstanding)
        if self.pool:
            future = self.pool.submit(self._run, request)
        else:
            future = cf.Future()
            try:
                future.set_result(self._run(request))
            except Exception as error:
                future.set_exception(error)
        future.add_done_callback(self._finished)
        return future

    def warm_up(self, limits):  # LocalExecutor's: start the workers' templates before the first notebook
        self.warmed_up = limits

    def restart(self):
        self.restarts += 1

    def shutdown(self):
        self.shut_down = True
        if self.pool:
            self.pool.shutdown()

    @property
    def behaviours_run(self):
        return [behaviour_of(r) for r in self.requests]


class PoolFake:
    """An Executor that breaks as a process pool does: when a worker dies, every execution in flight fails with
    BrokenProcessPool, and so does every submission until restart. Executions submitted together run together,
    once `batch` of them are in flight or none has been submitted for a moment; if one of them is `kills-worker`,
    it kills its worker and the batch is lost. The behaviours are FakeExecutor's."""

    QUIET = 0.05  # seconds without a submission after which what is in flight runs

    def __init__(self, capacity=2, batch=None):
        self.capacity = capacity
        self.batch = batch or 2 * capacity  # the scheduler's window
        self.requests, self.restarts, self.shut_down = [], 0, False
        self.batches = []  # (behaviours, whether the pool broke), in the order they ran
        self.successes = {}  # id of a request -> executions that returned
        self.broken = False
        self._pending, self._last = [], 0.0
        self._condition = threading.Condition()
        threading.Thread(target=self._drive, daemon=True).start()

    def submit(self, request):
        with self._condition:
            self.requests.append(request)
            if self.broken:
                raise BrokenProcessPool("A child process terminated abruptly, the process pool is not usable anymore")
            future = cf.Future()
            self._pending.append((future, request))
            self._last = time.monotonic()
            self._condition.notify_all()
            return future

    def _drive(self):
        while not self.shut_down:
            with self._condition:
                quiet = time.monotonic() - self._last >= self.QUIET
                if not self._pending or (len(self._pending) < self.batch and not quiet):
                    self._condition.wait(self.QUIET / 5)
                    continue
                batch, self._pending = self._pending, []
                behaviours = [behaviour_of(request) for _, request in batch]
                broke = "kills-worker" in behaviours
                self.broken = self.broken or broke
                self.batches.append((behaviours, broke))
            for future, request in batch:
                if not future.set_running_or_notify_cancel():
                    continue
                if broke:
                    future.set_exception(BrokenProcessPool("A process in the process pool was terminated abruptly"))
                    continue
                try:
                    future.set_result(BEHAVIOURS[behaviour_of(request)](request))
                    self.successes[id(request)] = self.successes.get(id(request), 0) + 1
                except Exception as error:
                    future.set_exception(error)

    def restart(self):
        with self._condition:
            self.restarts += 1
            for future, _ in self._pending:
                future.cancel()
            self._pending, self.broken = [], False

    def shutdown(self):
        self.shut_down = True


def grade(course, executor=None, force=False):
    """Grade the class of course with executor; (exit status, {student: report line}, {student: outcome})."""
    executor = executor or FakeExecutor()
    grader = ClassGrader(CourseAssignment.load(course, ASSIGNMENT), executor, force=force)
    status = grader.run()
    lines = (course / "autograde_report.txt").read_text().splitlines()
    return status, dict(line.split("  ", 1) for line in lines), grader.outcomes


def scores(course):
    return class_scores(f"sqlite:///{course / 'gradebook.db'}", ASSIGNMENT)


def autograded(course, student):
    return course / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"


# --- a class ---------------------------------------------------------------------------------------------------------
def test_a_class_is_graded_into_the_gradebook_with_a_report_line_each(course, capsys):
    submit(course, "alice", "right")
    submit(course, "bob", "wrong")
    executor = FakeExecutor()
    status, report, outcomes = grade(course, executor)
    assert status is ExitStatus.COMPLETE
    assert scores(course) == {"alice": FULL, "bob": {"q1": 0.0, "q2": 3.0}}
    assert report == {"alice": "5/5  graded normally", "bob": "3/5  graded normally"}
    assert {s: o.status for s, o in outcomes.items()} == {"alice": GradingStatus.GRADED, "bob": GradingStatus.GRADED}
    assert autograded(course, "alice").exists() and (autograded(course, "alice").parent / "data.txt").exists()
    assert not executor.shut_down  # the executor is its owner's to shut down
    assert capsys.readouterr().out == "alice  5/5  graded normally\nbob  3/5  graded normally\n"


def test_a_class_compiles_its_gradebook_statements_once_on_one_engine_and_leaves_nbgrader_as_it_was(
    course, monkeypatch
):
    import nbgrader.api

    made = []
    create_engine = nbgrader.api.create_engine

    def counted(url, **options):
        made.append(str(url))
        return create_engine(url, **options)

    monkeypatch.setattr(nbgrader.api, "create_engine", counted)
    for student in ("alice", "bob", "carol"):
        submit(course, student)
    assert grade(course, FakeExecutor())[0] is ExitStatus.COMPLETE
    assert made == [CourseAssignment.load(course, ASSIGNMENT).db_url]  # nbgrader's steps opened many Gradebooks
    assert nbgrader.api.create_engine is counted
    with Gradebook(made[0]) as gb:  # after the class: a Gradebook of its own again, whose engine is new
        assert len(gb.find_assignment(ASSIGNMENT).notebooks) == 1
    assert len(made) == 2 and scores(course) == {s: FULL for s in ("alice", "bob", "carol")}


def test_what_the_executor_receives_is_sanitized_and_plain(course):
    path = submit(course, "alice")
    nb = nbformat.read(str(path), as_version=4)
    nb.cells[2].source = "pass  # the test cell, emptied"
    nbformat.write(nb, str(path))
    (path.parent / "numpy.py").write_text("raise SystemExit")
    executor = FakeExecutor()
    _, report, _ = grade(course, executor)
    (request,) = executor.requests
    assert "assert double(2) == 4" in request.notebook_json and "emptied" not in request.notebook_json
    assert dict(request.files) == {"data.txt": b"given to every notebook"} and request.limits.sandbox
    assert report["alice"] == ("5/5  ignored extra files: numpy.py; locked cell q1_test was edited; original restored")


def test_scheduler_keeps_its_window_and_the_report_names_each_student_once(course, capsys):
    students = [f"s{i:02}" for i in range(12)]
    for i, student in enumerate(students):
        submit(course, student, "wrong" if i % 3 == 0 else "right")
    executor = FakeExecutor(capacity=3, threads=True)
    try:
        status, report, _ = grade(course, executor)
    finally:
        executor.shutdown()
    assert status is ExitStatus.COMPLETE and executor.most_outstanding <= 6  # twice the capacity
    assert sorted(report) == students and len(executor.requests) == 12
    assert all(scores(course)[s]["q1"] == (0 if i % 3 == 0 else 2) for i, s in enumerate(students))
    progress = [line for line in capsys.readouterr().err.splitlines() if " s  " in line]
    assert sorted(line.split(":")[0] for line in progress) == students


def test_results_that_arrive_together_report_each_student_once(course, capsys):
    """A fake whose results are ready at once: the last two students finish in the same wait."""
    for student in ("a", "b", "c"):
        submit(course, student)
    grade(course, FakeExecutor(capacity=1))
    progress = [line.split(":")[0] for line in capsys.readouterr().err.splitlines() if " s  " in line]
    assert sorted(progress) == ["a", "b", "c"]


# --- faults ----------------------------------------------------------------------------------------------------------
STOPPED = {"q1": 2.0, "q2": 0.0}  # the kernel stopped at q2_answer: q1 graded, the rest 0


@pytest.mark.parametrize(
    "behaviour, status, line, expected",
    [
        (
            "times-out",
            GradingStatus.TIMED_OUT,
            "2/5  the notebook ran longer than 900 s and was stopped; 2 cells after it scored 0",
            STOPPED,
        ),
        (
            "is-killed",
            GradingStatus.KILLED,
            "2/5  the kernel used more than 3072 MiB of memory and was stopped; 2 cells after it scored 0",
            STOPPED,
        ),
        (
            "exits",
            GradingStatus.CRASHED,
            "2/5  the kernel exited (exit code 0), e.g. by os._exit or sys.exit; 2 cells after it scored 0",
            STOPPED,
        ),
        ("cell-interrupted", GradingStatus.TIMED_OUT, "2/5  q2_test ran out of time (CellTimeoutError)", STOPPED),
        ("memory-error", GradingStatus.LIMIT_HIT, "2/5  q2_test ran out of memory (MemoryError)", STOPPED),
        ("floods", GradingStatus.GRADED, "5/5  output beyond 1048576 bytes was dropped", FULL),
    ],
)
def test_a_fault_scores_what_it_stopped_and_is_reported(course, behaviour, status, line, expected):
    submit(course, "honest")
    submit(course, "faulty", behaviour)
    exit_status, report, outcomes = grade(course)
    assert exit_status is ExitStatus.COMPLETE  # graded: nothing to run again
    assert report["faulty"] == line and outcomes["faulty"].status is status
    assert scores(course) == {"honest": FULL, "faulty": expected}
    assert report["honest"] == "5/5  graded normally"


@pytest.mark.parametrize(
    "behaviour, words",
    [
        ("raises", "NOT GRADED (RuntimeError: the worker lost its sandbox); run again"),
        ("sandbox-error", "NOT GRADED (TemplateError: no kernel); run again"),
        ("garbage", "NOT GRADED (grading failed: NotJSONError: "),
        ("worker-dies", "NOT GRADED (its execution killed the grading worker, again when executed alone"),
        ("cannot-be-submitted", "NOT GRADED (RuntimeError: the scheduler is gone); run again"),
    ],
)
def test_a_broken_submission_never_stops_the_class_and_is_left_for_the_next_run(course, behaviour, words):
    for student in ("a-before", "c-after", "d-last"):
        submit(course, student)
    submit(course, "b-broken", behaviour)
    executor = FakeExecutor(capacity=1)
    status, report, outcomes = grade(course, executor)
    assert status is ExitStatus.INCOMPLETE
    assert report["b-broken"].startswith("0/5  " + words)  # its submission is in the gradebook, ungraded
    assert outcomes["b-broken"].status is GradingStatus.NOT_GRADED
    assert all(report[s] == "5/5  graded normally" for s in ("a-before", "c-after", "d-last"))
    assert not autograded(course, "b-broken").exists()
    if behaviour == "worker-dies":  # executed twice, the second time alone, each time followed by a restart
        assert executor.behaviours_run.count("worker-dies") == 2 and executor.restarts == 2

    # the next run grades the broken one only, now that its executions work
    submit(course, "b-broken")
    again = FakeExecutor()
    status, report, _ = grade(course, again)
    assert status is ExitStatus.COMPLETE and len(again.requests) == 1
    assert report["b-broken"] == "5/5  graded normally"
    assert report["a-before"] == f"5/5  {ALREADY_GRADED_NOTE}"


def test_a_worker_that_dies_once_is_retried(course):
    submit(course, "alice", "flaky")
    submit(course, "bob")
    deaths = []

    def flaky(request):
        if not deaths:
            deaths.append(1)
            raise BrokenProcessPool("a process terminated abruptly")
        return BEHAVIOURS["right"](request)

    executor = FakeExecutor(capacity=1, behaviours={"flaky": flaky})
    status, report, _ = grade(course, executor)
    assert status is ExitStatus.COMPLETE and executor.restarts == 1
    assert report == {"alice": "5/5  graded normally", "bob": "5/5  graded normally"}


K, R = "kills-worker", "right"


@pytest.mark.parametrize(
    "culprit, batches",
    [
        # killed alone first: the other suspects are then executed with the rest of the class
        (0, [([K, R, R, R], True), ([K], True), ([R, R, R, R], False), ([R], False)]),
        # the others of its window executed alone first, then the culprit, while two are still to come
        (3, [([R, R, R, K], True), ([R], False), ([R], False), ([R], False), ([K], True), ([R, R], False)]),
        # in the second window
        (5, [([R, R, R, R], False), ([R, K], True), ([R], False), ([K], True)]),
    ],
)
def test_a_worker_killed_by_one_submission_costs_no_other_student(course, culprit, batches):
    """Six students, a window of four: the one whose execution kills its worker breaks the pool and every execution in
    flight with it. Those are executed again, one at a time, each alone in a fresh pool: the one that kills its
    worker again, alone, is reported; every other student is graded, once."""
    students = [f"s{i}" for i in range(6)]
    for i, student in enumerate(students):
        submit(course, student, K if i == culprit else R)
    executor = PoolFake(capacity=2)
    try:
        status, report, outcomes = grade(course, executor)
    finally:
        executor.shutdown()
    bad = students[culprit]
    assert status is ExitStatus.INCOMPLETE and outcomes[bad].status is GradingStatus.NOT_GRADED
    assert report.pop(bad) == (
        "0/5  NOT GRADED (its execution killed the grading worker, again when executed alone (most often: memory "
        "beyond the worker's limit, e.g. by its output); nothing of it was graded); run again"
    )
    assert report == {s: "5/5  graded normally" for s in students if s != bad}
    honest = {id(r) for r in executor.requests if behaviour_of(r) == R}
    assert len(honest) == 5 and all(executor.successes.get(r) == 1 for r in honest)  # each graded once
    assert executor.batches == batches and executor.restarts == 2


def test_a_task_dask_gave_up_on_is_executed_again_alone_and_only_the_culprit_is_reported(course):
    """On a Dask cluster a worker that dies loses only its tasks, which the cluster runs again elsewhere; a task whose
    workers all died (KilledWorker) may just have run beside the culprit each time: it is executed again, alone."""
    from distributed import KilledWorker

    class Cluster:
        """What ClusterExecutor needs of grading.engine.dask_executor.DaskExecutor: `kills-worker` fails as Dask
        gives up on it, and so does `beside-it` the first time."""

        threads = 2

        def __init__(self):
            self.calls, self.fake = [], FakeExecutor(behaviours={"beside-it": BEHAVIOURS["right"]})

        def submit(self, fn, *args):
            request = ExecutionRequest(*args)
            self.calls.append(behaviour_of(request))
            if self.calls[-1] == "kills-worker" or self.calls == ["beside-it"]:
                future = cf.Future()
                worker = types.SimpleNamespace(address="tcp://127.0.0.1:40001")
                future.set_exception(KilledWorker("execute_in_sandbox-1", worker, 3))
                return future
            return self.fake.submit(request)

    for student, behaviour in (("a", "beside-it"), ("b", "kills-worker"), ("c", "right"), ("d", "right")):
        submit(course, student, behaviour)
    cluster = Cluster()
    status, report, _ = grade(course, ClusterExecutor(cluster))
    assert status is ExitStatus.INCOMPLETE
    assert report == {
        "a": "5/5  graded normally",
        "b": "0/5  NOT GRADED (the 4 Dask workers that executed it died while executing it, again when executed "
        "alone (most often: memory beyond a worker's limit, e.g. by its output); nothing of it was graded); run again",
        "c": "5/5  graded normally",
        "d": "5/5  graded normally",
    }
    assert sorted(cluster.calls) == ["beside-it", "beside-it", "kills-worker", "kills-worker", "right", "right"]


def test_unreadable_notebooks_score_zero_with_the_reason(course):
    submit(course, "honest")
    (course / "submitted" / "not-json" / ASSIGNMENT).mkdir(parents=True)
    (course / "submitted" / "not-json" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").write_text('{"cells": [')
    submit(course, "renamed").rename(course / "submitted" / "renamed" / ASSIGNMENT / "mine.ipynb")
    executor = FakeExecutor()
    status, report, outcomes = grade(course, executor)
    assert status is ExitStatus.COMPLETE and len(executor.requests) == 1
    assert report["not-json"].startswith("0/5  tiny.ipynb is not a valid notebook (")
    assert report["renamed"] == (
        "0/5  ignored extra files: mine.ipynb; no tiny.ipynb in the submission (found mine.ipynb: renamed?); scored 0"
    )
    assert outcomes["renamed"].status is GradingStatus.SCORED_ZERO
    assert scores(course)["renamed"] == {"q1": 0.0, "q2": 0.0}


def test_a_failure_before_execution_is_not_graded_and_the_rest_go_on(course, monkeypatch):
    for student in ("a", "b", "c"):
        submit(course, student)
    grader = ClassGrader(CourseAssignment.load(course, ASSIGNMENT), FakeExecutor())
    opened, prepared = grader.gradebook.open_submission, grader.preparer.prepare

    def open_submission(student, timestamp=None):
        if student == "a":
            raise OSError("database is locked")
        return opened(student, timestamp)

    def prepare(student, name):
        if student == "b":
            raise KeyError("grade_id")
        return prepared(student, name)

    monkeypatch.setattr(grader.gradebook, "open_submission", open_submission)
    monkeypatch.setattr(grader.preparer, "prepare", prepare)
    assert grader.run() is ExitStatus.INCOMPLETE
    report = dict(line.split("  ", 1) for line in (course / "autograde_report.txt").read_text().splitlines())
    assert report == {
        "a": "-  NOT GRADED (OSError: database is locked); run again",
        "b": "0/5  NOT GRADED (tiny: KeyError: 'grade_id'); run again",
        "c": "5/5  graded normally",
    }


def test_a_file_named_like_a_fault_is_no_fault(course):
    """Faults come from what happened, not from the words of a note."""
    path = submit(course, "alice")
    (path.parent / "kernel_stopped.py").write_text("")
    _, report, outcomes = grade(course)
    assert report["alice"] == "5/5  ignored extra files: kernel_stopped.py"
    assert outcomes["alice"].status is GradingStatus.GRADED and not outcomes["alice"].status.is_fault


# --- resume ----------------------------------------------------------------------------------------------------------
def test_students_already_graded_are_kept_unless_forced(course):
    for student in ("a", "b", "c"):
        submit(course, student)
    first = FakeExecutor()
    assert grade(course, first)[0] is ExitStatus.COMPLETE and len(first.requests) == 3

    second = FakeExecutor()
    status, report, outcomes = grade(course, second)
    assert status is ExitStatus.COMPLETE and second.requests == []
    assert report == {s: f"5/5  {ALREADY_GRADED_NOTE}" for s in ("a", "b", "c")}
    assert all(o.status is GradingStatus.ALREADY_GRADED for o in outcomes.values())

    later = time.time() + 5  # b submits again after grading: only b is graded
    path = submit(course, "b", "wrong")
    os.utime(path, (later, later))
    third = FakeExecutor()
    _, report, _ = grade(course, third)
    assert third.behaviours_run == ["wrong"] and report["b"] == "3/5  graded normally"

    forced = FakeExecutor()
    _, report, _ = grade(course, forced, force=True)
    assert len(forced.requests) == 3 and report["a"] == "5/5  graded normally"


def test_a_student_whose_grades_are_missing_is_graded_again(course):
    submit(course, "a")
    grade(course)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.find_submission(ASSIGNMENT, "a").notebooks[0].grades[0].auto_score = None
        gb.db.commit()
    executor = FakeExecutor()
    _, report, _ = grade(course, executor)
    assert len(executor.requests) == 1 and report["a"] == "5/5  graded normally"


# --- the command line ------------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def no_sweeping(monkeypatch):
    """main() removes what killed graders left in the machine's temporary folder: not these tests' business."""
    monkeypatch.setattr(autograde_class, "sweep_leftovers", lambda: 0)


def test_the_command_line_grades_with_local_workers_and_returns_the_exit_status(course, monkeypatch, capsys):
    submit(course, "alice")
    submit(course, "bob", "raises")
    made = []

    def local_executor(workers):
        made.append(FakeExecutor(capacity=workers))
        return made[-1]

    monkeypatch.setattr(autograde_class, "LocalExecutor", local_executor)
    monkeypatch.setattr(autograde_class, "bwrap_problem", lambda limits: None)
    assert main([ASSIGNMENT, "--course", str(course), "--workers", "3"]) == 1
    assert made[0].capacity == 3 and made[0].shut_down
    assert made[0].warmed_up == CourseAssignment.load(course, ASSIGNMENT, False).limits  # before the first notebook
    assert "autograde (3 workers)" in capsys.readouterr().err
    assert main([ASSIGNMENT, "--course", str(course)]) == 1  # bob again; alice kept
    assert len(made[1].requests) == 1
    submit(course, "bob")
    assert main([ASSIGNMENT, "--course", str(course), "--force"]) == 0 and len(made[2].requests) == 2


def test_the_command_line_notes_a_missing_malloc_and_grades_all_the_same(course, monkeypatch, capsys):
    submit(course, "alice")
    monkeypatch.setattr(autograde_class, "LocalExecutor", lambda workers: FakeExecutor(capacity=workers))
    monkeypatch.setattr(autograde_class, "bwrap_problem", lambda limits: None)
    monkeypatch.setattr(autograde_class, "allocator_library", lambda name: "/usr/lib/libfound.so.1")
    assert main([ASSIGNMENT, "--course", str(course)]) == 0
    assert "c.Sandbox.allocator" not in capsys.readouterr().err  # found: nothing to say
    with open(course / "nbgrader_config.py", "a") as config:
        config.write("\nc.Sandbox.allocator = 'libnot-on-this-machine.so.1'\n")
    monkeypatch.setattr(autograde_class, "allocator_library", sandbox.allocator_library)
    assert main([ASSIGNMENT, "--course", str(course), "--force"]) == 0
    err = capsys.readouterr().err
    assert "libnot-on-this-machine.so.1 (c.Sandbox.allocator) cannot be preloaded here" in err
    assert "apt-get install libjemalloc2" in err and scores(course) == {"alice": FULL}


def test_the_command_line_refuses_without_a_sandbox(course, monkeypatch, capsys):
    submit(course, "alice")
    monkeypatch.setattr(autograde_class, "bwrap_problem", lambda limits: "bubblewrap (bwrap) is not installed")
    assert main([ASSIGNMENT, "--course", str(course)]) == 3
    err = capsys.readouterr().err
    assert "refuses to run student code without its sandbox" in err and "UNSAFE_NO_SANDBOX=1" in err
    assert not (course / "autograded").exists()


def test_the_command_line_hands_executions_to_a_dask_cluster(course, monkeypatch):
    import grading.engine.dask_executor

    class Cluster:
        """What ClusterExecutor needs of grading.engine.dask_executor.DaskExecutor."""

        threads, made = 4, []

        def __init__(self, address, sandbox=True):
            self.address, self.sandbox, self.calls, self.closed = address, sandbox, [], False
            Cluster.made.append(self)

        def submit(self, fn, *args):
            self.calls.append((fn, args))
            return FakeExecutor().submit(ExecutionRequest(*args))

        def shutdown(self, wait=True, cancel_futures=False):
            self.closed = True

    monkeypatch.setattr(grading.engine.dask_executor, "DaskExecutor", Cluster)
    monkeypatch.setattr(autograde_class, "bwrap_problem", lambda limits: pytest.fail("checked the local sandbox"))
    submit(course, "alice")
    assert main([ASSIGNMENT, "--course", str(course), "--dask", "tcp://127.0.0.1:1"]) == 0
    (cluster,) = Cluster.made
    assert cluster.address == "tcp://127.0.0.1:1" and cluster.sandbox and cluster.closed
    ((fn, args),) = cluster.calls
    assert fn.__name__ == "execute_in_sandbox" and isinstance(args[0], str)
    assert len(args) == len(inspect.signature(execute_in_sandbox).parameters)  # every argument, probe setup included
    assert ClusterExecutor(cluster).capacity == 4
    assert scores(course) == {"alice": FULL}


def test_grading_without_the_sandbox_says_so(course, capsys):
    submit(course, "alice")
    executor = FakeExecutor()
    grader = ClassGrader(CourseAssignment.load(course, ASSIGNMENT, unsafe=True), executor)
    assert grader.run() is ExitStatus.COMPLETE
    assert executor.requests[0].limits.sandbox is False
    assert capsys.readouterr().err.count("UNSAFE: grading WITHOUT the sandbox") == 2  # before and after
    assert (course / "autograde_report.txt").read_text() == (
        "UNSAFE: graded without the sandbox\nalice  5/5  graded normally\n"
    )


def test_no_submissions_and_no_assignment(course, capsys):
    grader = ClassGrader(CourseAssignment.load(course, ASSIGNMENT), FakeExecutor())
    assert grader.run() is ExitStatus.COMPLETE and "No submissions under" in capsys.readouterr().err
    missing = ClassGrader(CourseAssignment.load(course, "nonexistent"), FakeExecutor())
    with pytest.raises(SystemExit, match="No assignment 'nonexistent' in the gradebook"):
        missing.run()


# --- the typed outcome -----------------------------------------------------------------------------------------------
def test_every_execution_status_means_a_grading_status():
    assert GradingStatus.after(ExecutionStatus.KERNEL_CRASHED) is GradingStatus.CRASHED
    assert GradingStatus.after(ExecutionStatus.SANDBOX_ERROR) is GradingStatus.NOT_GRADED
    assert {GradingStatus.after(s) for s in ExecutionStatus} >= {
        GradingStatus.GRADED,
        GradingStatus.TIMED_OUT,
        GradingStatus.KILLED,
        GradingStatus.CRASHED,
        GradingStatus.NOT_GRADED,
    }


def test_the_scheduler_refuses_what_is_not_an_outcome():
    executor = FakeExecutor(behaviours={"sends-a-dict": lambda r: (_executed(r)[0], {"status": "ok"})})
    request = ExecutionRequest(
        nbformat.writes(nbformat.v4.new_notebook(cells=[_cell("# fake: sends-a-dict", "q1_answer")])), {}, Limits(), {}
    )
    (finished,) = ExecutionScheduler(executor).run([("key", request)])
    assert finished.executed_json is None and finished.outcome.status is ExecutionStatus.SANDBOX_ERROR
    assert finished.outcome.detail == "ValueError: an execution's outcome, not a dict"


def test_a_student_is_the_worst_of_their_notebooks():
    outcome = StudentOutcome(
        "s",
        [
            NotebookOutcome("a", GradingStatus.GRADED),
            NotebookOutcome("b", GradingStatus.TIMED_OUT, ("b ran out of time",)),
            NotebookOutcome("c", GradingStatus.SCORED_ZERO, ("c: no c.ipynb; scored 0",)),
        ],
        notes=["ignored extra files: x"],
        score="3/9",
    )
    assert outcome.status is GradingStatus.SCORED_ZERO and outcome.status.is_fault
    assert outcome.line == "3/9  ignored extra files: x; b ran out of time; c: no c.ipynb; scored 0"
    assert ExitStatus.of([outcome]) is ExitStatus.COMPLETE
    assert ExitStatus.of([outcome, StudentOutcome("t", own_status=GradingStatus.NOT_GRADED)]) is ExitStatus.INCOMPLETE
    assert StudentOutcome("u").line == "-  graded normally" and StudentOutcome("u").status is GradingStatus.GRADED


def test_the_scheduler_turns_every_failure_into_an_outcome():
    executor = FakeExecutor(capacity=2)
    request = ExecutionRequest(
        nbformat.writes(nbformat.v4.new_notebook(cells=[_cell("# fake: raises", "q1_answer")])), {}, Limits(), {}
    )
    (finished,) = ExecutionScheduler(executor).run([("key", request)])
    assert finished.key == "key" and finished.executed_json is None
    assert finished.outcome == ExecutionOutcome.failed("RuntimeError: the worker lost its sandbox")
