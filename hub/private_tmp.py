"""A /tmp, /var/tmp and /dev/shm of its own for each student's server, instead of the machine's, which every account
shares: there a student could fill the root disk beyond her own disk's limit, leave files other students see, and
keep files in /dev/shm after her server stops.

The server's process, as root and before it becomes the student (ClassSpawner in hub/jupyterhub_config.py), enters a
mount namespace of its own (unshare(CLONE_NEWNS)) in which every mount is made a slave of the machine's (what the
machine mounts later still shows; nothing mounted here shows outside), then mounts (and binds the hub's own folder,
HUB_ROOT, back in place where it lies in the machine's /tmp, as in the tests):

    /tmp, /var/tmp   bind mounts of two folders on the student's own disk (hub/student_disks.py: tmp/, var-tmp/
                     beside her home), so that her disk's size bounds them; emptied when her server starts and stops.
                     Where she has no disk of her own: a tmpfs each, of HUB_STUDENT_TMP bytes.
    /dev/shm         a tmpfs of HUB_STUDENT_SHM bytes, whose pages count against her server's memory cgroup.

With a disk of her own, every other mount (but the kernel's /proc, /sys and /dev) is then made read-only in the
namespace, whatever its folders' modes: nothing of the machine is writable to her (read_only_but). The server also
gets an IPC namespace of its own (unshare(CLONE_NEWIPC)): System V and POSIX shared memory, semaphores and message
queues she makes are her server's alone.

Everything her server starts (kernels, terminals, Validate, Submit) inherits the namespaces; they end, and her
/dev/shm and shared memory with them, when the last of those processes ends (the hub ends them all when her server
stops: hub/server_cgroups.py).
"""

import ctypes
import ctypes.util
import os
import re
import shutil
from pathlib import Path

CLONE_NEWNS, CLONE_NEWIPC = 0x00020000, 0x08000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_SLAVE = (
    1,
    2,
    4,
    8,
    32,
    0x1000,
    0x4000,
    0x80000,
)
# a mount's own options, kept when it is made read-only (mountinfo's per-mount options)
MOUNT_FLAGS = {
    "ro": MS_RDONLY,
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": 1024,
    "nodiratime": 2048,
    "relatime": 1 << 21,
    "strictatime": 1 << 24,
}
MACHINE_OWN = ("/proc", "/sys", "/dev")  # the kernel's own file systems, left as they are (/dev/shm made anew)
FOLDERS = {"/tmp": "tmp", "/var/tmp": "var-tmp"}  # where in the namespace: the folder on the student's disk

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _call(name, *args):
    if getattr(_libc, name)(*args) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{name}{args!r}: {os.strerror(error)}")


def _encode(text):
    return None if text is None else str(text).encode()


def _mount(source, target, fstype, flags, data=None):
    encode = _encode
    _call("mount", encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data))


def prepare(disk):
    """The student's folders for /tmp and /var/tmp on her disk (disk: where it is mounted), made empty, root's,
    1777 as /tmp is. Returns {mount point: folder}; as root."""
    found = {}
    for target, name in FOLDERS.items():
        folder = Path(disk) / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(mode=0o700)
        os.chown(folder, 0, 0)
        os.chmod(folder, 0o1777)
        found[target] = folder
    return found


def clear(disk):
    """Empty the student's folders for /tmp and /var/tmp (her server has stopped); as root."""
    for name in FOLDERS.values():
        shutil.rmtree(Path(disk) / name, ignore_errors=True)


def _under(path, top):
    return path == top or path.startswith(top.rstrip("/") + "/")


def _unescape(field):
    """A path as mountinfo writes it (space, tab, newline and backslash as octal escapes)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts():
    """[(mount point, device as "major:minor", per-mount options)] of this process's mount namespace, in order."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        found.append((_unescape(fields[4]), fields[2], fields[5].split(",")))
    return found


def read_only_but(device):
    """Make every mount of this namespace read-only but those of `device` (the student's disk: her home, her folder of
    the exchange), her private /tmp, /var/tmp and /dev/shm, and the kernel's own (/proc, /sys, /dev): nothing of the
    machine is then writable to her, whatever its folders' modes (/run/lock, a 1777 folder a package made), so
    that her disk's size bounds all she writes. Raises OSError if a mount cannot be made read-only."""
    for point, dev, options in mounts():
        if dev == device or point in FOLDERS or any(_under(point, top) for top in MACHINE_OWN):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for option in options:
            flags |= MOUNT_FLAGS.get(option, 0)
        try:
            _mount(None, point, None, flags)
        except FileNotFoundError:  # a mount hidden under her /tmp or /var/tmp: out of her reach already
            if not any(_under(point, top) for top in FOLDERS):
                raise


def enter(folders, tmp_size, shm_size, keep=(), disk_device=None):
    """Give this process (root, about to become the student) a mount namespace and an IPC namespace of its own, with
    private /tmp and /var/tmp (folders: {mount point: folder} of prepare(), or None for a tmpfs of tmp_size bytes
    each) and a /dev/shm of shm_size bytes; System V and POSIX shared memory, semaphores and message queues end with
    the namespace. The folders of keep (HUB_ROOT: the runtime, the exchange) that lie in the machine's /tmp or
    /var/tmp are bound back at the same place. With disk_device (her disk's "major:minor"), every other mount is made
    read-only (read_only_but). Raises OSError if the kernel refuses: the server then does not start."""
    _call("unshare", CLONE_NEWNS | CLONE_NEWIPC)
    _mount(None, "/", None, MS_REC | MS_SLAVE)  # from here on, nothing mounted in this namespace shows outside
    # opened before anything is mounted over them: one may lie under another's mount point (HUB_ROOT in /tmp)
    kept = [os.path.realpath(k) for k in keep if any(_under(os.path.realpath(k), t) for t in FOLDERS)]
    opened = {target: os.open(folder, os.O_PATH | os.O_DIRECTORY) for target, folder in (folders or {}).items()}
    opened |= {path: os.open(path, os.O_PATH | os.O_DIRECTORY) for path in kept}
    try:
        for target in FOLDERS:
            if folders:
                _mount(f"/proc/self/fd/{opened[target]}", target, None, MS_BIND)
            else:
                _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_size},mode=1777")
        for path in kept:
            os.makedirs(path, mode=0o755, exist_ok=True)  # root's, in the private /tmp: the student cannot move it
            _mount(f"/proc/self/fd/{opened[path]}", path, None, MS_BIND | MS_REC)
    finally:
        for fd in opened.values():
            os.close(fd)
    _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"size={shm_size},mode=1777")
    if os.path.ismount("/dev/mqueue"):  # POSIX message queues: this IPC namespace's own
        _mount("mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if disk_device:
        read_only_but(disk_device)


def device_of(path):
    """The device of the file system at path, as mountinfo writes it ("major:minor")."""
    dev = os.stat(path).st_dev
    return f"{os.major(dev)}:{os.minor(dev)}"


def problem():
    """None if a process can be given private /tmp, /var/tmp and /dev/shm, an IPC namespace and a read-only view of
    the machine here (as root); otherwise why not."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the probe, in a child: its namespace ends with it
        os.close(read)
        try:
            enter(None, 1 << 20, 1 << 20, disk_device="none")  # every mount made read-only, as for a student
        except OSError as error:
            os.write(write, str(error).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as said:
        why = said.read()
    os.waitpid(pid, 0)
    return f"no mount namespace of its own for a server ({why})" if why else None
