"""make autograde's workers start forked while the coordinator has no other thread, so that they have at once what it
imported (the engine and nbgrader: about a core-second per worker), and spawned once it has threads (a restart after
a worker died), as a lock held by another thread would stay held forever in a forked child. Before forking, the
coordinator freezes its objects out of garbage collection (gc.freeze), so that the workers' collections do not copy
the pages they share with it. A forked worker ends without atexit: its sandbox is removed all the same."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# run in a new interpreter, whose threads are only the ones it starts: what the worker sees of a value the coordinator
# set after its imports (a forked worker sees it; a spawned one imports the module again and sees the default)
SEES = textwrap.dedent(
    """
    import sys, threading
    from grading.engine.executions import ExecutionRequest, LocalExecutor
    from grading.engine.limits import Limits
    from support import worker_start_probe

    worker_start_probe.MARK["value"] = "set by the coordinator"
    if sys.argv[1] == "with a thread":
        stop = threading.Event()
        threading.Thread(target=stop.wait, daemon=True).start()
    executor = LocalExecutor(1, execute=worker_start_probe.report_mark)
    try:
        print(executor.submit(ExecutionRequest("", {}, Limits(), {})).result(timeout=120)[0])
    finally:
        executor.shutdown()
    """
)

# a worker that started its sandbox (template) and was shut down: what is left of that sandbox on the machine
LEAVES = textwrap.dedent(
    """
    import tempfile
    from pathlib import Path

    from grading.engine import sandbox
    from grading.engine.executions import LocalExecutor
    from grading.engine.limits import Limits

    executor = LocalExecutor(1)
    executor.warm_up(Limits(preload=()))
    workers = list(executor._started()._processes)
    executor.shutdown()
    left = [p.name for p in Path(tempfile.gettempdir()).glob(sandbox.SCRATCH_PREFIX + "*")]
    for parent in sandbox._cgroup_parents().values():
        left += [p.name for pid in workers for p in parent.glob(f"{sandbox.CGROUP_PREFIX}{pid}-*")]
    print(workers != [], left)
    """
)

# make autograde's coordinator, stopped where it starts its workers: how it starts them
STARTS = textwrap.dedent(
    """
    import sys
    from grading.coordinator import autograde_class
    from grading.engine import executions

    def record(executor, limits):
        print(executions._start_method())
        raise SystemExit(0)

    executions.LocalExecutor.warm_up = record
    autograde_class.main(["backprop", "--course", sys.argv[1]])
    """
)


def _run(script, *arguments, tmp=None):
    env = {"PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "PATH": "/usr/bin:/bin"}
    if tmp is not None:
        env["TMPDIR"] = str(tmp)
    done = subprocess.run(
        [sys.executable, "-c", script, *arguments], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_workers_are_forked_with_what_the_coordinator_holds_while_it_has_no_other_thread():
    assert _run(SEES, "alone") == "set by the coordinator, frozen: True"


def test_workers_are_spawned_once_the_coordinator_has_another_thread():
    assert _run(SEES, "with a thread") == "as imported, frozen: False"


@pytest.mark.usefixtures("bubblewrap")
def test_make_autograde_forks_its_workers(course):
    assert _run(STARTS, str(course)) == "fork"


@pytest.mark.usefixtures("bubblewrap")
def test_a_forked_worker_shut_down_leaves_nothing_of_its_sandbox(tmp_path):
    assert _run(LEAVES, tmp=tmp_path) == "True []"
