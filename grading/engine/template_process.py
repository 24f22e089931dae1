"""The kernel template: the process that runs inside a grading worker's sandbox and forks its kernels.

It imports, once, what every submission imports (torch, numpy, matplotlib, ...), and then, for each
submission, forks a child that becomes a fresh IPython kernel for that submission alone. The child starts with
those modules already in memory, so no submission pays for importing them. It only ever runs as PID 1 of the
sandbox's own PID namespace (grading/engine/kernel_template.py starts it there with bubblewrap's --as-pid-1).

Why nothing of one submission reaches the next:
- Between two submissions the template kills every other process of the sandbox (kill(-1) in its PID
  namespace), empties its writable folders, removes System V IPC objects and clears the keyrings. It then
  checks that the file systems are back to the footprint and the process settings (resource limits, nice,
  CPUs, scheduler) it recorded at start; if not, it exits and the grader starts a new sandbox.
- A submission cannot change the template itself: the template is not dumpable (no ptrace, no reading its
  memory or descriptors in /proc), and as PID 1 of the namespace it receives no signal it does not handle
  (SIGKILL and SIGSTOP from inside included; SIGINT is ignored).
- The child closes every descriptor of the template, sets every resource limit, and joins a new session
  keyring before any submission code runs.

The grader talks to it over stdin and stdout, one line per message:
    spawn {"connection_file": ..., "arguments": [...]}
                              -> spawned <pid>      fork a kernel (one at a time)
    signal <n>                                      send signal n to the kernel's process group
    reset                     -> ready              end every other process, empty the writable folders
    (when the kernel exits)   -> exited <code>      code as subprocess.Popen.returncode (-N: signal N)
and "ready" once when the imports are done, "error <text>" when a request cannot be served.
This file is run as `python -c <this source> <settings as JSON>`, so it imports only the standard library
before the preloads.
"""

import ctypes
import errno
import gc
import importlib
import json
import os
import resource
import select
import shutil
import signal
import stat
import sys

PR_SET_DUMPABLE = 4


def _prctl(option, value):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}, {value}) failed")


def _empty(top, max_depth=200):
    """Remove what it can under top on top's own file system, through folder descriptors (so no path is ever too
    long), never following a link and leaving mount points alone. What it cannot remove, _footprint still sees."""
    try:
        top_fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return
    device = os.fstat(top_fd).st_dev

    def clear(folder_fd, depth):
        try:
            os.fchmod(folder_fd, 0o700)
            entries = list(os.scandir(folder_fd))
        except OSError:
            return
        for entry in entries:
            try:
                info = os.stat(entry.name, dir_fd=folder_fd, follow_symlinks=False)
                if info.st_dev != device:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    if depth < max_depth:
                        child = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder_fd)
                        try:
                            clear(child, depth + 1)
                        finally:
                            os.close(child)
                    os.rmdir(entry.name, dir_fd=folder_fd)
                else:
                    os.unlink(entry.name, dir_fd=folder_fd)
            except OSError:
                pass

    try:
        clear(top_fd, 0)
    finally:
        os.close(top_fd)


def _footprint(folders):
    """(inodes, blocks) in use on each folder's file system: what a clean sandbox must get back to."""
    usage: list[tuple[int, int] | None] = []
    for folder in folders:
        try:
            fs = os.statvfs(folder)
            usage.append((fs.f_files - fs.f_ffree, fs.f_blocks - fs.f_bfree))
        except OSError:
            usage.append(None)
    return usage


def _process_settings():
    """What a process of the sandbox inherits from the template and another process of the same user can change
    (prlimit, setpriority, sched_setaffinity, sched_setscheduler): every resource limit, nice, CPUs, scheduler."""
    limits = {name: resource.getrlimit(getattr(resource, name)) for name in dir(resource) if name.startswith("RLIMIT_")}
    return {
        "limits": limits,
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "cpus": sorted(os.sched_getaffinity(0)),
        "scheduler": (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority),
    }


def _keyctl(*args):
    """The keyctl system call (no library wraps it); -1 where this machine's number for it is unknown."""
    number = {"x86_64": 250, "aarch64": 219}.get(os.uname().machine)
    if number is None:
        return -1
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall(number, *[ctypes.c_long(a) for a in args])


KEYCTL_JOIN_SESSION_KEYRING, KEYCTL_CLEAR = 1, 7
KEY_SPEC_SESSION_KEYRING, KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING = -3, -4, -5


def _clear_keyrings():
    for keyring in (KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING, KEY_SPEC_SESSION_KEYRING):
        _keyctl(KEYCTL_CLEAR, keyring)


def _remove_ipc_objects():
    """Remove the System V shared memory segments, message queues and semaphore sets of the sandbox's IPC
    namespace (POSIX message queues cannot be made at all: RLIMIT_MSGQUEUE is 0)."""
    libc = ctypes.CDLL(None, use_errno=True)
    ipc_rmid = 0
    removers = {
        "shm": lambda ident: libc.shmctl(ident, ipc_rmid, None),
        "msg": lambda ident: libc.msgctl(ident, ipc_rmid, None),
        "sem": lambda ident: libc.semctl(ident, 0, ipc_rmid),
    }
    for kind, remove in removers.items():
        try:
            with open(f"/proc/sysvipc/{kind}") as table:
                rows = table.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:  # key, id, ...
            try:
                remove(int(row.split()[1]))
            except (IndexError, ValueError):
                pass


class Template:
    def __init__(self, settings, commands_fd, replies_fd):
        self.settings = settings
        self.commands_fd = commands_fd
        self.replies_fd = replies_fd
        self.kernel_pid = None
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)

    def send(self, *words):
        os.write(self.replies_fd, (" ".join(str(w) for w in words) + "\n").encode())

    # --- the loop ---------------------------------------------------------------------------------------------
    def serve(self):
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        # as the sandbox's PID 1 this process gets only the signals it handles: SIGINT is the one left, ignore it
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.clean()
        self.process_settings = _process_settings()
        self.footprint = _footprint(self.settings["wipe"])
        buffer = b""
        self.send("ready")
        while True:
            try:
                readable, _, _ = select.select([self.commands_fd, self.wake_r], [], [], 1.0)
            except InterruptedError:
                readable = []
            if self.wake_r in readable:
                os.read(self.wake_r, 4096)
            self.reap()
            if self.commands_fd in readable:
                data = os.read(self.commands_fd, 65536)
                if not data:  # the grader is gone
                    self.end_others()
                    os._exit(0)
                buffer += data
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    self.handle(line.decode(errors="replace").split(" ", 1))

    def handle(self, words):
        command, argument = words[0], (words[1] if len(words) > 1 else "")
        if command == "spawn":
            if self.kernel_pid is not None:
                self.send("error", "a kernel is already running")
                return
            try:
                request = json.loads(argument)
                request = {
                    "connection_file": str(request["connection_file"]),
                    "arguments": [str(a) for a in request["arguments"]],
                }
            except (ValueError, KeyError, TypeError):
                self.send("error", "a spawn request needs a connection file and arguments")
                return
            pid = os.fork()
            if pid == 0:
                self.become_kernel(request)  # never returns
            self.kernel_pid = pid
            self.send("spawned", pid)
        elif command == "signal":
            if self.kernel_pid is not None:
                for kill in (os.killpg, os.kill):
                    try:
                        kill(self.kernel_pid, int(argument))
                        break
                    except (ProcessLookupError, PermissionError, ValueError):
                        pass
        elif command == "reset":
            self.end_others()
            self.clean()
            if _process_settings() != self.process_settings or _footprint(self.settings["wipe"]) != self.footprint:
                # something of the last submission is still here (settings it changed, files it hid): this
                # sandbox ends, and the grader starts a new one for the next submission
                os._exit(3)
            self.send("ready")
        else:
            self.send("error", f"unknown request {command!r}")

    def clean(self):
        for folder in self.settings["wipe"]:
            _empty(folder)
        _remove_ipc_objects()
        _clear_keyrings()

    def reap(self, block=False):
        """Collect exited children (the kernel, or orphans re-parented here); False once there are none."""
        while True:
            try:
                pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                return False
            except InterruptedError:
                continue
            if pid == 0:
                return True
            if pid == self.kernel_pid:
                self.kernel_pid = None
                self.send("exited", os.waitstatus_to_exitcode(status))
            if block:
                return True

    def end_others(self):
        """SIGKILL every process of the sandbox except this one (and the sandbox's init), and reap them all."""
        while True:
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if not self.reap(block=True):
                return

    # --- in the child ---------------------------------------------------------------------------------------
    def become_kernel(self, request):
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            os.setsid()
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.closerange(3, 2**31 - 1)
            # the assignment's files, into the submission's own folder (a tmpfs emptied between submissions)
            shutil.copytree(self.settings["given"], self.settings["workdir"], symlinks=True, dirs_exist_ok=True)
            for name, value in {
                **self.process_settings["limits"],
                **{n: (v, v) for n, v in self.settings["rlimits"].items()},
            }.items():
                resource.setrlimit(getattr(resource, name), value)
            _keyctl(KEYCTL_JOIN_SESSION_KEYRING, 0)  # a new, empty session keyring of its own
            _prctl(PR_SET_DUMPABLE, 1)  # the kernel itself may be inspected like any process
            try:
                with open("/proc/self/oom_score_adj", "w") as adj:
                    adj.write("1000")  # the memory limit ends the kernel, never the template
            except OSError:
                pass
            numpy = sys.modules.get("numpy")
            if numpy is not None:
                numpy.random.seed()  # as a fresh import would: not the template's state
            os.chdir(self.settings["workdir"])
            sys.argv = [self.settings["launcher"], "-f", request["connection_file"], *request["arguments"]]
            from ipykernel import kernelapp

            kernelapp.launch_new_instance()
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except BaseException:  # noqa: BLE001 - nothing of the template may run on in the child
            pass
        finally:
            os._exit(code)


# what every kernel imports as it starts (its shell, its debugger with debugpy), and the inline backend `%matplotlib
# inline` loads: imported here once, not in each kernel
KERNEL_START = ("ipykernel.ipkernel", "ipykernel.zmqshell", "ipykernel.debugger", "matplotlib_inline.backend_inline")


def _warm_up():
    """Import KERNEL_START; returns what failed, in words (a kernel then imports it itself, as without the template).
    What they print on stderr (debugpy warns about frozen modules) is dropped, as a kernel's is: the template's log
    keeps only what says why it failed. Nothing is drawn here: a kernel forked after a first figure drew its own
    first figure slower (0.22 against 0.17 core-seconds), matplotlib's caches being copied on write."""
    failed = []
    sys.stderr.flush()
    log = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        for module in KERNEL_START:
            try:
                importlib.import_module(module)
            except Exception as error:  # noqa: BLE001 - the kernel imports it again, and meets the same error
                failed.append(f"{module}: {error}")
    finally:
        sys.stderr.flush()
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
    return failed


def main():
    settings = json.loads(sys.argv[1])
    if os.getpid() != 1:  # kill(-1) below must only ever reach the sandbox's own processes
        sys.exit("the kernel template runs only as PID 1 of a private PID namespace")
    # the channel to the grader gets its own descriptors; 0 and 1 then lead nowhere
    commands_fd, replies_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    _prctl(PR_SET_DUMPABLE, 0)
    sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
    os.chdir("/")
    failed = []
    for module in settings["preload"]:
        try:
            importlib.import_module(module)
        except Exception as error:  # noqa: BLE001 - the submission's own import will fail the same way
            failed.append(f"{module}: {error}")
    import ipykernel.kernelapp  # noqa: F401 - what every kernel imports

    failed += _warm_up()
    for line in failed:
        print("preload failed:", line, file=sys.stderr)
    gc.collect()
    gc.freeze()  # the children share these objects' pages instead of copying them
    Template(settings, commands_fd, replies_fd).serve()


if __name__ == "__main__":
    try:
        main()
    except OSError as error:
        if error.errno != errno.EPIPE:
            raise
