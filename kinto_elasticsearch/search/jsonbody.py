"""Reading a search body: bounded in bytes and nesting before any JSON is parsed, and
held to what Kinto itself takes as JSON.

Python's JSON parser recurses once per nested object or list, so a body of a few kilobytes
of ``[[[[...`` exhausts the interpreter's recursion limit (a 500). The depth is therefore
measured on the raw text first, by a loop that skips strings, and only a body within both
limits is parsed.

Python's parser also takes more than JSON as Kinto reads it: UTF-16 and UTF-32 bodies,
``NaN`` and ``Infinity``, numbers that overflow to infinity, integers of any size, and
escaped lone surrogates, which are no character and which no UTF-8 request can carry to
the engine. Each is refused here, with a 400 that says why, instead of reaching the engine
as something else (or failing there).
"""

import json
import math
import re

# No engine field holds an integer outside ``long`` and ``unsigned_long``.
MIN_INTEGER = -(2**63)
MAX_INTEGER = 2**64 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")

# A JSON string (skipped whole, escapes included), or one bracket.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class BodyRefused(ValueError):
    def __init__(self, message, limit=None):
        super().__init__(message)
        self.message = message
        self.limit = limit


def json_depth(raw: bytes) -> int:
    """The deepest nesting of objects and lists in ``raw`` (0 for a scalar)."""
    depth = deepest = 0
    for token in _TOKENS.finditer(raw):
        char = token[0][:1]
        if char in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif char in (b"]", b"}"):
            depth -= 1
    return deepest


def parse_body(raw: bytes, max_bytes: int, max_depth: int):
    """The JSON value of ``raw``, or BodyRefused naming the limit it exceeds."""
    if len(raw) > max_bytes:
        raise BodyRefused(
            f"The body is larger than {max_bytes} bytes (limit: elasticsearch.max_body_bytes)",
            "elasticsearch.max_body_bytes",
        )
    if json_depth(raw) > max_depth:
        raise BodyRefused(
            f"The body nests deeper than {max_depth} levels of objects and lists "
            "(limit: elasticsearch.max_body_depth)",
            "elasticsearch.max_body_depth",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyRefused(f"The body is not UTF-8 (byte {exc.start}: {exc.reason})") from None
    try:
        value = json.loads(
            text, parse_int=_integer, parse_float=_finite, parse_constant=_not_a_number
        )
    except BodyRefused:
        raise
    except (ValueError, RecursionError) as exc:
        raise BodyRefused(f"The body is not valid JSON: {exc}") from None
    _check_strings(value)
    return value


def _integer(text):
    value = int(text)
    if not MIN_INTEGER <= value <= MAX_INTEGER:
        raise BodyRefused(
            f"The body holds the integer {text[:40]}, beyond what a search engine field "
            f"holds ({MIN_INTEGER} to {MAX_INTEGER})"
        )
    return value


def _finite(text):
    value = float(text)
    if not math.isfinite(value):
        raise BodyRefused(f"The body holds the number {text[:40]}, too large for JSON numbers")
    return value


def _not_a_number(name):
    raise BodyRefused(f"The body holds {name}: JSON has no such number")


def _check_strings(value):
    """Refuse strings (values and keys) holding a lone surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and _SURROGATE.search(item):
            raise BodyRefused(
                "The body holds a string with a lone surrogate (an escape such as \\ud800 "
                "not paired with another): it is no character"
            )
