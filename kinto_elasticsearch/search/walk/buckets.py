"""How many buckets an aggregation makes: its sizes, its ranges, a histogram's bounds.

Aggregations nest, so their bucket counts multiply; the walk reports the empty buckets a
histogram makes over its ``extended_bounds`` times the buckets of the aggregations around it.
"""

import re
from datetime import UTC, datetime

from kinto_elasticsearch.search.walk.constructs import DEFAULT_BUCKETS, HISTOGRAMS
from kinto_elasticsearch.search.walk.findings import is_count


def bucket_count(aggregation_type, params):
    """How many buckets one aggregation of this type makes at most, when that is known."""
    if not isinstance(params, dict):
        return 1
    if aggregation_type in DEFAULT_BUCKETS:
        key = "buckets" if "histogram" in aggregation_type else "size"
        count = params.get(key, DEFAULT_BUCKETS[aggregation_type])
        return count if is_count(count) and count else 1
    if aggregation_type in ("range", "date_range", "ip_range", "geo_distance"):
        ranges = params.get("ranges")
        return max(1, len(ranges)) if isinstance(ranges, list) else 1
    if aggregation_type in ("filters", "adjacency_matrix"):
        filters = params.get("filters")
        count = len(filters) if isinstance(filters, (list, dict)) else 1
        if aggregation_type == "adjacency_matrix":
            count += count * (count - 1) // 2
        return max(1, count + bool(params.get("other_bucket")))
    if aggregation_type in HISTOGRAMS and params.get("extended_bounds") is not None:
        return histogram_bucket_count(aggregation_type, params) or 1
    return 1


# Milliseconds in an engine time unit (calendar units at their longest: a bound, not a date).
_UNIT_MILLIS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 7 * 86_400_000,
    "M": 28 * 86_400_000,
    "q": 89 * 86_400_000,
    "y": 365 * 86_400_000,
}
_CALENDAR_NAMES = {
    "minute": "1m",
    "hour": "1h",
    "day": "1d",
    "week": "1w",
    "month": "1M",
    "quarter": "1q",
    "year": "1y",
}
_INTERVAL = re.compile(r"(\d+)(ms|s|m|h|d|w|M|q|y)")
_NOW = re.compile(r"now(?:([+-])(\d+)(ms|s|m|h|d|w|M|q|y))?(?:/[smhdwMqy])?")


def _interval_millis(value):
    value = _CALENDAR_NAMES.get(value, value)
    match = _INTERVAL.fullmatch(value) if isinstance(value, str) else None
    return int(match[1]) * _UNIT_MILLIS[match[2]] if match else None


def _date_millis(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        return None
    if value.lstrip("-").isdigit():
        return int(value)
    now = _NOW.fullmatch(value)
    if now:
        offset = int(now[2]) * _UNIT_MILLIS[now[3]] if now[2] else 0
        base = datetime.now(UTC).timestamp() * 1000
        return base - offset if now[1] == "-" else base + offset
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp() * 1000


def histogram_bucket_count(aggregation_type, params):
    """The number of buckets a histogram makes over its extended bounds, or None."""
    bounds = params.get("extended_bounds")
    if not isinstance(bounds, dict):
        return None
    if aggregation_type == "histogram":
        low, high, interval = bounds.get("min"), bounds.get("max"), params.get("interval")
        numbers = (low, high, interval)
        if not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in numbers):
            return None
    else:
        low, high = _date_millis(bounds.get("min")), _date_millis(bounds.get("max"))
        given = [params.get(k) for k in ("fixed_interval", "calendar_interval", "interval")]
        interval = next((_interval_millis(v) for v in given if v is not None), None)
        if low is None or high is None or interval is None:
            return None
    if interval <= 0:
        return None
    return int(abs(high - low) // interval) + 1
