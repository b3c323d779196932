"""The fork server: a warm process that forks one sandboxed kernel per answer.

Started by the grader (see :class:`llmcourse.grading.spawner.ForkServer`) as
``python -m llmcourse.grading.forkserver SOCKET_FD``, with its configuration as JSON on
stdin. It has imported what kernels need (ipykernel, torch, numpy, what the exercise's
cells import) once, so a kernel costs a ``fork`` instead of a fresh interpreter. Its
state is never changed by a kernel (each is a copy-on-write fork), so kernels of
different submissions share nothing but that pristine starting point.

Processes, for each kernel::

    fork server ── helper ── kernel (process 1 of its own PID namespace)

- The **server** (trusted; single-threaded, so that forking is safe) lives in a mount
  namespace of its own, on a file system in memory mounted over the grader's empty
  ``base`` folder: each kernel's scratch file system is mounted inside it, so nothing
  of a kernel is ever on the host's disk and everything vanishes with the server.
  It answers ``spawn`` requests on its socket with a socket to the new kernel's helper.
- The **helper** enters new mount, network, IPC, PID and UTS namespaces, forks the
  kernel, sends the grader the kernel's PID and a pidfd (to signal it without PID
  reuse races), waits for it, and sends its exit status. It kills the kernel when the
  grader closes the socket. When the helper dies, so does the kernel (and with process 1
  of a PID namespace, every process in it).
- The **kernel** builds its root file system, sets its limits, gives up its
  privileges (:mod:`llmcourse.grading.confine`), blocks the answer's off-limits code
  (:mod:`llmcourse.grading.blocking`) and becomes an IPython kernel.

Without namespaces (see :class:`llmcourse.grading.sandbox.Sandbox`) the same
processes run without the namespace steps: runtime folders are then under ``base`` on
the host's disk, removed by the server (and by the batch when a worker dies).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import secrets
import select
import shutil
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from llmcourse.grading import blocking, confine
from llmcourse.grading.offlimits import stub_files

PORTS = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}
WRITABLE = {"/home/student": "home", "/tmp": "tmp", "/var/tmp": "vartmp", "/dev/shm": "shm"}
KERNEL_RUN = "/run/kernel"
WARM = ("ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell")
NEEDS_TORCH = ("torch", "numpy", "llmcourse")  # imports torch: import it first, on one thread
# what torch imports on first use, not at import: numpy (Tensor.numpy(), which the
# channel calls for every tensor it returns) and sympy (torch.broadcast_shapes, behind
# every attention mask check): ~1 s that every kernel would spend again
TORCH_LAZY = ("numpy", "torch.fx.experimental.symbolic_shapes")
BASE_SIZE = 64 << 20


class Server:
    """The fork server's state: its configuration, prepared views and live kernels."""

    def __init__(self, config: dict[str, Any], control: socket.socket) -> None:
        self.config, self.control = config, control
        self.base = Path(config["base"])
        self.namespaces = bool(config["namespaces"])
        self.kernels: dict[int, Path] = {}  # helper pid -> runtime folder
        self.count = 0
        self.views: dict[str, dict[str, str]] = {}  # answer -> {path in kernel: file here}
        self.wake_r, self.wake_w = os.pipe()

    def prepare(self) -> None:
        """Mounts, imports and stubbed files, before any kernel is forked."""
        if self.namespaces:
            confine.private_mounts()
            confine.tmpfs(str(self.base), BASE_SIZE, 1 << 16)
        confine.die_with(self.config["parent"])
        os.chdir(self.base)
        _warm(self.config["imports"])
        if self.namespaces:
            self._write_views()
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)

    def _write_views(self) -> None:
        empty = self.base / "views" / "empty"
        empty.parent.mkdir()
        empty.write_bytes(b"")
        for index, (answer, entries) in enumerate(sorted(self.config["answers"].items())):
            folder = self.base / "views" / str(index)
            folder.mkdir()
            view: dict[str, str] = {}
            for number, (path, text) in enumerate(sorted(stub_files(entries).items())):
                stub = folder / f"{number}.py"
                stub.write_text(text, encoding="utf-8")
                view[path] = str(stub)
                for compiled in _compiled(path):
                    view[compiled] = str(empty)
            self.views[answer] = view

    def serve(self) -> None:
        """Answer requests until the grader closes the socket."""
        while True:
            ready = select.select([self.control, self.wake_r], [], [])[0]
            if self.wake_r in ready:
                os.read(self.wake_r, 1024)
                self._reap()
            if self.control in ready:
                data = self.control.recv(1 << 16)
                if not data:
                    return
                request = json.loads(data)
                try:
                    self.spawn(request["id"], request["answer"], request["slot"])
                except OSError as err:  # say why; the grader reports it for this kernel
                    reply = {"id": request["id"], "error": str(err)}
                    self.control.send(json.dumps(reply).encode())

    def _reap(self) -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            runtime = self.kernels.pop(pid, None)
            if runtime is not None:
                self._remove(runtime)

    def _remove(self, runtime: Path) -> None:
        """Remove a kernel's runtime folder (anything left goes with the server)."""
        if self.namespaces:
            try:
                confine.unmount(str(runtime))
                runtime.rmdir()
            except OSError:
                pass
        else:
            shutil.rmtree(runtime, ignore_errors=True)

    def spawn(self, request: int, answer: str, slot: int) -> None:
        """Fork a kernel for ``answer``; send the grader its runtime and helper socket."""
        self.count += 1
        runtime = self.base / f"k{self.count}"
        runtime.mkdir()
        if self.namespaces:
            confine.tmpfs(str(runtime), self.config["scratch"], self.config["inodes"])
        uid = None if self.config["uid"] is None else self.config["uid"] + slot
        for name in [*WRITABLE.values(), "run", "log", "root"]:
            (runtime / name).mkdir(mode=0o700)
            if uid is not None and name not in ("log", "root"):
                os.chown(runtime / name, uid, uid)
        run = KERNEL_RUN if self.namespaces else str(runtime / "run")
        key = secrets.token_hex(16)
        connection = {
            **PORTS, "ip": f"{run}/ipc", "key": key, "transport": "ipc",
            "signature_scheme": "hmac-sha256", "kernel_name": "python3",
        }  # fmt: skip
        (runtime / "run" / "kernel.json").write_text(json.dumps(connection))
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            ours.close()
            self._helper(answer, uid, runtime, theirs)
        theirs.close()
        self.kernels[pid] = runtime
        reply = {"id": request, "runtime": str(runtime), "connection": connection}
        socket.send_fds(self.control, [json.dumps(reply).encode()], [ours.fileno()])
        ours.close()

    def _helper(self, answer: str, uid: int | None, runtime: Path, grader: socket.socket) -> None:
        """The helper process (never returns)."""
        try:
            for fd in (self.control.detach(), self.wake_r, self.wake_w):
                os.close(fd)
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            confine.die_with(self.config["parent_server"])
            if self.namespaces:
                confine.isolate()
            alive_r, alive_w = os.pipe()
            bound_r, bound_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(grader.detach())
                os.close(alive_w)
                os.close(bound_r)
                self._kernel(answer, uid, runtime, alive_r, bound_w)
            os.close(alive_r)
            os.close(bound_w)
            pidfd = os.pidfd_open(pid)
            socket.send_fds(grader, [json.dumps({"pid": pid}).encode()], [pidfd])
            status = _watch(pid, pidfd, bound_r, grader)
            log = _tail(runtime / "log" / "kernel.log")
            grader.send(json.dumps({"status": status, "log": log}).encode())
        finally:
            os._exit(0)

    def _kernel(self, answer: str, uid: int | None, runtime: Path, alive: int, bound: int) -> None:
        """The kernel process: confine, block, then run ipykernel (never returns); it
        writes to ``bound`` once its sockets exist, before it runs anything else."""
        status = 0
        try:
            os.setsid()
            log = os.open(runtime / "log" / "kernel.log", os.O_WRONLY | os.O_CREAT, 0o600)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            home = "/home/student" if self.namespaces else str(runtime / "home")
            if self.namespaces:
                confine.build_root(self._root(answer, runtime))
            confine.set_limits(self.config["rlimits"])
            confine.restrict(uid)
            confine.die_with_parent(alive)
            os.dup2(bound, 3)
            os.closerange(4, 1 << 16)
            os.environ.clear()
            os.environ.update(self.config["env"], HOME=home)
            os.chdir(home)
            blocking.apply(self.config["answers"].get(answer, []))
            _start_kernel(f"{KERNEL_RUN if self.namespaces else runtime / 'run'}/kernel.json", 3)
        except BaseException as err:  # noqa: BLE001 - report, then exit with the status below
            print(f"llmcourse kernel: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
            status = 97
        finally:
            os._exit(status)

    def _root(self, answer: str, runtime: Path) -> confine.RootPlan:
        writable = {path: str(runtime / name) for path, name in WRITABLE.items()}
        writable[KERNEL_RUN] = str(runtime / "run")
        return confine.RootPlan(
            root=str(runtime / "root"),
            read_only=list(self.config["read_only"]),
            views=self.views.get(answer, {}),
            writable=writable,
        )


def _watch(pid: int, pidfd: int, bound: int, grader: socket.socket) -> int:
    """Tell the grader when the kernel's sockets exist; wait for the kernel to exit; kill
    it when the grader says so or goes away."""
    watched: list[Any] = [pidfd, bound, grader]
    while True:
        ready = select.select(watched, [], [])[0]
        if bound in ready:
            if os.read(bound, 1):
                grader.send(b'{"bound": true}')
            watched.remove(bound)
        if grader in ready:  # "kill", or the end of the socket: either way, kill
            grader.recv(64)
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            watched.remove(grader)
        if pidfd in ready:
            return os.waitpid(pid, 0)[1]


def _tail(path: Path, size: int = 2000) -> str:
    try:
        with open(path, "rb") as log:
            log.seek(max(0, os.fstat(log.fileno()).st_size - size))
            return log.read().decode(errors="replace").strip()
    except OSError:
        return ""


def _compiled(path: str) -> list[str]:
    """The compiled files of a source file that exist (``.pyc``, optimized or not)."""
    found = {importlib.util.cache_from_source(path, optimization=lv) for lv in ("", 1, 2)}
    return sorted(p for p in found if os.path.exists(p))


def _warm(modules: list[str]) -> None:
    """Import what kernels will need. torch first, set to one thread, when anything
    might use it (a thread pool that exists at ``fork`` is unusable in the child), and
    what torch would import only on first use."""
    lazy: tuple[str, ...] = ()
    if any(name.split(".")[0] in NEEDS_TORCH for name in modules):
        importlib.import_module("torch").set_num_threads(1)
        lazy = TORCH_LAZY
    for name in [*WARM, *lazy, *modules]:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a kernel importing it reports the error itself
            continue


def _start_kernel(connection_file: str, bound: int) -> None:
    """Run an IPython kernel as ``python -m ipykernel_launcher -f FILE`` would; say on
    ``bound`` when its sockets exist (the grader connects only then, and never again: a
    kernel cannot make it connect elsewhere later)."""
    from ipykernel.kernelapp import IPKernelApp

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(os.cpu_count() or 1)
    launcher = importlib.util.find_spec("ipykernel_launcher")
    sys.argv = [launcher.origin if launcher else "", "-f", connection_file]
    app = IPKernelApp.instance()
    app.initialize(sys.argv[1:])
    os.write(bound, b"1")
    os.close(bound)
    app.start()


def main(argv: list[str]) -> None:
    if sys.path and sys.path[0] == os.getcwd():  # as ipykernel_launcher: the kernel adds ""
        del sys.path[0]
    config = json.loads(sys.stdin.read())
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    control = socket.socket(fileno=int(argv[1]))
    config["parent_server"] = os.getpid()
    server = Server(config, control)
    try:
        server.prepare()
    except OSError as err:
        control.send(json.dumps({"error": str(err)}).encode())
        raise SystemExit(1) from None
    control.send(json.dumps({"ready": os.getpid()}).encode())
    server.serve()


if __name__ == "__main__":
    main(sys.argv)
