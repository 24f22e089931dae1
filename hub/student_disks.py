"""A disk of its own for each student: an ext4 file system in an image file of a fixed size, loop-mounted by
hub/setup_hub.py, holding the student's home and their folder of the exchange's inbound. A student who fills it
fills only it: not the disk of the hub's state, the gradebook, the instructor's course or another student's home.

    HUB_ROOT/disks/           root only (0700)
        <id>.img              the image, its whole size allocated up front (so that the disk under it cannot run out
                              before the students' disks are full)
        <id>/                 where the image is mounted: home/ and inbound/ (and tmp/, var-tmp/: the /tmp and
                              /var/tmp of the student's server, hub/private_tmp.py)
    /home/<id>                bind mount of HUB_ROOT/disks/<id>/home
    HUB_ROOT/exchange/<course>/inbound/<id>
                              bind mount of HUB_ROOT/disks/<id>/inbound

The image keeps the files across reboots; mounts do not, and `make hub` mounts them again (the hub refuses to start
a student's server whose home is not mounted, so that nothing is written where no limit holds). Made once per
student, at the size asked then; an account's earlier home is moved into it.
"""

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path


class DiskError(RuntimeError):
    """A student's disk cannot be made or mounted; says why."""


def _run(args, what):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if result.returncode != 0:
        raise DiskError(f"{what}: {' '.join(map(str, args))}: {(result.stderr or result.stdout).strip()[-500:]}")
    return result


def mounts():
    """[(mount point, source path within its file system)] of this machine, as /proc/self/mountinfo lists them."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()

        def unescape(field):
            return field.encode().decode("unicode_escape").encode("latin-1").decode()

        found.append((unescape(fields[4]), unescape(fields[3])))
    return found


def mount_point(hub_root, name):
    """Where the disk of the student `name` is mounted."""
    return Path(hub_root) / "disks" / name


def is_mounted(path):
    return any(point == str(path) for point, _ in mounts())


def unmount_under(*paths):
    """Unmount every mount at or below any of paths, deepest first (lazily when busy). Returns how many."""
    tops = [os.path.realpath(p) for p in paths]
    inside = [p for p, _ in mounts() if any(p == t or p.startswith(t.rstrip("/") + "/") for t in tops)]
    for point in sorted(set(inside), key=len, reverse=True):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", point], capture_output=True)
    return len(set(inside))


def _make_image(image, size):
    """A fresh ext4 image of size bytes, all of it allocated now, with no blocks kept back for root."""
    if shutil.disk_usage(image.parent).free < size:
        raise DiskError(f"{image.parent} has less than the {size} bytes a student's disk needs free")
    fresh = image.with_name(f".{image.name}.hub-tmp")
    with contextlib.suppress(FileNotFoundError):
        fresh.unlink()
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)
    _run(["mkfs.ext4", "-q", "-F", "-m", "0", "-L", "backprop-hub", fresh], "making a student's file system")
    os.replace(fresh, image)


def problem(disks):
    """None if a student's disk can be made and mounted here (as root); otherwise why not, in words."""
    if shutil.which("mkfs.ext4") is None:
        return "mkfs.ext4 is missing (Debian's e2fsprogs)"
    disks.mkdir(mode=0o700, parents=True, exist_ok=True)
    probe = Path(tempfile.mkdtemp(prefix=".probe-", dir=disks))
    try:
        _make_image(probe / "probe.img", 8 << 20)
        (probe / "mnt").mkdir()
        _run(["mount", "-o", "loop,nodev,nosuid", probe / "probe.img", probe / "mnt"], "mounting a loop device")
        unmount_under(probe / "mnt")
    except (DiskError, OSError) as error:
        return str(error)
    finally:
        unmount_under(probe)
        shutil.rmtree(probe, ignore_errors=True)
    return None


def _bind(source, target):
    if not is_mounted(target):
        _run(["mount", "--bind", source, target], f"mounting {source} on {target}")


def ensure_disk(disks, user, size, group_gid, inbound):
    """The student's disk (user: a pwd entry) made if missing, mounted, with their home and their inbound folder
    (owned by them, setgid to group_gid, 2750) bound into place. Returns the image's path."""
    image, point = disks / f"{user.pw_name}.img", disks / user.pw_name
    home = Path(user.pw_dir)
    fresh = not image.exists()
    if fresh:
        _make_image(image, size)
    point.mkdir(mode=0o700, exist_ok=True)
    if not is_mounted(point):
        _run(["mount", "-o", "loop,nodev,nosuid", image, point], f"mounting {image}")
    os.chown(point, 0, 0)
    os.chmod(point, 0o700)
    if (point / "lost+found").is_dir():
        os.chmod(point / "lost+found", 0o700)
    for sub, owner, gid, mode in (
        ("home", user.pw_uid, user.pw_gid, 0o700),
        ("inbound", user.pw_uid, group_gid, 0o2750),
    ):
        path = point / sub
        if not path.is_dir():
            path.mkdir()
            os.chown(path, owner, gid)
            os.chmod(path, mode)
    if not is_mounted(home):
        # what the account's home held (useradd's skeleton, or an earlier class's work) moves onto its disk
        home.mkdir(parents=True, exist_ok=True)
        if any(home.iterdir()):
            _run(["cp", "-a", "--no-clobber", f"{home}/.", point / "home"], f"copying {home} to its disk")
            for entry in home.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        _bind(point / "home", home)
    os.chown(home, user.pw_uid, user.pw_gid)
    os.chmod(home, 0o700)
    inbound.mkdir(exist_ok=True)
    _bind(point / "inbound", inbound)
    return image
