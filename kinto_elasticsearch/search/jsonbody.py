"""Reading a search body: bounded in bytes and nesting before any JSON is parsed.

Python's JSON parser recurses once per nested object or list, so a body of a few kilobytes
of ``[[[[...`` exhausts the interpreter's recursion limit (a 500). The depth is therefore
measured on the raw text first, by a loop that skips strings, and only a body within both
limits is parsed.
"""

import json
import re

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
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BodyRefused(f"The body is not valid JSON: {exc}") from None
