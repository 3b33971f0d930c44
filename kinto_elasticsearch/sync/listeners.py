"""Kinto event subscribers: they turn Kinto's events into changes for the index.

Every subscriber to ``AfterResourceChanged`` runs after commit: a rolled-back write never
reaches the index, and a failing engine never fails a write. Record changes go to the
sender; what it cannot deliver, and any collection or bucket change that could not be
applied, is left to the catch-up, which reads storage (see ``sync``).
"""

import functools
import logging

from kinto.core.storage.exceptions import ObjectNotFoundError

from kinto_elasticsearch import errors
from kinto_elasticsearch.client import EngineError, EngineRequestError, EngineUnavailable
from kinto_elasticsearch.index import legacy
from kinto_elasticsearch.index.analysis import (
    SETTINGS_KEY,
    InvalidIndexSettings,
    check,
    settings_changed,
)
from kinto_elasticsearch.index.mapping import documents_changed, mapping_changed, metadata_errors
from kinto_elasticsearch.storage import bucket_uri, collection_exists, collection_uri
from kinto_elasticsearch.sync.catchup import save_new_collection

logger = logging.getLogger(__name__)


def _plugin(request):
    registry = request.registry
    return registry.elasticsearch.settings, registry.elasticsearch.index


def _cached_collection(request, bucket_id, collection_id):
    uri = collection_uri(bucket_id, collection_id)
    return getattr(request, "bound_data", {}).get("collections", {}).get(uri)


def collection_metadata(request, bucket_id, collection_id):
    """The collection object, as Kinto's record views already fetched it for this request."""
    cached = _cached_collection(request, bucket_id, collection_id)
    if cached is not None:
        return cached
    try:
        return request.registry.storage.get(
            resource_name="collection", parent_id=bucket_uri(bucket_id), object_id=collection_id
        )
    except ObjectNotFoundError:
        # Deleted meanwhile: its index goes with it.
        return {}


def on_record_changed(event):
    """Hand the changed records over to the sender; wait only for read-your-writes."""
    settings = event.request.registry.elasticsearch.settings
    bucket_id = event.payload["bucket_id"]
    collection_id = event.payload["collection_id"]
    if not settings.is_indexed(bucket_id, collection_id):
        return
    # In a batch, payloads are merged: only impacted_objects lists every record.
    objects = [impacted["new"] for impacted in event.impacted_objects]
    metadata = collection_metadata(event.request, bucket_id, collection_id)
    event.request.registry.elasticsearch.sender.submit(
        bucket_id, collection_id, objects, metadata, wait=settings.force_refresh
    )


def on_collection_changed(event):
    settings, index_side = _plugin(event.request)
    bucket_id = event.payload["bucket_id"]
    action = event.payload["action"]
    for impacted in event.impacted_objects:
        new, old = impacted.get("new") or {}, impacted.get("old") or {}
        collection_id = new.get("id") or old.get("id")
        if not settings.is_indexed(bucket_id, collection_id):
            continue
        try:
            if action == "create":
                index_side.admin.create_index(bucket_id, collection_id, new, replace=True)
                save_new_collection(index_side, bucket_id, collection_id, new)
            elif action == "update" and (
                documents_changed(old, new) or settings_changed(old, new)
            ):
                # Existing documents must gain or lose fields, or be analysed anew: only a
                # rebuild does that (an open index cannot change its analysis). The
                # catch-up rebuilds, seeing the collection's fingerprint change.
                event.request.registry.elasticsearch.catchup.wake()
            elif action == "update" and mapping_changed(old, new):
                if not index_side.admin.update_mapping(bucket_id, collection_id, new):
                    # A pooled collection taking a mapping of its own moves to an index of
                    # its own: a rebuild, in the background.
                    event.request.registry.elasticsearch.catchup.wake()
            elif action == "delete":
                index_side.removal.delete_collection_indices(bucket_id, collection_id)
        except EngineRequestError as exc:
            logger.warning(
                "The index of %s cannot take the new mapping (%s): "
                "rebuilding it in the background",
                collection_uri(bucket_id, collection_id),
                exc,
            )
            event.request.registry.elasticsearch.catchup.wake()
        except EngineError as exc:
            logger.info(
                "Could not %s the index of %s, left to the catch-up: %s",
                action,
                collection_uri(bucket_id, collection_id),
                exc,
            )
            event.request.registry.elasticsearch.catchup.wake()


def on_bucket_deleted(event):
    settings, index_side = _plugin(event.request)
    for impacted in event.impacted_objects:
        bucket_id = impacted["old"]["id"]
        if not settings.is_indexed(bucket_id):
            continue
        try:
            index_side.removal.delete_bucket_indices(bucket_id)
        except EngineError as exc:
            logger.info(
                "Could not delete the indices of %s, left to the catch-up: %s",
                bucket_uri(bucket_id),
                exc,
            )
            event.request.registry.elasticsearch.catchup.wake()


def validate_collection_mapping(event):
    """Refuse, inside the transaction, a collection whose ``index:schema`` or
    ``index:settings`` the engine (or the plugin's rules) refuses.

    While the engine is unreachable the write goes through: the index catches up later.
    """
    settings, index_side = _plugin(event.request)
    bucket_id = event.payload["bucket_id"]
    for impacted in event.impacted_objects:
        new, old = impacted["new"], impacted.get("old") or {}
        if not settings.is_indexed(bucket_id, new["id"]):
            continue
        # Only what this write changes: a collection stored earlier stays writable.
        found = [(k, m) for k, m in metadata_errors(new) if new.get(k) != old.get(k)]
        if found:
            raise errors.invalid(*[("body", key, message) for key, message in found])
        schema_changed = "index:schema" in new and new["index:schema"] != old.get("index:schema")
        analysis_changed = settings_changed(old, new)
        if not (schema_changed or analysis_changed):
            continue
        if SETTINGS_KEY in new:
            try:
                check(new[SETTINGS_KEY])
            except InvalidIndexSettings as exc:
                raise errors.invalid_body(exc.description, exc.location) from None
        _validate_with_engine(index_side, new, schema_changed, analysis_changed)


def _validate_with_engine(index_side, metadata, schema_changed, analysis_changed):
    """Ask the engine; the refusal names what changed (the settings first, alone)."""
    probes = []
    if analysis_changed and schema_changed:
        probes.append((SETTINGS_KEY, False))
    key = "index:schema" if schema_changed else SETTINGS_KEY
    probes.append((key, True))
    for key, with_mapping in probes:
        try:
            index_side.admin.validate_mapping(metadata, with_mapping=with_mapping)
        except EngineRequestError as exc:
            message = f"The search engine refused {key}: {exc.message}"
            raise errors.invalid_body(message, key) from None
        except EngineUnavailable as exc:
            logger.warning("Could not validate %s, engine unavailable: %s", key, exc)
            return


def on_new_request(event):
    """Start this process's catch-up worker, at its first request (see ``sync.worker``)."""
    event.request.registry.elasticsearch.catchup.start()


# Where a flush request keeps the names of 0.3's indices it is to delete.
LEGACY_TO_FLUSH = "kinto_elasticsearch.legacy_to_flush"


def note_legacy_before_flush(event):
    """Note 0.3's indices of the collections a ``POST /__flush__`` is about to delete:
    Kinto empties storage before it sends ``ServerFlushed``, and only storage tells 0.3's
    indices from names that merely look like theirs (``index.legacy``). Both readings of
    an ambiguous name go with the flush, so it goes too."""
    request = event.request
    route = request.matched_route
    if route is None or route.name != "flush" or request.method != "POST":
        return
    _, index_side = _plugin(request)
    exists = functools.partial(collection_exists, request.registry.storage)
    try:
        found = legacy.find(index_side.indices, index_side.prefix, exists)
    except EngineError as exc:
        logger.error("Could not list kinto-elasticsearch 0.3's indices before flush: %s", exc)
        return
    request.environ[LEGACY_TO_FLUSH] = sorted([*found.matched, *found.ambiguous])


def on_server_flushed(event):
    _, index_side = _plugin(event.request)
    try:
        index_side.removal.flush()
        index_side.indices.delete(event.request.environ.get(LEGACY_TO_FLUSH, []))
    except EngineError as exc:
        logger.error("Could not delete the plugin's indices on flush: %s", exc)
