"""What each answer must write itself, and what stands in for it in later answers.

A grading test module may declare, per answer id (plain literals, read without
importing the module)::

    OFF_LIMITS = {
        "attention": [
            "torch.nn.functional.scaled_dot_product_attention",  # a torch function
            "aten::*scaled_dot_product*",  # ATen operators, by pattern
        ],
    }
    STAND_INS = {
        "attention": "from llmcourse.modules.attention import "
        "scaled_dot_product_attention as attention",
    }

An answer's off-limits names are unavailable in the kernel that grades it (see
:mod:`llmcourse.grading.blocking`): those declared, plus by default the course
package's own implementation of the answer, that is every function or class of the
package named like a function or class the answer defines, and whatever its stand-in
imports from the package. A call reaches a stub that raises ``OffLimitsError: uses
<name>, which this exercise asks you to write``.

A stand-in is trusted code that defines an answer's names with a reference
implementation. When a later answer uses an earlier one that has a stand-in, the
later answer's kernel runs the stand-in right after the earlier answer's cell, so a
mistake in the earlier answer costs points only once (the earlier answer is graded in
its own kernel, where its stand-in's code is off limits).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import llmcourse
from llmcourse.grading.blocking import message

PACKAGE = Path(llmcourse.__file__).resolve().parent
NOT_ANSWERS = ("grading", "cli.py", "exercises.py", "checks.py", "display.py")  # course machinery


class RulesError(ValueError):
    """A malformed or unresolvable declaration in a grading test module."""


@dataclass(frozen=True)
class Rules:
    """The declarations of one grading test module (see the module docstring)."""

    off_limits: dict[str, tuple[str, ...]] = field(default_factory=dict)
    stand_ins: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, tests_file: Path) -> Rules:
        """The declarations of ``tests_file``, read without running it: module-level
        assignments of literals, f-strings and sums of them, and names of earlier ones.

        Raises:
            RulesError: not such values, or not of the right shape.
        """
        found: dict[str, Any] = {}
        tree = ast.parse(tests_file.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        try:
                            found[target.id] = _constant(node.value, found)
                        except (ValueError, TypeError, SyntaxError, RecursionError):
                            if target.id in ("OFF_LIMITS", "STAND_INS"):
                                raise RulesError(f"{target.id} must be plain values") from None
        off_limits, stand_ins = found.get("OFF_LIMITS", {}), found.get("STAND_INS", {})
        if not _mapping_of(off_limits, list) or not all(
            isinstance(n, str) for names in off_limits.values() for n in names
        ):
            raise RulesError("OFF_LIMITS maps answer ids to lists of names")
        if not _mapping_of(stand_ins, str):
            raise RulesError("STAND_INS maps answer ids to source code")
        return cls({a: tuple(n) for a, n in off_limits.items()}, dict(stand_ins))


def _constant(node: ast.AST, names: dict[str, Any]) -> Any:
    """The value of a constant expression (literals, f-strings, ``+``, known names).

    Raises:
        ValueError: anything else.
    """
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    if isinstance(node, ast.JoinedStr):
        parts = [v.value if isinstance(v, ast.FormattedValue) else v for v in node.values]
        return "".join(str(_constant(part, names)) for part in parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _constant(node.left, names) + _constant(node.right, names)
    if isinstance(node, ast.List | ast.Tuple):
        items = [_constant(item, names) for item in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict) and None not in node.keys:
        keys = [_constant(k, names) for k in node.keys if k is not None]
        return dict(zip(keys, [_constant(v, names) for v in node.values], strict=True))
    return ast.literal_eval(node)  # a literal, or ValueError


def _mapping_of(value: Any, kind: type) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, kind) for k, v in value.items()
    )


# -- resolving names to what the kernel blocks ----------------------------------------------
def entries(rules: Rules, answer: str, defines: Iterable[str]) -> list[dict[str, Any]]:
    """What is off limits for ``answer``, whose cell defines the functions ``defines``,
    as plain data for :func:`llmcourse.grading.blocking.apply`.

    Raises:
        RulesError: a declared name does not exist.
    """
    found = [
        _python(f"{module}.{name}", module, path, name)
        for name in sorted(set(defines))
        for module, path in package_definitions().get(name, [])
    ]
    declared = list(rules.off_limits.get(answer, ()))
    declared += stand_in_imports(rules.stand_ins.get(answer, ""))
    found += [_resolve(name) for name in declared]
    blocked: dict[tuple[str, str], set[str]] = {}
    for e in found:
        if e["kind"] == "python":
            blocked.setdefault((e["module"], e["file"]), set()).add(e["qualname"])
    found += [
        _python(f"{module}.{helper}", module, path, helper)
        for (module, path), names in blocked.items()
        for helper in private_helpers(path, frozenset(names))
    ]
    unique = {(e.get("file"), e.get("qualname"), e.get("pattern")): e for e in found}
    return sorted(unique.values(), key=lambda e: (e["kind"], e["name"], e.get("pattern", "")))


def stand_in_imports(source: str) -> list[str]:
    """The package names a stand-in imports (``from llmcourse.x import y`` -> ``llmcourse.x.y``)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        raise RulesError(f"a stand-in is not valid Python: {source!r}") from None
    return [
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("llmcourse")
        for alias in node.names
    ]


def _python(name: str, module: str, path: str, qualname: str) -> dict[str, Any]:
    return {"kind": "python", "name": name, "module": module, "file": path, "qualname": qualname}


def _resolve(name: str) -> dict[str, Any]:
    if name.startswith("aten::"):
        return {"kind": "aten", "name": "", "pattern": name}
    value, module = _import(name)
    if isinstance(value, types.FunctionType | type):
        qualname = value.__qualname__
        if "." in qualname or "<" in qualname:
            raise RulesError(f"{name} is not defined at the top level of its module")
        try:
            path = inspect.getsourcefile(value)
        except TypeError:
            path = None
        if path is None:
            raise RulesError(f"{name} has no Python source")
        return _python(name, value.__module__, os.path.realpath(path), qualname)
    if callable(value):
        attribute = name.rsplit(".", 1)[1]
        return {
            "kind": "builtin",
            "name": name,
            "module": module,
            "attribute": attribute,
            "pattern": f"aten::{attribute}",
        }
    raise RulesError(f"{name} is neither a function nor a class")


def _import(name: str) -> tuple[Any, str]:
    """The object named ``name`` and the module it was found in."""
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            value: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        try:
            for attribute in parts[split:]:
                value = getattr(value, attribute)
        except AttributeError:
            break
        return value, module_name
    raise RulesError(f"no such function or class: {name}")


@cache
def private_helpers(path: str, blocked: frozenset[str]) -> frozenset[str]:
    """The private top-level functions and classes of the module ``path`` that only its
    ``blocked`` definitions use (transitively): part of their implementation, so off
    limits with them (``scaled_dot_product_attention`` computes all in ``_attend``), while
    a helper that an allowed function also uses stays."""
    uses = _private_uses(path)
    reach = {name: _reachable(name, uses) for name in uses}
    candidates = set().union(*(reach.get(name, set()) for name in blocked))
    public = [name for name in uses if not name.startswith("_")]
    return frozenset(
        helper
        for helper in candidates
        if all(name in blocked for name in public if helper in reach[name])
    )


@cache
def _private_uses(path: str) -> dict[str, frozenset[str]]:
    """Each top-level function or class of ``path`` -> the private ones it names."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    names = {node.name for node in tree.body if isinstance(node, defs)}
    return {
        node.name: frozenset(
            used.id
            for used in ast.walk(node)
            if isinstance(used, ast.Name) and used.id.startswith("_") and used.id in names
        )
        for node in tree.body
        if isinstance(node, defs)
    }


def _reachable(name: str, uses: dict[str, frozenset[str]]) -> set[str]:
    found: set[str] = set()
    todo = list(uses.get(name, ()))
    while todo:
        helper = todo.pop()
        if helper not in found:
            found.add(helper)
            todo += uses.get(helper, ())
    return found


@cache
def package_definitions() -> dict[str, list[tuple[str, str]]]:
    """Function or class name -> (module, file) of every top-level definition in the
    course package's model code (found by parsing, without importing)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in NOT_ANSWERS:
            continue
        module = ".".join(("llmcourse", *relative.with_suffix("").parts)).removesuffix(".__init__")
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                if not node.name.startswith("_"):
                    found.setdefault(node.name, []).append((module, str(path)))
    return found


# -- the stubbed source a kernel sees ---------------------------------------------------------
def stub_source(source: str, names: dict[str, str]) -> str:
    """``source`` with the body of each top-level function or class in ``names`` (its
    name -> the name shown to students) replaced by a stub that raises; the rest of the
    module is unchanged, so it still imports."""
    lines = source.splitlines(keepends=True)
    nodes = [
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and node.name in names
    ]
    for node in sorted(nodes, key=lambda n: n.lineno, reverse=True):
        indent = " " * (node.col_offset + 4)
        error = (
            "raise __import__('llmcourse.grading.blocking', fromlist=['_'])"
            f".OffLimitsError({message(names[node.name])!r})"
        )
        if isinstance(node, ast.ClassDef):
            body = [f"{indent}def __init__(self, *args, **kwargs):\n", f"{indent}    {error}\n"]
        else:
            body = [f"{indent}{error}\n"]
        start, end = node.body[0].lineno - 1, node.end_lineno or node.lineno
        if start < node.lineno:  # the body is on the def line
            header = f"def {node.name}(*args, **kwargs):\n"
            if isinstance(node, ast.ClassDef):
                header = f"class {node.name}:\n"
            lines[node.lineno - 1 : end] = [" " * node.col_offset + header, *body]
        else:
            lines[start:end] = body
    return "".join(lines)


def stub_files(entries: list[dict[str, Any]]) -> dict[str, str]:
    """Source file -> its stubbed text, for the ``python`` entries."""
    by_file: dict[str, dict[str, str]] = {}
    for entry in entries:
        if entry["kind"] == "python":
            by_file.setdefault(entry["file"], {})[entry["qualname"]] = entry["name"]
    return {
        path: stub_source(Path(path).read_text(encoding="utf-8"), names)
        for path, names in by_file.items()
    }
