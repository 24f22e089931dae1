"""Execute one sanitized notebook in the sandbox: the only step of grading that runs student code.

    execute_in_sandbox(notebook_json, files, limits, questions, probe_setup) -> (executed_notebook_json, outcome)

questions (grade id -> source of a probe cell, grading/checks/judge.py) are asked right after the test cell of that
grade id has run, and what the kernel printed while answering comes back in outcome.answers, to be judged elsewhere.
probe_setup, if any, runs once in the kernel before its first probe (what every probe uses, sent once).

Everything in and out is plain, picklable data (str, dict of bytes, Limits, ExecutionOutcome), so the call can run in
any worker process.
It never touches the gradebook or the course directory. The kernel is nbgrader's Execute preprocessor
(an nbclient client) with a kernel manager that starts the kernel in the sandbox. Whatever happens to
the kernel, the notebook comes back: outputs kept so far, and an error output in every code cell that
did not run to the end, so those cells score 0 and the cells that ran are graded.

What the kernel sends is bounded twice: the notebook that comes back holds at most limits.max_output_bytes of
output (counted as written, whatever the message: LimitedExecute) plus one short note in each cell that lost some,
and the grader never holds more of what is on its way than a few messages of message_limit(limits) bytes
(bounded_context, WatchedChannel), however much the kernel sends.
"""

import json
import logging
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from queue import Empty
from typing import Any, cast

import nbformat
import zmq
import zmq.asyncio
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
from nbgrader.preprocessors import Execute
from traitlets import Type
from zmq.utils.monitor import parse_monitor_message

from .execution_outcome import CellError, ExecutionOutcome, ExecutionStatus
from .kernel_template import TemplateError, TemplateKernelManager, discard_worker_template, worker_template
from .limits import Limits
from .sandbox import SandboxKernelManager, remove_tree, scratch_folder, write_files

ERROR_TEXT_CHARS = 4000
BRIEF_ERROR_CHARS = 200  # an error that does not fit the budget keeps its name and this much of its message
MAX_ANSWER_BYTES = 8 << 20  # what a probe may print; the judge caps what it parses too
MESSAGE_QUEUE = 4  # messages zmq holds for each of the client's sockets (ZMQ_RCVHWM); the rest wait in the kernel
DRAIN_BYTES = 32 << 20  # what a channel takes off zmq ahead of the messages it gave out (WatchedChannel)
WATCH_SECONDS = 0.2  # how often a channel waiting for a message looks whether zmq dropped its connection
RECONNECT_MS = 10  # how soon a client socket tries again to connect (zmq: 100 ms), see bounded_context
IOPUB_JOIN_SECONDS = 0.1  # how long a starting client waits for IOPub to bring a request's idle before asking again
DISPLAY_ID_CHARS = 256  # longest display id kept (IPython's are 32 hexadecimal digits)
OUTPUT_DEPTH = 4  # levels of indentation of an output in a notebook file (notebook, cells, cell, outputs)
LINE_BREAKS = ("\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")  # str.splitlines'
_QUIET = logging.getLogger("grading.execute.client")
_QUIET.setLevel(logging.CRITICAL)  # what the client would log is in the outcome
SIGNALS = {
    4: "an illegal instruction",
    6: "an abort",
    7: "a bus error",
    8: "a floating-point exception",
    9: "being killed (SIGKILL; often the memory limit)",
    11: "a segmentation fault",
}


def message_limit(limits: Limits) -> int:
    """The largest message the client accepts from the kernel (ZMQ_MAXMSGSIZE): room for any output that fits the
    budget and for a probe's answer (JSON printed inside JSON: up to twice its length), never more than
    limits.max_message_bytes. zmq refuses a larger message by dropping the connection, which reconnects; what
    the kernel sent meanwhile is lost (LimitedExecute notes it in the cell)."""
    return min(limits.max_message_bytes, max(limits.max_output_bytes, 2 * MAX_ANSWER_BYTES) + (1 << 20))


def bounded_context(limits: Limits) -> zmq.asyncio.Context:
    """A zmq context whose sockets take messages up to message_limit(limits) and queue at most MESSAGE_QUEUE of
    them: what the grader holds of what a kernel sends, before it is counted, is bounded by these two.

    Its sockets try again to connect 10 ms after a failed attempt (backing off to 100 ms), not zmq's 100 ms: the
    client connects as the kernel starts, before the kernel listens, and the kernel is ready well before 100 ms."""
    context = zmq.asyncio.Context()
    context.setsockopt(zmq.MAXMSGSIZE, message_limit(limits))
    context.setsockopt(zmq.RCVHWM, MESSAGE_QUEUE)
    context.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
    context.setsockopt(zmq.RECONNECT_IVL_MAX, 100)
    return context


class WatchedChannel(AsyncZMQSocketChannel):
    """A channel to the kernel that takes messages off zmq as they come, up to DRAIN_BYTES (and one message more
    before it connects again: connect_again), and connects again when zmq drops its connection.

    zmq queues at most MESSAGE_QUEUE messages for the client, of any size up to ZMQ_MAXMSGSIZE: a burst of many
    small ones (a loop of displays) waits here instead, bounded in bytes, not in messages, so that none is lost.
    zmq drops a connection when a message is larger than ZMQ_MAXMSGSIZE (to zmq a protocol error) and does not
    reconnect it by itself: without this, one message too large would silence the channel for the rest of the
    notebook. What the kernel sent meanwhile is lost; `dropped` counts the drops. If a request was waiting for its
    reply (the shell channel), get_msg gives an error reply in its place, instead of the client waiting in vain.
    """

    def __init__(self, socket, session, loop=None):
        super().__init__(socket, session, loop)
        self.endpoint = socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.limit = socket.getsockopt(zmq.MAXMSGSIZE)
        self.reader: zmq.Socket[bytes] = zmq.Socket.shadow(socket.underlying)  # reads without waiting
        self.monitor = socket.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self.events: zmq.Socket[bytes] = zmq.Socket.shadow(self.monitor.underlying)
        self.taken: deque[list[bytes]] = deque()  # messages read from zmq, not yet given out
        self.taken_bytes = 0
        self.dropped = 0
        self.reconnecting = self.reconnected = False
        self.waiting: dict[str, Any] | None = None  # header of the request whose reply has not come

    def send(self, msg):
        self.waiting = msg["header"]
        super().send(msg)

    async def get_msg(self, timeout=None):  # type: ignore[override] # async, as jupyter_client's own
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.look()
            self.take()  # all that came before a drop is there to read
            if self.taken:
                frames = self.taken.popleft()
                self.taken_bytes -= sum(map(len, frames))
                msg = self.session.deserialize(self.session.feed_identities(frames)[1])
                if self.waiting is not None and msg["parent_header"].get("msg_id") == self.waiting.get("msg_id"):
                    self.waiting = None
                return msg
            if self.reconnected:
                self.reconnected = False
                if self.waiting is not None:  # its reply was refused: the kernel is there, but the reply is not
                    return self.lost_reply()
            left = WATCH_SECONDS if deadline is None else max(0.0, min(WATCH_SECONDS, deadline - time.monotonic()))
            if not await self.socket.poll(int(left * 1000)) and deadline is not None and time.monotonic() >= deadline:
                raise Empty

    def take(self):
        """Read what zmq holds, while what was read and not given out is under DRAIN_BYTES."""
        while self.taken_bytes < DRAIN_BYTES:
            try:
                frames = self.reader.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.taken.append(frames)
            self.taken_bytes += sum(map(len, frames))

    async def msg_ready(self):  # type: ignore[override] # async, as jupyter_client's own
        return bool(self.taken) or await super().msg_ready()

    def look(self):
        """Read what happened to the connection: connect again when zmq dropped it, and note when it is back (a
        kernel that died does not come back: the client then learns it from the kernel manager)."""
        while True:
            try:
                event = parse_monitor_message(self.events.recv_multipart(zmq.NOBLOCK))["event"]
            except zmq.Again:
                return
            if event == zmq.EVENT_DISCONNECTED:
                self.dropped += 1
                self.reconnecting = True
                self.connect_again()
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED and self.reconnecting:
                self.reconnecting, self.reconnected = False, True

    def connect_again(self):
        """Disconnect from the kernel and connect anew.

        A SUB socket that was polled may hold the first frame of the next message, read ahead to match it against
        its subscriptions. Disconnecting ends that message's pipe at once, and reading the rest of it then aborts
        the process in libzmq (`Assertion failed: !_more`, zeromq/libzmq#2163): that message is read whole first,
        beyond DRAIN_BYTES if need be (one message, of at most ZMQ_MAXMSGSIZE)."""
        if self.socket.type == zmq.SUB:
            try:
                frames = self.reader.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                pass
            else:
                self.taken.append(frames)
                self.taken_bytes += sum(map(len, frames))
        else:  # the kernel's ROUTER refuses a second peer with the old identity
            self.socket.setsockopt(zmq.IDENTITY, uuid.uuid4().hex.encode())
        self.socket.disconnect(self.endpoint)
        self.socket.connect(self.endpoint)

    def lost_reply(self):
        """An error reply to the request that was waiting, whose reply zmq refused."""
        request, self.waiting = self.waiting or {}, None
        evalue = f"the kernel's reply was larger than {self.limit} bytes and was refused"
        content = {
            "status": "error",
            "ename": "MessageTooLarge",
            "evalue": evalue,
            "traceback": [f"MessageTooLarge: {evalue}"],
            "execution_count": None,
        }
        return self.session.msg(str(request.get("msg_type", "")).replace("_request", "_reply"), content, request)

    def close(self):
        if not self.monitor.closed:
            self.socket.disable_monitor()
            self.monitor.close(linger=0)
        self.taken.clear()
        super().close()


class BoundedKernelClient(AsyncKernelClient):
    """A kernel client whose sockets come from its kernel manager's zmq context (see bounded_context), where
    jupyter_client's would make a context of its own with zmq's defaults, and whose shell and iopub channels
    connect again when zmq drops them (WatchedChannel)."""

    shell_channel_class = Type(WatchedChannel)
    iopub_channel_class = Type(WatchedChannel)

    def _context_default(self):  # not created here, so not destroyed with the client: its owner destroys it
        return cast(AsyncKernelManager, self.parent).context

    def start_channels(self, shell=True, iopub=True, stdin=True, hb=True, control=True):
        # no heartbeat: the kernel manager says whether the kernel lives (its thread would outlive the context)
        super().start_channels(shell=shell, iopub=iopub, stdin=stdin, hb=False, control=control)

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        """Return once the kernel has answered kernel_info on the shell channel and IOPub has brought the idle status
        of a kernel_info request sent meanwhile (so IOPub is connected).

        jupyter_client's own wait ends by reading IOPub until it has been quiet for 0.2 s: on every kernel start,
        0.2 s in which the worker's core has nothing to do. Messages of other requests that may still come are
        harmless: the execution that follows reads only those of its own requests."""
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        asked: set[str] = set()  # every kernel_info sent: the idle of any of them shows that IOPub is connected
        while True:
            asked.add(self.kernel_info())
            try:
                reply = await self.shell_channel.get_msg(timeout=1)
            except Empty:
                reply = None
            if reply is not None and reply["msg_type"] == "kernel_info_reply":
                if await self._idle_after(asked, seconds=IOPUB_JOIN_SECONDS):
                    self._handle_kernel_info_reply(reply)
                    return
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout} seconds")

    async def _idle_after(self, requests: set[str], seconds: float) -> bool:
        """Whether IOPub brings the idle status of one of `requests` within `seconds` (not if it is not connected
        yet: a subscriber that joins late misses what was published before; a busy kernel's may come late)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await self.iopub_channel.get_msg(timeout=left)
            except Empty:
                return False
            if (
                msg["msg_type"] == "status"
                and msg["content"].get("execution_state") == "idle"
                and msg["parent_header"].get("msg_id") in requests
            ):
                return True
        return False


def written_size(value: Any, depth: int = OUTPUT_DEPTH, limit: int | None = None) -> int:
    """Bytes `value` takes at most in a notebook file, written as nbformat writes it (JSON indented one space per
    level, `depth` levels deep; text split into a list of lines; ASCII at worst escaped). Once the count passes
    `limit` it stops and returns a number above limit, so that a value far too large costs little to refuse."""
    limit = sys.maxsize if limit is None else limit  # none: more bytes than any value in memory can take
    total, pending = 2 * depth + 8, [(value, depth)]  # its place in a list (line break, indentation, comma, ...)
    while pending and total <= limit:
        item, level = pending.pop()
        if isinstance(item, str):
            if len(item) > limit - total:
                return limit + 1
            # as a list of lines: brackets, and for each line quotes, comma, line break and indentation
            breaks = sum(item.count(brk) for brk in LINE_BREAKS)
            total += len(json.dumps(item)) + level + 4 + (1 + breaks) * (level + 6)
        elif isinstance(item, dict | list):
            total += 2 * level + 4  # brackets, the closing one on a line of its own
            for key in item:
                if isinstance(item, dict):
                    total += len(json.dumps(str(key))) + level + 5  # line break, indentation, ": ", ","
                    pending.append((item[key], level + 1))
                else:
                    total += level + 3
                    pending.append((key, level + 1))
                if total > limit:
                    return limit + 1
        else:
            total += len(json.dumps(item))
    return total if total <= limit else limit + 1


class LimitedExecute(Execute):
    """nbgrader's Execute that keeps a bounded amount of output and remembers which cell is running.

    Every output the kernel sends is counted as the bytes it takes in the notebook file (written_size) and kept
    only if it fits what is left of max_output_bytes; otherwise it is dropped as it arrives, and its cell gets one
    short note. That covers streams, display data, execute results and errors, with all their mime types and
    metadata, and display updates (update_display_data, or output with a display_id, which rewrite every earlier
    output with that id: each one rewritten counts). clear_output gives back what it clears. An error that does
    not fit is kept as its name and the start of its message. Widget (comm) messages are not kept at all.
    A probe's output (while `asking`) is the judge's, not the notebook's: only its stdout is kept, within
    MAX_ANSWER_BYTES, and it updates nothing of the notebook.
    """

    def __init__(self, max_output_bytes, questions=None, probe_setup="", **kwargs):
        kwargs.setdefault("store_widget_state", False)
        # a message zmq refused may take the cell's last one with it: the cell then ends after nbclient's
        # iopub_timeout, noted, instead of stopping the notebook
        kwargs.setdefault("raise_on_iopub_timeout", False)
        # ipykernel sleeps 0.5 ms after each cell so that a notebook frontend's outputs do not share a timestamp;
        # this client reads each cell's outputs up to its idle status, which the kernel sends after them
        kwargs.setdefault("extra_arguments", ["--IPythonKernel._execute_sleep=0"])
        # iopub_timeout, how long to wait after a cell's reply for the outputs still on their way, is the caller's
        # (Limits.output_wait_seconds): nbclient's 4 s drops the rest of a burst of outputs on a busy machine,
        # silently; the notebook's own time limit still bounds the wait
        super().__init__(**kwargs)
        self.max_output_bytes = max_output_bytes
        self.kept_bytes = 0
        self.truncated = False
        self.notes = {}  # cell index -> (the one note in that cell saying that output was dropped, its outputs)
        self.running_cell = None
        self.current: tuple[list[Any], int] | None = None  # (outputs, cell index) of the cell whose messages are read
        self.idle_seen = None  # whether the running cell's last message (status idle) arrived
        self.questions = dict(questions or {})
        self.probe_setup = probe_setup  # run once in the kernel, before its first probe
        self.answers = {}
        self.asked_seconds = 0.0  # time the kernel spent answering the judge
        self.asking = None  # the probe cell being run, whose output is the kernel's answer, not the notebook's
        self.asked_ok = False  # whether the kernel's reply to that cell said ok

    def on_cell_start(self, cell, cell_index):  # nbclient hook
        self.running_cell = cell_index

    def on_cell_execute(self, cell, cell_index):  # nbclient hook, right before the kernel is asked to run it
        self.idle_seen = False

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        self.idle_seen, dropped = None, self.dropped_connections()
        cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        if self.idle_seen is False or (self.idle_seen and self.dropped_connections() != dropped):
            self.cut(cell.outputs, cell_index, lost=True)  # zmq refused a message too large, or some came too late
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if self.asking is None and gid in self.questions:
            self.answers[gid] = await self.ask(self.questions.pop(gid), cell_index)
        return cell

    execute_cell = run_sync(async_execute_cell)  # nbclient binds its own coroutine here; ours asks the probes

    def dropped_connections(self):
        return sum(getattr(channel, "dropped", 0) for channel in (self.kc.iopub_channel, self.kc.shell_channel))

    async def ask(self, code, cell_index):
        """Run a probe cell right after the test cell at cell_index (the probe setup first, if this kernel has not
        run it yet); what the probe printed (the judge reads its answer)."""
        test_cell, started = self.nb.cells[cell_index], time.monotonic()
        try:
            if self.probe_setup and (await self._run_probe_cell(self.probe_setup, cell_index))[1]:
                self.probe_setup = ""  # done; one that failed (interrupted, say) runs again before the next probe
            return (await self._run_probe_cell(code, cell_index))[0][:MAX_ANSWER_BYTES]
        finally:
            self.nb.cells[cell_index] = test_cell  # nbclient stores the cell it ran at cell_index
            self.asked_seconds += time.monotonic() - started

    async def _run_probe_cell(self, code, cell_index):
        """Run code as the judge's cell, its output kept apart from the notebook's: (the text it printed, whether
        the kernel replied ok: not if it raised or was interrupted)."""
        self.asking, self.asked_bytes, self.asked_ok = nbformat.v4.new_code_cell(code), 0, False
        try:
            await super().async_execute_cell(self.asking, cell_index, store_history=False)
            return "".join(o.text for o in self.asking.outputs), self.asked_ok
        finally:
            self.asking = None

    def process_message(self, msg, cell, cell_index):
        msg_type, content = msg["msg_type"], msg["content"]
        if msg_type.startswith("comm"):
            return None  # widgets: nothing of them is kept
        if msg_type == "status" and content.get("execution_state") == "idle":
            self.idle_seen = True
        count = content.get("execution_count")
        if count is not None and not (type(count) is int and 0 <= count < 1 << 31):
            content["execution_count"] = None
        transient = content.get("transient")
        shown_as = transient.get("display_id") if isinstance(transient, dict) else None
        if shown_as is not None and not (isinstance(shown_as, str) and len(shown_as) <= DISPLAY_ID_CHARS):
            content["transient"] = None  # a display id is kept as long as the notebook runs: a short string, or none
        self.current = (cell.outputs, cell_index)
        return super().process_message(msg, cell, cell_index)

    def _update_display_id(self, display_id, msg):
        """Rewrite the outputs shown with display_id, if the budget has room for every one of them rewritten."""
        if self.asking is not None:
            return
        targets = [
            self.nb.cells[cell_index].outputs[index]
            for cell_index, indices in self._display_id_map.get(display_id, {}).items()
            for index in indices
            if index < len(self.nb.cells[cell_index].get("outputs", []))
        ]
        if not targets:
            return
        content = msg["content"]
        update = {"data": content.get("data", {}), "metadata": content.get("metadata", {})}
        before = sum(written_size({"data": out.get("data"), "metadata": out.get("metadata")}) for out in targets)
        room = self.max_output_bytes - self.kept_bytes + before
        each = written_size(update, limit=room // len(targets))
        if each * len(targets) > room:
            assert self.current is not None  # process_message set it before the update came here
            self.cut(*self.current, dropped="display update")
            return
        try:
            update = nbformat.v4.new_output("display_data", **update)
        except Exception:  # noqa: BLE001 - not what a notebook can hold: nothing to rewrite
            return
        for out in targets:
            out["data"], out["metadata"] = update["data"], update["metadata"]
        self.kept_bytes += each * len(targets) - before

    def output(self, outs, msg, display_id, cell_index):
        if self.asking is not None:
            return self.answer_output(outs, msg)
        if self.clear_before_next_output:
            self.clear(outs, cell_index)
        room = self.max_output_bytes - self.kept_bytes
        shown = {key: value for key, value in msg["content"].items() if key != "transient"}
        if msg["msg_type"] in ("stream", "display_data", "execute_result") and written_size(shown, limit=room) > room:
            self.cut(outs, cell_index, dropped=str(shown.get("name", "")))  # too large even before it is an output
            return None
        try:
            out = nbformat.v4.output_from_msg(msg)
        except Exception:  # noqa: BLE001 - not an output, or not one a notebook can hold: nothing to keep
            return None
        return self.keep(outs, out, cell_index, display_id)

    def keep(self, outs, out, cell_index, display_id=None):
        """Append out to outs (the outputs of cell cell_index) if it fits the budget; None if it was dropped."""
        message_chars = len(str(out.get("evalue", "")))
        if out.output_type == "error":
            _shorten(out)
        room = self.max_output_bytes - self.kept_bytes
        size = written_size(out, limit=room)
        if size > room:
            self.cut(outs, cell_index, dropped=out.get("name", out.output_type))
            if out.output_type != "error":
                return None
            out = _brief(
                out, message_chars
            )  # what a student needs to see why the cell failed; counted, past the budget
            size = written_size(out)
        self.kept_bytes += size
        if display_id:  # as nbclient records it, for later updates
            self._display_id_map.setdefault(display_id, {}).setdefault(cell_index, []).append(len(outs))
        outs.append(out)
        return out

    def clear_output(self, outs, msg, cell_index):
        if self.asking is None and not msg["content"].get("wait"):
            self.clear(outs, cell_index)
        else:  # clear_output(wait=True): nbclient clears when the next output comes (self.output)
            super().clear_output(outs, msg, cell_index)

    def clear(self, outs, cell_index):
        """Clear outs (the outputs of cell cell_index) as nbclient does, giving back what they counted; a note
        that output was dropped stays."""
        note, noted = self.notes.get(cell_index, (None, None))
        self.kept_bytes -= sum(written_size(out) for out in outs if out is not note)
        outs[:] = [note] if noted is outs else []
        self.clear_display_id_mapping(cell_index)
        self.clear_before_next_output = False

    def cut(self, outs, cell_index, dropped="stdout", lost=False):
        """Output of cell cell_index was dropped (or lost): say so once in the cell, in a short stream of its own,
        stderr if an stderr stream was dropped (an stderr stream fails a test cell)."""
        self.truncated = True
        note, noted = self.notes.get(cell_index, (None, None))
        if noted is not outs:  # none yet in this list of outputs
            why = (
                "some of this cell's output did not reach the grader (a message too large is refused)"
                if lost
                else f"this notebook's output is limited to {self.max_output_bytes} bytes; what did not fit was dropped"
            )
            note = nbformat.v4.new_output("stream", name="stdout", text=f"[output truncated: {why}]\n")
            self.notes[cell_index] = note, outs
            outs.append(note)
        if dropped == "stderr":
            note.name = "stderr"

    def answer_output(self, outs, msg):
        """Keep the stdout text of a probe's output, up to MAX_ANSWER_BYTES in all; drop the rest as it comes."""
        if self.clear_before_next_output:
            outs[:] = []
            self.clear_before_next_output = False
        content = msg["content"]
        text = content.get("text")
        if msg["msg_type"] != "stream" or content.get("name") != "stdout" or not isinstance(text, str):
            return None
        if self.asked_bytes + len(text) > MAX_ANSWER_BYTES:
            return None
        self.asked_bytes += len(text)
        out = nbformat.v4.new_output("stream", name="stdout", text=text)
        outs.append(out)
        return out

    def on_cell_executed(self, **kwargs):  # nbclient hook: nbgrader adds the reply's error if none was shown
        cell = kwargs["cell"]
        if self.asking is not None:
            reply = kwargs.get("execute_reply") or {}
            self.asked_ok = reply.get("content", {}).get("status") == "ok"
            return
        shown = len(cell.outputs)
        super().on_cell_executed(**kwargs)
        added = cell.outputs[shown:]
        del cell.outputs[shown:]
        for out in added:
            self.keep(cell.outputs, out, kwargs["cell_index"])


def _shorten(out):
    if "evalue" in out:
        out.evalue = str(out.evalue)[:ERROR_TEXT_CHARS]
    if "traceback" in out:
        out.traceback = [str(line)[:ERROR_TEXT_CHARS] for line in list(out.traceback)[:200]]


def _brief(error, message_chars):
    """An error output cut to its name and the start of its message (of message_chars characters)."""
    ename = str(error.get("ename", "Error"))[:BRIEF_ERROR_CHARS]
    evalue = str(error.get("evalue", ""))
    if message_chars > BRIEF_ERROR_CHARS:
        evalue = evalue[:BRIEF_ERROR_CHARS] + f"... [{message_chars} characters, cut]"
    return _error(ename, evalue)


def _error(ename, evalue):
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _death_cause(km, timed_out, limits):
    if timed_out:
        return (
            ExecutionStatus.NOTEBOOK_TIMEOUT,
            f"the notebook ran longer than {limits.notebook_timeout} s and was stopped",
        )
    if km.oom_killed():
        return (
            ExecutionStatus.OUT_OF_MEMORY,
            f"the kernel used more than {limits.memory_bytes >> 20} MiB of memory and was stopped",
        )
    code = km.exit_code()
    if code is None:
        return ExecutionStatus.KERNEL_DIED, "the kernel stopped responding"
    if code > 128 and code - 128 in SIGNALS:
        return ExecutionStatus.KERNEL_CRASHED, f"the kernel crashed with {SIGNALS[code - 128]}"
    if code < 0 and -code in SIGNALS:
        return ExecutionStatus.KERNEL_CRASHED, f"the kernel crashed with {SIGNALS[-code]}"
    return ExecutionStatus.KERNEL_EXITED, f"the kernel exited (exit code {code}), e.g. by os._exit or sys.exit"


NOT_RUN_NOTES = 50  # ungraded cells that say they were not run; past that only graded cells do (bounded output)


def _mark_not_run(nb, running_cell, why):
    """Error outputs in the cell that was running and in every later graded code cell (and the first NOT_RUN_NOTES
    others: a notebook of many cells gets no more); returns how many cells did not run."""
    marked = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or running_cell is None or index < running_cell or not cell.source.strip():
            continue
        if index == running_cell:
            cell.setdefault("outputs", []).append(_error(CellError.KERNEL_DIED.value, f"{why} while running this cell"))
        else:
            graded = bool(cell.get("metadata", {}).get("nbgrader", {}).get("grade"))
            note = graded or marked <= NOT_RUN_NOTES
            cell.outputs = (
                [_error(CellError.NOT_RUN.value, f"this cell was not run: {why} in an earlier cell")] if note else []
            )
            cell.execution_count = None
        marked += 1
    return marked


def execute_in_sandbox(
    notebook_json: str,
    files: Mapping[str, bytes],
    limits: Limits,
    questions: Mapping[str, str] | None = None,
    probe_setup: str = "",
) -> tuple[str, ExecutionOutcome]:
    """Run every cell of notebook_json with `files` (relative name -> bytes) in the kernel's working folder, and
    after each test cell named in questions (grade id -> probe source) ask the kernel that probe (probe_setup first,
    before the first probe).

    Returns (executed notebook as JSON text, outcome); outcome.answers maps each grade id asked to the text the
    kernel printed while answering, and outcome.status says how the execution ended (ExecutionStatus; SANDBOX_ERROR:
    the kernel never ran). When the worker's kernel template fails before any cell of the notebook began (it stopped
    answering, its kernel did not start, or what the last submission left could not be cleaned), the notebook runs
    once more in a new sandbox.
    """
    executed, outcome, template_failed = _execute(notebook_json, files, limits, questions, probe_setup)
    if template_failed:
        executed, outcome, _ = _execute(notebook_json, files, limits, questions, probe_setup)
    return executed, outcome


def start_worker_template(limits: Limits) -> None:
    """Start this worker's kernel template now (its sandbox, its imports), before the worker's first notebook comes,
    so that the notebook does not wait for it. A template that fails to start here is started again by that
    notebook, whose outcome then says why."""
    if limits.sandbox and limits.kernel_template:
        try:
            worker_template(limits)
        except TemplateError:
            discard_worker_template()


def _execute(
    notebook_json: str,
    files: Mapping[str, bytes],
    limits: Limits,
    questions: Mapping[str, str] | None = None,
    probe_setup: str = "",
) -> tuple[str, ExecutionOutcome, bool]:
    """execute_in_sandbox's one attempt: (executed JSON, outcome, whether the template failed before any cell ran)."""
    started = time.monotonic()
    nb = nbformat.reads(notebook_json, as_version=4)
    context = bounded_context(limits)
    template = scratch = None
    km: TemplateKernelManager | SandboxKernelManager
    try:
        if limits.sandbox and limits.kernel_template:
            template = worker_template(limits)
            template.prepare(files)
            workdir = template.workdir
            km = TemplateKernelManager(template, context=context)
        else:
            scratch = scratch_folder("exec")
            workdir, ipc_dir = scratch / "work", scratch / "ipc"
            write_files(workdir, files)
            km = SandboxKernelManager(limits, workdir, ipc_dir, context=context)
        km.client_factory = BoundedKernelClient
    except TemplateError as error:
        context.destroy(linger=0)
        detail = f"TemplateError: {error}"[:500]
        outcome = ExecutionOutcome(
            ExecutionStatus.SANDBOX_ERROR,
            detail,
            seconds=round(time.monotonic() - started, 2),
            cells_not_run=_mark_not_run(nb, 0, detail),
        )
        return nbformat.writes(nb), outcome, True
    client = LimitedExecute(
        limits.max_output_bytes,
        questions,
        probe_setup,
        timeout=limits.cell_timeout,
        iopub_timeout=limits.output_wait_seconds,
        interrupt_on_timeout=True,
        startup_timeout=60,
        shutdown_kernel="immediate",
        log=_QUIET,
    )
    timed_out = threading.Event()

    def stop():
        timed_out.set()
        km.kill_sandbox()

    watchdog = threading.Timer(limits.notebook_timeout, stop)
    watchdog.daemon = True
    watchdog.start()
    status, detail, marked, template_failed = ExecutionStatus.OK, "", 0, False
    try:
        client.preprocess(nb, {"metadata": {"path": str(workdir)}}, km=km)
        if timed_out.is_set():
            status, detail = _death_cause(km, True, limits)
    except DeadKernelError:
        status, detail = _death_cause(km, timed_out.is_set(), limits)
    except CellTimeoutError:
        status, detail = (
            ExecutionStatus.CELL_TIMEOUT,
            (f"a cell ran longer than {limits.cell_timeout} s and could not be interrupted, so the kernel was stopped"),
        )
    except Exception as error:  # the kernel never started, or the client broke: nothing of this notebook counts
        status, detail = ExecutionStatus.SANDBOX_ERROR, f"{type(error).__name__}: {error}"[:500]
        template_failed = template is not None and client.running_cell is None  # no cell of it had begun
        client.running_cell = client.running_cell or 0
    finally:
        watchdog.cancel()
        if template is not None:
            if status is not ExecutionStatus.OK or timed_out.is_set() or not template.reset():
                discard_worker_template()  # anything out of the ordinary: the next submission gets a new sandbox
        else:
            assert isinstance(km, SandboxKernelManager) and scratch is not None  # both made above, without a template
            km.kill_sandbox(wait=True)
            km.cgroup.remove()
            remove_tree(scratch)
        context.destroy(linger=0)
    if status is not ExecutionStatus.OK:
        marked = _mark_not_run(nb, client.running_cell, detail)
    if client.truncated:
        detail = (detail + "; " if detail else "") + f"output beyond {limits.max_output_bytes} bytes was dropped"
    outcome = ExecutionOutcome(
        status,
        detail,
        seconds=round(time.monotonic() - started, 2),
        cells_not_run=marked,
        output_truncated=client.truncated,
        answers=client.answers,
        asking_seconds=round(client.asked_seconds, 3),
    )
    return nbformat.writes(nb), outcome, template_failed
