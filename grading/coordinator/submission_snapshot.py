"""A student's submission folder copied at one moment, through file descriptors, so that what was checked is what is
collected.

Collecting runs as the instructor, over folders the student owns and can change at any time. Checking a folder by
its path and copying it later by the same path lets the student swap it in between (for a link to the solutions, or
for work finished after the due date). `take_snapshot` therefore opens every folder and file without following a
link (O_NOFOLLOW, relative to the descriptor of the folder above), checks each one's owner and kind on the
descriptor itself, and copies it from that descriptor into a folder of the instructor's. The submission's time is the
latest status change (ctime) among the descriptors read, taken after reading: a change made during the copy dates
the submission later, never earlier; a change made after it is not in the copy.
"""

import fnmatch
import os
import pwd
import stat
from dataclasses import dataclass

MAX_ENTRIES = 10_000  # files and folders in one submission
CHUNK = 1 << 20


class Refused(Exception):
    """The folder cannot be the student's submission; the message says why, in words."""


@dataclass
class Snapshot:
    """What take_snapshot copied: the latest ctime it saw, and the files it left out (too large, or not included)."""

    ctime: float
    left_out: list[str]


@dataclass(frozen=True)
class CopyRules:
    """nbgrader's CourseDirectory rules for copying a submission: ignore and include globs, sizes in kilobytes."""

    ignore: tuple[str, ...] = ()
    include: tuple[str, ...] = ("*",)
    max_file_size: int = 100_000
    max_dir_size: int = 100_000


def take_snapshot(path: str, uid: int, dest: str, rules: CopyRules) -> Snapshot:
    """Copy the folder at path, every entry of which must belong to uid and be a plain folder or file, into dest (a
    new folder); Refused if it cannot be the work of uid, or is larger than the rules allow."""
    taken = Snapshot(ctime=0.0, left_out=[])
    budget = {"entries": MAX_ENTRIES, "bytes": 1000 * rules.max_dir_size}
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as error:
        raise Refused(f"its folder cannot be opened as a folder ({error.strerror})") from None
    try:
        _copy_folder(fd, "", uid, dest, rules, taken, budget)
    finally:
        os.close(fd)
    return taken


def _owned(info: os.stat_result, uid: int, shown: str) -> None:
    if info.st_uid != uid:
        try:
            owner = pwd.getpwuid(info.st_uid).pw_name
        except KeyError:
            owner = f"uid {info.st_uid}"
        raise Refused(f"{shown} belongs to {owner}")


def _copy_folder(fd, shown, uid, dest, rules, taken, budget):
    _owned(os.fstat(fd), uid, shown or "it")
    os.mkdir(dest, 0o700)
    for name in sorted(os.listdir(fd)):
        entry = os.path.join(shown, name)
        budget["entries"] -= 1
        if budget["entries"] < 0:
            raise Refused(f"it holds more than {MAX_ENTRIES} files and folders")
        if any(fnmatch.fnmatch(name, glob) for glob in rules.ignore):
            continue
        try:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            continue  # removed while it was read: not part of the snapshot
        if stat.S_ISLNK(info.st_mode):
            raise Refused(f"{entry} is a symbolic link")
        if stat.S_ISDIR(info.st_mode):
            child = _open_at(fd, name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, entry)
            if child is None:
                continue
            try:
                _copy_folder(child, entry, uid, os.path.join(dest, name), rules, taken, budget)
            finally:
                os.close(child)
        elif stat.S_ISREG(info.st_mode):
            if not any(fnmatch.fnmatch(name, glob) for glob in rules.include):
                taken.left_out.append(f"{entry} (not included)")
                continue
            _copy_file(fd, name, entry, uid, os.path.join(dest, name), rules, taken, budget)
        else:
            raise Refused(f"{entry} is not a file or folder")
    taken.ctime = max(taken.ctime, os.fstat(fd).st_ctime)  # after reading: a change meanwhile dates it later


def _open_at(folder_fd: int, name: str, flags: int, shown: str) -> int | None:
    """A descriptor of name in the folder folder_fd, or None if it was removed meanwhile; Refused if unreadable."""
    try:
        return os.open(name, flags, dir_fd=folder_fd)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise Refused(f"{shown} cannot be read ({error.strerror})") from None


def _copy_file(folder_fd, name, shown, uid, dest, rules, taken, budget):
    # O_NONBLOCK: a pipe put in the file's place is opened without waiting, then refused as not a file
    fd = _open_at(folder_fd, name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, shown)
    if fd is None:
        return
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Refused(f"{shown} is not a file")
        _owned(info, uid, shown)
        if info.st_size > 1000 * rules.max_file_size:
            taken.left_out.append(f"{shown} (larger than {rules.max_file_size} kB)")
            return
        budget["bytes"] -= info.st_size
        if budget["bytes"] < 0:
            raise Refused(f"it holds more than {rules.max_dir_size} kB")
        with open(dest, "xb") as out:
            copied = 0
            while chunk := os.read(fd, CHUNK):
                copied += len(chunk)
                if copied > info.st_size:  # grew while it was read
                    budget["bytes"] -= len(chunk)
                    if budget["bytes"] < 0:
                        raise Refused(f"it holds more than {rules.max_dir_size} kB")
                out.write(chunk)
        taken.ctime = max(taken.ctime, os.fstat(fd).st_ctime)
    finally:
        os.close(fd)
