"""The sandboxed kernel: its limits, how it is stopped, and that what it sends is bounded."""

from __future__ import annotations

import os
import resource
import sys
import time

import pytest
from grading_support import leftover_processes

from llmcourse.grading.kernel import Kernel, OutputBudget
from llmcourse.grading.limits import GiB, Limits, MiB
from llmcourse.grading.sandbox import Sandbox, probe_sandbox
from llmcourse.grading.spawner import ForkServer, ServerSpec

LIMITS = Limits(memory=3 * GiB, file_size=8 * MiB, interrupt_grace=1, processes=64)
SANDBOX = probe_sandbox()
needs_namespaces = pytest.mark.skipif(not SANDBOX.namespaces, reason="no namespaces here")
needs_user = pytest.mark.skipif(SANDBOX.uid is None, reason="not root: no user of its own")


@pytest.fixture(scope="module")
def server():
    server = ForkServer(SANDBOX, LIMITS, ServerSpec(("torch",)))
    yield server
    server.close()


def new_kernel(server: ForkServer, slot: int = 0) -> Kernel:
    kernel = Kernel(server, "any", LIMITS, OutputBudget(1000, 5000), slot)
    kernel.start(time.monotonic() + 60)
    return kernel


@pytest.fixture(scope="module")
def kernel(server):
    with new_kernel(server) as kernel:
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


def test_it_imports_like_a_kernel_started_by_jupyterlab(kernel):
    code = "import sys\nprint(sys.path.index('') < len(sys.path) - 2, sys.argv[1])"
    assert run(kernel, code) == "True -f"  # the working directory, before site-packages
    assert run(kernel, "import llmcourse.grading.expect\nprint('ok')") == "ok"


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
def test_it_runs_as_its_own_user_and_cannot_signal_the_grader(kernel):
    assert (
        run(kernel, "import os\nprint(os.getuid(), os.getgid(), os.getgroups())")
        == f"{SANDBOX.uid} {SANDBOX.uid} []"
    )
    result = kernel.execute(f"import os, signal\nos.kill({os.getpid()}, signal.SIGTERM)", 10)
    assert result.ename in ("PermissionError", "ProcessLookupError")


@needs_namespaces
def test_no_network(kernel):
    result = kernel.execute(
        "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)", 10
    )
    assert result.ename == "OSError" and "Network is unreachable" in result.evalue


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


# A kernel that makes its replies huge: IPython's formatter of every object gives 200 MB
# of text, or a JSON value of ten million items (the grader's call results included).
HUGE_REPLIES = {
    "text": "get_ipython().display_formatter.formatters['text/plain'].for_type(\n"
    "    object, lambda obj, p, cycle: p.text('x' * 200_000_000))",
    "json": "get_ipython().display_formatter.formatters['application/json'].for_type(\n"
    "    object, lambda obj: [0] * 10_000_000)",
}


@pytest.mark.parametrize("kind", HUGE_REPLIES)
def test_a_huge_reply_is_refused_before_it_is_parsed(server, kind):
    """What a kernel sends is size-checked before it is parsed: a reply of 200 MB is
    refused by the socket, one of ten million values before JSON makes them; either
    costs the grader at most a few times the message limit (``ast.literal_eval`` of
    such a reply took it past 4 GB)."""
    with new_kernel(server) as kernel:
        run(kernel, HUGE_REPLIES[kind])
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # (the kernel takes seconds to make such a reply: a generous time limit)
        result = kernel.execute("", 60, user_expressions={"r": "type('R', (), {})()"})
        assert result.status == "protocol" and "limit is dropped" in result.detail
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
        assert grown < 4 * LIMITS.message_size


def test_an_ignored_interrupt_kills_everything_the_kernel_started(server):
    with new_kernel(server) as kernel:
        escape = "import subprocess\nsubprocess.Popen(['sleep', '300'], start_new_session=True)"
        assert kernel.execute(escape, 10).status == "ok"
        stubborn = (
            "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
        )
        result = kernel.execute(stubborn, 1)
        assert result.status == "timeout" and "ignored the interrupt, killed" in result.detail
        assert not kernel.alive
        assert kernel.execute("1", 1).status == "died"
    if SANDBOX.namespaces or SANDBOX.uid is not None:  # else a new session escapes the kill
        assert [p for p in leftover_processes() if "sleep" in p] == []


def test_a_crash_is_reported_with_its_signal(server):
    with new_kernel(server) as kernel:
        result = kernel.execute("import ctypes\nctypes.string_at(0)", 10)
        assert result.status == "died" and result.detail == "the kernel died (killed by SIGSEGV)"


def test_kernels_are_forked_from_the_warm_server(server):
    """A kernel starts with what the server imported (the benchmark measures what that
    saves), including what torch imports only on first use: sympy for
    ``torch.broadcast_shapes`` took a second of every call's time limit, numpy for
    ``Tensor.numpy()`` the first time the channel returned a tensor."""
    with new_kernel(server) as kernel:
        code = "import sys\nprint('torch' in sys.modules, 'ipykernel' in sys.modules)"
        assert run(kernel, code) == "True True"
        first_use = (
            "import sys, torch\nbefore = set(sys.modules)\n"
            "torch.broadcast_shapes((2, 1), (1, 3)), torch.ones(2).numpy()\n"
            "print(sorted(set(sys.modules) - before))"
        )
        assert run(kernel, first_use) == "[]"


def test_without_namespaces_a_kernel_still_runs_stops_and_is_removed():
    """Where namespaces are not allowed (Gradescope), the same fork server runs kernels
    with plain limits, in a runtime folder on the host's disk that goes with them."""
    server = ForkServer(Sandbox(None, namespaces=False), LIMITS, ServerSpec(()))
    try:
        with new_kernel(server) as kernel:
            home = run(kernel, "import os\nprint(os.getcwd())")
            assert home.startswith(str(server.base)) and os.path.isdir(home)
            assert kernel.execute("while True:\n    pass", 1).status == "timeout"
            result = kernel.execute("import ctypes\nctypes.string_at(0)", 10)
            assert result.detail == "the kernel died (killed by SIGSEGV)"
        deadline = time.monotonic() + 10
        while os.path.exists(home) and time.monotonic() < deadline:
            time.sleep(0.05)  # the fork server removes it once the kernel is gone
        assert not os.path.exists(home)
    finally:
        server.close()
    assert not server.base.exists()
