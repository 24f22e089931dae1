"""The bubblewrap sandbox a submission's kernel runs in, its resource limits, and a kernel manager that starts it.

The kernel sees: a read-only Python runtime (/usr, the interpreter and the virtual environment), a private
tmpfs /tmp and HOME, the submission's working copy at /assignment, and one folder holding the kernel's IPC
sockets. No network, no other namespaces of the machine, a clean environment, no capabilities. Every
process of the kernel lives in the sandbox's PID namespace, so killing the sandbox ends all of them.

Nothing the kernel writes lands on the grading machine's disk: every folder it can write is a tmpfs of the sandbox's
own, of bounded size (/tmp, HOME, /dev/shm and /assignment: Limits.tmpfs_bytes each; the sockets' folder: 1 MiB,
where the kernel template runs). The assignment's files reach /assignment from a read-only folder of the grader
(/assignment-files), copied in before the kernel starts.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

import psutil
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager

from .limits import PRELOAD, Limits, Sandbox  # noqa: F401 (the sandbox's limits, imported from here by the configuration)

WORKDIR = "/assignment"
GIVEN_FILES = "/assignment-files"  # the grader's copy of the assignment's files, read-only; copied to WORKDIR
IPC_TMPFS_BYTES = 1 << 20  # the sockets' folder, when it is the sandbox's own: sockets and connection files only
CGROUP_PREFIX = "nbgrader-sandbox-"  # + the grading process's pid + a random part
SCRATCH_PREFIX = "nbgrader-sandbox-"  # + kind + a random part, in the machine's temporary folder
HOME = "/home/student"
StrPath = str | os.PathLike[str]  # a path, as text or as a Path


def runtime_paths() -> list[str]:
    """Read-only folders the kernel's Python needs: the interpreter's installation and the virtual environment."""
    paths = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix), sys.prefix}
    return sorted(p for p in paths if not any(p != q and p.startswith(q + os.sep) for q in paths))


def _system_binds():
    """Arguments exposing the system's runtime read-only: /usr, the /bin and /lib links, the loader cache, fonts."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for etc in (
        "/etc/ld.so.cache",
        "/etc/ld.so.conf",
        "/etc/ld.so.conf.d",
        "/etc/fonts",
        "/etc/alternatives",
        "/etc/localtime",
        "/etc/mime.types",
    ):
        args += ["--ro-bind-try", etc, etc]
    return args


def rlimits(limits: Limits) -> dict[str, int]:
    """Per-process limits of every process in the sandbox, as {resource name: value}."""
    rl = {
        "RLIMIT_AS": limits.memory_bytes,
        "RLIMIT_FSIZE": limits.max_file_bytes,
        "RLIMIT_CPU": limits.notebook_timeout + 5,
        "RLIMIT_CORE": 0,
        "RLIMIT_MSGQUEUE": 0,
    }
    if limits.sandbox:  # counted per user in the sandbox's own user namespace; ignored when the grader is root
        rl["RLIMIT_NPROC"] = limits.max_processes
    return rl


def _rlimit_preamble(limits):
    """Python source run first in the sandbox: copy the assignment's files in, set per-process limits, then become
    the kernel."""
    steps = ["import os, sys, shutil, resource as r"]
    if limits.sandbox:  # unconfined, the kernel runs in the grader's folder of the files itself
        steps.append(f"shutil.copytree({GIVEN_FILES!r}, {WORKDIR!r}, symlinks=True, dirs_exist_ok=True)")
    steps += [f"r.setrlimit(r.{name}, ({value}, {value}))" for name, value in rlimits(limits).items()]
    steps.append("os.execv(sys.executable, [sys.executable] + sys.argv[1:])")
    return "; ".join(steps)


# what jemalloc (Limits.allocator) is told: give address space back when memory is freed (its default keeps it for
# reuse, and RLIMIT_AS counts it: a kernel that freed 1 GiB could then not allocate 1.3 GiB under 3 GiB)
ALLOCATOR_SETTINGS = {"MALLOC_CONF": "retain:false"}


@functools.cache
def allocator_library(name: str) -> str | None:
    """The path of the shared library `name` (Limits.allocator: a file name, looked up in the system's library folders
    under /usr, or an absolute path under /usr, which the sandbox shows read-only) if this machine's Python starts
    with it preloaded and nothing said (a file that is no library, or one that cannot run here, is not preloaded:
    the loader would complain in every process); None otherwise, and for ''."""
    if not name or any(c in name for c in ": \t\n"):  # LD_PRELOAD separates its libraries with ':' and blanks
        return None
    if os.path.isabs(name):
        candidates = [Path(name)]
    elif os.sep in name:
        return None
    else:
        multiarch = sysconfig.get_config_var("MULTIARCH")  # x86_64-linux-gnu on Debian's amd64, say
        folders = ([Path("/usr/lib") / multiarch] if multiarch else []) + [Path("/usr/lib64"), Path("/usr/lib")]
        candidates = [folder / name for folder in folders]
    found = next((path for path in candidates if path.is_file()), None)
    if found is None or not Path(os.path.realpath(found)).is_relative_to("/usr"):
        return None
    try:
        started = subprocess.run(
            [python_executable(), "-c", "pass"],
            env={"PATH": "/usr/bin:/bin", "LD_PRELOAD": str(found), **ALLOCATOR_SETTINGS},
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return str(found) if started.returncode == 0 and not started.stderr else None


def kernel_environment(limits: Limits) -> dict[str, str]:
    """The whole environment the kernel gets: limits.allocator is preloaded where this machine has it."""
    allocator = allocator_library(limits.allocator)
    return ({"LD_PRELOAD": allocator, **ALLOCATOR_SETTINGS} if allocator else {}) | {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": HOME,
        "USER": "student",
        "LANG": "C.UTF-8",
        "TMPDIR": "/tmp",
        "IPYTHONDIR": f"{HOME}/.ipython",
        "MPLCONFIGDIR": f"{HOME}/.config/matplotlib",
        "MPLBACKEND": "agg",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "2",
        "PYTHONDONTWRITEBYTECODE": "1",
        "NBGRADER_EXECUTION": "autograde",
    }


def kernel_command(
    limits: Limits,
    workdir: StrPath,
    ipc_dir: StrPath,
    connection_file: str = "{connection_file}",
    connection_dir: StrPath | None = None,
) -> list[str]:
    """argv that starts an IPython kernel in the sandbox (or, with limits.sandbox False, unconfined); its sockets go to
    ipc_dir, a tmpfs of the sandbox's own, and connection_dir (where the connection file is) is bound read-only."""
    inner = [python_executable(), "-c", _rlimit_preamble(limits), "-m", "ipykernel_launcher", "-f", connection_file]
    if not limits.sandbox:
        return inner
    readonly = [connection_dir] if connection_dir is not None else []
    return sandbox_command(limits, workdir, ipc_dir, inner, own_ipc=True, readonly=readonly)


def python_executable() -> str:
    return os.path.join(sys.prefix, "bin", "python")


def sandbox_command(
    limits: Limits,
    workdir: StrPath,
    ipc_dir: StrPath,
    inner: list[str],
    as_pid_1: bool = False,
    own_ipc: bool = False,
    readonly: Iterable[StrPath] = (),
) -> list[str]:
    """argv that runs `inner` in a new sandbox with workdir read-only at /assignment-files (an empty tmpfs at
    /assignment, for `inner` to copy it into) and ipc_dir at its own path; as_pid_1: `inner` is the PID namespace's
    first process itself, with no bubblewrap process beside it; own_ipc: ipc_dir is a small tmpfs of the sandbox's
    own, which the grader reaches through /proc/<pid>/root (reach_own_ipc), not the grader's folder; readonly: more
    folders of the grader's, bound read-only at their own paths."""
    args = [
        limits.bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--uid",
        "1000",
        "--gid",
        "1000",
        "--hostname",
        "sandbox",
        "--cap-drop",
        "ALL",
    ] + (["--as-pid-1"] if as_pid_1 else [])
    args += _system_binds()
    # the private /tmp first: a runtime (a course checked out) under the machine's /tmp is bound on top of it
    args += ["--size", str(limits.tmpfs_bytes), "--tmpfs", "/tmp", "--size", str(limits.tmpfs_bytes), "--tmpfs", HOME]
    for path in runtime_paths():
        args += ["--ro-bind", path, path]
    args += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(limits.tmpfs_bytes),
        "--tmpfs",
        "/dev/shm",
        "--ro-bind",
        str(workdir),
        GIVEN_FILES,
        "--size",
        str(limits.tmpfs_bytes),
        "--tmpfs",
        WORKDIR,
    ]
    if own_ipc:
        args += ["--size", str(IPC_TMPFS_BYTES), "--tmpfs", str(ipc_dir)]
    else:
        args += ["--bind", str(ipc_dir), str(ipc_dir)]
    for folder in readonly:
        args += ["--ro-bind", str(folder), str(folder)]
    args += [
        # nothing else is writable: not the sandbox's root, /etc or /dev (files there would outlive a kernel)
        "--remount-ro",
        "/dev",
        "--remount-ro",
        "/",
        "--chdir",
        WORKDIR,
    ]
    for name, value in kernel_environment(limits).items():
        args += ["--setenv", name, value]
    return args + ["--"] + inner


def reach_own_ipc(launcher_pid: int, ipc_dir: StrPath, timeout: float = 60.0) -> None:
    """Make the grader's ipc_dir lead to the sandbox's own sockets' folder (a tmpfs mounted at the same path inside):
    a link to it through /proc/<pid>/root of a process of the sandbox started by launcher_pid (bubblewrap). Nothing a
    kernel writes there reaches this machine's disk. OSError when the sandbox's folder does not appear in time."""
    ipc_dir = Path(ipc_dir)
    host_device = os.stat(ipc_dir.parent).st_dev
    deadline = time.monotonic() + timeout
    while True:
        try:
            sandboxed = [p.pid for p in psutil.Process(launcher_pid).children(recursive=True)]
        except psutil.Error:
            sandboxed = []
        for pid in sandboxed:
            inside = Path(f"/proc/{pid}/root{ipc_dir}")
            try:
                if inside.is_dir() and os.stat(inside).st_dev != host_device:  # the tmpfs, once the sandbox is set up
                    ipc_dir.rmdir()
                    ipc_dir.symlink_to(inside)
                    os.listdir(ipc_dir)
                    return
            except OSError:
                continue
        if time.monotonic() > deadline:
            raise OSError(f"the sandbox's sockets' folder did not appear within {timeout:g} s")
        time.sleep(0.01)


def write_files(workdir: StrPath, files: Mapping[str, bytes]) -> None:
    """Write `files` (relative name -> bytes) as new files under workdir; names that would leave it are refused,
    and nothing that is already there (a link, say) is followed or overwritten."""
    for name, data in files.items():
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise ValueError(f"refusing file name {name!r}")
        folder = Path(workdir)
        for part in rel.parts[:-1]:
            folder = folder / part
            if not folder.is_dir() or folder.is_symlink():
                folder.mkdir()
        fd = os.open(folder / rel.parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as out:
            out.write(data)


def remove_tree(path: StrPath) -> None:
    """Remove path and all under it, however deep, long-named or locked (chmod 000) its folders are; never
    follows a link, never crosses into another file system."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.exists():
        subprocess.run(["chmod", "-R", "u+rwx", "--", str(path)], capture_output=True)
        subprocess.run(["rm", "-rf", "--one-file-system", "--", str(path)], capture_output=True)


def empty_folder(folder: StrPath) -> None:
    """Remove everything in folder, keeping folder itself (a sandbox's bind mount refers to it); OSError if
    anything is left."""
    folder = Path(folder)
    os.chmod(folder, 0o700)
    for entry in list(folder.iterdir()):
        remove_tree(entry)
    if any(folder.iterdir()):
        raise OSError(f"{folder} could not be emptied")


def scratch_folder(kind: str) -> Path:
    """A new private folder on the grading machine for one sandbox: work/ (its /assignment) and ipc/ (its sockets).
    owner.pid names the process it belongs to, so sweep_leftovers can tell when it is abandoned."""
    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{kind}-"))
    (scratch / "owner.pid").write_text(str(os.getpid()))
    (scratch / "work").mkdir()
    (scratch / "ipc").mkdir(mode=0o700)
    return scratch


def _process_gone(pid):
    """True if no process `pid` runs (one that exited and was not yet reaped counts as gone)."""
    try:
        return psutil.Process(int(pid)).status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except (psutil.NoSuchProcess, ValueError):
        return True
    except psutil.Error:  # there, but not ours to look at
        return False


def abandoned(scratch: Path, min_age: float = 60) -> bool:
    """True if the process that made this scratch folder is gone (one without owner.pid: if older than min_age s)."""
    try:
        owner = (scratch / "owner.pid").read_text().strip()
    except OSError:  # being made right now, or left by a grader killed at that very moment
        try:
            return time.time() - scratch.stat().st_mtime > min_age
        except OSError:
            return False
    return _process_gone(owner)


def sweep_leftovers(min_age: float = 60) -> int:
    """Remove the scratch folders and cgroups left by grading processes that no longer exist (a grader killed
    with SIGKILL cannot clean up after itself). Returns how many were removed."""
    removed = 0
    for path in Path(tempfile.gettempdir()).glob(SCRATCH_PREFIX + "*"):
        try:
            if path.is_dir() and not path.is_symlink() and abandoned(path, min_age):
                remove_tree(path)
                removed += not path.exists()
        except OSError:
            continue
    for parent in _cgroup_parents().values():
        for path in parent.glob(CGROUP_PREFIX + "*"):
            if _process_gone(path.name[len(CGROUP_PREFIX) :].split("-")[0]):
                group = Cgroup.existing([path])
                group.wait_empty(timeout=2)
                group.remove()
                removed += not path.exists()
    return removed


SOCKET_PATH_MAX = 107  # bytes of a Unix socket's path (sockaddr_un.sun_path, less its final NUL)


def socket_path_problem() -> str | None:
    """None if the kernels' sockets fit under this machine's temporary folder; otherwise why not, in words. The longest
    path: <tmp>/<SCRATCH_PREFIX>template-<8 random>/ipc/kernel-<16 hex>-<port>."""
    longest = os.path.join(
        tempfile.gettempdir(), f"{SCRATCH_PREFIX}template-{'x' * 8}", "ipc", f"kernel-{'x' * 16}-65535"
    )
    if len(os.fsencode(longest)) <= SOCKET_PATH_MAX:
        return None
    room = SOCKET_PATH_MAX - (len(os.fsencode(longest)) - len(os.fsencode(tempfile.gettempdir())))
    return (
        f"the temporary folder {tempfile.gettempdir()} is too long for the sandbox's sockets (a socket path has at "
        f"most {SOCKET_PATH_MAX} bytes): set TMPDIR to a folder of at most {room} characters, such as /tmp"
    )


def bwrap_problem(limits: Limits) -> str | None:
    """None when a sandboxed Python starts here; otherwise what went wrong, in words."""
    if socket_path_problem():
        return socket_path_problem()
    if shutil.which(limits.bwrap) is None:
        return f"bubblewrap ({limits.bwrap}) is not installed"
    probe = Path(tempfile.mkdtemp(prefix="sandbox-probe-"))
    try:
        cmd = kernel_command(replace(limits, allocator=""), probe, probe)  # the sandbox alone: a malloc is optional
        cmd = cmd[: cmd.index("--") + 1] + [cmd[cmd.index("--") + 1], "-c", "print('ok')"]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap could not start: {error}"
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    if result.returncode != 0 or result.stdout.strip() != "ok":
        return f"bubblewrap could not start a sandbox (exit {result.returncode}): {result.stderr.strip()[:500]}"
    return None


class Cgroup:
    """A pids (and memory) cgroup for one sandbox, where the machine lets us make one (cgroup v1 or v2)."""

    def __init__(self, limits: Limits) -> None:
        self.dirs: list[Path] = []
        if not (limits.sandbox and limits.use_cgroups):
            return
        name = f"{CGROUP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
        settings = {
            "pids": {"pids.max": limits.max_processes},
            "memory": {"memory.limit_in_bytes": limits.memory_bytes},
        }
        try:
            parents = _cgroup_parents()
            if "" in parents:
                settings = {
                    "": {"pids.max": limits.max_processes, "memory.max": limits.memory_bytes, "memory.swap.max": 0}
                }
            for controller, files in settings.items():
                parent = parents[controller]
                if not (parent / "cgroup.procs").exists():
                    continue
                path = parent / name
                path.mkdir()
                self.dirs.append(path)
                for file, value in files.items():
                    if (path / file).exists():
                        (path / file).write_text(str(value))
        except OSError:
            self.remove()
            self.dirs = []

    @classmethod
    def existing(cls, dirs: Iterable[Path]) -> Cgroup:
        """The cgroup made earlier at dirs (to kill what is in it and remove it)."""
        group = cls.__new__(cls)
        group.dirs = list(dirs)
        return group

    def wrap(self, argv: list[str]) -> list[str]:
        """argv that first moves itself into the cgroup, then runs argv."""
        if not self.dirs:
            return argv
        script = 'for f in "$@"; do case "$f" in --) shift; break;; esac; echo $$ > "$f"; shift; done; exec "$@"'
        return ["/bin/sh", "-c", script, "sh"] + [str(d / "cgroup.procs") for d in self.dirs] + ["--"] + argv

    def kill(self) -> None:
        for path in self.dirs:
            kill_file = path / "cgroup.kill"
            if kill_file.exists():
                try:
                    kill_file.write_text("1")
                    continue
                except OSError:
                    pass
            try:
                for pid in (path / "cgroup.procs").read_text().split():
                    os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass

    def wait_empty(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        for path in self.dirs:
            while time.monotonic() < deadline:
                try:
                    if not (path / "cgroup.procs").read_text().strip():
                        break
                except OSError:
                    break
                self.kill()
                time.sleep(0.05)

    def remove(self) -> None:
        for path in self.dirs:
            try:
                path.rmdir()
            except OSError:
                pass

    def oom_events(self) -> int:
        """How many times the memory limit of the cgroup has ended a process so far."""
        total = 0
        for path in self.dirs:
            for file in ("memory.oom_control", "memory.events"):  # cgroup v1, v2
                try:
                    counts = dict(
                        line.split()[:2] for line in (path / file).read_text().splitlines() if len(line.split()) >= 2
                    )
                    total += int(counts.get("oom_kill", 0))
                except (OSError, ValueError):
                    continue
        return total

    def oom_killed(self) -> bool:
        """True if the memory limit of the cgroup ended a process."""
        return self.oom_events() > 0


def _cgroup_parents():
    """Where sandbox cgroups are made: {controller: folder} (cgroup v1), or {"": this process's cgroup} (v2)."""
    v2 = Path("/sys/fs/cgroup/cgroup.controllers")
    try:
        if v2.exists() and {"pids", "memory"} <= set(v2.read_text().split()):
            return {"": _own_cgroup_v2()}
    except OSError:
        return {}
    return {c: Path("/sys/fs/cgroup") / c for c in ("pids", "memory")}


def _own_cgroup_v2():
    """This process's cgroup v2 folder, from /proc/self/cgroup (psutil does not tell a process's cgroup)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return Path("/sys/fs/cgroup") / line[3:].lstrip("/")
    return Path("/sys/fs/cgroup")


class SandboxKernelManager(AsyncKernelManager):
    """A kernel manager that starts its kernel in the sandbox, talking over IPC sockets in one folder."""

    def __init__(self, limits: Limits, workdir: StrPath, ipc_dir: StrPath, **kwargs: Any) -> None:
        # the connection file is written before the sandbox exists: in a folder of its own, bound read-only
        connections = Path(ipc_dir).parent / "connection"
        connections.mkdir(mode=0o700, exist_ok=True)
        super().__init__(
            transport="ipc",
            ip=os.path.join(str(ipc_dir), "kernel"),
            connection_file=str(connections / "kernel.json"),
            **kwargs,
        )
        self.limits = limits
        self.ipc_dir = Path(ipc_dir)
        self.cgroup = Cgroup(limits)
        argv = self.cgroup.wrap(kernel_command(limits, workdir, ipc_dir, connection_dir=connections))
        # Interrupts go as messages: signals to the launcher do not reach a kernel in its own session.
        self._sandbox_spec = KernelSpec(
            argv=argv, display_name="Python 3 (sandbox)", language="python", interrupt_mode="message", env={}
        )

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        # what the kernel writes to its own stdout/stderr (not to the notebook) goes nowhere
        kw.update(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await super()._async_launch_kernel(kernel_cmd, **kw)
        if self.limits.sandbox:
            assert self.launcher_pid is not None  # the provisioner has just started it
            reach_own_ipc(self.launcher_pid, self.ipc_dir)

    @property
    def kernel_spec(self) -> KernelSpec:
        return self._sandbox_spec

    @property
    def launcher_pid(self) -> int | None:
        process = getattr(self.provisioner, "process", None)
        return process.pid if process is not None else None

    def oom_killed(self) -> bool:
        return self.cgroup.oom_killed()

    def exit_code(self) -> int | None:
        """The sandbox's exit code (bubblewrap passes on the kernel's; 128+N for signal N), or None."""
        process = getattr(self.provisioner, "process", None)
        return None if process is None else process.poll()

    def kill_sandbox(self, wait: bool = False) -> None:
        """End the sandbox and every process in it, now; with wait, reap it and let its cgroup empty."""
        self.cgroup.kill()
        pid = self.launcher_pid
        if pid:
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        if wait:
            process = getattr(self.provisioner, "process", None)
            try:
                if process is not None:
                    process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self.cgroup.wait_empty()
