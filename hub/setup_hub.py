"""Prepare the class that `make hub` serves on JupyterHub; run as root (JupyterHub's LocalProcessSpawner starts each
user's server as that user's own Unix account).

    python hub/setup_hub.py [--hub-root /srv/backprop-hub] [--roster students.csv] [--instructor instructor]

It first refuses to go on if students could read the checkout's hidden checks or solutions (grading/checks,
grading/course_kit's catalogues, source/), unless told --allow-readable-checkout. Then it makes, and on later runs
brings up to date without touching anyone's work:

- HUB_ROOT/venv: the students' runtime, the course's virtual environment (.venv) as every account can run it. A
  checkout under a folder other users cannot enter (/root, say), or a .venv whose Python lives there (pyenv), would
  stop students' servers from starting. This copy (hard links where the file system allows, so it costs little
  room) names no file of the checkout: its scripts name its own interpreter, and it holds nothing of the course's
  `grading` package (the release ships its public checks beside the notebook), only hub/private_submit.py, the
  students' submit to the exchange. Its interpreter is .venv's own when every account can run it, else
  HUB_ROOT/python, a copy of that same build (the same patch release: packages require them) with its library
  run paths made relative (patchelf);
- HUB_ROOT/instructor-lib: the course's `grading` package (hidden checks, solutions, catalogues, the grader),
  readable by the instructor's group only; the instructor's server and commands find it through PYTHONPATH;
- a Unix account per student of the roster (id, first_name, last_name, email) and one for the instructor, each
  home readable by its owner only, each with its own password: an account without one gets a random one, kept in
  HUB_ROOT/state/logins.json (root only), the students' also in ~instructor/hub-logins.csv (the instructor's only);
- the instructor's course directory, ~instructor/<course id>: nbgrader_config.py, source/ (links followed), the
  roster, release/ and gradebook.db made by `nbgrader generate_assignment` and `nbgrader db student import` as the
  instructor; made once, then left to the instructor;
- HUB_ROOT/exchange: nbgrader's file-system exchange (root 0755, which no account writes; the course's folder the
  instructor's: outbound 755, inbound 711 with a folder per student, inbound/<id> (2750, the student's, setgid to the
  instructor's group), so that each submits into their own folder and no one lists, reads or writes another's;
  feedback 711 so that a student reaches only the feedback whose name they know). Students submit into folders only
  they and the instructor can read (hub/private_submit.py, whose exchange steps accept a root no one writes); the
  instructor collects only submissions owned by the account they name, from their own folder, dated by the file
  system (grading/coordinator/exchange_collect.py);
- HUB_ROOT/disks (root only): each student's own disk, an ext4 image of --student-disk bytes (HUB_STUDENT_DISK,
  default 1 GiB) loop-mounted, holding their home and their inbound folder, bound into place (hub/student_disks.py),
  so that a student who fills theirs fills no one else's disk; where loop devices cannot be mounted (an unprivileged
  container) it says so and what to set up instead, and homes and inbound folders stay on HUB_ROOT's disk;
- HUB_ROOT/etc/student and HUB_ROOT/etc/instructor: the Jupyter configuration of each role (JUPYTER_CONFIG_PATH of
  their servers): the exchange and course id for nbgrader; students get the assignment list and Validate, not the
  formgrader or the course list;
- HUB_ROOT/state (root only): the passwords made here, class.json (what hub/jupyterhub_config.py reads),
  JupyterHub's database and cookie secret;
- the proxy, npm's configurable-http-proxy pinned in hub/package-lock.json, in hub/node_modules.

Then it checks, as the accounts themselves, that a student's Python imports what a server needs and not the course's
package, and that the instructor can start the grading sandbox (unprivileged bubblewrap), and whether the hub can
give each student's server a cgroup of its own (hub/server_cgroups.py: memory, processes and CPU time of the whole
server) and /tmp, /var/tmp and /dev/shm of its own (hub/private_tmp.py); it says what is wrong if not. It never prints
a password.
"""

import argparse
import csv
import grp
import json
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import sys
from pathlib import Path

HUB_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(HUB_DIR))  # its neighbours, whether run as a script or imported as hub.setup_hub
import private_tmp  # noqa: E402
import server_cgroups  # noqa: E402
import student_disks  # noqa: E402

REPO = HUB_DIR.parent
PROXY = HUB_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
DEFAULT_HUB_ROOT = Path("/srv/backprop-hub")
DEFAULT_STUDENT_DISK = 1 << 30  # bytes of each student's disk (home and inbound folder)
USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")  # what useradd accepts and JupyterHub keeps as is
# the editable install of the course's package points into the checkout; the runtime holds a copy instead
COLLECT = "grading.coordinator.exchange_collect.OwnedExchangeCollect"
SUBMIT_MODULE = "hub_private_submit.py"  # hub/private_submit.py in the students' runtime
EXCHANGE = SUBMIT_MODULE[:-3] + "."  # its exchange steps, for nbgrader's c.ExchangeFactory
STUDENT_EXCHANGE = {
    "submit": "PrivateSubmit",
    "fetch_assignment": "FetchAssignment",
    "fetch_feedback": "FetchFeedback",
    "list": "List",
}
INSTRUCTOR_EXCHANGE = {"release_assignment": "ReleaseAssignment", "release_feedback": "ReleaseFeedback", "list": "List"}
LOGINS_FILE = "hub-logins.csv"  # the students' passwords, in the instructor's home
EDITABLE = re.compile(
    r"^(__editable__\.backprop_course_grading-.*\.pth|__editable___backprop_course_grading_.*"
    r"_finder\.py|backprop_course_grading-.*\.dist-info)$"
)
# what students' servers leave out: the formgrader, the course list and the assignment-creation toolbar
STUDENT_SERVER_EXTENSIONS = {
    "nbgrader.server_extensions.formgrader": False,
    "nbgrader.server_extensions.course_list": False,
    "nbgrader.server_extensions.assignment_list": True,
    "nbgrader.server_extensions.validate_assignment": True,
}
# each user's terminals: an interactive shell that keeps the server's PATH (the class's runtime first), where
# Jupyter's default, a login shell when the server has no terminal of its own, lets /etc/profile reset it
TERMINALS = {"ServerApp": {"terminado_settings": {"shell_command": ["/bin/bash", "-i"]}}}
# every kernel of a user's server talks to it over Unix sockets in the user's own runtime folder: over TCP on the
# machine's loopback, which every account shares, any student could subscribe to a classmate's kernel and read her code
# and its outputs as she runs them
KERNELS_OVER_IPC = {"KernelManager": {"transport": "ipc"}}
STUDENT_DISABLED_LAB_PLUGINS = {
    "@jupyter/nbgrader:formgrader": True,
    "@jupyter/nbgrader:course-list": True,
    "@jupyter/nbgrader:create-assignment": True,
}
# the instructor's JupyterLab shows the formgrader in its Formgrader panel, a frame of her own origin: JupyterHub
# forbids every frame of a user's server ("frame-ancestors 'none'"), which only a hub of one origin for every user
# needs; with an origin per user (hub/jupyterhub_config.py), her server allows frames of her own pages only, as
# Jupyter's own default and nbgrader's documentation for a hub with subdomains have it
INSTRUCTOR_DISABLED_LAB_PLUGINS: dict = {}
INSTRUCTOR_FRAMES = {
    "ServerApp": {"tornado_settings": {"headers": {"Content-Security-Policy": "frame-ancestors 'self'"}}}
}
# JupyterLab for a class: no news or update checks from the internet
LAB_OVERRIDES = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}


class SetupError(RuntimeError):
    """Something the class cannot run without, said in words with what to do."""


def say(message):
    print(f"[hub] {message}", flush=True)


# ---------------------------------------------------------------------------------------------------------------
# running things as an account


def account_env(user, runtime, config_dir=None, pythonpath=None):
    """The environment of a command run as `user` (a pwd entry) with the runtime's programs first on PATH (and
    pythonpath, the instructor's library, on Python's path)."""
    env = {
        "HOME": user.pw_dir,
        "USER": user.pw_name,
        "LOGNAME": user.pw_name,
        "SHELL": user.pw_shell,
        "PATH": f"{runtime / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
    }
    if config_dir is not None:
        env["JUPYTER_CONFIG_PATH"] = str(config_dir)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return env


def run_as(
    user, args, runtime=None, config_dir=None, cwd=None, check=True, timeout=600, env=None, pythonpath=None, input=None
):
    """Run args as the Unix account `user` (a name or pwd entry), its groups only, umask 022."""
    user = pwd.getpwnam(user) if isinstance(user, str) else user
    groups = [g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem]
    result = subprocess.run(
        [str(a) for a in args],
        user=user.pw_uid,
        group=user.pw_gid,
        extra_groups=groups,
        umask=0o022,
        cwd=cwd or user.pw_dir,
        env=env or account_env(user, runtime or Path("/nonexistent"), config_dir, pythonpath),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise SetupError(
            f"as {user.pw_name}: {' '.join(map(str, args))} exited {result.returncode}:\n"
            f"{result.stdout[-2000:]}{result.stderr[-3000:]}"
        )
    return result


def can_run(path, user="nobody"):
    """Whether `user` can run the Python at path (every folder on the way, the interpreter and its library)."""
    try:
        return (
            run_as(
                user,
                [path, "-c", "import encodings, json"],
                cwd="/",
                check=False,
                env={"PATH": "/usr/bin:/bin", "HOME": "/"},
                timeout=60,
            ).returncode
            == 0
        )
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------------------------
# the runtime


def interpreter(venv):
    """(executable, sys.base_prefix) of the Python that .venv was made from."""
    out = subprocess.run(
        [venv / "bin" / "python", "-c", "import sys; print(sys._base_executable); print(sys.base_prefix)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    return Path(out[0]).resolve(), Path(out[1]).resolve()


def _is_elf(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def _relocate_elf(path, old_prefix, new_prefix, final_dir):
    """Point the run path of a copied ELF file that names old_prefix at the same place under new_prefix, relative to
    the folder the file will be in (final_dir, its $ORIGIN), so that it never loads a library from the original (or
    the system's libpython)."""
    rpath = subprocess.run(["patchelf", "--print-rpath", path], capture_output=True, text=True).stdout.strip()
    if str(old_prefix) not in rpath:
        return
    entries = []
    for entry in rpath.split(":"):
        if entry == str(old_prefix) or entry.startswith(str(old_prefix) + os.sep):
            target = str(new_prefix) + entry[len(str(old_prefix)) :]
            entry = "$ORIGIN/" + os.path.relpath(target, final_dir)
        entries.append(entry)
    subprocess.run(["patchelf", "--set-rpath", ":".join(entries), path], check=True, capture_output=True)


def copy_interpreter(executable, prefix, dest):
    """A copy of the Python installation at prefix (its interpreter, shared library and standard library, without
    its site-packages or tests) at dest, for an interpreter that other accounts cannot reach (pyenv under /root).
    Its ELF files are copies with their run paths made relative; everything else is hard-linked where possible.
    Returns the copied executable. Made once per interpreter: a marker names what it was copied from."""
    short = executable.name
    marker = dest / ".hub-copied-from"
    stamp = f"{executable} {executable.stat().st_size} {executable.stat().st_mtime_ns}\n"
    if marker.is_file() and marker.read_text() == stamp:
        return dest / "bin" / short
    if shutil.which("patchelf") is None:
        raise SetupError(
            f"{executable} is out of other users' reach and patchelf, needed to copy it, is missing: "
            "apt-get install -y patchelf (make hub does as root)"
        )
    say(f"copying the interpreter {executable} to {dest} (other accounts cannot reach it)")
    fresh = dest.with_name(f".{dest.name}.hub-tmp")
    shutil.rmtree(fresh, ignore_errors=True)
    stdlib = prefix / "lib" / short
    wanted = [(executable, fresh / "bin" / short)]
    wanted += [(lib, fresh / "lib" / lib.name) for lib in (prefix / "lib").glob("libpython*.so*")]
    for dirpath, dirnames, filenames in os.walk(stdlib):
        here = Path(dirpath)
        if here == stdlib:
            dirnames[:] = [d for d in dirnames if d not in ("site-packages", "test")]
        for name in filenames:
            wanted.append((here / name, fresh / "lib" / short / here.relative_to(stdlib) / name))
    for src, dst in wanted:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        elif _is_elf(src):
            shutil.copy2(src, dst)
            _relocate_elf(dst, prefix, dest, dest / dst.parent.relative_to(fresh))
        else:
            _place(src, dst, link=True)
    (fresh / "lib" / short / "site-packages").mkdir(exist_ok=True)
    for dirpath, _dirnames, filenames in os.walk(fresh):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            path = Path(dirpath, name)
            if not path.is_symlink():
                os.chmod(path, os.stat(path).st_mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    (fresh / ".hub-copied-from").write_text(stamp)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(fresh, dest)
    return dest / "bin" / short


def base_python(venv, copy_to):
    """The Python .venv was made from, or a copy of it at copy_to if other accounts cannot run it where it is. The
    same build, not merely the same version: packages pin patch releases (soupsieve needs 3.11.5, say)."""
    executable, prefix = interpreter(venv)
    if can_run(executable):
        return executable
    copied = copy_interpreter(executable, prefix, Path(copy_to))
    if not can_run(copied):
        raise SetupError(f"the copy {copied} of {executable} does not run for other accounts")
    return copied


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _place(src, dst, link):
    """Put src's content at dst, atomically: a hard link when allowed (and the file is world-readable), else a copy."""
    tmp = dst.with_name(f".{dst.name}.hub-tmp")
    if tmp.exists() or tmp.is_symlink():
        tmp.unlink()
    if link and os.stat(src).st_mode & stat.S_IROTH:
        try:
            os.link(src, tmp)
            os.replace(tmp, dst)
            return True
        except OSError:
            pass
    shutil.copy2(src, tmp)
    os.chmod(tmp, (os.stat(tmp).st_mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH) & ~(stat.S_IWGRP | stat.S_IWOTH))
    os.replace(tmp, dst)
    return False


def _write_if_changed(path, data, mode=0o644):
    data = data.encode() if isinstance(data, str) else data
    if not path.is_symlink() and path.is_file() and path.read_bytes() == data:
        return
    tmp = path.with_name(f".{path.name}.hub-tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def sync_runtime(venv, runtime):
    """Make runtime a copy of venv that every account can use (see the module's docstring). Returns the runtime."""
    venv, runtime = venv.resolve(), Path(runtime)
    base = base_python(venv, runtime.parent / "python")
    runtime.mkdir(parents=True, exist_ok=True)
    os.chmod(runtime, 0o755)
    link = True
    probe = runtime / ".hub-link-probe"
    try:
        if probe.exists():
            probe.unlink()
        os.link(venv / "pyvenv.cfg", probe)
        probe.unlink()
    except OSError:
        link = False
        say(f"{runtime} is on another file system than {venv}: copying (the first time takes a minute)")
    old, new = str(venv).encode(), str(runtime).encode()
    version = subprocess.run(
        [base, "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    short = "python" + ".".join(version.split(".")[:2])
    site_rel = Path("lib", short, "site-packages")
    # made here, not copied: the venv's marker, its interpreter, the exchange's submit, the class's settings
    ours = {Path("pyvenv.cfg"), site_rel / SUBMIT_MODULE, Path("share/jupyter/lab/settings/overrides.json")}
    ours |= {Path("bin") / name for name in ("python", "python3", short)}
    kept = set(ours)
    for dirpath, dirnames, filenames in os.walk(venv):
        here = Path(dirpath)
        rel_dir = here.relative_to(venv)
        if rel_dir == site_rel:
            dirnames[:] = [d for d in dirnames if not EDITABLE.match(d)]
            filenames = [f for f in filenames if not EDITABLE.match(f)]
        dirnames[:] = [d for d in dirnames if rel_dir / d not in ours]
        for name in dirnames + filenames:
            rel = rel_dir / name
            src, dst = here / name, runtime / rel
            if rel in ours:
                continue
            kept.add(rel)
            if src.is_symlink():
                target = os.readlink(src)
                if target.startswith(str(venv) + os.sep):
                    target = str(runtime) + target[len(str(venv)) :]
                if not (dst.is_symlink() and os.readlink(dst) == target):
                    if dst.is_dir() and not dst.is_symlink():
                        shutil.rmtree(dst)
                    elif dst.exists() or dst.is_symlink():
                        dst.unlink()
                    os.symlink(target, dst)
            elif src.is_dir():
                if dst.is_symlink() or (dst.exists() and not dst.is_dir()):
                    dst.unlink()
                dst.mkdir(exist_ok=True)
                os.chmod(dst, 0o755)
            elif rel_dir == Path("bin"):  # scripts name .venv's interpreter: rewritten copies
                data = src.read_bytes()
                _write_if_changed(dst, data.replace(old, new), 0o755 if os.access(src, os.X_OK) else 0o644)
            elif not (
                _same_file(src, dst)
                or (
                    not link
                    and dst.is_file()
                    and dst.stat().st_size == src.stat().st_size
                    and dst.stat().st_mtime_ns == src.stat().st_mtime_ns
                )
            ):
                _place(src, dst, link)
    # what .venv no longer has goes, and so does the course's package an earlier version copied here
    for dirpath, dirnames, filenames in os.walk(runtime, topdown=False):
        here = Path(dirpath)
        for name in filenames + dirnames:
            path = here / name
            rel = path.relative_to(runtime)
            if rel in kept:
                continue
            if path.is_dir() and not path.is_symlink():
                if not any(path.iterdir()):
                    path.rmdir()
            else:
                path.unlink()
    # the interpreter every account can run, and the venv's marker
    for name, target in ((short, str(base)), ("python3", short), ("python", short)):
        path = runtime / "bin" / name
        if not (path.is_symlink() and os.readlink(path) == target):
            if path.exists() or path.is_symlink():
                path.unlink()
            os.symlink(target, path)
    _write_if_changed(
        runtime / "pyvenv.cfg", f"home = {base.parent}\ninclude-system-site-packages = false\nversion = {version}\n"
    )
    shutil.rmtree(runtime / site_rel / "grading", ignore_errors=True)
    # the students' submit to the exchange (hub/private_submit.py)
    _write_if_changed(runtime / site_rel / SUBMIT_MODULE, (HUB_DIR / "private_submit.py").read_bytes())
    # JupyterLab settings of the class
    overrides = runtime / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    overrides.parent.mkdir(parents=True, exist_ok=True)
    for folder in (overrides.parent.parent, overrides.parent):
        os.chmod(folder, 0o755)
    existing = venv / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    settings = json.loads(existing.read_text()) if existing.is_file() else {}
    for plugin, values in LAB_OVERRIDES.items():
        settings.setdefault(plugin, {}).update(values)
    _write_if_changed(overrides, json.dumps(settings, indent=2) + "\n")
    return runtime


def install_instructor_library(grading_src, library, instructor):
    """The course's `grading` package (hidden checks, solutions, catalogues) for the instructor's account only: at
    library/grading, owned by root, readable by the instructor's group alone (folders 0750, files 0640); the
    instructor's server and commands find it through PYTHONPATH. Copied, not linked: the checkout may be out of the
    instructor's reach, and editing it must not change a live class."""
    library.mkdir(exist_ok=True)
    os.chown(library, 0, instructor.pw_gid)
    os.chmod(library, 0o750)
    package = library / "grading"
    fresh = library / ".grading.hub-tmp"
    shutil.rmtree(fresh, ignore_errors=True)
    shutil.copytree(grading_src, fresh, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for dirpath, _dirnames, filenames in os.walk(fresh):
        os.chown(dirpath, 0, instructor.pw_gid)
        os.chmod(dirpath, 0o750)
        for name in filenames:
            os.chown(Path(dirpath, name), 0, instructor.pw_gid)
            os.chmod(Path(dirpath, name), 0o640)
    if package.exists():
        shutil.rmtree(package)
    os.replace(fresh, package)
    return library


# ---------------------------------------------------------------------------------------------------------------
# accounts, the course directory, the exchange, configuration


def read_roster(path):
    """[(id, full name)] of the roster (students.csv: id, first_name, last_name, email)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    students = []
    for row in rows:
        sid = row["id"].strip()
        if not USERNAME.match(sid):
            raise SetupError(
                f"{path}: student id {sid!r} cannot be a Unix account name "
                "(lower-case letters, digits, '-' and '_', at most 32 characters)"
            )
        students.append((sid, f"{row.get('first_name', '').strip()} {row.get('last_name', '').strip()}".strip()))
    return students


def ensure_account(name, full_name):
    """The pwd entry of Unix account `name`, made (with its own group and home) if missing; its home is 0700."""
    if not USERNAME.match(name):
        raise SetupError(f"{name!r} cannot be a Unix account name")
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--create-home",
                "--user-group",
                "--shell",
                "/bin/bash",
                "--comment",
                full_name.replace(":", " ") or name,
                name,
            ],
            check=True,
            capture_output=True,
        )
        user = pwd.getpwnam(name)
        say(f"account {name} made")
    home = Path(user.pw_dir)
    if not home.is_dir():
        home.mkdir(parents=True)
        os.chown(home, user.pw_uid, user.pw_gid)
    os.chmod(home, 0o700)
    return user


def make_exchange(exchange, course_id, instructor):
    """nbgrader's exchange: root 0755, root's (nbgrader wants 777; the exchange's steps of the class's settings,
    hub/private_submit.py, accept a root no one writes, so that no student can fill the disk under it); the course's
    folder and its inbound/outbound/feedback owned by the instructor, made here so that no student can claim the
    course's name first. The inbound is 0711: no student writes or lists it; each submits into a folder of their own
    in it, inbound/<id> (make_student_storage), which no one else can enter."""
    exchange.mkdir(parents=True, exist_ok=True)
    os.chown(exchange, 0, 0)
    os.chmod(exchange, 0o755)
    course = exchange / course_id
    for path, mode in (
        (course, 0o755),
        (course / "outbound", 0o755),
        (course / "inbound", 0o711),
        (course / "feedback", 0o711),
    ):
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise SetupError(f"{path} is not a folder")
        path.mkdir(exist_ok=True)
        os.chown(path, instructor.pw_uid, instructor.pw_gid)
        os.chmod(path, mode)


def make_student_storage(hub_root, inbound, students, instructor, disk_size):
    """Each student's home and inbound folder (inbound/<id>: theirs, setgid to the instructor's group, 2750). With
    disk_size, both on a disk of the student's own of that many bytes (hub/student_disks.py); without, or where
    loop devices cannot be mounted, on the disk that holds HUB_ROOT. Returns why there are no students' disks (None
    when there are)."""
    disks = hub_root / "disks"
    if not disk_size:
        problem = "no size was given to the students' disks (HUB_STUDENT_DISK=0)"
    else:
        disks.mkdir(mode=0o700, exist_ok=True)
        os.chmod(disks, 0o700)
        problem = student_disks.problem(disks)
    for user in students:
        folder = inbound / user.pw_name
        if problem is None:
            try:
                student_disks.ensure_disk(disks, user, disk_size, instructor.pw_gid, folder)
                continue
            except student_disks.DiskError as error:
                raise SetupError(f"{user.pw_name}'s disk: {error}") from error
        if student_disks.is_mounted(folder):  # a disk made by an earlier run, not mounted now: never bypassed
            continue
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise SetupError(f"{folder} is not a folder")
        folder.mkdir(exist_ok=True)
        if (disks / f"{user.pw_name}.img").exists():
            raise SetupError(
                f"{user.pw_name} has a disk ({disks / user.pw_name}.img) that cannot be mounted: {problem}"
            )
        os.chown(folder, user.pw_uid, instructor.pw_gid)
        os.chmod(folder, 0o2750)
    return problem


def write_config_dirs(etc, exchange, course_id, course_dir):
    """Jupyter configuration folders of the two roles (each server's JUPYTER_CONFIG_PATH)."""
    student, instructor = etc / "student", etc / "instructor"
    for folder in (
        etc,
        student,
        instructor,
        student / "jupyter_server_config.d",
        student / "labconfig",
        instructor / "labconfig",
    ):
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o755)
    _write_if_changed(
        student / "nbgrader_config.py",
        (
            '"""nbgrader for the class\'s students (made by hub/setup_hub.py): the course\'s exchange."""\n'
            "c = get_config()  # noqa: F821\n"
            f"c.CourseDirectory.course_id = {course_id!r}\n"
            f"c.Exchange.root = {str(exchange)!r}\n"
            "c.KernelManager.transport = 'ipc'  # Validate's kernel too: Unix sockets of the student's own, not TCP\n"
            "# each submission readable by the student and the instructor only, an exchange no student can fill\n"
            "# (hub/private_submit.py)\n"
            + "".join(f"c.ExchangeFactory.{step} = {EXCHANGE + name!r}\n" for step, name in STUDENT_EXCHANGE.items())
        ),
    )
    _write_if_changed(
        student / "jupyter_server_config.d" / "backprop-hub.json",
        json.dumps({"ServerApp": {"jpserver_extensions": STUDENT_SERVER_EXTENSIONS}}, indent=2) + "\n",
    )
    # each role's server settings (jupyter_server reads only which extensions to load from jupyter_server_config.d)
    servers = {
        student: TERMINALS["ServerApp"],
        instructor: {**TERMINALS["ServerApp"], **INSTRUCTOR_FRAMES["ServerApp"]},
    }
    for role, server in servers.items():
        settings = {"ServerApp": server, **KERNELS_OVER_IPC}
        _write_if_changed(role / "jupyter_server_config.json", json.dumps(settings, indent=2) + "\n")
    _write_if_changed(
        student / "labconfig" / "page_config.json",
        json.dumps({"disabledExtensions": STUDENT_DISABLED_LAB_PLUGINS}, indent=2) + "\n",
    )
    _write_if_changed(
        instructor / "labconfig" / "page_config.json",
        json.dumps({"disabledExtensions": INSTRUCTOR_DISABLED_LAB_PLUGINS}, indent=2) + "\n",
    )
    _write_if_changed(
        instructor / "nbgrader_config.py",
        (
            '"""nbgrader for the class\'s instructor (made by hub/setup_hub.py): the course directory\'s own\n'
            'nbgrader_config.py, and the exchange shared with the students."""\n'
            "c = get_config()  # noqa: F821\n"
            f"c.Exchange.root = {str(exchange)!r}\n"
            f"load_subconfig('nbgrader_config.py', path={str(course_dir)!r})  # noqa: F821\n"
            "# a submission counts as the account that made it, when the file system saw it\n"
            f"c.ExchangeFactory.collect = {COLLECT!r}\n"
            "# an exchange no account writes but the folders of each (hub/private_submit.py)\n"
            + "".join(f"c.ExchangeFactory.{step} = {EXCHANGE + name!r}\n" for step, name in INSTRUCTOR_EXCHANGE.items())
        ),
    )


def copy_course(course_from, course_dir, roster, instructor):
    """The instructor's course directory, made once: configuration, source (links followed) and roster."""
    fresh = course_dir.with_name(f".{course_dir.name}.hub-tmp")
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir(mode=0o700)
    shutil.copy(course_from / "nbgrader_config.py", fresh / "nbgrader_config.py")
    shutil.copytree(
        course_from / "source",
        fresh / "source",
        symlinks=False,
        ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"),
    )
    shutil.copy(roster, fresh / "students.csv")
    for dirpath, _dirnames, filenames in os.walk(fresh):
        os.chown(dirpath, instructor.pw_uid, instructor.pw_gid)
        for name in filenames:
            os.chown(Path(dirpath, name), instructor.pw_uid, instructor.pw_gid)
    os.rename(fresh, course_dir)
    os.chmod(course_dir, 0o700)


def make_course(course_from, course_dir, roster, instructor, runtime, config_dir, library):
    """Copy the course for the instructor (once), then generate each assignment and import the roster as the
    instructor, which makes release/ and gradebook.db."""
    if course_dir.exists():
        say(f"course directory {course_dir} kept as it is (the instructor's)")
        return False
    copy_course(course_from, course_dir, roster, instructor)
    for assignment in sorted(p.name for p in (course_dir / "source").iterdir() if p.is_dir()):
        run_as(
            instructor,
            ["nbgrader", "generate_assignment", assignment, "--log-level=WARN"],
            runtime,
            config_dir,
            cwd=course_dir,
            pythonpath=library,
        )
    run_as(
        instructor,
        ["nbgrader", "db", "student", "import", "students.csv", "--log-level=WARN"],
        runtime,
        config_dir,
        cwd=course_dir,
        pythonpath=library,
    )
    say(f"course directory {course_dir} made: assignments generated, roster imported")
    return True


def course_id_of(course_from):
    """c.CourseDirectory.course_id of the course's nbgrader_config.py."""
    text = (course_from / "nbgrader_config.py").read_text()
    match = re.search(r"""c\.CourseDirectory\.course_id\s*=\s*["']([^"']+)["']""", text)
    if not match:
        raise SetupError(f"{course_from / 'nbgrader_config.py'} sets no c.CourseDirectory.course_id")
    return match.group(1)


def _has_password(name):
    """Whether the Unix account has a password it can log in with (not locked, not empty) in /etc/shadow."""
    for line in Path("/etc/shadow").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return len(fields) > 1 and fields[1] != "" and fields[1][0] not in "!*"
    return False


def make_logins(state, names, instructor):
    """Each account of the class logs in with its own password (JupyterHub's PAM login checks the Unix password). An
    account without a password gets a random one; one with a password keeps it. Those given here are kept in
    state/logins.json (root only), and the students' in ~instructor/LOGINS_FILE (the instructor's only), for the
    instructor to hand out; never printed. Returns {name: password} of the accounts given one, ever."""
    path = state / "logins.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    fresh = {}
    for name in names:
        if _has_password(name):  # given here earlier, or the account's own: kept
            continue
        fresh[name] = secrets.token_urlsafe(12)
    if fresh:
        subprocess.run(
            ["chpasswd"],
            input="".join(f"{n}:{w}\n" for n, w in fresh.items()),
            text=True,
            check=True,
            capture_output=True,
        )
        known.update(fresh)
        _write_if_changed(path, json.dumps(known, indent=2) + "\n", 0o600)
        say(f"passwords set for {len(fresh)} account(s)")
    students = [(n, known[n]) for n in names if n in known and n != instructor.pw_name]
    sheet = Path(instructor.pw_dir) / LOGINS_FILE
    text = "id,password\n" + "".join(f"{n},{w}\n" for n, w in students)
    _write_if_changed(sheet, text, 0o600)
    os.chown(sheet, instructor.pw_uid, instructor.pw_gid)
    return known


def readable_by_others(path):
    """Whether an account outside path's owner and group can read it: every folder on its way searchable by others
    and the file (or folder) readable by them."""
    path = Path(path).resolve()
    if not path.exists():
        return False
    for folder in reversed(path.parents):
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return False
    return bool(os.stat(path).st_mode & stat.S_IROTH)


def imported_checkout(venv):
    """The folder holding the grading package that the .venv's Python imports (an editable install's may be another
    checkout than this one), or None."""
    code = "import grading, os; print(os.path.dirname(os.path.dirname(os.path.realpath(grading.__file__))))"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    try:  # from /, so that the folder it runs in is not what it imports
        done = subprocess.run(
            [str(Path(venv) / "bin" / "python"), "-c", code], capture_output=True, text=True, env=env, cwd="/"
        )
    except OSError:
        return None
    return Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None


def exposed_secrets(course_from, venv):
    """The files of the checkout, of the checkout whose grading package its .venv imports, and of the .venv, that hold
    the hidden checks, the solutions or the catalogues and that a student's account could read."""
    candidates = []
    for checkout in dict.fromkeys(c for c in (Path(course_from), imported_checkout(venv)) if c is not None):
        candidates += [checkout / "grading" / "checks" / "backprop_checks.py"]
        candidates += sorted((checkout / "grading" / "course_kit").glob("*catalogue*.py"))
        candidates += [checkout / "grading" / "course_kit" / "demo_class.py"]
        candidates += sorted((checkout / "source").glob("*/*.ipynb"))
    candidates += sorted(Path(venv).resolve().glob("lib/python*/site-packages/grading/checks/backprop_checks.py"))
    return [p for p in candidates if readable_by_others(p)]


# ---------------------------------------------------------------------------------------------------------------
# checks


def userns_diagnosis():
    """Why unprivileged user namespaces may be off here, from the kernel's settings."""
    notes = []
    for path, bad, meaning in (
        ("/proc/sys/kernel/unprivileged_userns_clone", "0", "the kernel forbids them (Debian's switch)"),
        ("/proc/sys/user/max_user_namespaces", "0", "none may be made"),
        ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1", "AppArmor restricts them (Ubuntu 24.04+)"),
    ):
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        if value == bad:
            notes.append(f"{path} = {value}: {meaning}")
    return "; ".join(notes) or (
        "no kernel switch forbids them: a container's seccomp profile may (Docker's default "
        "refuses unshare(CLONE_NEWUSER) to unprivileged processes)"
    )


def check_accounts(runtime, student, instructor, student_etc, instructor_etc, course_dir, library):
    """A student's Python imports what a server needs, and not the course's package; the instructor can start the
    grading sandbox."""
    probe = "import jupyterhub, jupyterlab, nbgrader, torch, hub_private_submit, importlib.util as u\n"
    probe += "print(u.find_spec('grading') is None)"
    result = run_as(student, ["python", "-c", probe], runtime, student_etc)
    if result.stdout.strip() != "True":
        raise SetupError(f"a student's Python finds the course's package `grading` (hidden checks): {result.stdout}")
    probe = "\n".join(
        [
            "from grading.engine.sandbox import Limits, bwrap_problem",
            "problem = bwrap_problem(Limits())",
            "print(problem or 'ok')",
        ]
    )
    result = run_as(
        instructor, ["python", "-c", probe], runtime, instructor_etc, cwd=course_dir, check=False, pythonpath=library
    )
    verdict = (result.stdout.strip().splitlines() or [result.stderr.strip()[-500:]])[-1]
    if verdict != "ok":
        return (
            f"the instructor's account cannot start the grading sandbox: {verdict}. Unprivileged user "
            f"namespaces, which bubblewrap needs, look unavailable: {userns_diagnosis()}. Autograde refuses "
            "to run student code unsandboxed"
        )
    return None


# ---------------------------------------------------------------------------------------------------------------


def install_proxy():
    """npm's configurable-http-proxy as hub/package-lock.json pins it, in hub/node_modules, if missing or stale."""
    lock, installed = HUB_DIR / "package-lock.json", HUB_DIR / "node_modules" / ".package-lock.json"
    if PROXY.exists() and installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise SetupError("Node.js and npm are missing: apt-get install -y nodejs npm (make hub does as root)")
    say("installing configurable-http-proxy (hub/package-lock.json)")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=HUB_DIR, check=True)


def setup(
    hub_root,
    roster,
    instructor_name,
    course_from=REPO,
    venv=REPO / ".venv",
    allow_readable_checkout=False,
    student_disk=DEFAULT_STUDENT_DISK,
):
    if os.geteuid() != 0:
        raise SetupError("run as root: JupyterHub starts each user's server as their own Unix account")
    hub_root = Path(hub_root).resolve()
    course_from = Path(course_from).resolve()
    exposed = exposed_secrets(course_from, venv)
    if exposed:
        where = "\n  ".join(map(str, exposed))
        message = (
            f"students could read the hidden checks and solutions in {course_from}:\n  {where}\n"
            f"Make the checkout private (chmod 700 {course_from}, or keep it under /root) and run make hub again"
        )
        if not allow_readable_checkout:
            raise SetupError(message + ", or pass --allow-readable-checkout to accept it")
        say("WARNING: " + message)
    for folder in (hub_root.parent, hub_root):
        folder.mkdir(parents=True, exist_ok=True)
    os.chmod(hub_root, 0o755)
    state = hub_root / "state"
    state.mkdir(mode=0o700, exist_ok=True)
    os.chmod(state, 0o700)
    install_proxy()
    course_id = course_id_of(course_from)
    students = read_roster(roster)
    if instructor_name in {sid for sid, _ in students}:
        raise SetupError(f"the instructor's account {instructor_name!r} is also a student id of {roster}")
    say(f"runtime {hub_root / 'venv'} from {venv}")
    runtime = sync_runtime(venv, hub_root / "venv")
    instructor = ensure_account(instructor_name, "Course instructor")
    library = install_instructor_library(course_from / "grading", hub_root / "instructor-lib", instructor)
    accounts = [ensure_account(sid, full_name) for sid, full_name in students]
    course_dir = Path(instructor.pw_dir) / course_id
    exchange = hub_root / "exchange"
    make_exchange(exchange, course_id, instructor)
    disk_problem = make_student_storage(hub_root, exchange / course_id / "inbound", accounts, instructor, student_disk)
    cgroup_problem = server_cgroups.problem()
    cpu_problem = cgroup_problem or server_cgroups.cpu_problem()
    tmp_problem = private_tmp.problem()
    etc = hub_root / "etc"
    write_config_dirs(etc, exchange, course_id, course_dir)
    make_course(course_from, course_dir, roster, instructor, runtime, etc / "instructor", library)
    problem = check_accounts(
        runtime, students[0][0], instructor, etc / "student", etc / "instructor", course_dir, library
    )
    klass = {
        "course_id": course_id,
        "instructor": instructor_name,
        "students": [sid for sid, _ in students],
        "course_dir": str(course_dir),
        "runtime": str(runtime),
        "exchange": str(exchange),
        "config_dirs": {"student": str(etc / "student"), "instructor": str(etc / "instructor")},
        "instructor_library": str(library),
        "logins_file": str(Path(instructor.pw_dir) / LOGINS_FILE),
        "proxy": str(PROXY),
        "sandbox_problem": problem,
        # each student's disk (hub/student_disks.py), each student server's cgroup and its CPU limit
        # (hub/server_cgroups.py), its own /tmp, /var/tmp and /dev/shm (hub/private_tmp.py)
        "student_disks": {"size": student_disk, "problem": disk_problem},
        "server_cgroups": {"problem": cgroup_problem, "cpu_problem": cpu_problem},
        "private_tmp": {"problem": tmp_problem},
    }
    _write_if_changed(state / "class.json", json.dumps(klass, indent=2) + "\n", 0o600)
    make_logins(state, [instructor_name] + [sid for sid, _ in students], instructor)
    if problem:
        say("WARNING: " + problem)
    if not disk_problem:
        say(f"each student's home and inbound folder: a disk of their own, {student_disk} bytes ({hub_root / 'disks'})")
    if not cgroup_problem:
        cpu = "" if cpu_problem else " and CPU time"
        say(f"each student's server: a cgroup of its own (memory, processes{cpu} of the whole server)")
    if not tmp_problem:
        say("each student's server: /tmp, /var/tmp and /dev/shm of its own")
    for warning in limit_warnings(klass):
        say("WARNING: " + warning)
    return klass


def limit_warnings(klass):
    """What the class lacks of its limits per student, and what the instructor must set up instead."""
    warnings = []
    disks = klass["student_disks"]
    if disks["problem"]:
        warnings.append(
            f"no disk of their own for the students ({disks['problem']}): their homes and inbound folders share "
            "the disk that holds the hub's state and the gradebook, and one student can fill it. Run make hub "
            "where loop devices can be mounted (as root, not in an unprivileged container), or give /home and "
            "HUB_ROOT user quotas (ext4/XFS: mount with usrquota, then setquota per student)"
        )
    if klass["server_cgroups"]["problem"]:
        warnings.append(
            f"no memory limit per student server ({klass['server_cgroups']['problem']}): only each process's "
            "memory is limited, and a student running many processes can exhaust the machine's memory. Run the hub "
            "where it can make cgroups (as root, with /sys/fs/cgroup writable)"
        )
    cpu_problem = klass["server_cgroups"].get("cpu_problem")
    if cpu_problem and not klass["server_cgroups"]["problem"]:
        warnings.append(
            f"no CPU limit per student server ({cpu_problem}): a student's busy loops can take every core of the "
            "machine. Mount cgroup v1's cpu hierarchy (/sys/fs/cgroup/cpu) or enable cgroup v2's cpu controller"
        )
    tmp_problem = (klass.get("private_tmp") or {}).get("problem")
    if tmp_problem:
        warnings.append(
            f"no /tmp, /var/tmp and /dev/shm of their own for the students' servers ({tmp_problem}): they share the "
            "machine's, where one student can fill the root disk and others see her files. Run the hub where root "
            "may make mount namespaces (not in an unprivileged container)"
        )
    return warnings


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--hub-root",
        type=Path,
        default=Path(os.environ.get("HUB_ROOT", DEFAULT_HUB_ROOT)),
        help="where the class lives (default: $HUB_ROOT or %(default)s)",
    )
    parser.add_argument(
        "--roster", type=Path, default=REPO / "students.csv", help="students.csv: id, first_name, last_name, email"
    )
    parser.add_argument(
        "--instructor",
        default=os.environ.get("HUB_INSTRUCTOR", "instructor"),
        help="the instructor's account (default: $HUB_INSTRUCTOR or %(default)s)",
    )
    parser.add_argument(
        "--course-from",
        type=Path,
        default=REPO,
        help="course to copy for the instructor (its nbgrader_config.py and source/)",
    )
    parser.add_argument(
        "--student-disk",
        type=int,
        default=int(os.environ.get("HUB_STUDENT_DISK", DEFAULT_STUDENT_DISK)),
        help="bytes of each student's own disk, for their home and inbound folder; 0: none "
        "(default: $HUB_STUDENT_DISK or %(default)s)",
    )
    parser.add_argument(
        "--allow-readable-checkout",
        action="store_true",
        default=os.environ.get("HUB_ALLOW_READABLE_CHECKOUT") == "1",
        help="serve the class even though students could read the checkout's hidden checks and solutions",
    )
    args = parser.parse_args()
    try:
        klass = setup(
            args.hub_root,
            args.roster,
            args.instructor,
            args.course_from,
            allow_readable_checkout=args.allow_readable_checkout,
            student_disk=args.student_disk,
        )
    except SetupError as error:
        sys.exit(f"[hub] {error}")
    say(
        f"logins: each account's own Unix password; those made here are in {klass['logins_file']} (the students', "
        f"readable by {klass['instructor']} only) and {args.hub_root.resolve() / 'state' / 'logins.json'} (root only)"
    )


if __name__ == "__main__":
    main()
