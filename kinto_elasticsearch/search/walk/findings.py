"""What the walk reports: the kinds of :class:`Finding`, and the refusal of a body.

The walk describes and the rules decide; a finding is the whole of what passes between them.
"""

from dataclasses import dataclass


class QueryRefused(ValueError):
    """A search body refused before reaching the engine."""

    def __init__(self, message: str, location: str, limit: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        # The setting whose limit the body exceeds, when that is why.
        self.limit = limit


def refuse(reason, location, limit=None):
    message = f"{reason} (at {location})" if location else reason
    return QueryRefused(message, location, limit)


# What a finding is about.
FORBIDDEN = "forbidden"  # refused whoever asks (reads another index, cannot be checked...)
SCRIPT = "script"  # runs code
FULL_READ = "full-read"  # sees index-wide statistics or records beyond the permission filter
FIELD = "field"  # names a field (``name``), a pattern or a nested path (``role``), at
# ``node``/``key`` when it can be renamed
ANY_FIELD = "any-field"  # searches fields nobody named
HITS = "hits"  # a hit context whose ``_source`` comes back (``node``, ``nested``)
SIZE = "size"  # a count option (``name``, ``value``) capped by ``limit``
DEPTH = "depth"  # a query or aggregation level (``name``, ``value``)
AGGREGATION = "aggregation"  # one more aggregation
CLAUSES = "clauses"  # ``value`` more clauses or terms for the engine to build
PATTERN = "pattern"  # a ``regexp``, ``wildcard`` or query-string text (``name``, ``value``)
EXPANSIONS = "expansions"  # a limit of term expansions (``name``, ``value``)
BUCKETS = "buckets"  # at least ``value`` buckets (empty ones included)
STATES = "states"  # ``max_determinized_states`` (``value``)
SCORED = "scored"  # a query that scores by itself, in ``node`` (``{name: body}``)
COUNTERS = "counters"  # shows or orders by the shard's counts of writes (``reason``)
IDS = "ids"  # document ids, in ``node[name]`` (a list or one id): ``ids``, pinned, like,
# and ``term`` or ``terms`` on the engines' document id field, ``ID_FIELD``.
ID_FIELD = "_id"


@dataclass
class Finding:
    kind: str
    path: str
    name: str | None = None
    value: object = None
    reason: str = ""
    role: str = "query"
    limit: str | None = None
    node: dict | None = None
    nested: bool = False
    # A field name's place, for the rules to rename it: ``node[key]`` holds it, or, when
    # ``keyed``, it is the key ``key`` of ``node``.
    key: object = None
    keyed: bool = False


def join_path(path, key):
    return f"{path}.{key}" if path else str(key)


def is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
