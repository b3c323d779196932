"""What a kernel can see, write and leave behind (with namespaces: root or user namespaces)."""

from __future__ import annotations

import ast
import tempfile
import time
from pathlib import Path

import pytest
from grading_support import ROOT, leftover_processes

from llmcourse.grading import spawner
from llmcourse.grading.folders import grader_folders
from llmcourse.grading.kernel import Kernel, OutputBudget
from llmcourse.grading.limits import Limits, MiB
from llmcourse.grading.sandbox import probe_sandbox
from llmcourse.grading.spawner import ForkServer, ServerSpec

LIMITS = Limits(scratch=32 * MiB, scratch_files=500, interrupt_grace=1)
SANDBOX = probe_sandbox()
pytestmark = pytest.mark.skipif(not SANDBOX.namespaces, reason="no namespaces here")
PRIVATE = ["/dev/shm", "/home/student", "/run/kernel", "/tmp", "/var/tmp"]


@pytest.fixture(scope="module")
def server():
    server = ForkServer(SANDBOX, LIMITS, ServerSpec(()))
    yield server
    server.close()


def new_kernel(server: ForkServer, slot: int = 0) -> Kernel:
    kernel = Kernel(server, "any", LIMITS, OutputBudget(100_000, 100_000), slot)
    kernel.start(time.monotonic() + 60)
    return kernel


def value(kernel: Kernel, code: str, expression: str) -> object:
    """Run ``code``, then return ``expression``'s value (a Python literal)."""
    result = kernel.execute(f"{code}\nprint(repr(({expression})))", 30)
    assert result.status == "ok", result.summary() + result.traceback
    return ast.literal_eval(result.output.strip().splitlines()[-1])


MOUNTS = """
mounts = []
for line in open('/proc/self/mountinfo'):
    fields = line.split()
    options = fields[5].split(',')
    mounts.append((fields[4], fields[2], 'rw' in options, fields[fields.index('-') + 1]))
"""


def test_only_the_private_scratch_space_is_writable_and_it_is_one_file_system(server):
    """Every mount but the kernel's scratch folders (and /proc, and device files such as
    /dev/null) is read-only, and those folders are one file system: one quota."""
    with new_kernel(server) as kernel:
        mounts = value(kernel, MOUNTS, "mounts")
    writable = {m[0]: m[1] for m in mounts if m[2] and m[3] != "proc"}
    devices = {path for path in writable if path.startswith("/dev/") and path != "/dev/shm"}
    assert sorted(set(writable) - devices) == PRIVATE
    assert len({writable[path] for path in PRIVATE}) == 1  # the same device: one tmpfs
    assert all(m[3] == "tmpfs" for m in mounts if m[0] in PRIVATE)


def test_the_kernel_sees_neither_the_repository_nor_the_host(server):
    """Only system folders, the interpreter, the virtual environment and the package:
    not the repository's .git (``git show`` of the hidden tests fails), tests, solutions
    or book, not /run/lock, and no process but its own."""
    with new_kernel(server) as kernel:
        seen = value(
            kernel,
            f"import os\nroot = {str(ROOT)!r}",
            "sorted(os.listdir('/')), sorted(os.listdir(root)), os.path.exists('/run/lock')",
        )
        git = value(
            kernel,
            f"import subprocess\ndone = subprocess.run(['git', '-C', {str(ROOT)!r}, 'show', "
            "'HEAD:tests/exercises/test_ch01_ngrams.py'], capture_output=True, text=True)",
            "done.returncode, done.stdout",
        )
        processes = value(kernel, "import os", "sorted(int(p) for p in os.listdir('/proc') "
                          "if p.isdigit())")  # fmt: skip
    top, repository, run_lock = seen
    assert set(top) <= {"bin", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "proc",
                        "root", "run", "sbin", "tmp", "usr", "var", ROOT.parts[1]}  # fmt: skip
    assert set(repository) <= {".venv", "llmcourse"}  # no .git, tests, solutions, book
    assert not run_lock
    assert git[0] != 0 and "def test_" not in git[1]
    assert processes == [1]  # its own process tree only: it is process 1


def test_nothing_passes_between_kernels_through_ipc_or_files(server):
    """Two kernels alive at once: what one leaves in System V IPC, POSIX message queues,
    /dev/shm, /tmp or its home, the other does not see; after it ends, none of it is on
    the host."""
    before = _host_ipc()
    leave = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
KEY, CREATE = 0x11C0, 0o1000 | 0o666
made = [libc.shmget(KEY, 512 << 20, CREATE), libc.msgget(KEY, CREATE), libc.semget(KEY, 4, CREATE),
        libc.mq_open(b"/llmcourse", os.O_CREAT | os.O_RDWR, 0o666, None)]
for folder in ("/dev/shm", "/tmp", "/var/tmp", os.environ["HOME"]):
    open(os.path.join(folder, "secret"), "w").write("answer: 42")
"""
    look = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
KEY = 0x11C0
found = [libc.shmget(KEY, 0, 0), libc.msgget(KEY, 0), libc.semget(KEY, 0, 0),
         libc.mq_open(b"/llmcourse", os.O_RDWR, 0, None)]
found += [os.path.exists(os.path.join(f, "secret"))
          for f in ("/dev/shm", "/tmp", "/var/tmp", os.environ["HOME"])]
"""
    with new_kernel(server, 0) as first, new_kernel(server, 1) as second:
        assert min(value(first, leave, "made")) >= 0
        assert value(second, look, "found") == [-1, -1, -1, -1, False, False, False, False]
        assert _host_ipc() == before  # not on the host either, while it lives
    assert _host_ipc() == before


KEY_RING = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
call = {"x86_64": (248, 249), "aarch64": (217, 218)}[__import__("platform").machine()]
added = libc.syscall(call[0], b"user", b"llmcourse", b"secret", 6, -4)  # the user's key ring
found = libc.syscall(call[1], b"user", b"llmcourse", None, -4)
"""


def test_nothing_passes_between_kernels_of_the_same_user_through_key_rings(server):
    """A user's key ring outlives its processes: key-ring system calls are refused."""
    for _ in range(2):  # one after the other, the same user
        with new_kernel(server, 0) as kernel:
            assert value(kernel, KEY_RING, "added, found, ctypes.get_errno()") == (-1, -1, 1)


def _host_ipc() -> dict[str, int]:
    return {
        kind: len(Path(f"/proc/sysvipc/{kind}").read_text().splitlines())
        for kind in ("shm", "msg", "sem")
    }


def test_the_scratch_quota_is_one_total(server):
    """32 MiB in all: 20 MiB in /tmp leave no room for 20 MiB in the home, /dev/shm,
    /var/tmp or the runtime folder; and the number of files is limited too."""
    fill = """
import os
def write(path, mib):
    try:
        with open(path, 'wb') as f:
            for _ in range(mib):
                f.write(b'x' * (1 << 20))
        return True
    except OSError as err:
        return err.errno
first = write('/tmp/a', 20)
others = [write(os.path.join(p, 'b'), 20)
          for p in ('/dev/shm', '/var/tmp', os.environ['HOME'], '/run/kernel')]
def touch(n):
    try:
        for i in range(n):
            open(f'/tmp/f{i}', 'w').close()
        return n
    except OSError:
        return i
"""
    with new_kernel(server) as kernel:
        first, others, files = value(kernel, fill, "first, others, touch(2000)")
    assert first is True and others == [28] * 4  # ENOSPC
    assert files < LIMITS.scratch_files


def test_a_kernel_leaves_nothing_on_the_host(server):
    """Not a process, not a file in the host's /tmp, not a runtime folder."""
    mark = Path(tempfile.gettempdir()) / f"llmcourse-mark-{time.time_ns()}"
    folders = grader_folders()
    with new_kernel(server) as kernel:
        code = "import subprocess\nsubprocess.Popen(['sleep', '300'], start_new_session=True)"
        assert kernel.execute(code + f"\nopen({str(mark)!r}, 'w').write('x')", 10).status == "ok"
    assert not mark.exists() and grader_folders() == folders
    assert [p for p in leftover_processes() if "sleep" in p] == []


def test_a_read_only_folder_inside_a_scratch_path_stays_visible(monkeypatch, tmp_path):
    """A repository cloned under /tmp (as CI may do) puts the interpreter and the package
    inside a path where the kernel gets its private scratch: they must be mounted on top
    of the scratch, not hidden by it."""
    folder = tmp_path / "repository"
    folder.mkdir(mode=0o755)
    (folder / "marker.txt").write_text("visible")
    assert str(folder).startswith("/tmp/")
    paths = [*spawner.visible_paths(), str(folder)]
    monkeypatch.setattr(spawner, "visible_paths", lambda: paths)
    server = ForkServer(SANDBOX, LIMITS, ServerSpec(()))
    try:
        with new_kernel(server) as kernel:
            marker = str(folder / "marker.txt")
            assert value(kernel, "", f"open({marker!r}).read()") == "visible"
            code = f"try:\n    open({marker!r}, 'w')\nexcept OSError:\n    ok = False"
            assert value(kernel, f"ok = True\n{code}", "ok") is False  # read-only in /tmp
    finally:
        server.close()
