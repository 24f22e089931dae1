"""Kernels forked from a worker's template: each submission still starts alone in a clean sandbox.

These tests run submissions one after the other in this process, so they share one template (one worker's), and
check that what one submission does to it never reaches the next.
"""

import json
import os
import signal
import subprocess
import tempfile
from ast import literal_eval
from pathlib import Path

import pytest

from grading.engine import kernel_template, sandbox
from grading.engine.execution_outcome import ExecutionOutcome, ExecutionStatus
from grading.engine.executions import ExecutionRequest, LocalExecutor
from grading.engine.limits import Limits
from grading.engine.sandbox import (
    CGROUP_PREFIX,
    PRELOAD,
    abandoned,
    sweep_leftovers,
)
from support.sandbox_runs import run, text

pytestmark = pytest.mark.usefixtures("bubblewrap")  # skipped without bubblewrap, failed in CI (conftest.py)

LEAVE_TRACES = r"""
import builtins, os, subprocess, torch
from ipykernel.connect import get_connection_file
sockets = os.path.dirname(get_connection_file())
for path in ('/tmp/left.txt', os.path.expanduser('~/left.txt'), '/dev/shm/left.txt', 'left.txt', sockets + '/left.txt'):
    open(path, 'w').write('left by the previous submission')
startup = os.path.expanduser('~/.ipython/profile_default/startup')
os.makedirs(startup, exist_ok=True)
open(os.path.join(startup, '00-left.py'), 'w').write('import builtins; builtins.LEFT = True')
subprocess.Popen(['/bin/sh', '-c', 'sleep 4301 & exec sleep 4302'], start_new_session=True)
import ctypes
libc = ctypes.CDLL(None)
ipc = [libc.shmget(4301, 4096, 0o1666), libc.msgget(4302, 0o1666), libc.semget(4303, 1, 0o1666)]  # IPC_CREAT
add_key = {'x86_64': 248, 'aarch64': 217}[os.uname().machine]
ipc += [libc.syscall(add_key, b'user', b'left-key', b'x', 1, keyring) for keyring in (-3, -4, -5)]  # session, user
torch.Tensor.tolist = lambda self: 'tampered'
builtins.LEFT = True
os.environ['LEFT'] = '1'
print((os.getppid(), ipc))
"""

LOOK_FOR_TRACES = r"""
import builtins, os, torch
from ipykernel.connect import get_connection_file
found = []
for top in ('/tmp', os.path.expanduser('~'), '/dev/shm', '.', os.path.dirname(get_connection_file())):
    device = os.stat(top).st_dev  # not into what is mounted below (the runtime, when it lives under /tmp)
    for folder, subfolders, names in os.walk(top):
        subfolders[:] = [d for d in subfolders if os.lstat(os.path.join(folder, d)).st_dev == device]
        found += [os.path.join(folder, n) for n in names if 'left' in n]
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        if b'sleep' in open(f'/proc/{pid}/cmdline', 'rb').read():
            found.append('process ' + pid)
    except OSError:
        pass
if getattr(builtins, 'LEFT', False): found.append('builtins.LEFT')
if torch.tensor([1.0]).tolist() != [1.0]: found.append('torch.Tensor.tolist')
if 'LEFT' in os.environ: found.append('environment')
if 'left-key' in open('/proc/keys').read(): found.append('a key')
for kind in ('shm', 'msg', 'sem'):
    found += [kind + ' ' + row.split()[0] for row in open('/proc/sysvipc/' + kind).read().splitlines()[1:]]
print((os.getppid(), sorted(os.listdir('.')), found))
"""


def current_template():
    return getattr(kernel_template._local, "template", None)


def test_next_submission_on_the_same_worker_finds_nothing_the_last_one_left():
    cells, outcome = run(LEAVE_TRACES)
    assert outcome.status is ExecutionStatus.OK, outcome
    template = current_template()
    cells_after, outcome_after = run(LOOK_FOR_TRACES)
    assert outcome_after.status is ExecutionStatus.OK, outcome_after
    assert current_template() is template and template.alive(), "the second submission did not reuse the template"
    template_before, ipc_made = literal_eval(text(cells[0]))
    assert min(ipc_made) >= 0, "the first submission could not make its IPC objects: nothing to look for"
    parent, files, found = literal_eval(text(cells_after[0]))
    assert parent == template_before, "the two kernels were not forked by the same template"
    assert files == ["data"] and found == []


def test_preloaded_modules_are_there_before_the_first_cell_and_randomness_is_not_shared():
    probe = "import sys, numpy\nprint('torch' in sys.modules, numpy.random.randint(0, 2**31))"
    first, second = (text(run(probe)[0][0]).split() for _ in range(2))
    assert first[0] == second[0] == "True"
    assert first[1] != second[1], "two forked kernels drew the same unseeded random numbers"


def test_forked_kernel_is_like_a_new_kernel_process_that_imported_the_preloads():
    probe = (
        f"import {', '.join(PRELOAD)}\n"  # some set a variable or a path on import: both kernels have them
        "import os, resource, sys, matplotlib\n"
        "limits = [resource.getrlimit(getattr(resource, r)) for r in "
        "('RLIMIT_AS', 'RLIMIT_FSIZE', 'RLIMIT_CPU', 'RLIMIT_CORE', 'RLIMIT_NPROC', 'RLIMIT_MSGQUEUE')]\n"
        "print(os.getcwd(), sys.path, sorted(os.environ.items()), limits, matplotlib.get_backend(),"
        " get_ipython().history_manager.hist_file, __name__)"
    )
    forked, fresh = (text(run(probe, kernel_template=template)[0][0]) for template in (True, False))
    assert forked == fresh


def test_kernels_do_not_pause_after_each_cell_as_a_notebook_frontend_needs():
    # ipykernel's 0.5 ms after every cell and every probe, for frontends that order outputs by timestamp, is idle
    # time in a class run; the grader reads each cell's outputs up to its idle status instead
    probe = "print(get_ipython().kernel._execute_sleep)"
    assert [text(run(probe, kernel_template=template)[0][0]) for template in (True, False)] == ["0.0\n"] * 2


def test_submission_can_neither_read_nor_trace_the_template():
    probe = r"""
import ctypes, os
template = os.getppid()
results = []
for name in ('mem', 'environ', 'fd/0', 'fd/1'):
    try:
        with open(f'/proc/{template}/{name}', 'rb') as f:
            f.read(1)
        results.append('read ' + name)
    except OSError:
        results.append('denied')
libc = ctypes.CDLL(None, use_errno=True)
for request in (16, 0x4206):  # PTRACE_ATTACH, PTRACE_SEIZE
    results.append('traced' if libc.ptrace(request, template, 0, 0) == 0 else 'denied')
print(results)
"""
    cells, outcome = run(probe)
    assert outcome.status is ExecutionStatus.OK
    assert literal_eval(text(cells[0])) == ["denied"] * 6


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGSTOP", "SIGTERM", "SIGINT", "SIGUSR1"])
def test_submission_can_neither_kill_nor_stop_its_template(signal_name):
    before = run("print('warm')")[1] and current_template()
    cells, outcome = run(
        f"import os, signal; os.kill(os.getppid(), signal.{signal_name}); print('sent')",
        "import time; time.sleep(0.5); print('after')",
    )
    assert outcome.status is ExecutionStatus.OK and text(cells[1]) == "after\n"
    cells, outcome = run("print('next student')")
    assert outcome.status is ExecutionStatus.OK and text(cells[0]) == "next student\n"
    assert current_template() is before and before.alive(), "the template did not survive the signal"


def test_template_that_stops_answering_is_replaced(monkeypatch):
    run("print('warm')")
    stuck = current_template()
    monkeypatch.setattr(kernel_template, "REPLY_TIMEOUT", 3)
    bwrap = stuck.process.pid  # the template is bubblewrap's only child
    template_pid = int(Path(f"/proc/{bwrap}/task/{bwrap}/children").read_text().split()[0])
    os.kill(template_pid, signal.SIGSTOP)  # from outside the sandbox, as nothing inside can
    try:
        cells, outcome = run("print('next student')")
    finally:
        stuck.kill()
    assert outcome.status is ExecutionStatus.OK and text(cells[0]) == "next student\n"
    assert current_template() is not stuck and stuck.closed


def test_changed_template_settings_mean_a_new_sandbox():
    run("print('warm')")
    before = current_template()
    cells, outcome = run(
        "import os, resource\nt = os.getppid()\n"
        "resource.prlimit(t, resource.RLIMIT_NOFILE, (64, 64))\n"
        "os.setpriority(os.PRIO_PROCESS, t, 19)\nprint('changed')"
    )
    assert text(cells[0]) == "changed\n"
    cells, outcome = run(
        "import os, resource\nprint(resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 64,"
        " os.getpriority(os.PRIO_PROCESS, 0))"
    )
    assert text(cells[0]) == "True 0\n"
    assert current_template() is not before


def test_what_cannot_be_emptied_means_a_new_sandbox():
    """Folders nested deeper than the template empties (and past any path length) in every writable place."""
    run("print('warm')")
    before = current_template()
    deep = (
        "import os\nfor top in ('/tmp', os.path.expanduser('~'), '/dev/shm', '.'):\n"
        "    fd = os.open(top, os.O_RDONLY)\n"
        "    for i in range(300):\n"
        "        os.mkdir('d' * 250, dir_fd=fd)\n"
        "        fd = os.open('d' * 250, os.O_RDONLY, dir_fd=fd)\n"
        "    os.close(os.open('left.txt', os.O_WRONLY | os.O_CREAT, dir_fd=fd))\nprint('made')"
    )
    cells, outcome = run(deep)
    assert text(cells[0]) == "made\n"
    cells, outcome = run(LOOK_FOR_TRACES)
    parent, files, found = literal_eval(text(cells[0]))
    assert outcome.status is ExecutionStatus.OK and files == ["data"] and found == []
    assert current_template() is not before, "deeper than the template empties, yet the sandbox was kept"


@pytest.fixture
def own_cgroup_parents(monkeypatch):
    """Cgroups of this test's own, one below each place where sandbox cgroups are made (where the machine lets us
    make them), in their place for the test: a sweep then sees no other grader's cgroups. Named as this process's
    leftovers, so that should the test die, a later sweep removes them."""
    own = {}
    for controller, parent in sandbox._cgroup_parents().items():
        try:
            (parent / f"{CGROUP_PREFIX}{os.getpid()}-sweep-test").mkdir()
            own[controller] = parent / f"{CGROUP_PREFIX}{os.getpid()}-sweep-test"
        except OSError:
            pass
    monkeypatch.setattr(sandbox, "_cgroup_parents", lambda: dict(own))
    yield own
    for parent in own.values():
        for path in [*parent.glob(f"{CGROUP_PREFIX}*"), parent]:
            try:
                path.rmdir()
            except OSError:
                pass


def test_sweep_removes_only_what_dead_graders_left(tmp_path, monkeypatch, own_cgroup_parents):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    finished = subprocess.Popen(["true"])
    finished.wait()
    dead, alive, unmarked = (tmp_path / f"nbgrader-sandbox-{n}-x" for n in ("dead", "alive", "unmarked"))
    for folder, owner in ((dead, finished.pid), (alive, os.getpid()), (unmarked, None)):
        (folder / "work").mkdir(parents=True)
        if owner is not None:
            (folder / "owner.pid").write_text(str(owner))
    left, kept = [], []
    for parent in own_cgroup_parents.values():
        for pid, made in ((finished.pid, left), (os.getpid(), kept)):
            (parent / f"{CGROUP_PREFIX}{pid}-x").mkdir()
            made.append(parent / f"{CGROUP_PREFIX}{pid}-x")
    assert abandoned(dead) and not abandoned(alive) and not abandoned(unmarked)
    sweep_leftovers()
    assert not dead.exists() and alive.exists() and unmarked.exists()
    assert not any(path.exists() for path in left) and all(path.exists() for path in kept)
    os.utime(unmarked, (0, 0))  # a folder without an owner is swept once it is old
    sweep_leftovers()
    assert not unmarked.exists()
    assert Path(tempfile.gettempdir()) == tmp_path


def template_of_this_worker(notebook_json, files, limits, questions, probe_setup=""):
    """What a worker runs instead of execute_in_sandbox here: whether its template was running before this call,
    and the template's process id."""
    template = getattr(kernel_template._local, "template", None)
    alive = template is not None and template.alive()
    return json.dumps([alive, template.process.pid if alive else None]), ExecutionOutcome(ExecutionStatus.OK, "")


def test_warm_up_starts_each_workers_template_before_its_first_notebook():
    executor = LocalExecutor(1, execute=template_of_this_worker)
    try:
        executor.warm_up(Limits())
        executed, _ = executor.submit(ExecutionRequest("{}", {}, Limits(), {})).result(timeout=600)
    finally:
        executor.shutdown()
    alive, pid = json.loads(executed)
    assert alive and pid
