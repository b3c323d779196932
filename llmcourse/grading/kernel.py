"""A sandboxed Jupyter kernel for untrusted code, and the limits around each execution.

The kernel is ``python -m ipykernel_launcher`` from the grader's own interpreter
(whatever kernel a submission names), started through :mod:`launcher`, which confines
it before ``execve`` (see that module and :class:`Sandbox`). The grader talks to it
with ``jupyter_client``'s :class:`~jupyter_client.session.Session` over ZeroMQ ``ipc``
sockets (Unix sockets in the kernel's private runtime directory, which work across the
network namespace that has no network). Every wait has a deadline: on a timeout the
kernel's process group is interrupted, and killed when it does not stop within the
grace period; a kernel is never reused after it was killed. Messages from the kernel
are untrusted: sizes are capped at the socket (``MAXMSGSIZE``), printed output is kept
up to a budget per execution and per submission, and a message that does not parse is
dropped.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import zmq
from jupyter_client.connect import write_connection_file
from jupyter_client.session import Session

import llmcourse
from llmcourse.grading.limits import Limits, MiB

LAUNCHER = Path(__file__).with_name("launcher.py")
UID_BASE = 200_000  # as root, kernels run as one of kernel_uids(pid of the grader process)
POLL_S = 0.05
IOPUB_MESSAGE = 4 * MiB  # larger output messages are dropped (output beyond the caps anyway)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class Sandbox:
    """The protections every kernel of this grader gets.

    Attributes:
        uid: the first of the two users of this grader's kernels (:func:`kernel_uids`),
            when the grader runs as root; None to run kernels as the grader's user.
        namespaces: private network (none) and mount namespaces.
        hide: directories replaced by an empty one in the kernel's view (with
            namespaces only): tests, solutions, submissions, results.
        missing: why a stronger sandbox could not be had here, if it could not.
    """

    uid: int | None
    namespaces: bool
    hide: tuple[str, ...] = ()
    missing: str = ""

    def describe(self) -> dict[str, str]:
        """What is and is not isolated, in words, for logs and reports."""
        return {
            **({"unavailable": self.missing} if self.missing else {}),
            "user": "a user of its own" if self.uid is not None else "the grader's own",
            "network": "none (private network namespace)" if self.namespaces else "NOT isolated",
            "filesystem": (
                f"private /tmp, /dev/shm and home; hidden: {', '.join(self.hide) or 'nothing'}"
                if self.namespaces
                else "NOT isolated: the kernel can read what the grader's user can"
            ),
        }


def _expose() -> list[str]:
    """Directories the kernel's interpreter and packages live in."""
    package_root = Path(llmcourse.__file__).resolve().parents[1]
    paths = {sys.base_prefix, sys.prefix, str(package_root)}
    return sorted(os.path.realpath(p) for p in paths)


def kernel_uids(pid: int) -> tuple[int, int]:
    """The two users the kernels of grader process ``pid`` run as (as root): a kernel and
    the next one, launched early, never share a user, so killing every process of one
    kernel's user never touches the other."""
    return UID_BASE + 2 * pid, UID_BASE + 2 * pid + 1


def _launcher_config(
    sandbox: Sandbox, runtime: Path, limits: Limits, uid: int | None
) -> dict[str, Any]:
    rlimits = {
        "AS": limits.memory,
        "FSIZE": limits.file_size,
        "CORE": 0,
        "CPU": int(2 * limits.submission_timeout) + 10,
    }
    if uid is not None:
        rlimits["NPROC"] = limits.processes  # counts per user: only with a user of its own
    return {
        "namespaces": sandbox.namespaces,
        "uid": uid,
        "gid": uid,
        "home": str(runtime / "home"),
        "keep": [str(runtime)],
        "expose": _expose(),
        "hide": [p for p in sandbox.hide if not _contains(p, [str(runtime), *_expose()])],
        "tmpfs_bytes": limits.tmpfs,
        "rlimits": rlimits,
        "parent": os.getpid(),
    }


def _contains(directory: str, paths: list[str]) -> bool:
    """Whether hiding ``directory`` would hide one of ``paths``."""
    d = Path(directory).resolve()
    return any(d == Path(p) or d in Path(p).parents for p in paths)


@cache
def _probe(uid: int | None, namespaces: bool) -> str:
    """Why the launcher cannot apply this sandbox here ("" if it can; tried on ``pass``)."""
    runtime = Path(tempfile.mkdtemp(prefix="llmcourse-probe-"))
    try:
        (runtime / "home").mkdir()
        if uid is not None:
            for path in (runtime, runtime / "home"):
                os.chown(path, uid, uid)
        config = _launcher_config(Sandbox(uid, namespaces), runtime, Limits(), uid)
        command = [sys.executable, "-I", str(LAUNCHER), json.dumps(config), "--"]
        command += [sys.executable, "-I", "-S", "-c", "pass"]
        done = subprocess.run(command, capture_output=True, timeout=30, check=False)
        return "" if done.returncode == 0 else done.stderr.decode(errors="replace").strip()[-300:]
    except (OSError, subprocess.SubprocessError) as err:
        return str(err)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def probe_sandbox(hide: list[Path] | tuple[Path, ...] = ()) -> Sandbox:
    """The strongest sandbox this platform allows, hiding ``hide`` from the kernel.

    Tries, in order: a dedicated user (as root) with namespaces, a dedicated user
    alone, namespaces alone (also for non-root users, through a user namespace), and
    finally plain resource limits.
    """
    uid = kernel_uids(os.getpid())[0] if os.geteuid() == 0 else None
    candidates = [(uid, True), (uid, False)] if uid is not None else []
    candidates += [(None, True), (None, False)]
    failures = []
    for user, namespaces in candidates:
        failure = "" if user is None and not namespaces else _probe(user, namespaces)
        if not failure:
            hidden = tuple(sorted({str(Path(p).resolve()) for p in hide})) if namespaces else ()
            return Sandbox(user, namespaces, hidden, "; ".join(failures[:1]))
        failures.append(failure or "failed")
    raise AssertionError("unreachable: plain limits always work")


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
        status: "ok", "error" (the code raised), "timeout" or "died".
        ename, evalue, traceback: the error, if the code raised.
        output: printed output, capped; ``output_chars`` counts all of it.
        detail: for a timeout or a death, what happened to the kernel.
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

    Use as a context manager; leaving it kills the kernel, everything it started,
    and removes its files. ``slot`` (0 or 1) picks the user among :func:`kernel_uids`.
    """

    def __init__(
        self, sandbox: Sandbox, limits: Limits, outputs: OutputBudget, slot: int = 0
    ) -> None:
        self.sandbox, self.limits, self.outputs = sandbox, limits, outputs
        self.slot = slot
        self.uid = None if sandbox.uid is None else sandbox.uid + slot
        self.runtime = Path(tempfile.mkdtemp(prefix="llmcourse-kernel-"))
        self._process: subprocess.Popen[bytes] | None = None
        self._context = zmq.Context()
        self._killed = ""
        self._peak = 0

    # -- life cycle -------------------------------------------------------------------
    def start(self, deadline: float) -> None:
        """Launch the kernel and wait until it answers (before ``deadline``, a monotonic time).

        Raises:
            KernelError: it exited or did not answer in time.
        """
        self.launch()
        self.wait_until_ready(deadline)

    def launch(self) -> None:
        """Start the kernel process without waiting for it."""
        home = self.runtime / "home"
        home.mkdir()
        key = secrets.token_hex(16).encode()
        connection, info = write_connection_file(
            str(self.runtime / "kernel.json"),
            transport="ipc",
            ip=str(self.runtime / "ipc"),
            key=key,
        )
        if self.uid is not None:
            for path in (self.runtime, home, Path(connection)):
                os.chown(path, self.uid, self.uid)
        config = _launcher_config(self.sandbox, self.runtime, self.limits, self.uid)
        command = [sys.executable, "-I", str(LAUNCHER), json.dumps(config), "--"]
        command += [sys.executable, "-m", "ipykernel_launcher", "-f", connection]
        env = {
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
            "HOME": str(home),
            "USER": "student",
            "LOGNAME": "student",
            "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0",
        }
        with open(self.runtime / "kernel.log", "wb") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                cwd=str(home),
                start_new_session=True,
            )
        self.session = Session(key=key, signature_scheme=info["signature_scheme"])
        url = f"ipc://{info['ip']}-"
        self._iopub_url = url + str(info["iopub_port"])
        shell_message = 3 * self.limits.result_size + MiB  # a result, escaped as a str repr
        self._shell = self._socket(zmq.DEALER, url + str(info["shell_port"]), shell_message, 4)
        self._iopub = self._socket(zmq.SUB, self._iopub_url, IOPUB_MESSAGE, 32)

    def _socket(self, kind: int, url: str, max_message: int, queue: int) -> zmq.Socket:
        """A socket that holds at most ``queue`` messages of ``max_message`` bytes: what
        the kernel sends can never take more of the grader's memory than that."""
        socket = self._context.socket(kind)
        socket.setsockopt(zmq.MAXMSGSIZE, max_message)
        socket.setsockopt(zmq.RCVHWM, queue)
        socket.setsockopt(zmq.LINGER, 0)
        if kind == zmq.SUB:
            socket.setsockopt(zmq.SUBSCRIBE, b"")
        socket.connect(url)
        return socket

    def wait_until_ready(self, deadline: float) -> None:
        """Wait until the launched kernel answers (before ``deadline``, a monotonic time).

        Raises:
            KernelError: it exited or did not answer in time.
        """
        deadline = min(deadline, time.monotonic() + self.limits.startup_timeout)
        msg_id, sent = "", 0.0
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
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
        try:
            with open(f"/proc/{self._process.pid}/status") as status:  # type: ignore[union-attr]
                for line in status:
                    if line.startswith("VmPeak:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, AttributeError):
            pass
        return 0

    def _log_tail(self) -> str:
        try:
            with open(self.runtime / "kernel.log", "rb") as log:
                log.seek(max(0, os.fstat(log.fileno()).st_size - 2000))
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
        """SIGINT to the kernel's process group, as JupyterLab's stop button."""
        if self._process is not None:
            try:
                os.killpg(self._process.pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    def kill(self, reason: str) -> None:
        """Kill the kernel's process group and, with a user of its own, every process of it."""
        self._killed = self._killed or reason
        if self._process is None:
            return
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.uid is not None:
            kill_user_processes(self.uid)
        self._process.wait()

    def close(self) -> None:
        """Kill the kernel and remove its files."""
        self.kill("closed")
        self._context.destroy(linger=0)
        shutil.rmtree(self.runtime, ignore_errors=True)

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- messages -----------------------------------------------------------------------
    def _receive(self, socket: zmq.Socket, timeout: float) -> dict[str, Any] | None:
        """One message from ``socket`` within ``timeout`` s, or None; malformed ones are dropped."""
        if not socket.poll(int(timeout * 1000)):
            return None
        try:
            _, message = self.session.recv(socket, mode=zmq.NOBLOCK)
        except Exception:  # noqa: BLE001 - anything the kernel sends may be malformed
            return None
        return message if isinstance(message, dict) else None

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
        self._peak = 0
        deadline = time.monotonic() + timeout
        reply, idle = None, False
        while reply is None or not idle:
            if time.monotonic() > deadline:
                if reply is None:
                    self._stop(run, msg_id, timeout)
                    return
                # the reply came but not the idle status: ZeroMQ dropped the iopub connection
                # after an oversized message (over IOPUB_MESSAGE): connect again
                self._iopub.close()
                self._iopub = self._socket(zmq.SUB, self._iopub_url, IOPUB_MESSAGE, 32)
                break
            if self._process is not None and self._process.poll() is not None:
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
                else:
                    idle = idle or self._record(run, message)
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


def _processes_of(uid: int) -> list[int]:
    """Live (non-zombie) processes whose real or effective user is ``uid``."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        uids = fields.get("Uid", "").split()
        if str(uid) in uids[:2] and not fields.get("State", "").strip().startswith("Z"):
            pids.append(int(entry.name))
    return pids


def kill_user_processes(uid: int) -> None:
    """Stop then kill every process of ``uid`` until none is left (forks included)."""
    for _ in range(50):
        pids = _processes_of(uid)
        if not pids:
            return
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        time.sleep(0.01)
