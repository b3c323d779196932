"""The grader's side of the fork server: start it, ask it for kernels, watch them.

One :class:`ForkServer` per exercise and grading process, kept warm across the
submissions that process grades (:func:`server_for`); see
:mod:`llmcourse.grading.forkserver` for the server itself. A kernel is a
:class:`KernelProcess`: its helper's socket says when it started (with a pidfd to
signal it) and how it ended.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llmcourse
from llmcourse.grading.folders import new_folder, remove_stale_folders
from llmcourse.grading.limits import Limits
from llmcourse.grading.sandbox import Sandbox

SERVERS_KEPT = 2  # fork servers a grading process keeps warm (one per exercise)


class SpawnError(RuntimeError):
    """The fork server could not start or fork a kernel."""


@dataclass(frozen=True)
class ServerSpec:
    """What a fork server prepares: modules to import once, and per answer (JSON text,
    so that the spec is hashable) what is off limits in its kernels."""

    imports: tuple[str, ...]
    answers: str = "{}"


def kernel_env() -> dict[str, str]:
    """The environment of a kernel (and of the fork server): nothing says grading."""
    return {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
        "USER": "student",
        "LOGNAME": "student",
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
    }


def visible_paths() -> list[str]:
    """What a kernel sees of the machine besides system folders (all read-only): the
    interpreter, the virtual environment and the course package, nothing else of the
    repository."""
    package = os.path.realpath(Path(llmcourse.__file__).parent)
    paths = sorted({os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, package)})
    return [p for p in paths if not any(p.startswith(q + os.sep) for q in paths)]


class KernelProcess:
    """A kernel forked by the server, seen through its helper's socket.

    Attributes:
        pid: the kernel's process id (once started).
        runtime: its runtime folder as this process can reach it.
        connection: its connection information (ports, key; ``ip`` as the kernel sees it).
        returncode: None while it runs; then its exit status (negative: killed by that
            signal), as for ``subprocess.Popen``.
        log: the end of what the kernel printed to its stdout and stderr, once it ended.
    """

    def __init__(self, server_pid: int, reply: dict[str, Any], helper: socket.socket) -> None:
        self.runtime = f"/proc/{server_pid}/root{reply['runtime']}"
        self.connection: dict[str, Any] = reply["connection"]
        self.pid: int | None = None
        self.bound = False  # its sockets exist
        self.returncode: int | None = None
        self.log = ""
        self._helper = helper
        self._pidfd: int | None = None

    def ipc(self, port: str) -> str:
        """The URL of the kernel's socket ``port`` (e.g. ``shell_port``)."""
        return f"ipc://{self.runtime}/run/ipc-{self.connection[port]}"

    def _read(self, timeout: float) -> bool:
        """Handle one message from the helper, if one comes within ``timeout`` s."""
        if self._helper.fileno() < 0 or not select.select([self._helper], [], [], timeout)[0]:
            return False
        data, fds, _, _ = socket.recv_fds(self._helper, 1 << 16, 1)
        if not data:  # the helper is gone (killed with the server)
            self.returncode = -signal.SIGKILL if self.returncode is None else self.returncode
            self._helper.close()
            return True
        message = json.loads(data)
        if "bound" in message:
            self.bound = True
        elif "pid" in message:
            self.pid, self._pidfd = int(message["pid"]), fds[0]
        elif "status" in message:
            self.returncode = os.waitstatus_to_exitcode(int(message["status"]))
            self.log = str(message.get("log", ""))
        return True

    def started(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the kernel process to exist."""
        end = time.monotonic() + timeout
        while self.pid is None and self.returncode is None and time.monotonic() < end:
            self._read(end - time.monotonic())
        return self.pid is not None

    def wait_bound(self, deadline: float) -> bool:
        """Wait (until ``deadline``, a monotonic time) for the kernel's sockets to exist."""
        while not self.bound and self.returncode is None and time.monotonic() < deadline:
            self._read(deadline - time.monotonic())
        return self.bound

    def poll(self) -> int | None:
        """The exit status if the kernel ended, else None (never blocks)."""
        while self.returncode is None and self._read(0):
            pass
        return self.returncode

    def wait(self, timeout: float = 30.0) -> int | None:
        """Wait until the kernel ended (up to ``timeout`` s); its exit status."""
        end = time.monotonic() + timeout
        while self.returncode is None and time.monotonic() < end:
            self._read(end - time.monotonic())
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Signal the kernel process (a no-op once it ended)."""
        if self._pidfd is None:
            self.started(5.0)  # the helper says the pid right after the fork
        if self._pidfd is not None and self.poll() is None:
            try:
                signal.pidfd_send_signal(self._pidfd, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """Kill the kernel (and, in its namespace, everything it started) and wait for it."""
        if self._helper.fileno() >= 0 and self.returncode is None:
            try:
                self._helper.send(b"kill")  # the helper kills it, even before we know it
            except OSError:
                pass
        self.send_signal(signal.SIGKILL)
        self.wait()

    def close(self) -> None:
        """Kill the kernel; release its socket and pidfd."""
        self.kill()
        if self._helper.fileno() >= 0:
            self._helper.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


class ForkServer:
    """A running fork server (see :mod:`llmcourse.grading.forkserver`).

    Args:
        sandbox: the protections of its kernels.
        limits: their limits.
        spec: what it prepares.
    """

    def __init__(self, sandbox: Sandbox, limits: Limits, spec: ServerSpec) -> None:
        self.sandbox, self.limits, self.spec = sandbox, limits, spec
        remove_stale_folders()  # of grading processes that were killed
        self.base = new_folder()
        self._socket, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llmcourse.grading.forkserver", str(theirs.fileno())],
            stdin=subprocess.PIPE,
            pass_fds=[theirs.fileno()],
            env={**kernel_env(), "HOME": str(self.base)},
            cwd="/",
            start_new_session=True,
        )
        theirs.close()
        self._requests = 0
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(self._config()).encode())
        self.process.stdin.close()
        self.pid: int | None = None

    def _config(self) -> dict[str, Any]:
        limits = self.limits
        rlimits = {
            "AS": limits.memory,
            "FSIZE": limits.file_size,
            "CORE": 0,
            "CPU": int(2 * limits.submission_timeout) + 10,
        }
        if self.sandbox.uid is not None:
            rlimits["NPROC"] = limits.processes  # counts per user: only with a user of its own
        return {
            "parent": os.getpid(),
            "base": str(self.base),
            "namespaces": self.sandbox.namespaces,
            "uid": self.sandbox.uid,
            "rlimits": rlimits,
            "scratch": limits.scratch,
            "inodes": limits.scratch_files,
            "read_only": visible_paths(),
            "imports": list(self.spec.imports),
            "answers": json.loads(self.spec.answers),
            "env": kernel_env(),
        }

    @property
    def alive(self) -> bool:
        """Whether the server still runs."""
        return self.process.poll() is None and self._socket.fileno() >= 0

    def ready(self, deadline: float) -> None:
        """Wait until the server has prepared (before ``deadline``, a monotonic time).

        Raises:
            SpawnError: it failed or did not get ready in time.
        """
        if self.pid is not None:
            return
        self._wait(deadline, "the fork server did not get ready in time")
        data = self._socket.recv(1 << 16)
        reply = json.loads(data) if data else {"error": "it exited"}
        if "ready" not in reply:
            raise SpawnError(f"the fork server could not start: {reply.get('error')}")
        self.pid = int(reply["ready"])

    def spawn(self, answer: str, slot: int, deadline: float) -> KernelProcess:
        """Fork a kernel for ``answer`` as user ``slot`` (0 or 1) of this sandbox.

        Raises:
            SpawnError: the server is gone or does not answer.
        """
        self.ready(deadline)
        self._requests += 1
        request = {"id": self._requests, "answer": answer, "slot": slot}
        try:
            self._socket.send(json.dumps(request).encode())
            while True:  # replies to requests given up on earlier are dropped
                self._wait(deadline, "the fork server did not answer in time")
                data, fds, _, _ = socket.recv_fds(self._socket, 1 << 16, 1)
                if not data:
                    raise SpawnError("the fork server exited")
                reply = json.loads(data)
                helper = socket.socket(fileno=fds[0]) if fds else None
                if reply["id"] == self._requests:
                    if helper is None:
                        raise SpawnError(f"the fork server could not fork: {reply.get('error')}")
                    return KernelProcess(self.pid or 0, reply, helper)
                if helper is not None:
                    helper.close()  # its helper kills that kernel
        except OSError as err:
            raise SpawnError(f"the fork server failed: {err}") from None

    def _wait(self, deadline: float, failure: str) -> None:
        """Wait until the server has sent something, or raise ``SpawnError(failure)``."""
        if not select.select([self._socket], [], [], max(0.0, deadline - time.monotonic()))[0]:
            raise SpawnError(failure)

    def close(self) -> None:
        """Stop the server: its kernels and their files go with it."""
        self._socket.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.base, ignore_errors=True)  # without namespaces, runtime folders


_servers: dict[tuple[Sandbox, Limits, ServerSpec], ForkServer] = {}


def server_for(sandbox: Sandbox, limits: Limits, spec: ServerSpec) -> ForkServer:
    """A running fork server for ``spec`` (started now, or kept from earlier)."""
    key = (sandbox, limits, spec)
    server = _servers.pop(key, None)
    if server is None or not server.alive:
        if server is not None:
            server.close()
        server = ForkServer(sandbox, limits, spec)
    _servers[key] = server  # most recently used last
    while len(_servers) > SERVERS_KEPT:
        _servers.pop(next(iter(_servers))).close()
    return server


@atexit.register
def close_servers() -> None:
    """Stop every fork server of this process."""
    while _servers:
        _servers.popitem()[1].close()
