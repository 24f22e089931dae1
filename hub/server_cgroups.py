"""A cgroup per student server, so that the server and everything it starts (kernels, terminals) share one memory
limit, one process limit and one CPU limit: a notebook that allocates beyond it is ended by the kernel's OOM killer
inside that student's cgroup alone, a fork bomb stops at its pids limit, and busy loops get the student's CPU quota
and no more, while other students' servers keep working.

Found and made as the grader's sandbox makes its cgroups (grading/engine/sandbox.py): cgroup v1's `memory` and
`pids` hierarchies under /sys/fs/cgroup, or cgroup v2 when its root lists both controllers. The CPU limit uses v1's
`cpu` hierarchy (cpu.cfs_quota_us over cpu.cfs_period_us, and the same cpu.shares for every student; `cpuacct`, where
mounted apart, counts the time used) or v2's `cpu` controller (cpu.max, cpu.weight); where there is none, the servers
get their memory and process limits without it (cpu_problem says why). Under cgroup v2 a child with limits needs its
parent to have the controllers enabled for its children (cgroup.subtree_control), which a cgroup holding processes
cannot (only the hierarchy's root may): the hub's own cgroup is tried, then the root.

Each student's cgroup is `backprop-hub-<user>`, made by the hub (as root) before the server starts; the server's
process enters it before it becomes the student (ClassSpawner in hub/jupyterhub_config.py), so nothing it starts is
outside; removed, with whatever it still holds, when the server stops.
"""

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

PREFIX = "backprop-hub-"
CGROUP_ROOT = Path("/sys/fs/cgroup")
REQUIRED = {"memory.max", "memory.limit_in_bytes", "pids.max"}  # the optional ones: swap, CPU
CPU_PERIOD = 100_000  # microseconds of the CPU quota's period
CPU_SHARES, CPU_WEIGHT = 1024, 100  # every student the same (cgroup v1's and v2's defaults)


class CgroupError(RuntimeError):
    """No cgroup with limits can be made here; says why."""


def _own_v2():
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return CGROUP_ROOT / line[3:].lstrip("/")
    return CGROUP_ROOT


def _enable_v2(parent, wanted):
    """Enable the controllers wanted for parent's children; raises OSError if the kernel refuses."""
    enabled = set((parent / "cgroup.subtree_control").read_text().split())
    missing = set(wanted) - enabled
    if missing:
        (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in sorted(missing)))


def _v2_cpu(parent):
    """Whether parent's children get the cpu controller (enabled here if the kernel offers it)."""
    try:
        if "cpu" not in (parent / "cgroup.controllers").read_text().split():
            return False
        _enable_v2(parent, {"cpu"})
        return True
    except OSError:
        return False


def parents():
    """{controller: folder} where the servers' cgroups are made: cgroup v1's pids and memory hierarchies (and cpu,
    cpuacct where mounted), or {"": folder} under cgroup v2. Raises CgroupError saying why there is none."""
    v2 = CGROUP_ROOT / "cgroup.controllers"
    if v2.exists():
        try:
            available = set(v2.read_text().split())
        except OSError as error:
            raise CgroupError(f"cannot read {v2}: {error.strerror}") from error
        if not {"memory", "pids"} <= available:
            raise CgroupError(f"cgroup v2 offers no memory and pids controllers here ({v2}: {' '.join(available)})")
        tried = []
        for parent in dict.fromkeys([_own_v2(), CGROUP_ROOT]):
            try:
                _enable_v2(parent, {"memory", "pids"})
                _v2_cpu(parent)
                return {"": parent}
            except OSError as error:
                tried.append(f"{parent}: {error.strerror}")
        raise CgroupError(
            "cgroup v2: no cgroup lets the hub enable memory and pids for its children ("
            + "; ".join(tried)
            + "); a cgroup that holds processes cannot, other than the hierarchy's root"
        )
    found = {c: CGROUP_ROOT / c for c in ("pids", "memory")}
    absent = [str(p) for p in found.values() if not (p / "cgroup.procs").exists()]
    if absent:
        raise CgroupError(f"neither cgroup v2 nor cgroup v1's pids and memory hierarchies are mounted ({absent})")
    if (CGROUP_ROOT / "cpu" / "cpu.cfs_quota_us").exists():
        found["cpu"] = CGROUP_ROOT / "cpu"
        if not (found["cpu"] / "cpuacct.usage").exists() and (CGROUP_ROOT / "cpuacct" / "cpuacct.usage").exists():
            found["cpuacct"] = CGROUP_ROOT / "cpuacct"  # mounted apart: where the CPU time used is counted
    return found


def cpu_problem():
    """None if a server's cgroup gets a CPU limit here; otherwise why not, in words."""
    try:
        found = parents()
    except CgroupError as error:
        return str(error)
    if "" in found:
        parent = found[""]
        if "cpu" not in (parent / "cgroup.subtree_control").read_text().split():
            return f"cgroup v2's cpu controller is not offered or cannot be enabled under {parent}"
        return None
    if "cpu" not in found:
        return f"cgroup v1's cpu hierarchy (cpu.cfs_quota_us) is not mounted at {CGROUP_ROOT / 'cpu'}"
    return None


class ServerCgroup:
    """The cgroup (one folder under cgroup v2, one per controller under v1) of one user's server."""

    def __init__(self, dirs):
        self.dirs = list(dirs)

    @classmethod
    def of(cls, user):
        """The cgroup of user's server, whether or not it exists yet."""
        return cls(parent / f"{PREFIX}{user}" for parent in parents().values())

    @classmethod
    def make(cls, user, memory, processes, cpus=None):
        """The cgroup of user's server, made empty (processes left by an earlier server of the same user are
        ended), with at most `memory` bytes (swap included), `processes` processes and threads and, where the cpu
        controller is found, `cpus` CPUs' time (None: no CPU limit)."""
        group = cls.of(user)
        group.remove()
        quota = None if cpus is None else max(1000, int(cpus * CPU_PERIOD))
        try:
            for path in group.dirs:
                path.mkdir(exist_ok=True)
                if path.parent.name == "pids":  # cgroup v1
                    files = {"pids.max": processes}
                elif path.parent.name == "memory":  # cgroup v1; memsw (memory and swap) where swap is accounted
                    files = {"memory.limit_in_bytes": memory, "memory.memsw.limit_in_bytes": memory}
                elif path.parent.name == "cpu":  # cgroup v1
                    files = {"cpu.shares": CPU_SHARES, "cpu.cfs_period_us": CPU_PERIOD, "cpu.cfs_quota_us": quota or -1}
                elif path.parent.name == "cpuacct":  # cgroup v1, mounted apart: counts only
                    files = {}
                else:
                    files = {"memory.max": memory, "memory.swap.max": 0, "pids.max": processes}
                    files |= {"cpu.weight": CPU_WEIGHT, "cpu.max": f"{quota or 'max'} {CPU_PERIOD}"}
                for name, value in files.items():
                    if (path / name).exists() or name in REQUIRED:
                        (path / name).write_text(str(value))
        except OSError as error:
            group.remove()
            raise CgroupError(f"cannot make the cgroup {group.dirs}: {error.strerror}") from error
        return group

    def enter(self, pid=0):
        """Move process pid (0: this one) into the cgroup; as root."""
        for path in self.dirs:
            (path / "cgroup.procs").write_text(str(pid or os.getpid()))

    def pids(self):
        found = set()
        for path in self.dirs:
            with contextlib.suppress(OSError, ValueError):
                found |= {int(p) for p in (path / "cgroup.procs").read_text().split()}
        return found

    def kill(self):
        for path in self.dirs:
            with contextlib.suppress(OSError):
                (path / "cgroup.kill").write_text("1")
        for pid in self.pids():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def remove(self, timeout=10.0):
        """End every process in the cgroup and remove it."""
        deadline = time.monotonic() + timeout
        while self.pids() and time.monotonic() < deadline:
            self.kill()
            time.sleep(0.05)
        for path in self.dirs:
            with contextlib.suppress(FileNotFoundError):
                path.rmdir()

    def limits(self):
        """{"memory": bytes, "processes": n, "cpus": CPUs' time (where limited)} as the kernel holds them."""
        found = {}
        for path in self.dirs:
            for name, key in (("memory.max", "memory"), ("memory.limit_in_bytes", "memory"), ("pids.max", "processes")):
                with contextlib.suppress(OSError, ValueError):
                    found[key] = int((path / name).read_text())
            with contextlib.suppress(OSError, ValueError):
                quota, period = (
                    int((path / "cpu.cfs_quota_us").read_text()),
                    int((path / "cpu.cfs_period_us").read_text()),
                )
                if quota > 0:
                    found["cpus"] = quota / period
            with contextlib.suppress(OSError, ValueError):
                quota, period = (path / "cpu.max").read_text().split()
                if quota != "max":
                    found["cpus"] = int(quota) / int(period)
        return found

    def cpu_seconds(self):
        """CPU time used by the cgroup's processes so far, in seconds (None where it is not counted)."""
        for path in self.dirs:
            with contextlib.suppress(OSError, ValueError):
                return int((path / "cpuacct.usage").read_text()) / 1e9  # cgroup v1, nanoseconds
            with contextlib.suppress(OSError, ValueError):
                stat = dict(line.split() for line in (path / "cpu.stat").read_text().splitlines())
                if "usage_usec" in stat:
                    return int(stat["usage_usec"]) / 1e6
        return None

    def throttled(self):
        """How many periods the CPU quota held the cgroup back (cpu.stat's nr_throttled)."""
        for path in self.dirs:
            with contextlib.suppress(OSError, ValueError, KeyError):
                return int(dict(line.split() for line in (path / "cpu.stat").read_text().splitlines())["nr_throttled"])
        return 0

    def oom_kills(self):
        """How many processes the memory limit has ended in the cgroup."""
        total = 0
        for path in self.dirs:
            for name in ("memory.oom_control", "memory.events"):  # cgroup v1, v2
                with contextlib.suppress(OSError, ValueError):
                    lines = (path / name).read_text().splitlines()
                    counts = dict(line.split()[:2] for line in lines if len(line.split()) >= 2)
                    total += int(counts.get("oom_kill", 0))
        return total


def problem():
    """None if a server's cgroup, with its limits, can be made and entered here; otherwise why not, in words."""
    try:
        group = ServerCgroup.make(f"probe-{os.getpid()}", 64 << 20, 16)
    except CgroupError as error:
        return str(error)
    try:
        child = subprocess.Popen(["sleep", "30"])
        try:
            group.enter(child.pid)
            if child.pid not in group.pids():
                return f"a process moved into {group.dirs} is not listed there"
        finally:
            child.kill()
            child.wait()
    except OSError as error:
        return f"cannot move a process into {group.dirs}: {error.strerror}"
    finally:
        group.remove()
    return None


def remove_leftovers(prefix):
    """Remove the cgroups of users whose name starts with prefix (and what they hold)."""
    try:
        where = parents().values()
    except CgroupError:
        return
    for parent in where:
        for path in parent.glob(f"{PREFIX}{prefix}*"):
            ServerCgroup([path]).remove()
