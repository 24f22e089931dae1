"""The tests that need the sandbox are skipped where bubblewrap cannot run, but fail in CI: a CI without the sandbox
must not pass (conftest.py's fixture `bubblewrap`)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import without_bubblewrap

ROOT = Path(__file__).resolve().parents[1]


def test_without_bubblewrap_a_sandbox_test_fails_in_ci_and_is_skipped_elsewhere():
    with pytest.raises(pytest.fail.Exception, match="bubblewrap cannot run here: not installed.*must run in CI"):
        without_bubblewrap("not installed", "true")
    for ci in (None, "", "0", "false", "False"):
        with pytest.raises(pytest.skip.Exception, match="bubblewrap cannot run here: not installed"):
            without_bubblewrap("not installed", ci)


def test_a_sandbox_test_run_in_ci_where_bubblewrap_is_missing_fails():
    """tests/test_sandbox.py run as CI runs it, with no bwrap on PATH (the virtual environment's commands only)."""
    env = {**os.environ, "CI": "true", "PATH": str(Path(sys.executable).parent)}
    test = "tests/test_sandbox.py::test_interruptible_infinite_loop_fails_only_its_cell"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs", test],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0, done.stdout[-3000:]
    assert "bubblewrap (bwrap) is not installed" in done.stdout and "must run in CI" in done.stdout, done.stdout[-3000:]
    assert "skipped" not in done.stdout.splitlines()[-1], done.stdout[-3000:]
