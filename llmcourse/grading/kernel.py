"""A sandboxed Jupyter kernel for untrusted code, and the limits around each execution.

A kernel is forked by the exercise's fork server (:mod:`llmcourse.grading.spawner`,
:mod:`llmcourse.grading.forkserver`): an IPython kernel of the grader's own interpreter,
whatever kernel a submission names, confined before it runs anything (see
:mod:`llmcourse.grading.confine`). The grader talks to it with ``jupyter_client``'s
:class:`~jupyter_client.session.Session` over ZeroMQ ``ipc`` sockets (Unix sockets in
the kernel's private runtime folder, reached through the fork server's
``/proc/<pid>/root``). Every wait has a deadline: on a timeout the kernel is
interrupted, and killed when it does not stop within the grace period; a kernel is
never reused after it was killed. Messages from the kernel are untrusted: sizes are
capped before anything is parsed (:mod:`llmcourse.grading.replies`), printed output
is kept up to a budget per execution and per submission, and a message that does not
parse is dropped.
"""

from __future__ import annotations

import re
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import zmq
from jupyter_client.session import Session

from llmcourse.grading.channel import RESPONSE_VALUES
from llmcourse.grading.limits import Limits, MiB
from llmcourse.grading.replies import receive
from llmcourse.grading.sandbox import kill_user_processes
from llmcourse.grading.spawner import ForkServer, KernelProcess, SpawnError

POLL_S = 0.05
IOPUB_MESSAGE = MiB  # larger output messages are dropped (output beyond the caps anyway)
IOPUB_VALUES = 100_000
NO_REPLY_S = 1.0  # after the kernel went idle, how long its reply may take
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class OutputBudget:
    """Printed output kept for one submission: a per-execution and a total cap."""

    def __init__(self, per_execution: int, total: int) -> None:
        self.per_execution, self.total = per_execution, total
        self.kept = 0
        self.seen = 0

    def take(self, already: int, text: str) -> str:
        """The part of ``text`` to keep after ``already`` characters of this execution."""
        self.seen += len(text)
        room = min(self.per_execution - already, self.total - self.kept)
        kept = text[: max(room, 0)]
        self.kept += len(kept)
        return kept


@dataclass
class Execution:
    """What happened when the kernel ran one piece of code.

    Attributes:
        status: "ok", "error" (the code raised), "timeout", "died", or "protocol" (it
            finished but its reply never came: too large, or not sent).
        ename, evalue, traceback: the error, if the code raised.
        output: printed output, capped; ``output_chars`` counts all of it.
        detail: for a timeout, a death or a lost reply, what happened.
        out_of_memory: the run failed after the kernel's address space reached the limit.
        reply: the content of the kernel's execute_reply (untrusted).
    """

    status: str
    ename: str = ""
    evalue: str = ""
    traceback: str = ""
    output: str = ""
    output_chars: int = 0
    detail: str = ""
    out_of_memory: bool = False
    reply: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """One line: what went wrong, for feedback."""
        if self.status == "error":
            what = f"{self.ename}: {self.evalue}" if self.evalue else self.ename
        else:
            what = self.detail
        return f"memory limit reached ({what})" if self.out_of_memory else what


class KernelError(RuntimeError):
    """The kernel could not be started."""


class Kernel:
    """One sandboxed kernel process and the sockets to talk to it.

    Use as a context manager; leaving it kills the kernel and everything it started
    (its runtime folder goes with it). ``slot`` (0 or 1) picks the user among
    :func:`~llmcourse.grading.sandbox.kernel_uids`.

    Args:
        server: the fork server of the exercise.
        answer: the answer whose off-limits code the kernel must not have.
        limits: time, memory and message limits.
        outputs: the submission's output budget.
        slot: which of the grader's two kernel users.
    """

    def __init__(
        self, server: ForkServer, answer: str, limits: Limits, outputs: OutputBudget, slot: int = 0
    ) -> None:
        self.server, self.answer, self.limits, self.outputs = server, answer, limits, outputs
        self.slot = slot
        self.uid = None if server.sandbox.uid is None else server.sandbox.uid + slot
        self._process: KernelProcess | None = None
        self._context = zmq.Context()
        self._killed = ""
        self._peak = 0
        self._iopub_lost = False

    # -- life cycle -------------------------------------------------------------------
    def start(self, deadline: float) -> None:
        """Launch the kernel and wait until it answers (before ``deadline``, a monotonic time).

        Raises:
            KernelError: it exited or did not answer in time.
        """
        self.launch(deadline)
        self.wait_until_ready(deadline)

    def launch(self, deadline: float | None = None) -> None:
        """Have the kernel forked, without waiting for it to answer.

        Raises:
            KernelError: the fork server could not fork it.
        """
        deadline = deadline or time.monotonic() + self.limits.startup_timeout
        try:
            self._process = self.server.spawn(self.answer, self.slot, deadline)
        except SpawnError as err:
            raise KernelError(str(err)) from None
        info = self._process.connection
        self.session = Session(key=info["key"].encode(), signature_scheme=info["signature_scheme"])

    def _connect(self) -> None:
        """Connect to the kernel's sockets, which exist now (see :meth:`wait_until_ready`)."""
        assert self._process is not None
        self._shell = self._socket(zmq.DEALER, self._process.ipc("shell_port"), 2)
        self._iopub = self._socket(zmq.SUB, self._process.ipc("iopub_port"), 32)

    def _socket(self, kind: int, url: str, queue: int) -> zmq.Socket:
        """A socket that holds at most ``queue`` messages of bounded size: what the kernel
        sends can never take more of the grader's memory than that. It connects once,
        never again (the kernel owns the folder of its sockets: it must not make the
        grader connect to something else later)."""
        socket = self._context.socket(kind)
        size = IOPUB_MESSAGE if kind == zmq.SUB else self.limits.message_size
        socket.setsockopt(zmq.MAXMSGSIZE, size)
        socket.setsockopt(zmq.RCVHWM, queue)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.RECONNECT_IVL, -1)
        if kind == zmq.SUB:
            socket.setsockopt(zmq.SUBSCRIBE, b"")
        socket.connect(url)
        return socket

    def wait_until_ready(self, deadline: float) -> None:
        """Wait until the launched kernel answers (before ``deadline``, a monotonic time).

        Raises:
            KernelError: it exited or did not answer in time.
        """
        assert self._process is not None
        deadline = min(deadline, time.monotonic() + self.limits.startup_timeout)
        if not self._process.wait_bound(deadline):
            if self._process.poll() is not None:
                raise KernelError(f"the kernel exited while starting: {self._log_tail()}")
            self.kill("did not start in time")
            raise KernelError(f"the kernel did not start in time: {self._log_tail()}")
        self._connect()
        msg_id, sent = "", 0.0
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise KernelError(f"the kernel exited while starting: {self._log_tail()}")
            if time.monotonic() - sent > 1.0:
                msg_id = self.session.send(self._shell, "kernel_info_request", {})["header"][
                    "msg_id"
                ]
                sent = time.monotonic()
            message = self._receive(self._shell, POLL_S)
            if message and message.get("parent_header", {}).get("msg_id") == msg_id:
                self._first_iopub(1.0)  # the kernel's status about this request
                return
        self.kill("did not start in time")
        raise KernelError(f"the kernel did not start in time: {self._log_tail()}")

    def _peak_memory(self) -> int:
        """The kernel's peak address space so far, in bytes (0 when unknown)."""
        pid = self._process.pid if self._process else None
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmPeak:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError):
            pass
        return 0

    def _log_tail(self) -> str:
        """The end of what the kernel printed outside of executions (its start-up)."""
        process = self._process
        if process is None:
            return ""
        if process.poll() is not None:
            return process.log
        try:
            with open(f"{process.runtime}/log/kernel.log", "rb") as log:
                log.seek(0, 2)
                log.seek(max(0, log.tell() - 2000))
                return log.read().decode(errors="replace").strip()
        except OSError:
            return ""

    @property
    def alive(self) -> bool:
        """Whether the kernel process still runs and was not killed by the grader."""
        return self._process is not None and self._process.poll() is None and not self._killed

    def _death(self) -> str:
        assert self._process is not None
        code = self._process.returncode
        if code is not None and code < 0:
            return f"the kernel died (killed by {signal.Signals(-code).name})"
        return f"the kernel died (exit status {code})"

    def interrupt(self) -> None:
        """SIGINT to the kernel, as JupyterLab's stop button."""
        if self._process is not None:
            self._process.send_signal(signal.SIGINT)

    def kill(self, reason: str) -> None:
        """Kill the kernel and everything it started."""
        self._killed = self._killed or reason
        if self._process is None:
            return
        self._process.kill()
        if self.uid is not None and not self.server.sandbox.namespaces:
            kill_user_processes(self.uid)  # with namespaces, its whole process tree dies with it

    def close(self) -> None:
        """Kill the kernel and release it."""
        self.kill("closed")
        if self._process is not None:
            self._process.close()
        self._context.destroy(linger=0)

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- messages -----------------------------------------------------------------------
    def _receive(self, socket: zmq.Socket, timeout: float) -> dict[str, Any] | None:
        """One message from ``socket`` within ``timeout`` s, or None; malformed and
        oversized ones are dropped before they are parsed."""
        if not socket.poll(int(timeout * 1000)):
            return None
        if socket is self._iopub:
            return receive(socket, self.session, IOPUB_MESSAGE, IOPUB_VALUES)
        return receive(socket, self.session, self.limits.message_size, RESPONSE_VALUES)

    def _first_iopub(self, timeout: float) -> None:
        """Wait (up to ``timeout`` s) for a first iopub message: the subscription is then live."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and self._receive(self._iopub, end - time.monotonic()) is None:
            pass

    def execute(
        self,
        code: str,
        timeout: float,
        user_expressions: dict[str, str] | None = None,
    ) -> Execution:
        """Run ``code`` (and then ``user_expressions``) with a time limit of ``timeout`` s."""
        if not self.alive:
            return Execution("died", detail=self._killed or self._death())
        content = {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": user_expressions or {},
            "allow_stdin": False,
            "stop_on_error": False,
        }
        msg_id = self.session.send(self._shell, "execute_request", content)["header"]["msg_id"]
        run = Execution("ok")
        peak_before = self._peak_memory()
        self._wait(run, msg_id, timeout)
        peak = max(self._peak, self._peak_memory())
        if run.status != "ok" and peak_before < 0.9 * self.limits.memory <= peak:
            run.out_of_memory = True
        return run

    def _wait(self, run: Execution, msg_id: str, timeout: float) -> None:
        """Collect the reply and outputs of ``msg_id`` into ``run``, or stop the kernel."""
        assert self._process is not None
        self._peak = 0
        deadline = time.monotonic() + timeout
        reply, idle = None, self._iopub_lost
        while reply is None or not idle:
            if time.monotonic() > deadline:
                if reply is None and idle:  # it finished, but its reply never came
                    run.status = "protocol"
                    run.detail = (
                        "the kernel sent no reply (a reply over the "
                        f"{self.limits.message_size / MiB:g} MiB limit is dropped)"
                    )
                    return
                if reply is None:
                    self._stop(run, msg_id, timeout)
                    return
                # the reply came but not the idle status: ZeroMQ dropped the output
                # connection after an oversized message (over IOPUB_MESSAGE); from now
                # on, output is not waited for (and the socket is not connected again)
                self._iopub_lost = True
                break
            if self._process.poll() is not None:
                run.status, run.detail = "died", self._death()
                self.kill(run.detail)
                return
            self._peak = max(self._peak, self._peak_memory())
            for socket in zmq.select([self._shell, self._iopub], [], [], POLL_S)[0]:
                message = self._receive(socket, 0)
                if not message or message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if socket is self._shell:
                    reply = message.get("content") or {}
                    deadline = min(deadline, time.monotonic() + 0.5)  # then wait for outputs
                elif self._record(run, message):
                    idle = True
                    deadline = min(deadline, time.monotonic() + NO_REPLY_S)
        self._finish(run, reply or {})

    def _record(self, run: Execution, message: dict[str, Any]) -> bool:
        """Keep the output of one iopub message; True when the kernel went idle."""
        kind, content = message.get("msg_type"), message.get("content") or {}
        text = ""
        if kind == "stream":
            text = str(content.get("text", ""))
        elif kind in ("execute_result", "display_data"):
            text = str((content.get("data") or {}).get("text/plain", "")) + "\n"
        elif kind == "status":
            return content.get("execution_state") == "idle"
        run.output_chars += len(text)
        run.output += self.outputs.take(len(run.output), text)
        return False

    def _finish(self, run: Execution, reply: dict[str, Any]) -> None:
        run.reply = reply
        if reply.get("status") == "error":
            run.status = "error"
            run.ename = str(reply.get("ename", ""))[:200]
            run.evalue = str(reply.get("evalue", ""))[:2000]
            lines = reply.get("traceback") or []
            text = ANSI.sub("", "\n".join(str(x) for x in lines))
            run.traceback = text if len(text) < 4000 else f"{text[:2000]}\n...\n{text[-2000:]}"

    def _stop(self, run: Execution, msg_id: str, timeout: float) -> None:
        """Interrupt a run that is over time; kill the kernel if the interrupt is ignored."""
        self.interrupt()
        end = time.monotonic() + self.limits.interrupt_grace
        while time.monotonic() < end:
            message = self._receive(self._shell, POLL_S)
            if message and message.get("parent_header", {}).get("msg_id") == msg_id:
                run.status, run.detail = "timeout", f"timed out after {timeout:g} s"
                return
            if self._process is not None and self._process.poll() is not None:
                break
        run.status = "timeout"
        run.detail = f"timed out after {timeout:g} s (ignored the interrupt, killed)"
        self.kill(run.detail)
