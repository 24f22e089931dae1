"""make autograde's workers start forked while the coordinator has no other thread, so that they have at once what it
imported (the engine and nbgrader: about a core-second per worker), and spawned once it has threads (a restart after
a worker died), as a lock held by another thread would stay held forever in a forked child. Before forking, the
coordinator freezes its objects out of garbage collection (gc.freeze), so that the workers' collections do not copy
the pages they share with it."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# run in a new interpreter, whose threads are only the ones it starts: what the worker sees of a value the coordinator
# set after its imports (a forked worker sees it; a spawned one imports the module again and sees the default)
SCRIPT = textwrap.dedent(
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


def _worker_sees(how):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, how],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_workers_are_forked_with_what_the_coordinator_holds_while_it_has_no_other_thread():
    assert _worker_sees("alone") == "set by the coordinator, frozen: True"


def test_workers_are_spawned_once_the_coordinator_has_another_thread():
    assert _worker_sees("with a thread") == "as imported, frozen: False"
