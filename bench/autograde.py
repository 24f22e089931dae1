"""Benchmark: stock `nbgrader autograde` against the course's sandboxed, concurrent grader, in the same run.

    python -m bench.autograde [--submissions 32] [--workers N] [--keep]

Builds N synthetic submissions (the solution, the blank release, and the correct and wrong variants of
tests/submission_catalogue.py, in turn) in two copies of the course, then grades one copy with stock
`nbgrader autograde` (no sandbox, one submission at a time) and the other with
`python -m grading.autograde_class` (what `make autograde` runs: bubblewrap sandbox, N workers), one after
the other. Prints each wall time, seconds per submission, the ratio, peak memory per worker (resident set
of a worker process with its kernel's process tree, read from /proc while grading), the floor (the
notebook's own cells' execution time, from nbclient's timing metadata in the autograded notebooks, with no
kernel start-up), and how long a student's Run All of the answered notebook takes (nbclient, no sandbox).
Not a test: the figures depend on the machine and on whatever else runs on it (the load average is printed).
"""
import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from grading.class_grades import class_scores  # noqa: E402
from grading.submissions import ASSIGNMENT, build_submission, solution_answers, write_submission  # noqa: E402
from submission_catalogue import CORRECT, WRONG  # noqa: E402

BIN = Path(sys.executable).parent
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


def course_copy(dest):
    """A course at dest: configuration, source, images and release; the gradebook comes from generate_assignment."""
    dest.mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", dest)
    shutil.copytree(ROOT / "images", dest / "images")
    shutil.copytree(ROOT / "source", dest / "source", symlinks=True)
    run(["nbgrader", "generate_assignment", ASSIGNMENT, "--force", "--log-level=ERROR"], cwd=dest)
    return dest


def run(args, cwd, **kw):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True, text=True, **kw)


def class_of(n):
    """n submissions: student id -> notebook, cycling through the solution, the blank release and the catalogue."""
    solution = solution_answers()
    kinds = [("perfect", {}), ("blank", None)] + [(k, a) for k, a in CORRECT.items()] + \
            [(k, a) for k, (_, a) in WRONG.items()]
    submissions = {}
    for i in range(n):
        kind, answers = kinds[i % len(kinds)]
        nb = build_submission({}) if answers is None else build_submission({**solution, **answers})
        submissions[f"s{i:03d}-{kind}"] = nb
    return submissions


# --- memory: resident sets of a process tree, sampled from /proc ------------------------------------------------
def _processes():
    """pid -> (parent pid, resident bytes, (start time, CPU seconds)) of every process we can read."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry.name}/statm") as f:
                rss = int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        table[int(entry.name)] = (int(fields[1]), rss, (fields[19], (int(fields[11]) + int(fields[12])) / TICK))
    return table


class TreeMemory(threading.Thread):
    """Samples the process tree under `root`: peak resident bytes of each child of the root together with
    its descendants (a worker process with its sandboxed kernel; for stock nbgrader, its kernel), and the CPU
    seconds of every process seen in the tree (as last sampled: a process's last interval is missed)."""

    def __init__(self, root, interval=0.25):
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak_per_child = 0
        self.peak_kernel = 0
        self.stop = threading.Event()
        self.cpu_seen = {}

    def run(self):
        while not self.stop.is_set():
            table = _processes()
            children = {}
            for pid, (ppid, _, _) in table.items():
                children.setdefault(ppid, []).append(pid)

            def tree(pid):
                total, stack = 0, [pid]
                while stack:
                    p = stack.pop()
                    if p in table:
                        total += table[p][1]
                        start, cpu = table[p][2]
                        self.cpu_seen[(p, start)] = cpu
                    stack += children.get(p, [])
                return total
            for child in children.get(self.root, []):
                self.peak_per_child = max(self.peak_per_child, tree(child))
                for grandchild in children.get(child, []):  # a worker's sandbox (bwrap and the kernel in it)
                    self.peak_kernel = max(self.peak_kernel, tree(grandchild))
            self.stop.wait(self.interval)


def timed(args, cwd):
    """(wall seconds, TreeMemory) of running args; TreeMemory.cpu: CPU seconds of the whole process tree."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    memory = TreeMemory(process.pid)
    memory.start()
    output = process.communicate()[0]
    wall = time.perf_counter() - start
    memory.stop.set()
    memory.join()
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    memory.cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    memory.cpu_sampled = sum(memory.cpu_seen.values())
    if process.returncode != 0:
        sys.exit(f"{' '.join(map(str, args))} exited {process.returncode}:\n{output[-3000:]}")
    return wall, memory


def cell_seconds(course, students):
    """Per student: the sum over code cells of nbclient's execution time (execute_input to execute_reply)."""
    def parse(stamp):
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    seconds = {}
    for student in students:
        nb = nbformat.read(str(course / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"), as_version=4)
        seconds[student] = sum((parse(ex["shell.execute_reply"]) - parse(ex["iopub.execute_input"])).total_seconds()
                               for cell in nb.cells if cell.cell_type == "code"
                               for ex in [cell.metadata.get("execution", {})]
                               if "shell.execute_reply" in ex and "iopub.execute_input" in ex)
    return seconds


def run_all_seconds(tmp):
    """Wall time of a student's Run All of the answered notebook: a fresh kernel, every cell, no sandbox."""
    from nbclient import NotebookClient
    folder = tmp / "student"
    shutil.copytree(ROOT / "release" / ASSIGNMENT, folder)
    nb = build_submission(solution_answers())
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=32, help="synthetic submissions (default 32)")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="workers of the course's grader (default: the number of cores)")
    parser.add_argument("--keep", action="store_true", help="keep the two graded course copies and print where")
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    tmp = Path(tempfile.mkdtemp(prefix="bench-autograde-"))
    try:
        print(f"machine: {cores} cores, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
        submissions = class_of(args.submissions)
        courses = {}
        for how in ("stock", "course"):
            courses[how] = course_copy(tmp / how)
            for student, nb in submissions.items():
                write_submission(courses[how], student, nb)

        stock_wall, stock_mem = timed(["nbgrader", "autograde", ASSIGNMENT, "--force", "--log-level=ERROR"],
                                      cwd=courses["stock"])
        ours_wall, ours_mem = timed([sys.executable, "-m", "grading.autograde_class", ASSIGNMENT, "--course",
                                     str(courses["course"]), "--force", "--workers", str(args.workers)], cwd=ROOT)
        load_after = os.getloadavg()[0]
        run_all = run_all_seconds(tmp)

        grades = {how: class_scores(f"sqlite:///{courses[how] / 'gradebook.db'}") for how in courses}
        same = all(grades["stock"][s] == grades["course"][s] for s in submissions)
        stock_cells = cell_seconds(courses["stock"], submissions)
        ours_cells = cell_seconds(courses["course"], submissions)
        n = args.submissions
        mib = 1 << 20
        print(f"submissions: {n}   grades equal in both runs: {same}")
        print(f"stock nbgrader autograde (no sandbox, serial):  {stock_wall:7.1f} s   {stock_wall / n:5.2f} s/submission")
        print(f"make autograde (sandbox, {args.workers} workers):           {ours_wall:7.1f} s   "
              f"{ours_wall / n:5.2f} s/submission")
        print(f"ratio (stock / make autograde):                 {stock_wall / ours_wall:7.2f}x")
        print(f"CPU time of the run's processes, sampled from /proc: stock {stock_mem.cpu_sampled / n:.2f} "
              f"s/submission, make autograde {ours_mem.cpu_sampled / n:.2f} s/submission "
              f"(children reaped normally: stock {stock_mem.cpu / n:.2f}; sandboxed kernels are killed, not counted there)")
        print(f"peak memory per worker (worker process + its sandboxed kernel, RSS): {ours_mem.peak_per_child / mib:6.0f} MiB")
        print(f"peak memory of one sandboxed kernel tree (RSS):                     {ours_mem.peak_kernel / mib:6.0f} MiB")
        print(f"peak memory of stock nbgrader's kernel (RSS):                       {stock_mem.peak_per_child / mib:6.0f} MiB")
        total = sum(stock_cells.values())
        print(f"floor: the notebook's cells, no start-up: {total / n:5.2f} s/submission (stock run, serial); "
              f"{total:.1f} s for the class on 1 core, {total / cores:.1f} s on {cores}")
        print(f"       the same cells in the concurrent sandboxed run: {sum(ours_cells.values()) / n:5.2f} s/submission")
        print(f"student's Run All of the answered notebook (fresh kernel, no sandbox): {run_all:.1f} s")
        print(f"load average {load_after:.1f} after grading")
        if args.keep:
            print(f"graded copies kept in {tmp}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
