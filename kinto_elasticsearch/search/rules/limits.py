"""The caps of a search: its limits (each one a setting), and what the rules send instead
of what a body asks (its size, its timeout) or refuse before walking it (its nesting)."""

import re
from dataclasses import dataclass

from kinto_elasticsearch.config import DEFAULT_SETTINGS
from kinto_elasticsearch.search.walk.findings import join_path, refuse

_DURATION = re.compile(r"(\d+)(nanos|micros|ms|s|m|h|d)")
_NANOSECONDS = {
    "nanos": 1,
    "micros": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
    "d": 86400 * 10**9,
}

# Lucene's own default: a larger automaton for one regular expression costs CPU and memory
# before any timeout applies.
MAX_DETERMINIZED_STATES = 10000


def duration_nanos(value):
    """Nanoseconds in an engine duration such as ``"500ms"``, or None if it is not one."""
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    return int(match[1]) * _NANOSECONDS[match[2]] if match else None


def _default(key):
    return DEFAULT_SETTINGS[f"elasticsearch.{key}"]


@dataclass(frozen=True)
class QueryLimits:
    """Bounds on what one search may ask of the engine (each one a setting, whose default it
    takes)."""

    # Kinto's default storage_max_fetch_size: its own cap on a page of records.
    max_size: int = 10000
    max_window: int = _default("max_result_window")
    max_depth: int = _default("max_query_depth")
    max_aggregations: int = _default("max_aggregations")
    max_agg_size: int = _default("max_aggregation_size")
    timeout: str = f"{_default('search_timeout_seconds'):g}s"
    allow_scripts: bool = _default("allow_scripts")
    max_clauses: int = _default("max_clauses")
    max_buckets: int = _default("max_buckets")
    max_pattern_length: int = _default("max_pattern_length")
    max_pattern_repetition: int = _default("max_pattern_repetition")
    max_expansions: int = _default("max_expansions")
    max_body_depth: int = _default("max_body_depth")

    def __post_init__(self):
        if duration_nanos(self.timeout) is None:
            raise ValueError(f"timeout must be a duration such as '10s', not {self.timeout!r}")


# The setting behind each limit, named in refusals so that an operator knows what to raise.
SETTINGS = {
    "max_result_window": "elasticsearch.max_result_window",
    "max_aggregation_size": "elasticsearch.max_aggregation_size",
    "max_query_depth": "elasticsearch.max_query_depth",
    "max_aggregations": "elasticsearch.max_aggregations",
    "max_clauses": "elasticsearch.max_clauses",
    "max_buckets": "elasticsearch.max_buckets",
    "max_pattern_length": "elasticsearch.max_pattern_length",
    "max_pattern_repetition": "elasticsearch.max_pattern_repetition",
    "max_expansions": "elasticsearch.max_expansions",
    "max_body_depth": "elasticsearch.max_body_depth",
}


def over(what, limit_name, location):
    """A refusal of a body past a limit, naming the setting that bounds it."""
    setting = SETTINGS[limit_name]
    return refuse(f"{what} (limit: {setting})", location, limit=setting)


def result_window(body, limits):
    """The size to send: the user's, capped silently as Kinto caps ``_limit``."""
    start = body.get("from", 0)
    if "size" in body:
        size = min(body["size"], limits.max_size)
    else:
        size = max(0, min(limits.max_size, limits.max_window - start))
    if start + size > limits.max_window:
        raise over(
            f"'from' + 'size' ({start + size}) is over the result window of {limits.max_window}",
            "max_result_window",
            "from" if "from" in body else "size",
        )
    return size


def timeout(body, limits):
    """The user's timeout when it is shorter than the server's, else the server's."""
    if "timeout" not in body:
        return limits.timeout
    given = duration_nanos(body["timeout"])
    if given is None:
        raise refuse("'timeout' must be a duration such as '5s' or '500ms'", "timeout")
    return body["timeout"] if given <= duration_nanos(limits.timeout) else limits.timeout


def check_nesting(body, limits):
    """Refuse bodies nested deeper than ``max_body_depth``, without recursion, first, so
    that walking and copying the body can never exhaust Python's recursion limit."""
    pending = [(body, "", 1)]
    while pending:
        value, path, depth = pending.pop()
        if isinstance(value, dict):
            children = [(join_path(path, key), item) for key, item in value.items()]
        elif isinstance(value, list):
            children = [(f"{path}[{i}]", item) for i, item in enumerate(value)]
        else:
            continue
        if depth > limits.max_body_depth:
            raise over(
                f"The body nests deeper than {limits.max_body_depth} levels",
                "max_body_depth",
                path,
            )
        pending.extend((item, item_path, depth + 1) for item_path, item in children)
