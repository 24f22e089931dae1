"""JupyterHub of the course "Backpropagation using PyTorch" (make hub): the class that hub/setup_hub.py prepared.

Run as root (each user's server is started as that user's Unix account), from the course's .venv:

    HUB_ROOT=/srv/backprop-hub jupyterhub -f hub/jupyterhub_config.py

Environment: HUB_ROOT (default /srv/backprop-hub), HUB_IP (default 127.0.0.1), HUB_PORT (the address users open,
default 8000), HUB_DOMAIN (see below), HUB_API_PORT (the hub's own port behind the proxy, default 8081),
HUB_PROXY_API_PORT (the proxy's REST API, default 8001).

Each user's server on an origin of its own (JupyterHub's subdomain_host): the hub at http://localhost:8000, each
user's server at http://<user>.localhost:8000/user/<user>/ (browsers resolve *.localhost to this machine), so that a
page a student's server serves cannot script the instructor's JupyterLab or use her cookies. A site sets
HUB_DOMAIN=hub.example.edu: the hub is then https://hub.example.edu and each user https://<user>.hub.example.edu,
which needs wildcard DNS (*.hub.example.edu) and a wildcard TLS certificate on the front end that serves HTTPS and
forwards to HUB_IP:HUB_PORT, keeping the Host header. Links to http://<hub>/user/<user>/... still work: the hub
sends them on to the user's own origin.

Login: JupyterHub's PAM authenticator, each person with their own Unix account's password (hub/setup_hub.py gives
one to each account that has none: the students' are in ~instructor/hub-logins.csv, readable by the instructor
only). Only the roster's students and the instructor may log in. A class can plug in the university's login instead,
in HUB_ROOT/state/jupyterhub_site.py (README: "The class on JupyterHub"). As the hub's admin, the instructor may also
open students' servers.

The formgrader: Nbgrader > Formgrader in the instructor's JupyterLab, a frame her server allows because it is of her
own origin (hub/setup_hub.py), or http://<instructor>.localhost:8000/user/<instructor>/formgrader in a tab of its own.

Limits per student: see STUDENT_LIMITS below; each student's server in a cgroup of its own (hub/server_cgroups.py:
memory, processes, CPU), with /tmp, /var/tmp and /dev/shm of its own (hub/private_tmp.py), each student's home and
folder of the exchange on a disk of their own (hub/student_disks.py, made by setup_hub.py).
"""

import json
import os
import pwd
import shutil
import sys
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner

sys.path.insert(0, str(Path(__file__).resolve().parent))  # hub/: the students' cgroups and disks
import private_tmp  # noqa: E402
import server_cgroups  # noqa: E402
import student_disks  # noqa: E402

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)

HUB_ROOT = Path(os.environ.get("HUB_ROOT", "/srv/backprop-hub"))
STATE = HUB_ROOT / "state"
CLASS = json.loads((STATE / "class.json").read_text())
RUNTIME = Path(CLASS["runtime"])
INSTRUCTOR = CLASS["instructor"]

# Addresses: everything on this machine's loopback unless HUB_IP says otherwise; each user on an origin of their own,
# <user>.<domain> (the docstring).
ip = os.environ.get("HUB_IP", "127.0.0.1")
port = int(os.environ.get("HUB_PORT", 8000))
c.JupyterHub.bind_url = f"http://{ip}:{port}"
DOMAIN = os.environ.get("HUB_DOMAIN") or "localhost"
c.JupyterHub.subdomain_host = f"http://localhost:{port}" if DOMAIN == "localhost" else f"https://{DOMAIN}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ.get("HUB_API_PORT", 8081))

# The proxy: npm's configurable-http-proxy, pinned in hub/package-lock.json (hub/setup_hub.py installs it).
c.ConfigurableHTTPProxy.command = [CLASS["proxy"]]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{int(os.environ.get('HUB_PROXY_API_PORT', 8001))}"
c.ConfigurableHTTPProxy.pid_file = str(STATE / "proxy.pid")

# The hub's own files: root only.
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every user's server
c.JupyterHub.cleanup_proxy = True

# Who may log in: each with their own Unix password (see the docstring).
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.open_sessions = False  # no PAM session: servers run without systemd-logind
c.Authenticator.allowed_users = set(CLASS["students"]) | {INSTRUCTOR}
c.Authenticator.admin_users = {INSTRUCTOR}

# Each user's server: JupyterLab from the class's runtime (every account can run it), as the user's own Unix
# account, in their home; the instructor's in the course directory, with the formgrader.


class ClassSpawner(LocalProcessSpawner):
    """JupyterHub's local-process spawner whose server process first enters the student's cgroup, and mount and IPC
    namespaces of its own with private /tmp, /var/tmp and /dev/shm and the rest of the machine read-only (as root,
    before it becomes the student; hub/private_tmp.py), so that the server and everything it starts share the
    cgroup's limits, write only to her disk and her memory, and see no other student's temporary files."""

    cgroup = None  # a server_cgroups.ServerCgroup, made by pre_spawn_hook
    private_tmp = None  # the arguments of private_tmp.enter, made by pre_spawn_hook

    def make_preexec_fn(self, name):
        become_user = super().make_preexec_fn(name)
        cgroup, tmp = self.cgroup, self.private_tmp

        def preexec():
            if cgroup is not None:
                cgroup.enter()
            if tmp is not None:
                private_tmp.enter(*tmp)
            become_user()

        return preexec


c.JupyterHub.spawner_class = ClassSpawner
c.Spawner.cmd = [str(RUNTIME / "bin" / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.env_keep = ["LANG", "LC_ALL"]  # nothing of the hub's own environment (its PATH names the course's .venv)
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 120


def role(spawner):
    return "instructor" if spawner.user.name == INSTRUCTOR else "student"


c.Spawner.environment = {
    "PATH": f"{RUNTIME / 'bin'}:/usr/local/bin:/usr/bin:/bin",
    # nbgrader's exchange and course for students; the course directory's configuration for the instructor
    "JUPYTER_CONFIG_PATH": lambda spawner: CLASS["config_dirs"][role(spawner)],
}


# Limits of each student's server and everything it starts (kernels, terminals), so that a runaway or hostile notebook
# fails alone: processes (and threads) of the student's account, address space of each process, size of each file
# written (prlimit); and the memory, processes and CPU time of the server and all it starts together, in a cgroup of
# its own (hub/server_cgroups.py), whose OOM killer ends the biggest process of that student's server only, and whose
# CPU quota holds her busy loops to HUB_STUDENT_CPUS cores (the same share for every student when cores are scarce).
# HUB_STUDENT_PROCESSES, HUB_STUDENT_MEMORY, HUB_STUDENT_FILE_SIZE, HUB_STUDENT_SERVER_MEMORY, HUB_STUDENT_CPUS,
# HUB_STUDENT_SHM and HUB_STUDENT_TMP (bytes, but cores) change them. /tmp and /var/tmp are on the student's own disk
# (hub/private_tmp.py; a tmpfs of HUB_STUDENT_TMP bytes where she has none), /dev/shm a tmpfs of HUB_STUDENT_SHM bytes.
# The instructor's server has none: it runs the grader, whose sandbox limits each graded notebook itself. Each
# student's home and inbound folder are on a disk of their own when hub/setup_hub.py could make one (class.json).
STUDENT_LIMITS = {
    "nproc": int(os.environ.get("HUB_STUDENT_PROCESSES", 512)),
    "as": int(os.environ.get("HUB_STUDENT_MEMORY", 4 << 30)),
    "fsize": int(os.environ.get("HUB_STUDENT_FILE_SIZE", 1 << 30)),
}
SERVER_MEMORY = int(os.environ.get("HUB_STUDENT_SERVER_MEMORY", 4 << 30))
SERVER_CPUS = float(os.environ.get("HUB_STUDENT_CPUS", 1))
SHM_SIZE = int(os.environ.get("HUB_STUDENT_SHM", 512 << 20))
TMP_SIZE = int(os.environ.get("HUB_STUDENT_TMP", 512 << 20))
CGROUPS = not (CLASS.get("server_cgroups") or {"problem": "not probed"})["problem"]
CPU_LIMIT = not (CLASS.get("server_cgroups") or {}).get("cpu_problem", "not probed")
DISKS = not (CLASS.get("student_disks") or {"problem": "not made"})["problem"]
PRIVATE_TMP = not (CLASS.get("private_tmp") or {"problem": "not probed"})["problem"]
PRLIMIT = shutil.which("prlimit") or "/usr/bin/prlimit"


def student_cmd():
    """The students' server command: jupyterhub-singleuser under prlimit (util-linux) with STUDENT_LIMITS."""
    limits = [f"--{name}={value}" for name, value in STUDENT_LIMITS.items()]
    return [PRLIMIT, *limits, "--", str(RUNTIME / "bin" / "jupyterhub-singleuser")]


def pre_spawn_hook(spawner):
    if role(spawner) == "student":
        spawner.cmd = student_cmd()
        if DISKS and not student_disks.is_mounted(pwd.getpwnam(spawner.user.name).pw_dir):
            # after a reboot, before make hub mounted the students' disks again: nothing written where no limit holds
            raise RuntimeError(f"{spawner.user.name}'s disk is not mounted: run make hub (hub/setup_hub.py) again")
        if CGROUPS:
            cpus = SERVER_CPUS if CPU_LIMIT else None
            spawner.cgroup = server_cgroups.ServerCgroup.make(
                spawner.user.name, SERVER_MEMORY, STUDENT_LIMITS["nproc"], cpus
            )
        if PRIVATE_TMP:
            disk = student_disks.mount_point(HUB_ROOT, spawner.user.name)
            folders, device = (private_tmp.prepare(disk), private_tmp.device_of(disk)) if DISKS else (None, None)
            # with a disk of her own, nothing else of the machine is writable to her (private_tmp.read_only_but)
            spawner.private_tmp = (folders, TMP_SIZE, SHM_SIZE, [HUB_ROOT], device)
    if role(spawner) == "instructor":
        spawner.notebook_dir = CLASS["course_dir"]
        # the course's package (hidden checks, solutions, the grader): the instructor's only
        spawner.environment = {**spawner.environment, "PYTHONPATH": CLASS["instructor_library"]}


def post_stop_hook(spawner):
    """What the student's server left running ends with it (and its /dev/shm with its mount namespace); its cgroup
    goes, and her /tmp and /var/tmp are emptied."""
    if getattr(spawner, "cgroup", None) is not None:
        spawner.cgroup.remove()
        spawner.cgroup = None
    if getattr(spawner, "private_tmp", None) is not None:
        if spawner.private_tmp[0]:
            private_tmp.clear(student_disks.mount_point(HUB_ROOT, spawner.user.name))
        spawner.private_tmp = None


c.Spawner.pre_spawn_hook = pre_spawn_hook
c.Spawner.post_stop_hook = post_stop_hook

# The site's own settings last, such as the university's login in place of the demo one (README: "The class on
# JupyterHub"): HUB_ROOT/state/jupyterhub_site.py, root only as it may hold a client secret.
SITE = STATE / "jupyterhub_site.py"
if SITE.is_file():
    load_subconfig(str(SITE))  # noqa: F821 (provided by JupyterHub when it loads this file)
