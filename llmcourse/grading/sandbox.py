"""Which sandbox this machine allows, and the users kernels run as.

:func:`probe_sandbox` tries, in a throw-away process, exactly the steps a kernel goes
through (:mod:`llmcourse.grading.confine`), from the strongest sandbox down:

1. as root, with namespaces: a user of its own per kernel, its own mount, network,
   IPC, PID and UTS namespaces, and a root file system that holds only system
   folders, the interpreter, the virtual environment and the course package (all
   read-only) and its private scratch space (one size-limited file system);
2. as root, without namespaces: a user of its own, where the interpreter is readable
   by other users;
3. not root, with namespaces (through a user namespace): as 1, keeping the user's
   identity but no capability;
4. plain resource limits.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import cache

from llmcourse.grading.folders import new_folder

UID_BASE = 200_000  # as root, kernels run as one of kernel_uids(pid of the grader process)


@dataclass(frozen=True)
class Sandbox:
    """The protections every kernel of this grader gets.

    Attributes:
        uid: the first of the two users of this grader's kernels (:func:`kernel_uids`),
            when the grader runs as root; None to run kernels as the grader's user.
        namespaces: private namespaces and root file system (see the module docstring).
        missing: why a stronger sandbox could not be had here, if it could not.
    """

    uid: int | None
    namespaces: bool
    missing: str = ""

    def describe(self) -> dict[str, str]:
        """What is and is not isolated, in words, for logs and reports."""
        from llmcourse.grading.spawner import visible_paths

        return {
            **({"unavailable": self.missing} if self.missing else {}),
            "user": "a user of its own" if self.uid is not None else "the grader's own",
            "network": "none (private network namespace)" if self.namespaces else "NOT isolated",
            "filesystem": (
                "only system folders and, read-only, " + ", ".join(visible_paths())
                + "; private /tmp, /var/tmp, /dev/shm and home on one size-limited file system"
                if self.namespaces
                else "NOT isolated: the kernel can read what the grader's user can"
            ),
            "processes": (
                "its own process tree, IPC and host name, gone when the kernel ends"
                if self.namespaces
                else "the machine's"
            ),
        }  # fmt: skip


def kernel_uids(pid: int) -> tuple[int, int]:
    """The two users the kernels of grader process ``pid`` run as (as root): a kernel and
    the next one, launched early, never share a user, so killing every process of one
    kernel's user never touches the other."""
    return UID_BASE + 2 * pid, UID_BASE + 2 * pid + 1


@cache
def probe_sandbox() -> Sandbox:
    """The strongest sandbox this platform allows (tried once per process)."""
    uid = kernel_uids(os.getpid())[0] if os.geteuid() == 0 else None
    candidates = [(uid, True), (uid, False)] if uid is not None else []
    candidates += [(None, True)]
    failures = []
    for user, namespaces in candidates:
        failure = _probe(user, namespaces)
        if not failure:
            return Sandbox(user, namespaces, "; ".join(failures[:1]))
        failures.append(failure)
    return Sandbox(None, False, "; ".join(failures[:1]))


def _probe(uid: int | None, namespaces: bool) -> str:
    """Why a kernel cannot be confined so here ("" if it can)."""
    base = new_folder()
    config = {"uid": uid, "namespaces": namespaces, "base": str(base)}
    command = [sys.executable, "-c", "from llmcourse.grading.sandbox import main; main()"]
    try:
        done = subprocess.run(
            command, input=json.dumps(config).encode(), capture_output=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError) as err:
        return str(err)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return "" if done.returncode == 0 else done.stderr.decode(errors="replace").strip()[-300:]


def main() -> None:
    """The probe: confine a forked child as a kernel would be, then read the interpreter."""
    from llmcourse.grading import confine
    from llmcourse.grading.spawner import visible_paths

    config = json.loads(sys.stdin.read())
    root = os.path.join(config["base"], "root")
    try:
        if config["namespaces"]:
            confine.private_mounts()
            confine.tmpfs(config["base"], 1 << 20, 64)
            confine.isolate()
        pid = os.fork()
        if pid == 0:
            try:
                if config["namespaces"]:
                    os.mkdir(root)
                    confine.build_root(confine.RootPlan(root, visible_paths()))
                confine.restrict(config["uid"])
                for path in visible_paths():
                    os.listdir(path)
                with open(os.__file__, "rb") as source:
                    source.read(1)
            except OSError as err:
                print(err, file=sys.stderr, flush=True)
                os._exit(1)
            os._exit(0)
    except OSError as err:
        sys.exit(str(err))
    sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))


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
