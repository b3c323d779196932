"""The wire format between the grader and the student's code: plain data as tagged JSON.

A grading test calls ``student.call("name", *args)``. The arguments are encoded here,
sent to the student's kernel, decoded there, the function is called, and its result
travels back the same way. Only plain data crosses: ``None``, ``bool``, ``int``,
``float`` (``nan`` and ``inf`` included), ``str``, ``list``, ``tuple``, ``dict`` (any
plain, hashable keys, e.g. tuples), ``set``, ``frozenset``, ``torch.Tensor`` and
``numpy.ndarray`` (raw bytes with dtype and shape). Never pickle: the decoder builds
new objects of exactly these types, so whatever the student's objects do (an
``__eq__`` that is always true, a ``dict`` subclass, a tensor subclass) is gone after
the trip. Subclasses of the plain types travel as their base type (a ``Counter`` comes
back as a ``dict``); anything else is refused with a message naming its type.

JSON values stand for themselves except objects, which are always a tag with one key:
``{"$float": "nan"}``, ``{"$tuple": [...]}``, ``{"$dict": [[key, value], ...]}``,
``{"$set": [...]}``, ``{"$frozenset": [...]}``, ``{"$counter": [[key, count], ...]}`` (in
arguments only, see :func:`encode`),
``{"$tensor": {"dtype": "float32", "shape": [2, 3], "data": "<base64>"}}`` and
``{"$ndarray": {...}}`` likewise.

This module imports only the standard library (torch and numpy when a value needs
them) because its source also runs inside the student's kernel: :func:`call_expression`
builds an expression that executes this file in a fresh namespace and then
:func:`kernel_call`. Nothing is left in the kernel's globals. The kernel side is
untrusted: :func:`decode` validates everything it is given, and the grader trusts
nothing but the decoded plain values.
"""

from __future__ import annotations

import base64
import collections
import functools
import json
import math
import random
import sys
import traceback
from typing import Any

MAX_DEPTH = 100
MAX_ITEMS = 2_000_000
RESPONSE_VALUES = 2 * MAX_ITEMS + 1000  # a $dict entry is a pair: two values per item
DTYPES = {
    "bool": 1, "uint8": 1, "int8": 1, "int16": 2, "int32": 4, "int64": 8, "float16": 2,
    "bfloat16": 2, "float32": 4, "float64": 8, "complex64": 8, "complex128": 16,
}  # fmt: skip
PLAIN = (
    "None, bool, int, float, str, list, tuple, dict, set, frozenset, torch.Tensor or numpy.ndarray"
)


class NotPlainData(TypeError):
    """A value that cannot cross the channel."""


class ProtocolError(ValueError):
    """Data from the other side that does not follow this format."""


# -- encoding --------------------------------------------------------------------------
def encode(value: Any, counters: bool = True) -> Any:
    """The JSON-ready form of a plain value.

    Args:
        value: the value.
        counters: keep ``collections.Counter`` objects (missing keys count 0) as
            ``{"$counter": ...}``; otherwise they travel as plain dicts. Arguments keep
            them, since exercises promise them; results do not (compared by value,
            a ``dict`` equals a ``Counter`` with the same items).

    Raises:
        NotPlainData: the value (or something inside it) is not plain data.
    """
    return _Encoder(counters).encode(value, 0)


class _Encoder:
    def __init__(self, counters: bool) -> None:
        self.items, self.counters = 0, counters

    def encode(self, value: Any, depth: int) -> Any:
        self.items += 1
        if depth > MAX_DEPTH:
            raise NotPlainData(f"a value nested more than {MAX_DEPTH} levels deep")
        if self.items > MAX_ITEMS:
            raise NotPlainData(f"a value with more than {MAX_ITEMS} items")
        if value is None or type(value) in (bool, str):
            return value
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return int.__int__(value)
        if isinstance(value, float):
            number = float.__float__(value)
            return number if math.isfinite(number) else {"$float": repr(number)}
        if isinstance(value, str):
            return str.__str__(value)
        if isinstance(value, list):
            return [self.encode(x, depth + 1) for x in list.__iter__(value)]
        if isinstance(value, tuple):
            return {"$tuple": [self.encode(x, depth + 1) for x in tuple.__iter__(value)]}
        if isinstance(value, dict):
            pairs = dict.items(value)
            if self.counters and isinstance(value, collections.Counter):
                return {
                    "$counter": [
                        [self.encode(k, depth + 1), self.encode(v, depth + 1)] for k, v in pairs
                    ]
                }
            return {
                "$dict": [[self.encode(k, depth + 1), self.encode(v, depth + 1)] for k, v in pairs]
            }
        if isinstance(value, frozenset):
            return {"$frozenset": [self.encode(x, depth + 1) for x in frozenset.__iter__(value)]}
        if isinstance(value, set):
            return {"$set": [self.encode(x, depth + 1) for x in set.__iter__(value)]}
        torch, numpy = sys.modules.get("torch"), sys.modules.get("numpy")
        if torch is not None and isinstance(value, torch.Tensor):
            return {"$tensor": _tensor_payload(torch, value)}
        if numpy is not None and isinstance(value, numpy.ndarray):
            return {"$ndarray": _array_payload(value)}
        if numpy is not None and isinstance(value, numpy.generic):
            return self.encode(numpy.asarray(value).item(), depth)
        raise NotPlainData(f"an object of type {type(value).__module__}.{type(value).__qualname__}")


def _tensor_payload(torch: Any, tensor: Any) -> dict[str, Any]:
    if tensor.layout != torch.strided or tensor.is_quantized:
        raise NotPlainData("a sparse or quantized tensor (use .to_dense() or .dequantize())")
    dtype = str(tensor.dtype).removeprefix("torch.")
    if dtype not in DTYPES:
        raise NotPlainData(f"a tensor of dtype {dtype}")
    flat = tensor.detach().to("cpu").resolve_conj().resolve_neg().contiguous().reshape(-1)
    if dtype in ("float16", "bfloat16"):
        flat = flat.view(torch.int16)
    return {
        "dtype": dtype,
        "shape": list(tensor.shape),
        "data": base64.b64encode(flat.numpy().tobytes()).decode("ascii"),
    }


def _array_payload(array: Any) -> dict[str, Any]:
    dtype = str(array.dtype)
    if dtype not in DTYPES or dtype == "bfloat16":
        raise NotPlainData(f"an array of dtype {dtype}")
    data = array.astype(array.dtype.newbyteorder("="), copy=False).tobytes(order="C")
    return {"dtype": dtype, "shape": list(array.shape), "data": base64.b64encode(data).decode()}


def dumps(value: Any, limit: int) -> str:
    """Encode a result ``value`` as JSON text of at most ``limit`` characters.

    Raises:
        NotPlainData: not plain data, or too large.
    """
    text = json.dumps(encode(value, counters=False), allow_nan=False, separators=(",", ":"))
    if len(text) > limit:
        raise NotPlainData(
            f"a value of {len(text) / 2**20:.1f} MiB, over the {limit / 2**20:g} MiB limit"
        )
    return text


# -- decoding --------------------------------------------------------------------------
def decode(data: Any) -> Any:
    """The plain value that ``data`` (parsed JSON, untrusted) stands for.

    Raises:
        ProtocolError: ``data`` does not follow the format.
    """
    return _Decoder().decode(data, 0)


class _Decoder:
    def __init__(self) -> None:
        self.items = 0

    def decode(self, data: Any, depth: int) -> Any:
        self.items += 1
        if depth > MAX_DEPTH or self.items > MAX_ITEMS:
            raise ProtocolError("value too deep or too large")
        if data is None or type(data) in (bool, int, str):
            return data
        if type(data) is float:
            if not math.isfinite(data):
                raise ProtocolError("non-finite float outside a $float tag")
            return data
        if type(data) is list:
            return [self.decode(x, depth + 1) for x in data]
        if type(data) is not dict or len(data) != 1:
            raise ProtocolError(f"expected a tagged object, got {type(data).__name__}")
        ((tag, body),) = data.items()
        if tag == "$float":
            if body not in ("nan", "inf", "-inf"):
                raise ProtocolError(f"bad $float {body!r}")
            return float(body)
        if tag in ("$tuple", "$set", "$frozenset"):
            items = [self.decode(x, depth + 1) for x in _list(body, tag)]
            kind = {"$tuple": tuple, "$set": set, "$frozenset": frozenset}[tag]
            return kind(items) if tag == "$tuple" else _hashable(kind, items)
        if tag in ("$dict", "$counter"):
            pairs = [_list(pair, "$dict pair") for pair in _list(body, tag)]
            if any(len(pair) != 2 for pair in pairs):
                raise ProtocolError("a $dict entry is not a [key, value] pair")
            keys = [self.decode(k, depth + 1) for k, _ in pairs]
            values = [self.decode(v, depth + 1) for _, v in pairs]
            try:
                mapping = dict(zip(keys, values, strict=True))
            except TypeError as err:
                raise ProtocolError(f"unhashable dict key: {err}") from None
            return collections.Counter(mapping) if tag == "$counter" else mapping
        if tag in ("$tensor", "$ndarray"):
            dtype, shape, raw = _array_parts(body)
            self.items += len(raw) // DTYPES[dtype]
            if self.items > MAX_ITEMS * 8:
                raise ProtocolError("array too large")
            return _tensor(dtype, shape, raw) if tag == "$tensor" else _array(dtype, shape, raw)
        raise ProtocolError(f"unknown tag {tag!r}")


def _list(body: Any, what: str) -> list[Any]:
    if type(body) is not list:
        raise ProtocolError(f"{what} must hold a list")
    return body


def _hashable(kind: type, items: list[Any]) -> Any:
    try:
        return kind(items)
    except TypeError as err:
        raise ProtocolError(f"unhashable set element: {err}") from None


def _array_parts(body: Any) -> tuple[str, list[int], bytes]:
    if type(body) is not dict or set(body) != {"dtype", "shape", "data"}:
        raise ProtocolError("an array needs exactly dtype, shape and data")
    dtype, shape, data = body["dtype"], body["shape"], body["data"]
    if dtype not in DTYPES:
        raise ProtocolError(f"unsupported dtype {dtype!r}")
    if (
        type(shape) is not list
        or any(type(n) is not int or n < 0 for n in shape)
        or len(shape) > 32
    ):
        raise ProtocolError(f"bad shape {shape!r}")
    if type(data) is not str:
        raise ProtocolError("array data must be base64 text")
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        raise ProtocolError("array data is not base64") from None
    if len(raw) != math.prod(shape) * DTYPES[dtype]:
        raise ProtocolError(f"{len(raw)} bytes do not fill a {dtype} array of shape {shape}")
    return dtype, shape, raw


def _tensor(dtype: str, shape: list[int], raw: bytes) -> Any:
    import torch

    torch_dtype = getattr(torch, dtype)
    if not raw:
        return torch.empty(shape, dtype=torch_dtype)
    return torch.frombuffer(bytearray(raw), dtype=torch_dtype).reshape(shape)


def _array(dtype: str, shape: list[int], raw: bytes) -> Any:
    import numpy

    return numpy.frombuffer(raw, dtype=numpy.dtype(dtype)).reshape(shape).copy()


def parse_response(text: str) -> tuple[str, Any]:
    """``("ok", value)`` or ``("error", fields)`` from a :func:`kernel_call` response.

    Raises:
        ProtocolError: the text (untrusted) is not such a response.
    """
    from llmcourse.grading.replies import bounded_loads  # in the grader only, never the kernel

    return check_response(bounded_loads(text.encode(), RESPONSE_VALUES))


def check_response(data: Any) -> tuple[str, Any]:
    """:func:`parse_response` for a response already parsed (by the kernel's
    ``application/json`` formatter and :mod:`llmcourse.grading.replies`).

    Raises:
        ProtocolError: ``data`` (untrusted) is not such a response.
    """
    if type(data) is not dict or len(data) != 1:
        raise ProtocolError("a response is {'ok': value} or {'error': {...}}")
    ((key, body),) = data.items()
    if key == "ok":
        return "ok", decode(body)
    if key != "error" or type(body) is not dict:
        raise ProtocolError("a response is {'ok': value} or {'error': {...}}")
    fields = {k: body.get(k, "") for k in ("kind", "message", "type", "traceback")}
    fields["bases"] = body.get("bases", [])
    if (
        any(type(v) is not str for k, v in fields.items() if k != "bases")
        or type(fields["bases"]) is not list
        or any(type(b) is not str for b in fields["bases"])
    ):
        raise ProtocolError("malformed error response")
    return "error", fields


def reject_constant(name: str) -> None:
    """For ``json.loads(parse_constant=...)``: NaN and Infinity travel as ``$float`` tags."""
    raise ProtocolError(f"JSON constant {name} is not allowed")


# -- the call, run inside the kernel ----------------------------------------------------
def call_request(function: str, args: tuple[Any, ...], kwargs: dict[str, Any], seed: int) -> str:
    """The JSON text of a call request."""
    return json.dumps(
        {"function": function, "args": encode(list(args)), "kwargs": encode(kwargs), "seed": seed},
        allow_nan=False,
    )


def call_expression(request: str, result_limit: int) -> str:
    """A Python expression that, evaluated in the kernel's namespace, performs the call.

    It executes the source of this module in a fresh dictionary and returns
    :func:`kernel_call`'s response as a :class:`Response`, which IPython sends as
    ``application/json`` data (so the grader parses it once, as JSON); the kernel's
    globals are only read. Built-ins are reached through the ``builtins`` module, so a
    student's global named ``exec`` or ``compile`` does not get in the way.
    """
    code = _source()
    return (
        "(lambda b, ns: (b.exec(b.compile(ns['src'], '<llmcourse channel>', 'exec'), ns),"
        f" ns['Response'](ns['kernel_call'](b.globals(), {request!r}, {result_limit})))[1])"
        f"(__import__('builtins'), {{'__name__': 'llmcourse_channel', 'src': {code!r}}})"
    )


class Response:
    """A call's response in the kernel: IPython shows it as ``application/json``."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_json_(self) -> Any:
        return json.loads(self.text)

    def __repr__(self) -> str:
        return "<llmcourse call response>"


@functools.cache
def _source() -> str:
    with open(__file__, encoding="utf-8") as source:
        return source.read()


def kernel_call(namespace: dict[str, Any], request: str, result_limit: int) -> str:
    """Seed the RNGs, call ``namespace[function](*args, **kwargs)``, return a JSON response.

    The response is ``{"ok": <encoded value>}`` or ``{"error": {...}}`` with ``kind``
    one of ``raised`` (the function raised; with ``type``, ``bases`` (the built-in
    exception classes it derives from, nearest first) and ``traceback``), ``undefined``
    or ``not_plain``, and a ``message``.
    """
    message = json.loads(request)
    name = message["function"]
    function = namespace.get(name)
    if not callable(function):
        found = "is not defined" if function is None else f"is a {type(function).__name__}"
        return _error("undefined", f"{name} {found}: the notebook must define a function {name}()")
    args, kwargs = decode(message["args"]), decode(message["kwargs"])
    seed(message["seed"])
    try:
        value = function(*args, **kwargs)
    except BaseException as err:  # noqa: BLE001 - everything the student raises is reported
        return _error(
            "raised",
            _message(err),
            type=type(err).__name__,
            bases=_builtin_bases(type(err)),
            traceback=_traceback(err),
        )
    try:
        return '{"ok":' + dumps(value, result_limit) + "}"
    except NotPlainData as err:
        return _error("not_plain", f"{name} returned {err}; expected plain data ({PLAIN})")


def seed(value: int) -> None:
    """Seed Python's, numpy's and torch's global RNGs (those of imported modules)."""
    random.seed(value)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(value)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(value)


def _error(kind: str, message: str, **fields: Any) -> str:
    return json.dumps({"error": {"kind": kind, "message": message, **fields}})


def _message(err: BaseException) -> str:
    try:
        return str(err)[:2000]
    except Exception:  # noqa: BLE001 - a student's __str__ may raise
        return "<the exception's message could not be printed>"


def _builtin_bases(kind: type) -> list[str]:
    """The built-in exception classes among ``kind``'s bases, nearest first."""
    import builtins

    return [b.__name__ for b in kind.__mro__ if getattr(builtins, b.__name__, None) is b]


def _traceback(err: BaseException) -> str:
    """The student's part of the traceback (the frames below :func:`kernel_call`)."""
    try:
        lines = traceback.format_exception(
            type(err), err, err.__traceback__.tb_next if err.__traceback__ else None
        )
        return "".join(lines)[-4000:]
    except Exception:  # noqa: BLE001
        return ""
