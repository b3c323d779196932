"""Linux system calls that confine a kernel process: namespaces, a minimal root, limits.

Used by the fork server (:mod:`llmcourse.grading.forkserver`) in three places:

- the server itself calls :func:`private_mounts` once: its mounts (the kernels'
  scratch file systems) then exist only in its own mount namespace and vanish with it;
- the per-kernel helper calls :func:`isolate`: new mount, network (no network), IPC,
  PID and UTS namespaces, so that the kernel, forked next, is process 1 of its own
  process tree and nothing it creates (processes, shared memory, message queues,
  semaphores, abstract sockets) outlives it or is seen by another kernel;
- the kernel process calls :func:`build_root`, then :func:`restrict`: it replaces its
  root directory by an empty read-only file system into which only what a kernel needs
  is mounted (system directories, the interpreter, the package, all read-only; its
  private scratch folders, all on one size-limited file system), then sets resource
  limits and gives up every privilege (a user of its own as root; no capabilities; no
  key rings, which outlive processes).

Standard library only (``ctypes``). Every step that fails raises ``OSError``: a
protection that was asked for is never silently skipped.
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import signal
import stat
from dataclasses import dataclass, field

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41, "ppc64le": 203}
# seccomp: the architecture, the system calls of the key rings (add_key, request_key,
# keyctl: a user's key ring outlives its processes, a channel between submissions), and
# seccomp(2) itself
SECCOMP = {
    "x86_64": (0xC000003E, (248, 249, 250), 317),
    "aarch64": (0xC00000B7, (217, 218, 219), 277),
    "arm64": (0xC00000B7, (217, 218, 219), 277),
}
PR_SET_SECCOMP, SECCOMP_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC = 22, 2, 1
DEVICES = ("null", "zero", "full", "random", "urandom")
SYSTEM = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
CAPABILITY_VERSION_3 = 0x20080522

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


def tmpfs(target: str, size: int, inodes: int, mode: str = "0755") -> None:
    """Mount a file system in memory of at most ``size`` bytes and ``inodes`` files."""
    options = f"size={size},nr_inodes={inodes},mode={mode}"
    _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, options)


def unmount(target: str) -> None:
    """Detach the mount at ``target`` (its memory is freed once nothing uses it)."""
    _check(_libc.umount2(target.encode(), MNT_DETACH), f"umount {target}")


def private_mounts() -> None:
    """Enter a mount namespace of our own (through a user namespace when not root).

    Must run before the process starts a thread (the kernel refuses otherwise).
    """
    uid, gid = os.getuid(), os.getgid()
    _check(_libc.unshare(CLONE_NEWNS | (CLONE_NEWUSER if uid else 0)), "unshare")
    if uid:  # map our own ids, so that files we create keep their owner
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)


def isolate() -> None:
    """New mount, network, IPC, PID and UTS namespaces; the next child is PID 1."""
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWUTS
    _check(_libc.unshare(flags), "unshare")


@dataclass
class RootPlan:
    """The file system a kernel sees: everything else of the machine is gone.

    Attributes:
        root: an empty directory to build the new root on (a mount point is made there).
        read_only: host directories shown read-only at the same path (the interpreter,
            the virtual environment); ``views`` maps a path to the directory shown there
            instead (the package, with the answer's off-limits code removed).
        writable: path in the kernel -> directory of the scratch file system.
        hostname: the kernel's host name.
    """

    root: str
    read_only: list[str] = field(default_factory=list)
    views: dict[str, str] = field(default_factory=dict)
    writable: dict[str, str] = field(default_factory=dict)
    hostname: str = "grading"


def _inside(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _bind(source: str, target: str, read_only: bool) -> None:
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    elif not os.path.exists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "x").close()
    _mount(source, target, None, MS_BIND | MS_REC)
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | (MS_RDONLY | MS_NODEV if read_only else MS_NODEV)
    if source.startswith("/dev/"):
        flags &= ~MS_NODEV
    _mount(None, target, None, flags)


def build_root(plan: RootPlan) -> None:
    """Replace this process's root by ``plan`` (needs :func:`isolate` and PID 1)."""
    root = plan.root
    tmpfs(root, 1 << 20, 4096)
    for path in SYSTEM:
        if os.path.islink(path):
            os.symlink(os.readlink(path), _inside(root, path))
        elif os.path.isdir(path):
            _bind(path, _inside(root, path), read_only=True)
    # The scratch first: a read-only path may lie inside one (a repository under /tmp)
    # and must be mounted on top of it, not hidden by it.
    for path, source in plan.writable.items():
        _bind(source, _inside(root, path), read_only=False)
    for path in plan.read_only:
        _bind(path, _inside(root, path), read_only=True)
    for path, source in plan.views.items():
        _bind(source, _inside(root, path), read_only=True)
    for device in DEVICES:
        _bind(f"/dev/{device}", _inside(root, f"/dev/{device}"), read_only=False)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0")):
        os.symlink(target, _inside(root, f"/dev/{name}"))
    os.symlink("/proc/self/fd/1", _inside(root, "/dev/stdout"))
    os.symlink("/proc/self/fd/2", _inside(root, "/dev/stderr"))
    os.makedirs(_inside(root, "/proc"))
    _mount("proc", _inside(root, "/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _pivot(root)
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    _check(_libc.sethostname(plan.hostname.encode(), len(plan.hostname)), "sethostname")


def _pivot(root: str) -> None:
    number = PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(f"pivot_root: unknown system call number on {platform.machine()}")
    os.chdir(root)
    os.mkdir(".old")
    _check(_libc.syscall(number, b".", b".old"), "pivot_root")
    os.chdir("/")
    unmount("/.old")
    os.rmdir("/.old")


def set_limits(limits: dict[str, int]) -> None:
    """``setrlimit`` for each ``{"AS": bytes, ...}`` (soft and hard)."""
    for name, value in limits.items():
        resource.setrlimit(getattr(resource, f"RLIMIT_{name}"), (value, value))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in ("effective", "permitted", "inheritable")]


class _Instruction(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Instruction))]


def forbid_key_rings() -> None:
    """A seccomp filter: the key-ring system calls (and any of another architecture's
    system call table, or x32's) fail with EPERM, in every thread of the process."""
    arch, calls, seccomp = SECCOMP[platform.machine()]
    load, jump_eq, jump_ge, ret = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, JMP|JEQ|K, ...
    allow, deny = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
    n = len(calls)
    program = [
        (load, 0, 0, 4),  # the architecture
        (jump_eq, 1, 0, arch),
        (ret, 0, 0, deny),
        (load, 0, 0, 0),  # the system call's number
        (jump_ge, n + 1, 0, 0x40000000),  # x32 system calls
        *[(jump_eq, n - i, 0, call) for i, call in enumerate(calls)],
        (ret, 0, 0, allow),
        (ret, 0, 0, deny),
    ]
    filters = (_Instruction * len(program))(*[_Instruction(*i) for i in program])
    prog = _Program(len(program), filters)
    if _libc.syscall(seccomp, 1, SECCOMP_FILTER_FLAG_TSYNC, ctypes.byref(prog)) != 0:
        # without a capability: needs no new privileges, and covers this thread only
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        filtered = _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0)
        _check(filtered, "seccomp")


def restrict(uid: int | None) -> None:
    """Give up every privilege: no key rings (:func:`forbid_key_rings`); become ``uid``
    (needs root), or else drop all capabilities (held in a user namespace); then no new
    privileges, ever."""
    forbid_key_rings()
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    else:
        header, data = _CapHeader(CAPABILITY_VERSION_3, 0), (_CapData * 2)()
        _check(_libc.capset(ctypes.byref(header), data), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")


def die_with(parent: int) -> None:
    """SIGKILL when our parent, ``parent``, dies; exit now if it already has."""
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
    if os.getppid() != parent:
        os._exit(1)


def die_with_parent(alive: int) -> None:
    """SIGKILL when the parent dies; ``alive`` is a pipe whose writer is the parent
    (at EOF it already died, before the signal was armed)."""
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
    os.set_blocking(alive, False)
    try:
        gone = os.read(alive, 1) == b""
    except BlockingIOError:
        gone = False
    if gone:
        os._exit(1)


def readable_by_others(path: str) -> bool:
    """Whether a user of its own could read ``path`` (every ancestor traversable)."""
    parts = os.path.abspath(path).split(os.sep)
    for depth in range(2, len(parts) + 1):
        mode = os.stat(os.sep.join(parts[:depth]) or os.sep).st_mode
        if not mode & stat.S_IXOTH:
            return False
    return bool(os.stat(path).st_mode & stat.S_IROTH)
