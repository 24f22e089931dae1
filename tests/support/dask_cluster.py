"""A Dask cluster on 127.0.0.1 started the way README's *Grading on several machines* says: a `dask scheduler` and
`dask worker` processes from the virtual environment's command line, run from a folder outside the course and
without PYTHONPATH, so that they import `grading` only as the package `make setup` installed.

Every process started here is the first of its own session and process group; stopping the cluster ends those
groups and then whatever they started that is still alive (a sandbox leaves its group but dies with its worker),
found below the processes started here (psutil). Nothing is ever killed by name."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

BIN = Path(sys.executable).parent


def _start_time(pid):
    """When process pid started, or None if it does not exist: with the pid, it names one process for good (a pid
    alone may be reused)."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def descendants(pid):
    """{pid: start time} of the process pid and every live process below it."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return {}
    found = {}
    for process in tree:
        try:
            found[process.pid] = process.create_time()
        except psutil.Error:  # ended meanwhile
            continue
    return found


def _still(pid, started):
    """That very process (pid, started), if it is still there; else None."""
    try:
        process = psutil.Process(pid)
        return process if process.create_time() == started else None
    except psutil.Error:
        return None


def alive(processes):
    """Those of {pid: start time} still running (zombies count as ended)."""
    live = {}
    for pid, started in processes.items():
        process = _still(pid, started)
        try:
            if process is not None and process.status() != psutil.STATUS_ZOMBIE:
                live[pid] = started
        except psutil.Error:
            continue
    return live


def kill_exactly(processes, sig=signal.SIGKILL):
    """Send sig to each of {pid: start time} that is still that very process."""
    for pid, started in processes.items():
        process = _still(pid, started)
        if process is not None:
            try:
                process.send_signal(sig)
            except psutil.Error:
                pass


class Cluster:
    """`dask scheduler` and `dask worker` processes on 127.0.0.1 (random free ports), started in `folder`.

    Use as a context manager; stop() ends every process it started, and everything those started."""

    def __init__(self, folder, workers=("w0", "w1")):
        self.folder = Path(folder)
        self.worker_names = list(workers)
        self.started = {}  # name -> Popen; "scheduler" and the worker names
        self.seen = {}  # pid -> start time of every process found below the started ones
        self.address = None
        # the sandboxes' sockets live in the workers' temporary folder, and a socket's path has at most 107 bytes:
        # a short folder of its own, removed by stop()
        self.tmpdir = Path(tempfile.mkdtemp(prefix="dask-"))
        self.env = environment_outside_the_course(self.tmpdir)

    # --- starting ------------------------------------------------------------------------------------------
    def _popen(self, name, args):
        log = open(self.folder / f"{name}.log", "wb")
        try:
            self.started[name] = subprocess.Popen(
                args,
                cwd=self.folder,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()

    def start(self, timeout=600):
        """Start the scheduler, then the workers; return once every worker has registered."""
        scheduler_file = self.folder / "scheduler.json"
        # as README step 2, on loopback with ports the system picks; the file tells which one it picked
        options = "--host 127.0.0.1 --port 0 --no-dashboard --scheduler-file".split()
        self._popen("scheduler", [BIN / "dask", "scheduler", *options, scheduler_file])
        deadline = time.monotonic() + timeout
        while self.address is None:
            self._check_running(deadline, "the scheduler to write its address")
            try:
                self.address = json.loads(scheduler_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.2)
        # README step 3: one thread per worker process; here one process per `dask worker`, so that one can be
        # killed alone, as a worker machine that goes down
        for name in self.worker_names:
            options = "--nworkers 1 --nthreads 1 --host 127.0.0.1 --no-dashboard".split()
            local = ["--name", name, "--local-directory", self.folder / f"{name}-space"]
            self._popen(name, [BIN / "dask", "worker", self.address, *options, *local])
        with self.client() as client:
            while len(client.scheduler_info()["workers"]) < len(self.worker_names):
                self._check_running(deadline, f"{len(self.worker_names)} workers to register")
                time.sleep(0.2)
        return self

    def _check_running(self, deadline, waiting_for):
        self.remember_descendants()
        for name, process in self.started.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"dask {name} exited {process.returncode} while waiting for {waiting_for}:\n{self.log(name)}"
                )
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"timed out waiting for {waiting_for}:\n"
                + "\n".join(f"--- {name}\n{self.log(name)}" for name in self.started)
            )

    def client(self):
        """A Client of this cluster for the test's own questions (which workers exist, what they execute)."""
        from distributed import Client

        return Client(self.address, timeout="30s", set_as_default=False)

    def log(self, name, chars=3000):
        try:
            return (self.folder / f"{name}.log").read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # --- stopping ------------------------------------------------------------------------------------------
    def remember_descendants(self):
        for process in self.started.values():
            if process.poll() is None:
                self.seen.update(descendants(process.pid))

    def kill_worker(self, name):
        """SIGKILL the `dask worker` process `name` and everything in its process group, at once: a worker
        machine that goes down mid-notebook. Returns {pid: start time} of every process it had started."""
        process = self.started[name]
        tree = descendants(process.pid)
        self.seen.update(tree)
        os.killpg(process.pid, signal.SIGKILL)  # its group: the pid of the session's first process
        kill_exactly(tree)  # what left the group (the sandbox) dies with its worker anyway; this makes it certain
        process.wait(timeout=30)
        return tree

    def stop(self, timeout=20):
        """End every process started here (politely first), then anything they started that is still alive.
        Returns {pid: start time} of those still alive afterwards (none, unless something resists SIGKILL)."""
        self.remember_descendants()
        order = [n for n in self.worker_names if n in self.started] + [n for n in self.started if n == "scheduler"]
        for name in order:
            process = self.started[name]
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for name in order:
            try:
                self.started[name].wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for name in order:
            process = self.started[name]
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(timeout=10)
        kill_exactly(alive(self.seen))
        deadline = time.monotonic() + 120
        while alive(self.seen) and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        return alive(self.seen)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()


def environment_outside_the_course(tmpdir):
    """This environment without PYTHONPATH, with the virtual environment first on PATH and temporary files
    (the sandboxes' scratch folders included) under tmpdir."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["TMPDIR"] = str(tmpdir)
    return env
