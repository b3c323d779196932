"""GPT-2's byte-level alphabet: the 256 bytes as tokens, and how they are spelled.

Byte-level BPE starts from the 256 possible bytes, so that every string (its UTF-8
bytes) has an encoding. To show such tokens, and to store them in text files, GPT-2
spells each byte with a printable character: the visible Latin-1 characters ``!`` to
``~``, ``¡`` to ``¬`` and ``®`` to ``ÿ`` stand for themselves, and the 68 bytes that have
no visible glyph (space, control characters) are shifted to ``Ā``, ``ā``, ... (space is
``Ġ``, newline ``Ċ``), so ``b" the"`` is spelled ``"Ġthe"``. The byte tokens are numbered
in the order of these characters (:data:`BYTE_ORDER`), as in GPT-2's vocabulary, where
``!`` is 0 and ``Ġ`` is 220.
"""

from __future__ import annotations


def _byte_to_char() -> list[str]:
    # GPT-2's printable stand-ins: visible Latin-1 characters stand for themselves, the
    # other bytes for chr(256), chr(257), ... in byte order.
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    visible += range(ord("®"), ord("ÿ") + 1)
    chars, hidden = {b: chr(b) for b in visible}, 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + hidden)
            hidden += 1
    return [chars[b] for b in range(256)]


BYTE_TO_CHAR: list[str] = _byte_to_char()
"""``BYTE_TO_CHAR[b]``: the printable character that stands for byte ``b`` in token strings."""
CHAR_TO_BYTE: dict[str, int] = {c: b for b, c in enumerate(BYTE_TO_CHAR)}
BYTE_ORDER: list[int] = sorted(range(256), key=lambda b: ord(BYTE_TO_CHAR[b]))
"""The bytes in id order: token ``i < 256`` is ``bytes([BYTE_ORDER[i]])``."""
BYTE_ID: list[int] = [BYTE_ORDER.index(b) for b in range(256)]
"""The inverse of :data:`BYTE_ORDER`: ``BYTE_ID[b]`` is the id of the token ``bytes([b])``."""


def to_byte_level(data: bytes) -> str:
    """The printable spelling of bytes used in token strings: ``b" the"`` -> ``"Ġthe"``."""
    if not isinstance(data, bytes | bytearray):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    return "".join(BYTE_TO_CHAR[b] for b in data)


def from_byte_level(chars: str) -> bytes:
    """The inverse of :func:`to_byte_level`; raises ``ValueError`` for a foreign character."""
    try:
        return bytes(CHAR_TO_BYTE[c] for c in chars)
    except KeyError as error:
        raise ValueError(f"{error.args[0]!r} is not a byte-level character") from None


def utf8(text: str) -> bytes:
    """The UTF-8 bytes of ``text``; a clear ``ValueError`` for a lone surrogate."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        char = text[error.start]
        raise ValueError(
            f"text has a lone surrogate {char!r} (U+{ord(char):04X}) at index {error.start}, "
            "which has no UTF-8 encoding, so it cannot be tokenized"
        ) from None
