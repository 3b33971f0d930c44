"""Events other plugins can subscribe to, sent once the engine answered a bulk write.

.. code-block:: python

    from kinto_elasticsearch.events import (
        RecordsIndexed, RecordsIndexedInPart, RecordsIndexFailed
    )

    def includeme(config):
        config.add_subscriber(on_indexed, RecordsIndexed)
        config.add_subscriber(on_partial, RecordsIndexedInPart)
        config.add_subscriber(on_failed, RecordsIndexFailed)

Both are sent after Kinto's transaction committed, from the thread that indexed (the
sender, the catch-up, a repair): ``request`` is None. A subscriber that raises is logged
and ignored: it cannot break indexing or the Kinto write.
"""

import logging
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)


@dataclass
class RecordsIndexed:
    """The engine acknowledged these records of one collection."""

    bucket_id: str
    collection_id: str
    # Ids of records written to the index, and of records removed from it.
    indexed: list = field(default_factory=list)
    unindexed: list = field(default_factory=list)
    request: object = None


@dataclass
class RecordsIndexedInPart:
    """These records of one collection are indexed, but not searchable by some fields.

    A subset of the records of the :class:`RecordsIndexed` event of the same write.
    """

    bucket_id: str
    collection_id: str
    # (record id, dotted paths left out, the engine's reason or None) triples.
    partial: list = field(default_factory=list)
    request: object = None


@dataclass
class RecordsIndexFailed:
    """These records of one collection could not be indexed or unindexed."""

    bucket_id: str
    collection_id: str
    # (record id, reason) pairs.
    failures: list = field(default_factory=list)
    # True when the engine could not be reached (the catch-up indexes them from storage);
    # False when the engine refused the records (they stay out until fixed).
    will_retry: bool = False
    request: object = None


def notify(registry, event):
    try:
        registry.notify(event)
    except Exception:
        logger.exception("A subscriber to %s failed", type(event).__name__)


def notify_report(registry, bucket_id, collection_id, report, request=None):
    """Send the events describing a bulk write's report."""
    if report.indexed or report.deleted:
        notify(
            registry,
            RecordsIndexed(bucket_id, collection_id, report.indexed, report.deleted, request),
        )
    if report.partial:
        notify(registry, RecordsIndexedInPart(bucket_id, collection_id, report.partial, request))
    if report.failed:
        notify(
            registry,
            RecordsIndexFailed(bucket_id, collection_id, report.failed, False, request),
        )
