"""A class of hostile and broken submissions graded by the course's sandboxed grader (what `make autograde` runs).

Canaries sit in the instructor's source/, the gradebook, another student's submission, the grader's environment,
its $HOME and /tmp, and behind a loopback TCP listener. None may reach a hostile student's outputs, every honest
student keeps full marks, each fault costs only the question it is in, and a report line says what happened.
"""

import copy
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from textwrap import dedent

import nbformat
import psutil
import pytest

from conftest import BIN, copy_course, run
from grading.checks.backprop_questions import AUTOGRADED, TOTAL_POINTS
from grading.course_kit.submissions import ASSIGNMENT, ROOT, build_submission, solution_answers, write_submission
from grading.engine.sandbox import abandoned, remove_tree
from grading.reports.class_grades import class_scores, question_points

pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("bubblewrap"),  # skipped without bubblewrap, failed in CI (conftest.py)
]

CANARY = f"canary-{uuid.uuid4().hex}"
POINTS = question_points()
SOLUTION = solution_answers()
FULL = {q: POINTS[q] for q in AUTOGRADED}


def new_course(tmp_path_factory, name, **sandbox):
    course = copy_course(tmp_path_factory.mktemp(name))
    with open(course / "nbgrader_config.py", "a") as config:
        config.write("\nc.Execute.timeout = 30\n")
        for key, value in sandbox.items():
            config.write(f"c.Sandbox.{key} = {value!r}\n")
    run(["nbgrader", "generate_assignment", ASSIGNMENT, "--force", "--log-level=ERROR"], cwd=course)
    return course


def run_with(args, cwd, env, timeout=1800):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(f"{args} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def grade(course, *extra, env=None):
    """What `make autograde` runs."""
    env = env or {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    return run_with(
        [sys.executable, "-m", "grading.coordinator.autograde_class", ASSIGNMENT, "--course", str(course), *extra],
        cwd=ROOT,
        env=env,
    )


def with_answers(**answers):
    return build_submission({**SOLUTION, **{f"{k}_answer": dedent(v).strip() for k, v in answers.items()}})


def cell_named(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def probe(course, port, home, tmp_file):
    """Code that tries every way out it knows of and prints what it gets."""
    return f"""
        import os, socket, sqlite3, glob, sys
        def attempt(what, f):
            try:
                print(what, repr(f())[:3000])
            except Exception as e:
                print(what, 'failed:', type(e).__name__)
        attempt('source', lambda: open({str(course / "source" / ASSIGNMENT / (ASSIGNMENT + ".ipynb"))!r}).read())
        attempt('notes', lambda: open({str(course / "source" / "instructor_notes.txt")!r}).read())
        attempt('gradebook', lambda: open({str(course / "gradebook.db")!r}, 'rb').read())
        attempt('other', lambda: [open(p).read() for p in glob.glob({str(course / "submitted")!r} + '/*/*/*.ipynb')])
        attempt('environ', lambda: dict(os.environ))
        attempt('home', lambda: open({str(home / ".secret")!r}).read())
        attempt('tmp', lambda: open({str(tmp_file)!r}).read())
        attempt('loopback', lambda: socket.create_connection(('127.0.0.1', {port}), timeout=2).recv(100))
        def rewrite():
            db = sqlite3.connect({str(course / "gradebook.db")!r})
            db.execute('UPDATE grade SET manual_score = 0, auto_score = 0')
            db.commit()
        attempt('rewrite', rewrite)
        attempt('write', lambda: open({str(course / "autograded" / "pwned.txt")!r}, 'w').write('x'))
        def scan():
            hits = []
            for top in ('/', ):
                for d, dirs, files in os.walk(top):
                    skip = ('/proc', '/sys', '/dev', '/usr', '/root/.pyenv', sys.prefix)
                    dirs[:] = [x for x in dirs if not os.path.join(d, x).startswith(skip)]
                    for f in files:
                        try:
                            if b'canary' in open(os.path.join(d, f), 'rb').read(1 << 20):
                                hits.append(os.path.join(d, f))
                        except Exception:
                            pass
            return hits
        attempt('scan', scan)
    """


FAULTS = {  # student -> (notebook or None for a special case, question it costs, words the report must say)
    "infinite-loop": ({"q5": "while True:\n    pass"}, "q5", "ran out of time"),
    "sleeps-forever": ({"q5": "import time\ntime.sleep(10**6)"}, "q5", "ran out of time"),
    "memory-hog": ({"q5": "hog = bytearray(16 << 30)"}, "q5", "ran out of memory"),
    "exits-kernel": ({"q5": "import os\nos._exit(0)"}, "q5", "exit code 0"),
    "segfaults": ({"q5": "import ctypes\nctypes.string_at(0)"}, "q5", "segmentation fault"),
    "process-swarm": (
        {"q5": "import os\nwhile True:\n    if os.fork() == 0:\n        os.execv('/bin/sleep', ['sleep', '4242'])"},
        "q5",
        "resource limit",
    ),
    "floods-output": (
        {"q5": SOLUTION["q5_answer"] + "\nfor i in range(300):\n    print('x' * 100000)"},
        None,
        "dropped",
    ),
}


@pytest.fixture(scope="module")
def hostile_class(tmp_path_factory):
    course = new_course(tmp_path_factory, "hostile")
    home, tmp_file = tmp_path_factory.mktemp("home"), f"/tmp/{CANARY}.txt"
    (home / ".secret").write_text(CANARY)
    (course / "source" / "instructor_notes.txt").write_text(CANARY)
    with open(tmp_file, "w") as f:
        f.write(CANARY)
    server, connections = socket.socket(), []
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            connections.append(conn)
            conn.sendall(CANARY.encode())

    threading.Thread(target=serve, daemon=True).start()

    code = probe(course, server.getsockname()[1], home, tmp_file)
    students = {
        "honest": build_submission(SOLUTION),
        "honest-too": build_submission(SOLUTION),
        "leaks-everything": with_answers(q1a=SOLUTION["q1a_answer"] + "\n" + dedent(code)),
    }
    victim = build_submission(SOLUTION)
    cell_named(victim, "q6_answer").source = f"My secret answer {CANARY}"
    students["victim"] = victim
    for name, (answers, _, _) in FAULTS.items():
        students[name] = with_answers(**answers)
    wrong_q1a = {"q1a": SOLUTION["q1a_answer"].replace("F = c * s", "F = c + s")}
    edited = with_answers(**wrong_q1a)
    cell_named(edited, "q1a_test_graph").source = "pass"
    students["edits-test-cell"] = edited
    deleted = with_answers(**wrong_q1a)
    deleted.cells.remove(cell_named(deleted, "q1a_test_graph"))
    students["deletes-test-cell"] = deleted
    markdown = with_answers(**wrong_q1a)
    test = cell_named(markdown, "q1a_test_graph")
    markdown.cells[markdown.cells.index(test)] = nbformat.v4.new_markdown_cell(test.source, metadata=test.metadata)
    students["test-cell-to-markdown"] = markdown
    points = build_submission(SOLUTION)
    cell_named(points, "q1a_test_graph").metadata.nbgrader["points"] = 100
    students["changes-points"] = points
    copies = build_submission(SOLUTION)  # copy and paste in JupyterLab keeps a cell's nbgrader metadata
    for grade_id in ("q1a_answer", "q1a_test_graph", "q6_answer"):
        original = cell_named(copies, grade_id)
        pasted = nbformat.from_dict(copy.deepcopy(dict(original)))
        pasted.id = uuid.uuid4().hex[:8]  # a new cell id, as JupyterLab gives a pasted cell
        copies.cells.insert(copies.cells.index(original), pasted)
    students["copies-graded-cells"] = copies
    many = build_submission(SOLUTION)  # cells beyond any notebook's need: every one would cost grading and pages
    many.cells += [nbformat.v4.new_code_cell("1") for _ in range(2000)]
    students["too-many-cells"] = many
    for student, nb in students.items():
        write_submission(course, student, nb)
    folder = course / "submitted"
    for name in ("numpy.py", "torch.py"):
        (folder / "leaks-everything" / ASSIGNMENT / name).write_text("raise SystemExit('shadowed')\n")
    (folder / "not-json" / ASSIGNMENT).mkdir(parents=True)
    (folder / "not-json" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").write_text('{"cells": [')
    (folder / "renamed" / ASSIGNMENT).mkdir(parents=True)
    write_submission(course, "renamed", build_submission(SOLUTION)).rename(
        folder / "renamed" / ASSIGNMENT / "my_backprop.ipynb"
    )
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.update_or_create_student("canary-holder", first_name=CANARY)

    env = {**os.environ, "HOME": str(home), "GRADER_SECRET": CANARY, "PATH": f"{BIN}:{os.environ['PATH']}"}
    started = time.monotonic()
    result = grade(course, "--workers", "2", env=env)
    seconds = time.monotonic() - started
    server.close()
    os.remove(tmp_file)
    report = dict(
        line.split("  ", 1) for line in (course / "autograde_report.txt").read_text().splitlines() if "  " in line
    )
    return {
        "course": course,
        "scores": class_scores(f"sqlite:///{course / 'gradebook.db'}"),
        "report": report,
        "connections": connections,
        "seconds": seconds,
        "stdout": result.stdout,
    }


def outputs_of(course, student):
    nb = nbformat.read(str(course / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"), as_version=4)
    return json.dumps([c.get("outputs", []) for c in nb.cells])


def test_hostile_code_reads_nothing_of_the_course_the_grader_or_the_machine(hostile_class):
    text = outputs_of(hostile_class["course"], "leaks-everything")
    assert "source failed" in text and "gradebook failed" in text and "loopback failed" in text  # it did try
    assert CANARY not in text
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    assert hostile_class["connections"] == []


def test_hostile_code_changes_nothing_outside_its_sandbox(hostile_class):
    course = hostile_class["course"]
    assert not (course / "autograded" / "pwned.txt").exists()
    with sqlite3.connect(course / "gradebook.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize(
    "student", ["honest", "honest-too", "victim", "leaks-everything", "changes-points", "copies-graded-cells"]
)
def test_honest_work_keeps_every_point(hostile_class, student):
    assert {q: hostile_class["scores"][student][q] for q in AUTOGRADED} == FULL


def test_extra_files_beside_the_notebook_shadow_nothing(hostile_class):
    assert "ignored extra files: numpy.py, torch.py" in hostile_class["report"]["leaks-everything"]


@pytest.mark.parametrize("student", sorted(FAULTS))
def test_fault_costs_only_the_question_it_is_in_and_is_reported(hostile_class, student):
    _, question, words = FAULTS[student]
    expected = {**FULL, **({question: 0} if question else {})}
    assert {q: hostile_class["scores"][student][q] for q in AUTOGRADED} == expected
    assert words in hostile_class["report"][student]


def test_every_process_of_a_submission_ends_with_it(hostile_class):
    assert subprocess.run(["pgrep", "-f", "sleep 4242"], capture_output=True).stdout == b""


@pytest.mark.parametrize(
    "student, words",
    [
        ("edits-test-cell", "was edited; original restored"),
        ("deletes-test-cell", "was deleted; restored and run"),
        ("test-cell-to-markdown", "changed type; restored"),
    ],
)
def test_tampered_test_cell_is_restored_and_still_catches_the_wrong_answer(hostile_class, student, words):
    scores = hostile_class["scores"][student]
    assert scores["q1a"] == 0
    assert {q: scores[q] for q in AUTOGRADED if q not in ("q1a", "q1b")} == {
        q: FULL[q] for q in FULL if q not in ("q1a", "q1b")
    }
    assert words in hostile_class["report"][student]


def test_points_changed_in_metadata_are_restored(hostile_class):
    assert hostile_class["scores"]["changes-points"]["q1a"] == POINTS["q1a"]
    assert "points" in hostile_class["report"]["changes-points"]


@pytest.mark.parametrize(
    "student, words",
    [
        ("not-json", "is not a valid notebook"),
        ("renamed", "no backprop.ipynb in the submission (found my_backprop.ipynb"),
        ("too-many-cells", "cells, more than 2000; not graded"),
    ],
)
def test_unreadable_notebook_scores_zero_with_a_reason(hostile_class, student, words):
    assert all(hostile_class["scores"][student][q] == 0 for q in POINTS)
    assert words in hostile_class["report"][student]


def test_nbgrader_autograde_keeps_in_what_make_autograde_keeps_in(tmp_path_factory):
    """The command instructors know runs student code in the same sandbox: no solutions, no grader's secrets.
    (Stock nbgrader's Execute, unsandboxed, printed both here.)"""
    course = new_course(tmp_path_factory, "nbgrader-autograde")
    spy = (
        "import os\nprint(os.environ.get('GRADER_SECRET'))\n"
        f"try:\n    source = open({str(course / 'source' / ASSIGNMENT / (ASSIGNMENT + '.ipynb'))!r}).read()\n"
        "    print(source[source.find('BEGIN SOLUTION'):][:300])\nexcept OSError as error:\n    print(error)"
    )
    write_submission(course, "spy", with_answers(q1a=SOLUTION["q1a_answer"] + "\n" + spy))
    env = {**os.environ, "GRADER_SECRET": CANARY, "PATH": f"{BIN}:{os.environ['PATH']}"}
    run_with(["nbgrader", "autograde", ASSIGNMENT, "--force", "--log-level=ERROR"], cwd=course, env=env)
    text = outputs_of(course, "spy")
    assert "q1a_answer" in json.dumps(
        nbformat.read(str(course / "autograded" / "spy" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"), as_version=4)
    )
    assert CANARY not in text and "BEGIN SOLUTION" not in text
    assert class_scores(f"sqlite:///{course / 'gradebook.db'}")["spy"]["q1a"] == POINTS["q1a"]


def test_nbgrader_autograde_refuses_to_grade_without_its_sandbox_unless_told_loudly(tmp_path_factory):
    course = new_course(tmp_path_factory, "no-bubblewrap", bwrap="/nonexistent/bwrap")
    write_submission(course, "honest", build_submission(SOLUTION))
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    refused = subprocess.run(
        ["nbgrader", "autograde", ASSIGNMENT, "--force"],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert refused.returncode != 0 and "refuses to run student code without its sandbox" in refused.stderr
    assert "UNSAFE_NO_SANDBOX=1" in refused.stderr
    assert class_scores(f"sqlite:///{course / 'gradebook.db'}").get("honest", {}).get("q1a") is None
    unsafe = run_with(
        ["nbgrader", "autograde", ASSIGNMENT, "--force"], cwd=course, env={**env, "UNSAFE_NO_SANDBOX": "1"}
    )
    assert "UNSAFE: grading WITHOUT the sandbox" in unsafe.stderr
    assert class_scores(f"sqlite:///{course / 'gradebook.db'}")["honest"]["q1a"] == POINTS["q1a"]


def descendants(root):
    """{pid: command line} of every living process below root."""
    found = {}
    for process in psutil.Process(root).children(recursive=True):
        try:
            found[process.pid] = " ".join(process.cmdline())
        except psutil.Error:  # ended meanwhile
            continue
    return found


def running(pid, command):
    """Whether pid is still the process that ran command, and not a zombie."""
    try:
        process = psutil.Process(pid)
        return " ".join(process.cmdline()) == command and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_grader_killed_mid_class_resumes_keeping_grades_and_a_sound_gradebook(tmp_path_factory):
    course = new_course(tmp_path_factory, "resume")
    wrong = with_answers(q1a=SOLUTION["q1a_answer"].replace("F = c * s", "F = c + s"))
    for student, nb in {
        "a-first": build_submission(SOLUTION),
        "b-second": wrong,
        "c-third": build_submission(SOLUTION),
        "d-fourth": wrong,
    }.items():
        write_submission(course, student, nb)
    # the graders' scratch folders go to a temporary folder of this test's own (short: the kernels' sockets live there)
    scratch = Path(tempfile.mkdtemp(prefix="resume-"))
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "TMPDIR": str(scratch)}
    try:
        killed_and_resumed(course, env, scratch)
    finally:
        remove_tree(scratch)


def killed_and_resumed(course, env, scratch):
    grader = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "grading.coordinator.autograde_class",
            ASSIGNMENT,
            "--course",
            str(course),
            "--workers",
            "1",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first = course / "autograded" / "a-first" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    deadline = time.monotonic() + 900  # generous: a busy machine is slow, and this test is not about speed
    while not first.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    started = descendants(grader.pid)  # its workers, their sandboxes and kernels: what this test started
    grader.send_signal(signal.SIGKILL)
    grader.wait()
    assert first.exists(), "the first student was not graded in time"
    assert any("bwrap" in command for command in started.values()), started
    # each process notices that its grader died, and ends: soon, but not at once on a busy machine
    deadline = time.monotonic() + 120
    while any(running(pid, command) for pid, command in started.items()) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = {pid: command for pid, command in started.items() if running(pid, command)}
    assert not alive, f"processes outlived the killed grader: {alive}"
    left = [p for p in scratch.glob("nbgrader-sandbox-*") if abandoned(p)]
    assert left, "the killed grader's workers left no scratch folder: nothing for the next run to sweep"
    db = f"sqlite:///{course / 'gradebook.db'}"
    before = class_scores(db)["a-first"]
    grade(course, "--workers", "2", env=env)
    after = class_scores(db)
    report = (course / "autograde_report.txt").read_text()
    assert (
        after["a-first"] == before
        and f"a-first  {sum(POINTS[q] for q in AUTOGRADED):g}/{TOTAL_POINTS}  already graded" in report
    )
    assert after["b-second"]["q1a"] == 0 and after["c-third"]["q1a"] == POINTS["q1a"] and after["d-fourth"]["q1a"] == 0
    with sqlite3.connect(course / "gradebook.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert not any(p.exists() for p in left), "the next run did not sweep what the killed grader left"
    grade(course, "--workers", "2", "--force", env=env)
    assert class_scores(db) == after
