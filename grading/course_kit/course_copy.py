"""Copies of the course for tests and benchmarks, and course commands run with this environment's tools."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from grading.course_kit.submissions import ASSIGNMENT, ROOT

BIN = Path(sys.executable).parent  # nbgrader, jupyter and dask of this environment


def course_command(args, cwd, timeout=900, env=None):
    """Run a course command (nbgrader, make, python -m ...) with this environment's tools first on PATH; the
    finished process, whatever its exit status."""
    env = {**os.environ, **(env or {})}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    return subprocess.run(list(map(str, args)), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def copy_course(dest, fresh_release=False):
    """A course directory at dest holding this course's configuration, source and images, and its release: copied,
    or (fresh_release) generated afresh, which gives the copy its own gradebook."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "nbgrader_config.py", dest)
    shutil.copytree(ROOT / "images", dest / "images")
    shutil.copytree(ROOT / "source", dest / "source")  # links followed: the shipped modules live in grading/
    if not fresh_release:
        shutil.copytree(ROOT / "release", dest / "release")
        return dest
    done = course_command(["nbgrader", "generate_assignment", ASSIGNMENT, "--force", "--log-level=ERROR"], dest)
    if done.returncode != 0:
        raise RuntimeError(f"nbgrader generate_assignment failed in {dest}:\n{done.stdout}\n{done.stderr}")
    return dest
