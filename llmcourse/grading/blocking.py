"""Inside a grading kernel: make what an answer must write itself unavailable.

Run once in each kernel process, before the kernel starts (see
:mod:`llmcourse.grading.forkserver`), with the answer's off-limits entries
(:mod:`llmcourse.grading.offlimits` resolves them in the grader):

- ``python``: a function or class defined in Python (the course package's own
  implementation of the answer, or a torch class): the code of every function it
  consists of (methods and nested functions included) is replaced by a stub that raises
  :class:`OffLimitsError`. The function objects stay where they are, so every way to
  reach them (an attribute, ``getattr`` on its module, an object imported earlier, a
  ``functools.partial``) reaches the stub, and the original code is gone from the
  process. Its source file and compiled ``.pyc`` are replaced in the kernel's view of
  the file system by a stub too (see :func:`llmcourse.grading.offlimits.stub_source`),
  so re-importing it or reading its source finds nothing either.
- ``builtin``: a function implemented in C (``torch.nn.functional.scaled_dot_product_attention``):
  its attribute is replaced by a stub, and its ATen operator gets a stub kernel.
- ``aten``: ATen operators by name pattern (``aten::*scaled_dot_product*``): a stub
  kernel is registered for each, in front of the real one, so every path to the
  operator (``torch.ops.aten...``, ``torch._C``, internal callers) hits the stub. The
  registration handle is kept by nothing a Python program can reach, so it cannot be
  undone.

This module runs in the kernel: standard library only (torch when an entry needs it).
"""

from __future__ import annotations

import ctypes
import fnmatch
import importlib
import linecache
import os
import sys
import types
import warnings
from typing import Any

MESSAGE = "uses {name}, which this exercise asks you to write"


class OffLimitsError(RuntimeError):
    """Raised by anything an answer must not use."""


def message(name: str) -> str:
    """What a stub says when it is called."""
    return MESSAGE.format(name=name)


def apply(entries: list[dict[str, Any]]) -> None:
    """Block every entry (``kind`` python, builtin or aten; see the module docstring)."""
    for entry in entries:
        if entry["kind"] == "python":
            _block_python(entry)
    ops = [e for e in entries if e["kind"] == "aten"]
    ops += [e for e in entries if e["kind"] == "builtin"]  # last: their own message wins
    if ops:
        _block_operators(ops)
    for entry in entries:
        if entry["kind"] == "builtin":
            module = importlib.import_module(entry["module"])
            setattr(module, entry["attribute"], _stub(message(entry["name"])))
    linecache.clearcache()


def _stub(text: str, freevars: tuple[str, ...] = ()) -> types.FunctionType:
    """A function raising ``OffLimitsError(text)``, with the free variables ``freevars``
    (a code object can only replace one with as many). It finds the exception class by
    importing this module, so it works under any function's globals."""
    assigns = "".join(f"    {name} = None\n" for name in freevars)
    uses = f"        ({', '.join(freevars)},)\n" if freevars else ""
    source = (
        f"def outer():\n{assigns}    def stub(*args, **kwargs):\n{uses}"
        f"        raise __import__({__name__!r}, fromlist=['_']).OffLimitsError({text!r})\n"
        "    return stub\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, "<off limits>", "exec"), namespace)
    return namespace["outer"]()


def _block_python(entry: dict[str, Any]) -> None:
    module = sys.modules.get(entry["module"])
    if module is None:
        return  # never imported: importing it reads the stubbed file
    target = getattr(module, entry["qualname"], None)
    filename = os.path.realpath(entry["file"])
    for function in _functions(target, filename):
        stub = _stub(message(entry["name"]), function.__code__.co_freevars)
        function.__code__ = stub.__code__


def _functions(target: Any, filename: str) -> list[types.FunctionType]:
    """The Python functions ``target`` consists of, defined in ``filename``."""
    found: dict[int, types.FunctionType] = {}
    todo, seen = [target], set()
    while todo:
        item = todo.pop()
        if id(item) in seen or item is None:
            continue
        seen.add(id(item))
        if isinstance(item, types.FunctionType):
            if os.path.realpath(item.__code__.co_filename) == filename:
                found[id(item)] = item
            todo += [getattr(item, "__wrapped__", None)]
            todo += [_cell(c) for c in item.__closure__ or ()]
        elif isinstance(item, staticmethod | classmethod):
            todo.append(item.__func__)
        elif isinstance(item, property):
            todo += [item.fget, item.fset, item.fdel]
        elif isinstance(item, type) and _defined_in(item, filename):
            todo += list(vars(item).values())
        elif callable(item) and hasattr(item, "__wrapped__"):
            todo.append(item.__wrapped__)
    return list(found.values())


def _cell(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:
        return None


def _defined_in(cls: type, filename: str) -> bool:
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    return path is not None and os.path.realpath(path) == filename


def _block_operators(entries: list[dict[str, Any]]) -> None:
    import torch

    names = sorted(torch._C._dispatch_get_all_op_names())
    library = torch._C._dispatch_library("IMPL", "aten", "", "", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Overriding a previously registered kernel"
        for entry in entries:
            for op in names:
                if not fnmatch.fnmatchcase(op, entry["pattern"]):
                    continue
                shown = entry.get("name") or "torch.ops." + op.replace("::", ".")
                stub = _stub(message(shown))
                for key in ("CompositeImplicitAutograd", "CompositeExplicitAutograd", "CPU"):
                    if key == "CPU" or torch._C._dispatch_has_kernel_for_dispatch_key(op, key):
                        library.impl(op.split("::", 1)[1], key, stub, False)
    # keep the registrations for the life of the process, held by nothing reachable
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(library))
