"""The one path that applies a batch of changes to the index, whoever calls it.

The sender (changes of requests), the catch-up (changes read from storage), repair and
the rebuild's replay all call :func:`apply_changes`: what a record becomes in the index,
how deletes are kept, how refused records are logged and counted and which events are
sent are decided here once.
"""

import logging

from kinto_elasticsearch import metrics
from kinto_elasticsearch.events import notify_report
from kinto_elasticsearch.index_settings import tenant_settings
from kinto_elasticsearch.mapping import collection_mapping, document

logger = logging.getLogger(__name__)


def split_changes(objects, metadata):
    """``(documents of records, tombstones)`` for storage objects of one collection."""
    records = [document(obj, metadata) for obj in objects if not obj.get("deleted")]
    tombstones = [obj for obj in objects if obj.get("deleted")]
    return records, tombstones


def apply_changes(
    indexer, bucket_id, collection_id, objects, metadata, refresh=None, registry=None
):
    """Index the records and tombstones ``objects`` of a collection, in one bulk request.

    ``metadata`` is the collection object: it decides the documents and, if the index is
    missing, its mapping. Raises ``EngineError`` when the bulk request as a whole failed
    (nothing can be assumed indexed); records the engine refused one by one are logged,
    counted and reported in the returned ``BulkReport``, and in events and metrics when
    a Kinto ``registry`` is given.
    """
    records, tombstones = split_changes(objects, metadata)

    def ensure_index():
        indexer.create_index(
            bucket_id,
            collection_id,
            collection_mapping(metadata),
            settings=tenant_settings(metadata),
        )

    with metrics.timed(registry, metrics.BULK_SECONDS):
        report = indexer.write(
            bucket_id,
            collection_id,
            records=records,
            tombstones=tombstones,
            ensure_index=ensure_index,
            refresh=refresh,
        )
    metrics.count(registry, metrics.DOCUMENTS_INDEXED, len(report.indexed))
    metrics.count(registry, metrics.DOCUMENTS_DELETED, len(report.deleted))
    metrics.count(registry, metrics.DOCUMENTS_FAILED, len(report.failed))
    for record_id, reason in report.failed:
        logger.error(
            "Could not index /buckets/%s/collections/%s/records/%s: %s",
            bucket_id,
            collection_id,
            record_id,
            reason,
        )
    if registry is not None:
        notify_report(registry, bucket_id, collection_id, report)
    return report
