"""JupyterLab on a free loopback port and Chromium driven by Playwright, for the browser tests."""

import contextlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from playwright.sync_api import expect

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Quiet Chromium: no sync, component updates or other background traffic; --no-sandbox for running as root in CI.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# JupyterLab settings for the tests: no news prompt, no update check.
# Every cell rendered (no windowing), so that the tests find each cell in the page.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyterlab(root, state_dir, timeout=600):
    """JupyterLab serving root (also its working directory, where nbgrader finds its configuration).

    Yields (base_url, token). Its settings, workspaces and runtime files live in state_dir.
    """
    port, token = free_port(), secrets.token_hex(16)
    state_dir = Path(state_dir)
    for name, settings in LAB_SETTINGS.items():
        path = state_dir / "settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "JUPYTERLAB_SETTINGS_DIR": str(state_dir / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(state_dir / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(state_dir / "runtime"),
    }
    log = open(state_dir / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=",
            "--ServerApp.shutdown_no_activity_timeout=900",
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited {server.returncode}:\n{(state_dir / 'jupyterlab.log').read_text()}"
                )
            try:
                with urllib.request.urlopen(f"{base_url}/api/status?token={token}", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"JupyterLab did not start in {timeout} s:\n{(state_dir / 'jupyterlab.log').read_text()}"
                )
            time.sleep(0.3)
        yield base_url, token
    finally:
        server.terminate()  # the server shuts its kernels down
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@contextlib.contextmanager
def chromium():
    """A headless Chromium browser (the Debian package, never a downloaded one)."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        raise RuntimeError("Chromium is missing: install the Debian package chromium (make setup does as root)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def on_this_machine(url):
    """Whether loading url stays on this machine: a file, data or blob URL, or a loopback address."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("file", "data", "blob", "about"):
        return True
    try:
        return parts.hostname == "localhost" or ipaddress.ip_address(parts.hostname or "").is_loopback
    except ValueError:
        return False


@contextlib.contextmanager
def offline_page(browser, **options):
    """A page that reaches nothing beyond this machine, and the list of what it tried to.

    Yields (page, blocked): every request to another host is aborted and its URL appended to blocked.
    """
    context = browser.new_context(service_workers="block", **options)  # a service worker would bypass the routes
    blocked = []

    def only_this_machine(route):
        if on_this_machine(route.request.url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_this_machine)
    try:
        yield context.new_page(), blocked
    finally:
        context.close()


def menu(page, top, item):
    """Click JupyterLab's menu `top`, then its item `item`."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(top)}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def formgrader_submission(page, assignment, student, timeout=90_000):
    """Open `student`'s submission of `assignment` in the formgrader of the JupyterLab on `page`, as an instructor
    clicks there, and return the formgrader's frame once the page can take a score.

    Each click waits for the page it opens (its breadcrumb): a click inside the frame does not wait for the frame's
    navigation, and a second click on the same name could land on the page still shown. The score boxes are on the
    page before their script has loaded the grades; a score typed earlier is overwritten, so this waits for the
    placeholders the grades' views set."""
    menu(page, "Nbgrader", "Formgrader")
    formgrader = page.frame_locator("#formgrader-iframe iframe")
    formgrader.get_by_role("link", name="Manual Grading", exact=True).click()
    for depth in (2, 3):  # the assignment, then its notebook
        formgrader.locator("td a", has_text=re.compile(f"^{re.escape(assignment)}$")).first.click()
        expect(formgrader.locator(".breadcrumb li")).to_have_count(depth, timeout=timeout)
    formgrader.locator("td.name a.name-hidden").first.wait_for(timeout=timeout)
    formgrader.locator("#toggle_names").click()
    formgrader.get_by_role("link", name=student, exact=True).click()
    for loaded in ("input.extra-credit[placeholder]", "textarea.comment[placeholder]"):  # the grades, the comments
        formgrader.locator(loaded).first.wait_for(state="attached", timeout=timeout)
    return formgrader
