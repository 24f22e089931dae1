"""The grader's kernel client starts talking to a kernel as soon as the kernel answers, and no later.

Fakes stand for the kernel's shell and IOPub channels, so these tests need no kernel and no sandbox.
"""

import asyncio
from queue import Empty

from jupyter_client.session import Session

from grading.engine.execute_sandboxed import BoundedKernelClient


class Shell:
    """Answers every kernel_info request at once."""

    def __init__(self, session):
        self.session, self.sent = session, []

    def send(self, msg):
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


def ready_client(joins_at=1):
    session = Session()
    client = BoundedKernelClient(session=session)
    client._shell_channel = Shell(session)
    client._iopub_channel = Iopub(session, client._shell_channel, joins_at)
    return client


def test_client_is_ready_once_iopub_brings_its_requests_idle_though_iopub_never_goes_quiet():
    client = ready_client()
    asyncio.run(asyncio.wait_for(client.wait_for_ready(timeout=30), 5))
    assert len(client.shell_channel.sent) == 1


def test_client_asks_again_when_iopub_joined_too_late_to_bring_the_first_requests_idle():
    client = ready_client(joins_at=3)
    asyncio.run(asyncio.wait_for(client.wait_for_ready(timeout=30), 5))
    assert [m["msg_type"] for m in client.shell_channel.sent] == ["kernel_info_request"] * 3
