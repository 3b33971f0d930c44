"""The one path that applies a batch of changes to the index, whoever calls it.

The sender (changes of requests), the catch-up (changes read from storage), repair and
the rebuild's replay all call :func:`apply_changes`: what a record becomes in the index,
how deletes are kept, how refused records are logged and counted and which events are
sent are decided here once.
"""

import functools
import logging

from kinto_elasticsearch import metrics
from kinto_elasticsearch.events import notify_report
from kinto_elasticsearch.index.batch import write_many
from kinto_elasticsearch.storage import records_uri

logger = logging.getLogger(__name__)


def split_changes(objects):
    """``(records, tombstones)`` among storage objects of one collection."""
    records = [obj for obj in objects if not obj.get("deleted")]
    tombstones = [obj for obj in objects if obj.get("deleted")]
    return records, tombstones


def apply_changes(
    index_side,
    bucket_id,
    collection_id,
    objects,
    metadata,
    refresh=None,
    registry=None,
    same_version=False,
):
    """Index the records and tombstones ``objects`` of a collection, in one bulk request.

    ``metadata`` is the collection object: it decides the documents (``index.documents``)
    and, if the index is missing, its mapping. ``same_version``: a document may replace
    one of the same version (repairs: the best form the index takes now). Raises
    ``EngineError`` when the bulk request as a whole failed (nothing can be assumed
    indexed); records indexed in part or refused are logged, counted and reported in the
    returned ``BulkReport``, and in events and metrics when a Kinto ``registry`` is given.
    """
    records, tombstones = split_changes(objects)

    def ensure_index():
        index_side.admin.create_index(bucket_id, collection_id, metadata)

    with metrics.timed(registry, metrics.BULK_SECONDS):
        report = index_side.writer.write(
            bucket_id,
            collection_id,
            records=records,
            tombstones=tombstones,
            metadata=metadata,
            ensure_index=ensure_index,
            refresh=refresh,
            same_version=same_version,
        )
    _reported(registry, bucket_id, collection_id, report)
    return report


def apply_many(index_side, changes, refresh=None, registry=None):
    """:func:`apply_changes` for the changes of several collections at once, in one bulk
    request: ``changes`` is ``[(bucket_id, collection_id, objects, metadata)]``. Returns
    their reports, in order; raises ``EngineError`` when the request as a whole failed, and
    a collection whose documents could not all be settled has its ``error``."""
    writes = []
    for bucket_id, collection_id, objects, metadata in changes:
        records, tombstones = split_changes(objects)
        ensure_index = functools.partial(
            index_side.admin.create_index, bucket_id, collection_id, metadata
        )
        writes.append((bucket_id, collection_id, records, tombstones, metadata, ensure_index))
    with metrics.timed(registry, metrics.BULK_SECONDS):
        reports = write_many(index_side.writer, writes, refresh=refresh)
    for (bucket_id, collection_id, _, _), report in zip(changes, reports, strict=True):
        # One with an ``error`` is left to the caller, as a failed request.
        if report.error is None:
            _reported(registry, bucket_id, collection_id, report)
    return reports


def _reported(registry, bucket_id, collection_id, report):
    """Count, log and tell (events) what one collection's write did."""
    metrics.count(registry, metrics.DOCUMENTS_INDEXED, len(report.indexed))
    metrics.count(registry, metrics.DOCUMENTS_DELETED, len(report.deleted))
    log_report(registry, bucket_id, collection_id, report)
    if registry is not None:
        notify_report(registry, bucket_id, collection_id, report)


def log_report(registry, bucket_id, collection_id, report):
    """Count and log what the engine refused, and what it took only in part."""
    metrics.count(registry, metrics.DOCUMENTS_FAILED, len(report.failed))
    metrics.count(registry, metrics.DOCUMENTS_PARTIAL, len(report.partial))
    uri = records_uri(bucket_id, collection_id)
    for record_id, reason in report.failed:
        logger.error("Could not index %s/%s: %s", uri, record_id, reason)
    for record_id, left_out, reason in report.partial:
        logger.warning(
            "Indexed %s/%s without %s%s",
            uri,
            record_id,
            ", ".join(left_out),
            f" (the engine refused: {reason})" if reason else "",
        )
