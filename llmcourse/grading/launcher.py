"""Confine the current process, then replace it with the student's kernel.

Run as ``python -I launcher.py CONFIG_JSON -- KERNEL_COMMAND...`` by
:mod:`llmcourse.grading.kernel`. This file is a standalone script (standard library
only, nothing imported from ``llmcourse``) so that nothing of the grader is left in
the kernel once ``execve`` has replaced this process: the kernel starts exactly as it
would in JupyterLab, only with fewer rights. The steps, in order, each optional in the
configuration:

1. ``namespaces``: new network namespace (only a loopback that is down: no network)
   and mount namespace (mounts made here are invisible outside and vanish with the
   kernel); when not root, inside a new user namespace that maps the caller's own uid.
   In the mount namespace: size-limited private tmpfs over ``/tmp``, ``/var/tmp`` and
   ``/dev/shm``; the kernel's runtime directory (its sockets), and the interpreter if it
   lives there, bound back at their paths;
   a private tmpfs as home; an empty read-only tmpfs over every ``hide`` path; and,
   when the kernel switches user, every ``expose`` path (the interpreter, the venv)
   made reachable through ancestors the user could not traverse (``/root``), which
   are themselves replaced by an empty tmpfs.
2. ``rlimits``: address space, processes, file size, CPU seconds, core dumps.
3. ``uid``/``gid``: switch to an unprivileged user (needs root).
4. No new privileges (setuid binaries stay unprivileged), SIGKILL when the parent
   grader dies, the working directory, then ``execve``.

Any step that fails exits with status 97 and a message on stderr: a protection that
was asked for is never silently skipped. The grader probes what the platform allows
before asking (see ``kernel.probe_sandbox``).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import stat
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
PRIVATE_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
FAILED = 97

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def _tmpfs(target: str, size: int, mode: str = "1777", flags: int = 0) -> None:
    _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | flags, f"size={size},mode={mode}")


def _bind(fd: int, target: str) -> None:
    os.makedirs(target, exist_ok=True)
    _mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC)


def _under(path: str, directories: tuple[str, ...]) -> bool:
    return any(path == d or path.startswith(d + os.sep) for d in directories)


def _blocking_ancestor(path: str) -> str | None:
    """The highest ancestor of ``path`` that other users cannot traverse, if any."""
    parts = os.path.abspath(path).split(os.sep)[1:]
    for depth in range(1, len(parts)):
        ancestor = os.sep + os.sep.join(parts[:depth])
        if not os.stat(ancestor).st_mode & stat.S_IXOTH:
            return ancestor
    return None


def _enter_namespaces(config: dict) -> None:
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | CLONE_NEWNET
    if uid != 0:
        flags |= CLONE_NEWUSER
    _check(_libc.unshare(flags), "unshare")
    if uid != 0:  # map our own ids, so that files we create keep their owner
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)

    size = config["tmpfs_bytes"]
    # directories to see through the private mounts: the runtime directory, and the
    # interpreter and packages when they live in one of PRIVATE_DIRS
    keep = set(config["keep"]) | {p for p in config["expose"] if _under(p, PRIVATE_DIRS)}
    kept = {path: os.open(path, os.O_RDONLY | os.O_DIRECTORY) for path in sorted(keep)}
    expose: dict[str, list[tuple[str, int]]] = {}
    if config.get("uid") is not None:
        for path in config["expose"]:
            ancestor = _blocking_ancestor(path)
            if ancestor is not None:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
                expose.setdefault(ancestor, []).append((path, fd))
    for ancestor, paths in expose.items():
        _tmpfs(ancestor, 1 << 20, mode="0755")
        for path, fd in paths:
            _bind(fd, path)
    for directory in PRIVATE_DIRS:
        if os.path.isdir(directory):
            _tmpfs(directory, size)
    for path, fd in kept.items():
        _bind(fd, path)
    _tmpfs(config["home"], size, mode="0700")
    if config.get("uid") is not None:
        os.chown(config["home"], config["uid"], config["gid"])
    for path in config["hide"]:
        if os.path.isdir(path):
            _tmpfs(path, 4096, mode="0555", flags=MS_RDONLY)
    for fd in [*kept.values(), *(fd for paths in expose.values() for _, fd in paths)]:
        os.close(fd)


def _set_limits(limits: dict[str, int]) -> None:
    for name, value in limits.items():
        resource.setrlimit(getattr(resource, f"RLIMIT_{name}"), (value, value))


def _switch_user(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)


def main(argv: list[str]) -> None:
    if len(argv) < 4 or argv[2] != "--":
        sys.exit(f"usage: {argv[0]} CONFIG_JSON -- COMMAND...")
    config, command = json.loads(argv[1]), argv[3:]
    try:
        if config.get("namespaces"):
            _enter_namespaces(config)
        _set_limits(config.get("rlimits", {}))
        if config.get("uid") is not None:
            _switch_user(config["uid"], config["gid"])
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
        if os.getppid() != config["parent"]:
            sys.exit(FAILED)  # the grader died before we could tie our life to it
        os.chdir(config["home"])
    except OSError as err:
        print(f"llmcourse launcher: {err}", file=sys.stderr)
        sys.exit(FAILED)
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv)
