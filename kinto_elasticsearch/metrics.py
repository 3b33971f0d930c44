"""The plugin's metrics: their names, and how they reach Kinto's metrics service.

Durations are timers and counts are counters, as Kinto's own plugins send them: a StatsD
timing (``|ms``) or a Prometheus histogram, a StatsD or Prometheus counter. The names are
part of the plugin's interface (listed in docs/operations.rst): rename one only with a changelog
entry.
"""

import contextlib

SEARCH_SECONDS = "elasticsearch.search.seconds"
BULK_SECONDS = "elasticsearch.bulk.seconds"
CATCHUP_SECONDS = "elasticsearch.catchup.seconds"

DOCUMENTS_INDEXED = "elasticsearch.documents.indexed"
DOCUMENTS_DELETED = "elasticsearch.documents.deleted"
DOCUMENTS_FAILED = "elasticsearch.documents.failed"
DOCUMENTS_PARTIAL = "elasticsearch.documents.partial"
CATCHUP_INDEXED = "elasticsearch.catchup.indexed"
SENDER_FAILED = "elasticsearch.sender.failed"
SENDER_OVERFLOW = "elasticsearch.sender.overflow"
SENDER_WAIT_TIMEOUTS = "elasticsearch.sender.wait_timeouts"
ENGINE_UNREACHABLE = "elasticsearch.engine.unreachable"
ENGINE_OUTAGES = "elasticsearch.engine.outages"

TIMERS = (SEARCH_SECONDS, BULK_SECONDS, CATCHUP_SECONDS)
COUNTERS = (
    DOCUMENTS_INDEXED,
    DOCUMENTS_DELETED,
    DOCUMENTS_FAILED,
    DOCUMENTS_PARTIAL,
    CATCHUP_INDEXED,
    SENDER_FAILED,
    SENDER_OVERFLOW,
    SENDER_WAIT_TIMEOUTS,
    ENGINE_UNREACHABLE,
    ENGINE_OUTAGES,
)


def _service(registry):
    # Read at each use: Kinto sets its metrics service up after including the plugins, and
    # leaves it unset when ``setup_metrics`` is not in its initialization sequence.
    return getattr(registry, "metrics", None)


def timed(registry, name):
    """A context manager timing its block as the timer ``name``."""
    service = _service(registry)
    if service is None:
        return contextlib.nullcontext()
    return service.timer(name)


def count(registry, name, value=1):
    """Add ``value`` to the counter ``name`` (nothing is sent for zero)."""
    service = _service(registry)
    if service is not None and value:
        service.count(name, value)
