"""A class on JupyterHub for the hub tests: a fresh HUB_ROOT made by hub/setup_hub.py as `make hub` makes it, Unix
accounts of its own (an instructor and two students, named hubtest-*), the hub on free loopback ports (the hub at
http://localhost:<port>, each user at http://<user>.localhost:<port>, as `make hub` serves them), and, at the
end, everything it started or made removed: the hub, the proxy, every process of the test accounts, the students'
disks (their mounts and loop devices) and the servers' cgroups, the accounts and their homes, HUB_ROOT."""

import contextlib
import csv
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from hub import server_cgroups, student_disks
from support.lab_browser import free_port

ROOT = Path(__file__).resolve().parents[2]  # the course: tests/support/ is two levels down
SETUP = ROOT / "hub" / "setup_hub.py"
CONFIG = ROOT / "hub" / "jupyterhub_config.py"
PREFIX = "hubtest-"  # every account the tests make; leftovers of an interrupted run are removed by name
INSTRUCTOR = "hubtest-teacher"
ROOT_PREFIX = "backprop-hub-test-"  # HUB_ROOT of a test run, in the machine's temporary folder
# small limits, so that the tests reach them quickly: each student's disk, each student server's memory in all, and
# its /dev/shm
STUDENT_DISK = 96 << 20
SERVER_MEMORY = 1536 << 20
STUDENT_SHM = 32 << 20


@dataclass
class Student:
    id: str
    first_name: str
    last_name: str

    @property
    def listed_name(self):
        """How the formgrader lists the student."""
        return f"{self.last_name}, {self.first_name}"


@dataclass
class Hub:
    url: str  # the hub's own origin, http://localhost:<port>, as a browser opens it
    port: int
    root: Path
    klass: dict
    passwords: dict
    log: Path
    process: subprocess.Popen = field(repr=False)

    @property
    def loopback(self):
        """The hub's address for Python's HTTP clients, which do not resolve *.localhost as browsers do."""
        return f"http://127.0.0.1:{self.port}"

    def user_url(self, user):
        """The user's server, on its own origin: http://<user>.localhost:<port>/user/<user>."""
        return f"http://{user}.localhost:{self.port}/user/{user}"

    @property
    def setup_log(self):
        """What hub/setup_hub.py printed."""
        return self.log.with_name("setup_hub.log")

    @property
    def course_dir(self):
        return Path(self.klass["course_dir"])

    @property
    def exchange(self):
        return Path(self.klass["exchange"]) / self.klass["course_id"]

    @property
    def db_url(self):
        return f"sqlite:///{self.course_dir / 'gradebook.db'}"

    def password(self, user):
        """The user's own password, as hub/setup_hub.py made it."""
        return self.passwords[user]

    def log_tail(self, chars=6000):
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def _pids_of(uid):
    """Processes run by uid."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                for line in (entry / "status").read_text().splitlines():
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            pids.append(int(entry.name))
                        break
            except (OSError, ValueError):
                continue
    return pids


def remove_account(name):
    """Stop every process of a test account, then remove the account, its group and its home."""
    assert name.startswith(PREFIX)
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        return
    for _ in range(50):
        pids = _pids_of(user.pw_uid)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    subprocess.run(["userdel", "--remove", name], capture_output=True)
    shutil.rmtree(user.pw_dir, ignore_errors=True)


def _process_alive(pid_file):
    try:
        os.kill(int(Path(pid_file).read_text().strip()), 0)
        return True
    except (OSError, ValueError):
        return False


def remove_class(root, names):
    """Remove a test class: its servers' cgroups (and what runs in them), the accounts' processes, the mounts of the
    students' disks (homes, inbound folders, the disks themselves), the accounts and their homes, HUB_ROOT."""
    server_cgroups.remove_leftovers(PREFIX)
    homes = []
    for name in names:
        with contextlib.suppress(KeyError):
            homes.append(pwd.getpwnam(name).pw_dir)
    for _ in range(3):  # a bind mount over a mount point: each pass unmounts what the last uncovered
        if not student_disks.unmount_under(*homes, root):
            break
    for name in names:
        remove_account(name)
    shutil.rmtree(root, ignore_errors=True)


def remove_leftovers():
    """What an interrupted test run left: its accounts, disks and cgroups, and HUB_ROOTs whose hub is not running."""
    roots = [
        root
        for root in Path(tempfile.gettempdir()).glob(ROOT_PREFIX + "*")
        if root.is_dir() and not root.is_symlink() and not _process_alive(root / "state" / "jupyterhub.pid")
    ]
    names = [user.pw_name for user in pwd.getpwall() if user.pw_name.startswith(PREFIX)]
    for root in roots:
        remove_class(root, names)
    if not roots:
        remove_class(Path(tempfile.gettempdir()) / f"{ROOT_PREFIX}none", names)


def _wait_for_hub(url, process, log, timeout):
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterHub exited {process.returncode}:\n{log.read_text(errors='replace')[-6000:]}")
        try:
            with urllib.request.urlopen(f"{url}/hub/api", timeout=3) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"JupyterHub did not answer in {timeout} s:\n{log.read_text(errors='replace')[-6000:]}")
        time.sleep(0.3)


def stop_hub(process, root, timeout=60):
    """Stop the hub as Ctrl-C would (it stops every user's server and the proxy), then anything it left."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    proxy = root / "state" / "proxy.pid"
    if _process_alive(proxy):
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(proxy.read_text().strip()), signal.SIGTERM)


@contextlib.contextmanager
def running_class(students, log_dir, timeout=120):
    """Set up a class of `students` (Student) and INSTRUCTOR in a fresh HUB_ROOT as `make hub` does, and serve it.
    Yields a Hub; removes everything at the end."""
    if os.geteuid() != 0:
        raise RuntimeError("the hub tests run as root: they make Unix accounts")
    remove_leftovers()
    root = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX))
    os.chmod(root, 0o755)  # students reach the runtime and the exchange through it
    process = None
    try:
        roster = root / "roster.csv"
        with open(roster, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "first_name", "last_name", "email"])
            for s in students:
                writer.writerow([s.id, s.first_name, s.last_name, f"{s.id}@example.edu"])
        os.chmod(roster, 0o644)
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        setup = subprocess.run(
            # the test's checkout may be readable by others: setup_hub.py then says so, and serves the class
            [
                sys.executable,
                SETUP,
                "--hub-root",
                root,
                "--roster",
                roster,
                "--instructor",
                INSTRUCTOR,
                "--allow-readable-checkout",
                "--student-disk",
                str(STUDENT_DISK),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        (Path(log_dir) / "setup_hub.log").write_text(setup.stdout + setup.stderr)
        if setup.returncode != 0:
            raise RuntimeError(
                f"hub/setup_hub.py exited {setup.returncode}:\n{setup.stdout[-3000:]}{setup.stderr[-3000:]}"
            )
        state = root / "state"
        klass = json.loads((state / "class.json").read_text())
        passwords = json.loads((state / "logins.json").read_text())
        port = free_port()
        log = Path(log_dir) / "jupyterhub.log"
        env.update(
            HUB_ROOT=str(root),
            HUB_PORT=str(port),
            HUB_API_PORT=str(free_port()),
            HUB_PROXY_API_PORT=str(free_port()),
            HUB_STUDENT_SERVER_MEMORY=str(SERVER_MEMORY),
            HUB_STUDENT_SHM=str(STUDENT_SHM),
        )
        with open(log, "w") as out:
            process = subprocess.Popen(
                ["jupyterhub", "-f", CONFIG],
                cwd=state,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_for_hub(f"http://127.0.0.1:{port}", process, log, timeout)
        yield Hub(f"http://localhost:{port}", port, root, klass, passwords, log, process)
    finally:
        if process is not None:
            stop_hub(process, root)
        remove_class(root, [INSTRUCTOR] + [s.id for s in students])
