"""The grader's kernel client starts talking to a kernel as soon as the kernel answers, and no later; and it
connects again after zmq dropped a connection without aborting the process.

Fakes stand for the kernel's shell and IOPub channels, or a zmq publisher for the kernel's IOPub, so these tests
need no kernel and no sandbox.
"""

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from queue import Empty

from jupyter_client.session import Session

from grading.engine.execute_sandboxed import BoundedKernelClient


class Shell:
    """Answers every kernel_info request at once."""

    def __init__(self, session):
        self.session, self.sent = session, []

    def send(self, msg):
        msg["sent_at"] = time.monotonic()
        self.sent.append(msg)

    async def get_msg(self, timeout=None):
        return self.session.msg("kernel_info_reply", {"status": "ok", "protocol_version": "5.3"}, self.sent[-1])


class Iopub:
    """Brings the idle status of the requests from the `joins_at`-th on (a subscriber that joined late missed the
    earlier ones), and between them, without pause, statuses of a request of someone else: never quiet."""

    def __init__(self, session, shell, joins_at=1):
        self.session, self.shell, self.joins_at = session, shell, joins_at
        self.given = set()

    async def get_msg(self, timeout=None):
        await asyncio.sleep(0.001)
        request = self.shell.sent[-1]
        if len(self.shell.sent) < self.joins_at:
            await asyncio.sleep(timeout or 0)
            raise Empty
        if request["header"]["msg_id"] not in self.given:
            self.given.add(request["header"]["msg_id"])
            return self.session.msg("status", {"execution_state": "idle"}, request)
        other = self.session.msg("execute_request", {})
        return self.session.msg("status", {"execution_state": "busy"}, other)


class SlowIopub:
    """Brings each request's idle status `delay` seconds after the request: a kernel on a busy machine."""

    def __init__(self, session, shell, delay):
        self.session, self.shell, self.delay = session, shell, delay
        self.given = set()

    async def get_msg(self, timeout=None):
        deadline = time.monotonic() + (timeout or 0)
        while True:
            for request in self.shell.sent:
                if (
                    request["header"]["msg_id"] not in self.given
                    and time.monotonic() >= request["sent_at"] + self.delay
                ):
                    self.given.add(request["header"]["msg_id"])
                    return self.session.msg("status", {"execution_state": "idle"}, request)
            if time.monotonic() >= deadline:
                raise Empty
            await asyncio.sleep(0.01)


def ready_client(joins_at=1, idle_delay=None):
    session = Session()
    client = BoundedKernelClient(session=session)
    client._shell_channel = Shell(session)
    if idle_delay is None:
        client._iopub_channel = Iopub(session, client._shell_channel, joins_at)
    else:
        client._iopub_channel = SlowIopub(session, client._shell_channel, idle_delay)
    return client


def test_client_is_ready_once_iopub_brings_its_requests_idle_though_iopub_never_goes_quiet():
    client = ready_client()
    asyncio.run(asyncio.wait_for(client.wait_for_ready(timeout=30), 5))
    assert len(client.shell_channel.sent) == 1


def test_client_asks_again_when_iopub_joined_too_late_to_bring_the_first_requests_idle():
    client = ready_client(joins_at=3)
    asyncio.run(asyncio.wait_for(client.wait_for_ready(timeout=30), 5))
    assert [m["msg_type"] for m in client.shell_channel.sent] == ["kernel_info_request"] * 3


def test_client_is_ready_when_a_busy_kernels_idle_comes_after_it_asked_again():
    client = ready_client(idle_delay=0.3)
    asyncio.run(asyncio.wait_for(client.wait_for_ready(timeout=30), 5))
    assert len(client.shell_channel.sent) <= 4


# In a process of its own: libzmq aborts the process it fails in.
READ_AHEAD_THEN_CONNECT_AGAIN = """
import asyncio, time
from queue import Empty
import zmq, zmq.asyncio
from jupyter_client.session import Session
from grading.engine.execute_sandboxed import WatchedChannel

async def main():
    session = Session(key=b"key")
    publisher = zmq.Context.instance().socket(zmq.PUB)  # the kernel's IOPub
    port = publisher.bind_to_random_port("tcp://127.0.0.1")
    subscriber = zmq.asyncio.Context.instance().socket(zmq.SUB)
    subscriber.setsockopt(zmq.SUBSCRIBE, b"")
    subscriber.connect(f"tcp://127.0.0.1:{port}")
    channel = WatchedChannel(subscriber, session)
    polled = zmq.Socket.shadow(subscriber.underlying)
    while not polled.poll(10):  # once polled, the SUB socket holds the next message's first frame, read ahead
        session.send(publisher, "status", {"execution_state": "before"})
    channel.connect_again()  # what it does when zmq dropped the connection
    states = [(await channel.get_msg(timeout=1))["content"]["execution_state"]]
    deadline = time.monotonic() + 30
    while states[-1] != "after" and time.monotonic() < deadline:  # connected again: what comes now arrives
        session.send(publisher, "status", {"execution_state": "after"})
        try:
            states.append((await channel.get_msg(timeout=0.05))["content"]["execution_state"])
        except Empty:
            pass
    print(states[0], states[-1])
    channel.close()

asyncio.run(main())
"""


def test_iopub_connects_again_when_it_holds_a_message_read_ahead_and_reads_it_whole():
    """A SUB socket disconnected while it holds the first frame of a message it read ahead aborts the process at
    the next frame (zeromq/libzmq#2163): the channel reads that message whole before it connects again."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", READ_AHEAD_THEN_CONNECT_AGAIN],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["before", "after"], done.stdout
