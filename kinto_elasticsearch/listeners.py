"""Kinto event subscribers: they keep the index in step with storage.

Every subscriber to ``AfterResourceChanged`` runs after commit: a rolled-back write never
reaches the index, and a failing engine never fails a write (errors are logged, counted,
and healed later by ``verify --repair`` or ``reindex``).
"""

import logging

from kinto.core.storage.exceptions import ObjectNotFoundError

from kinto_elasticsearch import errors, metrics
from kinto_elasticsearch.engine import EngineError, EngineRequestError, EngineUnavailable
from kinto_elasticsearch.events import RecordsIndexFailed, notify, notify_report
from kinto_elasticsearch.index.mapping import documents_changed, mapping_changed, metadata_errors

logger = logging.getLogger(__name__)


def _plugin(request):
    registry = request.registry
    return registry.elasticsearch_settings, registry.indexer


def _record_uri(bucket_id, collection_id, record_id):
    return f"/buckets/{bucket_id}/collections/{collection_id}/records/{record_id}"


def _cached_collection(request, bucket_id, collection_id):
    uri = f"/buckets/{bucket_id}/collections/{collection_id}"
    return getattr(request, "bound_data", {}).get("collections", {}).get(uri)


def collection_metadata(request, bucket_id, collection_id):
    """The collection object, as Kinto's record views already fetched it for this request."""
    cached = _cached_collection(request, bucket_id, collection_id)
    if cached is not None:
        return cached
    try:
        return request.registry.storage.get(
            resource_name="collection", parent_id=f"/buckets/{bucket_id}", object_id=collection_id
        )
    except ObjectNotFoundError:
        # Deleted meanwhile: its index goes with it.
        return {}


def ensure_index_for(request, bucket_id, collection_id):
    """A callable creating a collection's index from its current metadata."""

    def ensure():
        metadata = collection_metadata(request, bucket_id, collection_id)
        request.registry.indexer.create_index(bucket_id, collection_id, metadata)

    return ensure


def on_record_changed(event):
    settings, indexer = _plugin(event.request)
    bucket_id = event.payload["bucket_id"]
    collection_id = event.payload["collection_id"]
    if not settings.is_indexed(bucket_id, collection_id):
        return
    # In a batch, payloads are merged: only impacted_objects lists every record.
    metadata = None
    if event.payload["action"] == "delete":
        records, tombstones = [], [impacted["new"] for impacted in event.impacted_objects]
    else:
        metadata = collection_metadata(event.request, bucket_id, collection_id)
        records = [impacted["new"] for impacted in event.impacted_objects]
        tombstones = []
    registry = event.request.registry
    try:
        with metrics.timed(registry, metrics.BULK_SECONDS):
            report = indexer.write(
                bucket_id,
                collection_id,
                records=records,
                tombstones=tombstones,
                metadata=metadata,
                ensure_index=ensure_index_for(event.request, bucket_id, collection_id),
            )
    except EngineUnavailable as exc:
        logger.warning(
            "Search engine unavailable, %s write(s) of /buckets/%s/collections/%s queued "
            "for retry: %s",
            len(records) + len(tombstones),
            bucket_id,
            collection_id,
            exc,
        )
        event.request.registry.retry_queue.add(
            bucket_id,
            collection_id,
            records,
            tombstones,
            metadata=metadata,
        )
        failures = [(obj["id"], str(exc)) for obj in [*records, *tombstones]]
        notify(
            event.request.registry,
            RecordsIndexFailed(bucket_id, collection_id, failures, True, event.request),
        )
        return
    except EngineError as exc:
        count = len(records) + len(tombstones)
        metrics.count(registry, metrics.DOCUMENTS_FAILED, count)
        logger.error(
            "Could not index %s record(s) of /buckets/%s/collections/%s: %s",
            count,
            bucket_id,
            collection_id,
            exc,
        )
        failures = [(obj["id"], str(exc)) for obj in [*records, *tombstones]]
        notify(
            event.request.registry,
            RecordsIndexFailed(bucket_id, collection_id, failures, False, event.request),
        )
        return
    metrics.count(registry, metrics.DOCUMENTS_INDEXED, len(report.indexed))
    metrics.count(registry, metrics.DOCUMENTS_DELETED, len(report.deleted))
    log_report(registry, bucket_id, collection_id, report)
    notify_report(event.request.registry, bucket_id, collection_id, report, event.request)


def log_report(registry, bucket_id, collection_id, report):
    """Count and log what the engine refused, and what it took only in part."""
    metrics.count(registry, metrics.DOCUMENTS_FAILED, len(report.failed))
    metrics.count(registry, metrics.DOCUMENTS_PARTIAL, len(report.partial))
    for record_id, reason in report.failed:
        logger.error(
            "Could not index %s: %s", _record_uri(bucket_id, collection_id, record_id), reason
        )
    for record_id, left_out, reason in report.partial:
        logger.warning(
            "Indexed %s without %s%s",
            _record_uri(bucket_id, collection_id, record_id),
            ", ".join(left_out),
            f" (the engine refused: {reason})" if reason else "",
        )


def on_collection_changed(event):
    settings, indexer = _plugin(event.request)
    bucket_id = event.payload["bucket_id"]
    action = event.payload["action"]
    for impacted in event.impacted_objects:
        new, old = impacted.get("new") or {}, impacted.get("old") or {}
        collection_id = new.get("id") or old.get("id")
        if not settings.is_indexed(bucket_id, collection_id):
            continue
        try:
            if action == "create":
                indexer.create_index(bucket_id, collection_id, new, replace=True)
            elif action == "update" and documents_changed(old, new):
                # Existing documents must gain or lose fields: only a rebuild does that.
                event.request.registry.rebuilder.request(bucket_id, collection_id)
            elif action == "update" and mapping_changed(old, new):
                indexer.update_mapping(bucket_id, collection_id, new)
            elif action == "delete":
                indexer.delete_collection_indices(bucket_id, collection_id)
        except EngineRequestError as exc:
            logger.warning(
                "The index of /buckets/%s/collections/%s cannot take the new mapping (%s): "
                "rebuilding it in the background",
                bucket_id,
                collection_id,
                exc,
            )
            event.request.registry.rebuilder.request(bucket_id, collection_id)
        except EngineError as exc:
            logger.error(
                "Could not %s the index of /buckets/%s/collections/%s: %s",
                action,
                bucket_id,
                collection_id,
                exc,
            )


def on_bucket_deleted(event):
    settings, indexer = _plugin(event.request)
    for impacted in event.impacted_objects:
        bucket_id = impacted["old"]["id"]
        if not settings.is_indexed(bucket_id):
            continue
        try:
            indexer.delete_bucket_indices(bucket_id)
        except EngineError as exc:
            logger.error("Could not delete the indices of /buckets/%s: %s", bucket_id, exc)


def validate_collection_mapping(event):
    """Refuse, inside the transaction, a collection whose ``index:schema`` the engine refuses.

    While the engine is unreachable the write goes through: the index catches up later.
    """
    settings, indexer = _plugin(event.request)
    bucket_id = event.payload["bucket_id"]
    for impacted in event.impacted_objects:
        new, old = impacted["new"], impacted.get("old") or {}
        if not settings.is_indexed(bucket_id, new["id"]):
            continue
        # Only what this write changes: a collection stored earlier stays writable.
        found = [(k, m) for k, m in metadata_errors(new) if new.get(k) != old.get(k)]
        if not found and "index:schema" in new and new["index:schema"] != old.get("index:schema"):
            try:
                indexer.validate_mapping(new)
            except EngineRequestError as exc:
                found = [
                    ("index:schema", f"The search engine refused index:schema: {exc.message}")
                ]
            except EngineUnavailable as exc:
                logger.warning("Could not validate index:schema, engine unavailable: %s", exc)
        if found:
            raise errors.invalid(*[("body", key, message) for key, message in found])


def on_server_flushed(event):
    _, indexer = _plugin(event.request)
    try:
        indexer.flush()
    except EngineError as exc:
        logger.error("Could not delete the plugin's indices on flush: %s", exc)
