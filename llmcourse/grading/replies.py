"""Reading what a kernel sends, with bounded memory and time.

A kernel is hostile: it can replace IPython's formatters, bind its own sockets where
ipykernel's were, and send anything. So every message is checked before it is parsed:

1. ZeroMQ refuses a frame over the socket's ``MAXMSGSIZE`` (and drops the connection);
2. :func:`receive` counts the frames and their bytes, and drops a message with too many
   of either, or a bad signature, before any parsing;
3. every JSON frame is parsed by :func:`bounded_loads`, which counts the values it
   would create before creating them, and refuses more than a bound: parsing ``n``
   bytes takes time and memory linear in ``n``.

Nothing a kernel sends is ever evaluated (no ``ast.literal_eval``, no pickle).
"""

from __future__ import annotations

import hmac
import json
import re
from typing import Any

import zmq
from jupyter_client.session import Session

from llmcourse.grading.channel import ProtocolError, reject_constant

STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string, escapes included
MAX_FRAMES = 16  # identities, delimiter, signature, four dicts, a few buffers
HEADER_VALUES = 1_000
DELIMITER = b"<IDS|MSG>"


def bounded_loads(data: bytes, max_values: int) -> Any:
    """``json.loads(data)`` if ``data`` holds at most ``max_values`` values: they are
    counted first (commas, brackets and braces outside strings), without a copy, so
    parsing takes time and memory linear in ``len(data)`` with a small constant,
    whatever it holds.

    Raises:
        ProtocolError: more values than that, or not valid JSON.
    """
    values = _structure(data, 0, len(data)) + 1
    if values > max_values:  # some may be inside strings: count those, and subtract them
        values -= sum(_structure(data, *m.span()) for m in STRING.finditer(data))
    if values > max_values:
        raise ProtocolError(f"{values:,} values, over the limit of {max_values:,}")
    try:
        return json.loads(data, parse_constant=reject_constant)
    except (ValueError, RecursionError) as err:
        raise ProtocolError(f"not valid JSON: {err}") from None


def _structure(data: bytes, start: int, end: int) -> int:
    return (
        data.count(b",", start, end) + data.count(b"[", start, end) + data.count(b"{", start, end)
    )


def receive(
    socket: zmq.Socket, session: Session, max_bytes: int, max_values: int
) -> dict[str, Any] | None:
    """One message waiting on ``socket``, parsed, or None if it is malformed or too large
    (or none is waiting)."""
    frames: list[bytes] = []
    total, overflow = 0, False
    try:
        while True:
            frame = socket.recv(zmq.NOBLOCK)
            total += len(frame)
            overflow = overflow or total > max_bytes or len(frames) >= MAX_FRAMES
            if not overflow:
                frames.append(frame)
            del frame
            if not socket.getsockopt(zmq.RCVMORE):
                break
    except zmq.Again:
        return None
    if overflow:
        return None
    try:
        return _parse(frames, session, max_values)
    except (ProtocolError, ValueError, KeyError, TypeError, IndexError, MemoryError):
        return None


def _parse(frames: list[bytes], session: Session, max_values: int) -> dict[str, Any] | None:
    start = frames.index(DELIMITER) + 1
    signature, parts = frames[start], frames[start + 1 : start + 5]
    if len(parts) != 4:
        return None
    if session.auth is not None and not hmac.compare_digest(signature, session.sign(parts)):
        return None
    header, parent, metadata = (bounded_loads(p, HEADER_VALUES) for p in parts[:3])
    content = bounded_loads(parts[3], max_values)
    if not all(isinstance(d, dict) for d in (header, parent, metadata, content)):
        return None
    return {
        "header": header,
        "parent_header": parent,
        "metadata": metadata,
        "msg_type": header.get("msg_type"),
        "content": content,
    }
