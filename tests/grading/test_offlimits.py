"""Off-limits code: declarations, stubs, and every way a kernel might still reach it."""

from __future__ import annotations

import ast
import json
import time

import pytest

from llmcourse.grading.kernel import Kernel, OutputBudget
from llmcourse.grading.limits import Limits
from llmcourse.grading.offlimits import (
    Rules,
    RulesError,
    entries,
    package_definitions,
    private_helpers,
    stub_source,
)
from llmcourse.grading.sandbox import probe_sandbox
from llmcourse.grading.spawner import ForkServer, ServerSpec

SANDBOX = probe_sandbox()
LIMITS = Limits(interrupt_grace=1)
SDPA = "torch.nn.functional.scaled_dot_product_attention"


def write_rules(tmp_path, text: str):
    path = tmp_path / "test_chxx.py"
    path.write_text(text)
    return Rules.read(path)


def test_rules_are_read_without_importing_the_tests(tmp_path):
    rules = write_rules(
        tmp_path,
        "import no_such_module\n"
        f"OFF_LIMITS = {{'attention': [{SDPA!r}, 'aten::*scaled_dot_product*']}}\n"
        "STAND_INS = {'attention': 'def attention(q, k, v):\\n    return v'}\n",
    )
    assert rules.off_limits == {"attention": (SDPA, "aten::*scaled_dot_product*")}
    assert rules.stand_ins == {"attention": "def attention(q, k, v):\n    return v"}
    assert write_rules(tmp_path, "x = 1\n") == Rules()


@pytest.mark.parametrize(
    "text",
    ["OFF_LIMITS = {'a': 'not a list'}", "OFF_LIMITS = make()", "STAND_INS = {'a': ['x']}"],
)
def test_malformed_rules_are_refused(tmp_path, text):
    with pytest.raises(RulesError):
        write_rules(tmp_path, text)


def test_by_default_the_package_implementation_of_an_answer_is_off_limits():
    module, path = package_definitions()["sinusoidal_encoding"][0]
    found = entries(Rules(), "sinusoidal_encoding", ["sinusoidal_encoding"])
    assert found[0] == {
        "kind": "python",
        "name": f"{module}.sinusoidal_encoding",
        "module": module,
        "file": path,
        "qualname": "sinusoidal_encoding",
    }
    assert all(e["qualname"].startswith("_") for e in found[1:])  # its private helpers
    assert entries(Rules(), "x", ["a_name_the_package_does_not_have"]) == []


def test_private_helpers_go_with_the_code_only_they_serve(tmp_path):
    """A private helper only off-limits code uses is off limits too (it may compute the
    whole answer); one that allowed code also uses stays available."""
    module = tmp_path / "m.py"
    module.write_text(
        "def _core(x):\n    return _inner(x)\n\ndef _inner(x):\n    return x\n\n"
        "def _check(x):\n    return x\n\n"
        "def blocked(x):\n    return _core(_check(x))\n\n"
        "def allowed(x):\n    return _check(x)\n"
    )
    assert private_helpers(str(module), frozenset({"blocked"})) == {"_core", "_inner"}
    both = frozenset({"blocked", "allowed"})
    assert private_helpers(str(module), both) == {"_core", "_inner", "_check"}


def test_declarations_may_name_constants_and_build_strings(tmp_path):
    rules = write_rules(
        tmp_path,
        "BASE = 'llmcourse.modules'\nTORCH = ['torch.nn.MultiheadAttention']\n"
        "OFF_LIMITS = {'a': [f'{BASE}.MultiHeadAttention'] + TORCH}\n",
    )
    assert rules.off_limits == {
        "a": ("llmcourse.modules.MultiHeadAttention", "torch.nn.MultiheadAttention")
    }


def test_declared_names_and_what_a_stand_in_imports_are_off_limits():
    module, _ = package_definitions()["apply_rope"][0]
    rules = Rules(
        {"attention": (SDPA, "aten::*scaled_dot_product*")},
        {"attention": f"from {module} import apply_rope as attention"},
    )
    kinds = {e["name"] or e["pattern"]: e["kind"] for e in entries(rules, "attention", [])}
    assert kinds == {
        SDPA: "builtin",
        "aten::*scaled_dot_product*": "aten",
        f"{module}.apply_rope": "python",
    }
    with pytest.raises(RulesError, match="no such function or class: torch.no_such"):
        entries(Rules({"a": ("torch.no_such",)}), "a", [])


def test_a_stub_keeps_the_module_importable_but_its_code_is_gone():
    source = (
        "import math\n\n@staticmethod\ndef keep(x):\n    return x\n\n"
        "def secret(x, y=2):\n    '''docs'''\n    return math.sqrt(x) * y\n\n"
        "class Secret(dict):\n    def method(self):\n        return 42\n\n"
        "def one_line(): return 'hidden'\n"
    )
    names = {n: f"pkg.{n}" for n in ("secret", "Secret", "one_line")}
    stubbed = stub_source(source, names)
    for gone in ("math.sqrt", "docs", "42", "hidden"):
        assert gone not in stubbed
    assert "def keep(x):\n    return x" in stubbed and "def secret(x, y=2):" in stubbed
    namespace: dict = {}
    exec(compile(stubbed, "stub", "exec"), namespace)
    for call in (lambda: namespace["secret"](1), namespace["Secret"], namespace["one_line"]):
        with pytest.raises(RuntimeError, match="uses pkg.*, which this exercise asks you to write"):
            call()
    ast.parse(stubbed)


# Every way a kernel might reach the blocked code; each must end in OffLimitsError
# (or find no code at all), while a neighbour in the same module still works.
ATTEMPTS = {
    "import": "from {module} import sinusoidal_encoding as f\nf(4, 2)",
    "getattr": "import importlib\ngetattr(importlib.import_module({module!r}), 'sinusoidal_' "
    "+ 'encoding')(4, 2)",
    "source": "import inspect, {module} as m\nns = {{}}\nexec(inspect.getsource(m), ns)\n"
    "ns['sinusoidal_encoding'](4, 2)",
    "file": "import {module} as m\nns = {{'__name__': 'x'}}\nexec(open(m.__file__).read(), ns)\n"
    "ns['sinusoidal_encoding'](4, 2)",
    "reload": "import importlib, {module} as m\nimportlib.reload(m).sinusoidal_encoding(4, 2)",
    "gc": "import gc, types\n[o for o in gc.get_objects() if isinstance(o, types.FunctionType) "
    "and o.__name__ == 'sinusoidal_encoding'][0](4, 2)",
    "pyc": "import importlib.util, marshal, {module} as m\n"
    "data = open(importlib.util.cache_from_source(m.__file__), 'rb').read()\n"
    "ns = {{}}\nexec(marshal.loads(data[16:]), ns)\nns['sinusoidal_encoding'](4, 2)",
    "functional": "import torch, torch.nn.functional as F\nq = torch.ones(1, 2, 4)\n"
    "F.scaled_dot_product_attention(q, q, q)",
    "aten": "import torch\nq = torch.ones(1, 1, 2, 4)\n"
    "torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, q, q)",
    "C": "import torch\nq = torch.ones(1, 2, 4)\n"
    "torch._C._nn.scaled_dot_product_attention(q, q, q)",
}


@pytest.fixture(scope="module")
def server():
    module, _ = package_definitions()["sinusoidal_encoding"][0]
    found = entries(
        Rules({"pe": (SDPA, "aten::*scaled_dot_product*")}), "pe", ["sinusoidal_encoding"]
    )
    spec = ServerSpec((module, "torch.nn.functional"), json.dumps({"pe": found}))
    server = ForkServer(SANDBOX, LIMITS, spec)
    yield server, module
    server.close()


@pytest.fixture
def blocked(server):
    """A fresh kernel of the answer "pe", and the module of the blocked function."""
    with Kernel(server[0], "pe", LIMITS, OutputBudget(10_000, 100_000)) as kernel:
        kernel.start(time.monotonic() + 60)
        yield kernel, server[1]


@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_no_way_reaches_off_limits_code(blocked, attempt):
    kernel, module = blocked
    if attempt in ("source", "file", "reload", "pyc") and not SANDBOX.namespaces:
        pytest.skip("without namespaces the source file stays readable")
    result = kernel.execute(ATTEMPTS[attempt].format(module=module), 10)
    assert result.status == "error", "reached the real code"
    if attempt == "pyc":  # the compiled file is an empty file in the kernel's view
        assert result.ename in ("EOFError", "ValueError", "FileNotFoundError")
    else:
        assert result.ename == "OffLimitsError"
        assert result.evalue.startswith("uses ") and "which this exercise asks you to write" in (
            result.evalue
        )


def test_the_rest_of_the_module_and_of_torch_still_works(blocked):
    kernel, module = blocked
    others = [
        name
        for name, places in package_definitions().items()
        if any(m == module for m, _ in places) and name != "sinusoidal_encoding"
    ]
    code = f"import {module} as m, torch\nprint(m.{others[0]}.__code__.co_name, "
    code += "m.sinusoidal_encoding.__code__.co_name, torch.softmax(torch.zeros(2), 0).tolist())"
    result = kernel.execute(code, 10)
    assert result.status == "ok", result.summary()
    assert result.output.strip() == f"{others[0]} stub [0.5, 0.5]"  # its code is gone
