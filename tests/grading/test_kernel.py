"""The sandboxed kernel: its limits, what it can reach, and that it is really gone after."""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import pytest
from grading_support import ROOT, leftover_processes

from llmcourse.grading.kernel import Kernel, OutputBudget, probe_sandbox
from llmcourse.grading.limits import GiB, Limits, MiB

LIMITS = Limits(memory=3 * GiB, file_size=8 * MiB, interrupt_grace=1, processes=64)
SANDBOX = probe_sandbox([ROOT / "tests", ROOT / "solutions"])
needs_namespaces = pytest.mark.skipif(not SANDBOX.namespaces, reason="no namespaces here")
needs_user = pytest.mark.skipif(SANDBOX.uid is None, reason="not root: no user of its own")


@pytest.fixture(scope="module")
def kernel():
    with Kernel(SANDBOX, LIMITS, OutputBudget(1000, 5000)) as kernel:
        kernel.start(time.monotonic() + 30)
        yield kernel


def run(kernel: Kernel, code: str, timeout: float = 10) -> str:
    result = kernel.execute(code, timeout)
    assert result.status == "ok", result.summary()
    return result.output.strip()


def test_the_sandbox_on_this_machine_is_the_strongest():
    if os.geteuid() == 0 and SANDBOX.uid is None:
        pytest.fail("running as root but the kernel cannot get a user of its own")
    assert SANDBOX.describe()["network"].startswith("none" if SANDBOX.namespaces else "NOT")


def test_the_kernel_is_the_graders_interpreter_in_an_empty_home(kernel):
    code = "import os, sys\nprint(sys.executable, os.getcwd() == os.environ['HOME'], os.listdir())"
    executable, home, files = run(kernel, code).split(" ", 2)
    assert executable == sys.executable and home == "True"
    assert files in ("[]", "['.ipython']")  # only what IPython makes at start


def test_nothing_in_the_environment_says_grading(kernel):
    ours = ["HOME", "LANG", "LOGNAME", "PATH", "PYTHONHASHSEED", "USER"]
    ipykernel = ("JPY", "PYDEVD", "MPL", "CLICOLOR", "PAGER", "GIT_PAGER", "TERM", "FORCE_COLOR")
    names = run(kernel, "import os\nprint(sorted(os.environ))")
    assert [n for n in eval(names) if not n.startswith(ipykernel)] == ours


def test_limits_are_set(kernel):
    names = ["RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_CORE"]
    out = run(kernel, f"import resource as r\nprint([r.getrlimit(getattr(r, n)) for n in {names}])")
    assert out == str([(3 * GiB,) * 2, (8 * MiB,) * 2, (0, 0)])
    result = kernel.execute("open('big', 'wb').write(b'x' * (16 << 20))", 10)
    assert result.ename == "OSError" and "File too large" in result.evalue


def test_stdin_is_disabled(kernel):
    result = kernel.execute("input('your name? ')", 10)
    assert result.ename == "StdinNotImplementedError"


@needs_user
def test_it_runs_as_its_own_user_and_cannot_write_the_repository(kernel):
    assert (
        run(kernel, "import os\nprint(os.getuid(), os.getgid(), os.getgroups())")
        == f"{SANDBOX.uid} {SANDBOX.uid} []"
    )
    result = kernel.execute(f"open({str(ROOT / 'llmcourse' / 'evil.py')!r}, 'w')", 10)
    assert result.ename == "PermissionError"
    result = kernel.execute(f"import os, signal\nos.kill({os.getpid()}, signal.SIGTERM)", 10)
    assert result.ename == "PermissionError"


@needs_namespaces
def test_no_network(kernel):
    result = kernel.execute(
        "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)", 10
    )
    assert result.ename == "OSError" and "Network is unreachable" in result.evalue


@needs_namespaces
def test_tests_solutions_and_the_graders_tmp_are_out_of_sight(kernel):
    with tempfile.NamedTemporaryFile(dir="/tmp") as mine:
        paths = [str(ROOT / "tests"), str(ROOT / "solutions"), mine.name]
        code = f"import os\nprint([os.path.exists(p) and os.listdir(p) for p in {paths!r}])"
        assert run(kernel, code) == "[[], [], False]"
    assert run(kernel, "import llmcourse.classic.ngram\nprint('ok')") == "ok"  # still importable


def test_a_timeout_interrupts_and_the_kernel_lives_on(kernel):
    result = kernel.execute("while True:\n    pass", 1)
    assert result.status == "timeout" and result.detail == "timed out after 1 s"
    assert kernel.alive and run(kernel, "print(1 + 1)") == "2"


def test_output_is_capped_without_growing_the_grader(kernel):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code = "import sys\nfor i in range(3000):\n    print('x' * 100)\nsys.stdout.flush()\n"
    result = kernel.execute(code + "print('y' * 10**8)", 30)
    assert result.status == "ok"
    assert len(result.output) <= 1000 < result.output_chars
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB


def test_an_ignored_interrupt_kills_everything_the_kernel_started():
    with Kernel(SANDBOX, LIMITS, OutputBudget(1000, 5000)) as kernel:
        kernel.start(time.monotonic() + 30)
        escape = "import subprocess\nsubprocess.Popen(['sleep', '300'], start_new_session=True)"
        assert kernel.execute(escape, 10).status == "ok"
        stubborn = (
            "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
        )
        result = kernel.execute(stubborn, 1)
        assert result.status == "timeout" and "ignored the interrupt, killed" in result.detail
        assert not kernel.alive
        assert kernel.execute("1", 1).status == "died"
    if SANDBOX.uid is not None:  # without a user of its own, a new session escapes the kill
        assert leftover_processes() == []


def test_a_crash_is_reported_with_its_signal():
    with Kernel(SANDBOX, LIMITS, OutputBudget(1000, 5000)) as kernel:
        kernel.start(time.monotonic() + 30)
        result = kernel.execute("import ctypes\nctypes.string_at(0)", 10)
        assert result.status == "died" and result.detail == "the kernel died (killed by SIGSEGV)"
    runtime = kernel.runtime
    assert not Path(runtime).exists()
