"""The execute step alone (execute_in_sandbox) on tiny notebooks: what the sandbox hides, what each fault becomes."""

import subprocess
import tempfile
import uuid
from ast import literal_eval

import psutil
import pytest

from grading.engine.execution_outcome import ExecutionStatus
from grading.engine.sandbox import Limits, bwrap_problem, socket_path_problem
from support import sandbox_runs
from support.sandbox_runs import run, text

pytestmark = pytest.mark.usefixtures("bubblewrap")  # skipped without bubblewrap, failed in CI (conftest.py)


@pytest.fixture(autouse=True, params=["template", "fresh"])
def kernel_start(request, monkeypatch):
    """Every test twice: kernels forked from the worker's template, and a new kernel process per notebook."""
    monkeypatch.setitem(sandbox_runs.DEFAULTS, "kernel_template", request.param == "template")
    return request.param


def test_kernel_sees_only_its_files_a_clean_environment_and_no_network(monkeypatch, tmp_path):
    monkeypatch.setenv("GRADER_SECRET", "canary-env")
    secret = tmp_path / "canary.txt"  # under the machine's /tmp
    secret.write_text("canary-tmp")
    cells, outcome = run(
        "import os; print(sorted(os.listdir('.')), open('data/given.txt').read())",
        "import sys; print(sorted(os.environ.items()))",
        "print(os.path.exists(os.path.expanduser('~/.bashrc')), os.path.exists('/root/.ssh'),"
        f" os.path.exists({str(secret)!r}),"  # the read-only runtime is there too when it lives under /tmp
        " sorted(f for d, _, fs in os.walk('/tmp') if not d.startswith(sys.prefix) for f in fs))",
        "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 80), timeout=3)\n"
        "except OSError as e:\n    print('no network')",
    )
    assert outcome.status is ExecutionStatus.OK
    assert text(cells[0]) == "['data'] given\n"
    assert "canary-env" not in text(cells[1]) and "GRADER_SECRET" not in text(cells[1])
    assert text(cells[2]).startswith("False False False [")  # /tmp holds only the kernel's own sockets:
    assert all(name.startswith("kernel") for name in literal_eval(text(cells[2])[len("False False False ") :]))
    assert text(cells[3]) == "no network\n"


def test_only_the_kernels_own_folders_are_writable():
    """What a kernel can write: /tmp, its home, /dev/shm, its working folder and its sockets' folder (a kernel
    forked from a template leaves nothing there for the next one: tests/test_kernel_template.py)."""
    cells, outcome = run(
        "import os\nfrom ipykernel.connect import get_connection_file\nwritable = []\n"
        "for line in open('/proc/self/mountinfo'):\n"
        "    point, options, kind = line.split()[4], line.split()[5], line.split(' - ')[1].split()[0]\n"
        "    if 'rw' in options.split(',') and kind != 'devtmpfs' and kind != 'devpts' and os.access(point, os.W_OK):\n"
        "        writable.append(point)\n"
        "import json\nsockets = os.path.dirname(json.load(open(get_connection_file()))['ip'])\n"
        "print(sorted('sockets' if p == sockets else p for p in writable))\n"
        "print([d for d in ('/', '/etc', '/dev', '/home', '/usr', '/var', '/opt') if os.access(d, os.W_OK)])"
    )
    assert outcome.status is ExecutionStatus.OK
    assert text(cells[0]).splitlines() == [
        str(sorted(["/tmp", "/home/student", "/dev/shm", "/assignment", "sockets"])),
        "[]",
    ]


FILL = """
import errno, json, os
from ipykernel.connect import get_connection_file

def fill(folder):
    written = 0
    try:
        for i in range(1_000):
            with open(os.path.join(folder, f"fill-{i}"), "wb") as f:
                f.write(b"x" * (4 << 20))
            written += 4 << 20
    except OSError as error:
        stopped = errno.errorcode[error.errno]
    fs = os.statvfs(folder)
    return stopped, written >> 20, (fs.f_blocks * fs.f_frsize) >> 20

sockets = os.path.dirname(json.load(open(get_connection_file()))["ip"])
for folder in ("/assignment", "/tmp", os.path.expanduser("~"), "/dev/shm", sockets):
    print("sockets" if folder == sockets else folder, *fill(folder))
print(os.access("/assignment-files", os.W_OK), sorted(os.listdir("/assignment-files")))
"""


def test_what_a_submission_writes_lands_on_bounded_folders_of_its_own():
    """Every folder a kernel can write is a size-limited tmpfs of the sandbox's own: filling them all stops at their
    size, and nothing reaches the grading machine's disk (the assignment's files come from a read-only folder)."""
    cells, outcome = run(FILL, tmpfs_bytes=32 << 20, cell_timeout=300)
    assert outcome.status is ExecutionStatus.OK and [o.output_type for o in cells[0].outputs] == ["stream"], cells[
        0
    ].outputs
    lines = [line for line in text(cells[0]).splitlines() if line.startswith(("/", "sockets", "False", "True"))]
    for line in lines[:4]:
        folder, stopped, written, size = line.split()
        assert (stopped, size) == ("ENOSPC", "32") and int(written) <= 32, line
    folder, stopped, written, size = lines[4].split()
    assert (folder, stopped, written, size) == ("sockets", "ENOSPC", "0", "1")
    assert lines[5] == "False ['data']"


@pytest.mark.parametrize(
    "code, status",
    [
        ("import os; os._exit(3)", ExecutionStatus.KERNEL_EXITED),
        ("import ctypes; ctypes.string_at(0)", ExecutionStatus.KERNEL_CRASHED),
    ],
)
def test_dead_kernel_keeps_earlier_outputs_and_fails_every_later_cell(code, status):
    cells, outcome = run("print('before')", code, "print('after')")
    assert outcome.status is status and outcome.cells_not_run == 2
    assert text(cells[0]) == "before\n"
    assert [o.ename for o in cells[1].outputs] == ["KernelDied"]
    assert [o.ename for o in cells[2].outputs] == ["NotRun"]


def test_notebook_watchdog_stops_a_notebook_whose_cells_each_fit_the_cell_timeout():
    cells, outcome = run("import time; time.sleep(4)", "time.sleep(4)", "time.sleep(4)", notebook_timeout=6)
    assert outcome.status is ExecutionStatus.NOTEBOOK_TIMEOUT
    assert cells[2].outputs[-1].ename in ("KernelDied", "NotRun")


def test_interruptible_infinite_loop_fails_only_its_cell():
    cells, outcome = run("while True: pass", "print('next')", cell_timeout=3)
    assert outcome.status is ExecutionStatus.OK
    assert any(o.get("ename") == "CellTimeoutError" for o in cells[0].outputs)
    assert text(cells[1]) == "next\n"


def test_memory_hog_gets_memory_error():
    cells, outcome = run("x = bytearray(8 << 30)", "print('next')")
    assert cells[0].outputs[-1].ename == "MemoryError"
    assert text(cells[1]) == "next\n"


def test_process_swarm_is_capped_and_every_process_ends_with_the_sandbox():
    seconds = f"4243.{uuid.uuid4().int % 10**9}"  # this test's own: it looks for no one else's processes
    cells, outcome = run(
        "import os\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
        f"            os.execv('/bin/sleep', ['sleep', '{seconds}'])\n        n += 1\n"
        "except OSError:\n    print('capped', n <= 256)",
        "print('next')",
    )
    assert text(cells[0]) == "capped True\n" and text(cells[1]) == "next\n"
    left = [p.pid for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", seconds]]
    assert left == []


def test_output_flood_is_cut_to_the_limit():
    cells, outcome = run("for i in range(100): print('x' * 100000)", "print('next')", max_output_bytes=50000)
    assert outcome.output_truncated
    assert len(text(cells[0])) < 60000 and "truncated" in text(cells[0])
    assert text(cells[1]).endswith("next\n") or "truncated" in text(cells[1])


def test_grader_refuses_without_bubblewrap_and_says_how_to_go_on(tmp_path):
    import shutil
    import sys

    from grading.course_kit.submissions import ASSIGNMENT, ROOT

    shutil.copy(ROOT / "nbgrader_config.py", tmp_path)
    with open(tmp_path / "nbgrader_config.py", "a") as config:
        config.write('\nc.Sandbox.bwrap = "/nonexistent/bwrap"\n')
    result = subprocess.run(
        [sys.executable, "-m", "grading.coordinator.autograde_class", ASSIGNMENT, "--course", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 3
    assert "refuses" in result.stderr and "UNSAFE_NO_SANDBOX=1" in result.stderr


def test_a_temporary_folder_too_long_for_the_kernels_sockets_is_refused_with_what_to_do(monkeypatch, tmp_path):
    assert socket_path_problem() is None  # this machine's temporary folder
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / ("t" * 60)))
    problem = bwrap_problem(Limits())
    assert problem is not None and "TMPDIR" in problem and "too long" in problem


def test_a_dead_kernel_in_a_notebook_of_many_cells_leaves_a_bounded_note():
    """Every later cell counts as not run, but only graded cells and the first few others say so: a notebook of
    thousands of cells does not grow by a note each."""
    from grading.engine.execute_sandboxed import NOT_RUN_NOTES

    cells, outcome = run("import os; os._exit(3)", *["1"] * 300)
    assert outcome.status is ExecutionStatus.KERNEL_EXITED and outcome.cells_not_run == 301
    notes = [c for c in cells[1:] if any(o.get("ename") == "NotRun" for o in c.outputs)]
    assert len(notes) == NOT_RUN_NOTES and all(not c.outputs for c in cells[1 + NOT_RUN_NOTES :])
