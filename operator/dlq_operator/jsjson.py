"""JSON as JavaScript writes and reads it: ``JSON.stringify``, ``JSON.parse``, ``Buffer.from``.

Dead letters are written by services in TypeScript, and records this project writes must
be byte for byte what those services would write (the wire format is a contract, see
:mod:`dlq_operator.envelope`). Python's :mod:`json` differs from JavaScript in numbers
(``1.0`` vs ``1``, ``1e-07`` vs ``1e-7``), in what it parses (``NaN``, ``Infinity``) and
in lone surrogates, so this module writes and reads JSON by JavaScript's rules:

- :func:`stringify`: ``JSON.stringify(value)`` as UTF-8 bytes: compact separators,
  non-ASCII as UTF-8, numbers as ECMAScript ``Number::toString`` prints them, lone
  surrogates escaped. Integers are written exactly, where JavaScript would round beyond
  2**53.
- :func:`parse`: ``JSON.parse``: refuses ``NaN``, ``Infinity`` and ``-Infinity``.
- :func:`encode_utf8`: ``Buffer.from(text)``: a lone surrogate becomes U+FFFD.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any

__all__ = ["encode_utf8", "parse", "stringify"]


def stringify(value: Any) -> bytes:
    """``JSON.stringify(value)`` as UTF-8 bytes.

    Written here rather than with :func:`json.dumps`, whose numbers differ from
    JavaScript's (``1.0`` vs ``1``, ``1e-07`` vs ``1e-7``). It keeps its own stack instead
    of recursing, so whatever :func:`json.loads` could nest, it can write back. Lone
    surrogates, which only a decoded ``\\ud800`` escape can produce, are escaped as
    JavaScript does.

    Values without floats take :func:`json.dumps`'s C encoder, which writes them exactly
    as JavaScript does and several times faster (this runs for every retried event).
    """
    if not _has_float(value):
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        except (UnicodeEncodeError, RecursionError, ValueError):
            pass  # lone surrogates or very deep nesting: the exact writer below handles both
    parts: list[str] = []
    todo: list[Any] = [value]  # values still to write, and _Text to copy as it is
    while todo:
        item = todo.pop()
        if type(item) is _Text:
            parts.append(item)
        elif isinstance(item, str):
            parts.append(encode_basestring(item))
        elif item is None:
            parts.append("null")
        elif item is True:
            parts.append("true")
        elif item is False:
            parts.append("false")
        elif isinstance(item, int):
            parts.append(int.__repr__(item))
        elif isinstance(item, float):
            parts.append(_js_number(item))
        elif isinstance(item, dict):
            parts.append("{")
            todo.append(_CLOSE_OBJECT)
            for key, member in reversed(item.items()):
                if not isinstance(key, str):
                    raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
                todo += (member, _Text(encode_basestring(key) + ":"), _COMMA)
            if item:
                todo.pop()  # no comma before the first member
        elif isinstance(item, list | tuple):
            parts.append("[")
            todo.append(_CLOSE_ARRAY)
            for element in reversed(item):
                todo += (element, _COMMA)
            if item:
                todo.pop()
        else:
            raise TypeError(f"{type(item).__name__} is not JSON serializable")
    text = "".join(parts)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode()


def parse(text: str) -> Any:
    """``JSON.parse(text)``: :func:`json.loads` without the constants JavaScript refuses.

    Raises :class:`ValueError` for text that is not JSON (``NaN`` and ``Infinity``
    included) and :class:`RecursionError` for nesting deeper than Python's stack.
    """
    return _JSON_DECODER.decode(text)


def encode_utf8(text: str) -> bytes:
    """UTF-8 as JavaScript's ``Buffer.from`` writes it: a lone surrogate becomes U+FFFD."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _LONE_SURROGATE.sub("\ufffd", text).encode()


def _has_float(value: Any) -> bool:
    """Whether a float is anywhere in ``value`` (JSON numbers json.dumps writes unlike JS)."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, float):
            return True
        if isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                return True  # let the exact writer raise its own error
            todo.extend(item.values())
        elif isinstance(item, list | tuple):
            todo.extend(item)
    return False


class _Text(str):
    """JSON text :func:`stringify` has already written."""

    __slots__ = ()


_COMMA, _CLOSE_OBJECT, _CLOSE_ARRAY = _Text(","), _Text("}"), _Text("]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _js_number(value: float) -> str:
    """ECMAScript ``Number::toString``: the shortest digits, placed by the spec's rules."""
    if not math.isfinite(value):
        return "null"
    if value == 0:
        return "0"
    sign, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = k + int(exponent)  # value = 0.<digits> * 10**n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
        text = f"{mantissa}e{'+' if n > 0 else '-'}{abs(n - 1)}"
    return "-" + text if sign else text


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


# Built once: json.loads with any option builds a new decoder on every call.
_JSON_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
