"""Kernels forked from a warm template: one sandbox per grading worker, one fresh kernel per submission.

A new kernel would spend most of a submission's time importing torch, numpy and matplotlib. Instead each worker
keeps one sandbox whose first process, the template (grading/engine/template_process.py), has imported them once; for
each submission it forks a child that becomes that submission's kernel and dies with it. Between submissions
the template ends every other process of the sandbox and empties its writable folders, and the worker empties
the submission folder, so each submission still starts alone in a clean sandbox.

    template = worker_template(limits)          # this thread's template, started (or restarted) as needed
    template.prepare(files)                      # the submission's files at /assignment
    km = TemplateKernelManager(template, ...)    # an AsyncKernelManager whose kernel is forked by the template
    ...                                          # execute the notebook with km
    template.reset()                             # back to a clean sandbox, or False: the template was discarded

Whenever anything is out of the ordinary (the template died, did not answer in time, a notebook ran out of
time) the whole sandbox is killed and the next submission starts a new one.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import subprocess
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from importlib.util import find_spec
from multiprocessing.util import Finalize
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager

from .limits import Limits
from .sandbox import (
    GIVEN_FILES,
    HOME,
    WORKDIR,
    Cgroup,
    empty_folder,
    python_executable,
    reach_own_ipc,
    remove_tree,
    rlimits,
    sandbox_command,
    scratch_folder,
    write_files,
)

STARTUP_TIMEOUT = 180  # seconds for the template's imports, on a busy machine
REPLY_TIMEOUT = 30


class TemplateError(RuntimeError):
    """The template could not start or stopped answering."""


class TemplateChild:
    """The kernel the template forked, as much of subprocess.Popen as a kernel provisioner uses."""

    stdin = stdout = stderr = None

    def __init__(self, template: KernelTemplate, pid: int) -> None:
        self.template, self.pid = template, pid
        self.returncode: int | None = None
        self.exited = threading.Event()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        if not self.exited.wait(timeout):
            raise subprocess.TimeoutExpired("kernel", timeout or 0)  # timed out: there was a timeout
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            self.template.send(f"signal {int(signum)}")

    def kill(self) -> None:
        self.send_signal(9)

    def terminate(self) -> None:
        self.send_signal(15)


class KernelTemplate:
    """One worker's sandbox and the template process in it."""

    def __init__(self, limits: Limits, preload: Iterable[str]) -> None:
        self.limits = limits
        self.scratch = scratch_folder("template")
        self.workdir, self.ipc_dir = self.scratch / "work", self.scratch / "ipc"
        self.cgroup = Cgroup(limits)
        self.child: TemplateChild | None = None
        self.replies: queue.Queue[list[str]] = queue.Queue()
        self.closed = False
        launcher = find_spec("ipykernel_launcher")
        assert launcher is not None, "ipykernel is one of the course's requirements"
        settings = {
            "preload": list(preload),
            "rlimits": rlimits(limits),
            "workdir": WORKDIR,
            "given": GIVEN_FILES,
            "wipe": ["/tmp", HOME, "/dev/shm", WORKDIR],
            "launcher": launcher.origin,
        }
        source = Path(__file__).with_name("template_process.py").read_text()
        argv = self.cgroup.wrap(
            sandbox_command(
                limits,
                self.workdir,
                self.ipc_dir,
                [python_executable(), "-c", source, json.dumps(settings)],
                as_pid_1=True,
                own_ipc=True,
            )
        )
        self._stderr = open(self.scratch / "template.log", "w+b")
        try:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, start_new_session=True
            )
        except OSError as error:
            self.close()
            raise TemplateError(f"the sandbox could not start: {error}") from None
        self._lock = threading.Lock()
        assert self.process.stdin is not None and self.process.stdout is not None  # both are pipes (PIPE)
        self.stdin, self.stdout = self.process.stdin, self.process.stdout
        os.set_blocking(self.stdin.fileno(), False)  # a full pipe is a template that stopped reading
        threading.Thread(target=self._read_replies, daemon=True).start()
        self._expect("ready", STARTUP_TIMEOUT, "start")
        self._reach_own_ipc()

    def _reach_own_ipc(self):
        """The sockets' folder is a tmpfs of the sandbox's own: the grader reaches it at the same path."""
        try:
            reach_own_ipc(self.process.pid, self.ipc_dir, timeout=REPLY_TIMEOUT)
        except OSError as error:
            self.close()
            raise TemplateError(f"the sandbox's sockets' folder cannot be reached: {error}") from None

    # --- talking to the template ------------------------------------------------------------------------------
    def _read_replies(self):
        for raw in self.stdout:
            words = raw.decode(errors="replace").split()
            if words[:1] == ["spawned"]:  # the child exists from here on, so its exit can never come first
                self.child = TemplateChild(self, int(words[1]))
            if words[:1] == ["exited"] and self.child is not None:
                self.child.returncode = int(words[1])
                self.child.exited.set()
            elif words:
                self.replies.put(words)
        self.replies.put(["gone"])
        child = self.child
        if child is not None and child.returncode is None:  # the whole sandbox ended with the kernel in it
            child.returncode = self.process.wait()
            child.exited.set()

    def send(self, line: str) -> None:
        """Write one request; never blocks. If it cannot be written whole, the template is killed (the reader
        then reports it gone)."""
        data = line.encode() + b"\n"
        with self._lock:
            try:
                written = os.write(self.stdin.fileno(), data)
            except (OSError, ValueError):
                written = 0
            if written != len(data):
                self.kill()

    def _expect(self, word, timeout, doing):
        try:
            reply = self.replies.get(timeout=timeout)
        except queue.Empty:
            reply = ["timeout"]
        if reply[0] != word:
            problem = {"timeout": f"did not answer within {timeout} s", "gone": "ended"}.get(reply[0], " ".join(reply))
            log = self.log_tail()
            self.close()
            raise TemplateError(f"the kernel template {problem} ({doing})" + (f": {log}" if log else ""))
        return reply

    def log_tail(self, chars: int = 1500) -> str:
        try:
            self._stderr.seek(0)
            return self._stderr.read().decode(errors="replace")[-chars:].strip()
        except (OSError, ValueError):
            return ""

    # --- one submission ---------------------------------------------------------------------------------------
    def alive(self) -> bool:
        return not self.closed and self.process.poll() is None

    def prepare(self, files: Mapping[str, bytes]) -> None:
        """An empty submission folder holding `files` (relative name -> bytes) for the next kernel."""
        try:
            for folder in (self.workdir, self.ipc_dir):
                empty_folder(folder)
        except OSError as error:  # what the last submission left cannot be removed: this sandbox is done
            self.close()
            raise TemplateError(f"the sandbox could not be cleaned for the next submission: {error}") from None
        write_files(self.workdir, files)
        self.oom_events_before = self.cgroup.oom_events()

    def spawn(self, connection_file: str, arguments: Iterable[str] = ()) -> TemplateChild | None:
        """Fork a kernel reading `connection_file`, with `arguments` after it on its command line."""
        self.child = None
        self.send("spawn " + json.dumps({"connection_file": str(connection_file), "arguments": list(arguments)}))
        self._expect("spawned", REPLY_TIMEOUT, "fork a kernel")
        return self.child

    def oom_killed(self) -> bool:
        return self.cgroup.oom_events() > self.oom_events_before

    def reset(self) -> bool:
        """End the kernel and everything it started, empty the sandbox; False if the template had to go."""
        if not self.alive():
            self.close()
            return False
        self.send("reset")
        try:
            self._expect("ready", REPLY_TIMEOUT, "reset")
        except TemplateError:
            return False
        if self.child is not None:
            self.child.exited.wait(5)
        return True

    def kill(self) -> None:
        """End the whole sandbox now (the next submission gets a new one)."""
        self.cgroup.kill()
        try:
            os.killpg(self.process.pid, 9)
        except (ProcessLookupError, PermissionError, AttributeError):
            pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        process = getattr(self, "process", None)
        if process is not None:
            self.kill()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            for pipe in (process.stdin, process.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass
        self.cgroup.wait_empty()
        self.cgroup.remove()
        if hasattr(self, "_stderr"):
            self._stderr.close()
        try:
            remove_tree(self.scratch)
        except OSError:
            pass  # swept by the next grader (sweep_leftovers)


class TemplateKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel is forked by a KernelTemplate instead of started as a new process."""

    def __init__(self, template: KernelTemplate, **kwargs: Any) -> None:
        name = f"kernel-{uuid.uuid4().hex[:16]}"
        super().__init__(
            transport="ipc",
            ip=str(template.ipc_dir / name),
            connection_file=str(template.ipc_dir / f"{name}.json"),
            **kwargs,
        )
        self.template = template
        self._template_spec = KernelSpec(
            argv=["(forked by the kernel template)"],
            display_name="Python 3 (sandbox)",
            language="python",
            interrupt_mode="message",
            env={},
        )

    @property
    def kernel_spec(self) -> KernelSpec:
        return self._template_spec

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        provisioner: Any = self.provisioner  # a LocalProvisioner, whose process is the template's child
        # kernel_cmd is the spec's placeholder followed by the client's extra arguments (nbgrader's Execute
        # passes --HistoryManager.hist_file=:memory:, for one): the forked kernel gets those
        provisioner.process = self.template.spawn(self.connection_file, kernel_cmd[1:])
        provisioner.pid, provisioner.pgid = provisioner.process.pid, None
        provisioner.cwd = str(self.template.workdir)
        self._reconcile_connection_info(provisioner.connection_info)

    def exit_code(self) -> int | None:
        child = self.template.child
        return None if child is None else child.returncode

    def oom_killed(self) -> bool:
        return self.template.oom_killed()

    def kill_sandbox(self, wait: bool = False) -> None:
        self.template.kill()


_local = threading.local()
_all_templates: list[KernelTemplate] = []


def worker_template(limits: Limits) -> KernelTemplate:
    """This thread's template for `limits` (a Limits), started now if there is none or the last one is gone."""
    _close_all_on_exit()
    key = json.dumps(asdict(limits), sort_keys=True)
    template = getattr(_local, "template", None)
    if template is not None and (template.closed or not template.alive() or _local.key != key):
        template.close()
        template = None
    if template is None:
        template = KernelTemplate(limits, limits.preload)
        _local.template, _local.key = template, key
        _all_templates.append(template)
    return template


def discard_worker_template() -> None:
    template = getattr(_local, "template", None)
    if template is not None:
        template.close()
        _local.template = None


@atexit.register
def _close_all():
    for template in _all_templates:
        template.close()


_exit_cleanup_of: int | None = None  # the process that registered _close_all with multiprocessing


def _close_all_on_exit() -> None:
    """Close this process's templates when it exits as a worker process too: a forked worker ends with os._exit,
    without atexit, but runs multiprocessing's finalizers first (a finalizer runs only in the process that made it)."""
    global _exit_cleanup_of
    if _exit_cleanup_of != os.getpid():
        _exit_cleanup_of = os.getpid()
        Finalize(None, _close_all, exitpriority=0)
