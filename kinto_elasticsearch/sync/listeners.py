"""Kinto event subscribers: they turn Kinto's events into changes for the index.

Every subscriber to ``AfterResourceChanged`` runs after commit: a rolled-back write never
reaches the index, and a failing engine never fails a write. Record changes go to the
sender, and so does the engine's work for collection and bucket changes (creating,
re-mapping, rebuilding, deleting indices), done after the response (``admin_queue``). With
read-your-writes the request waits for either, at most ``request_timeout_seconds`` + 1.
What they cannot do is left to the catch-up, which reads storage (see ``sync``).
"""

import functools
import logging
import time

from kinto.core.storage.exceptions import ObjectNotFoundError

from kinto_elasticsearch import errors
from kinto_elasticsearch.client import EngineError, EngineRequestError, EngineUnavailable
from kinto_elasticsearch.index import legacy, probe
from kinto_elasticsearch.index.analysis import (
    SETTINGS_KEY,
    InvalidIndexSettings,
    check,
    settings_changed,
)
from kinto_elasticsearch.index.mapping import metadata_errors
from kinto_elasticsearch.storage import bucket_uri, collection_exists, collection_uri
from kinto_elasticsearch.sync.collection_admin import (
    bucket_task,
    collection_task,
    probe_removal_task,
)

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
    """Hand the engine's work for changed collections over to the background (see
    ``sync.admin_queue``); wait for it, bounded, only for read-your-writes."""
    settings = event.request.registry.elasticsearch.settings
    bucket_id = event.payload["bucket_id"]
    tasks = []
    for impacted in event.impacted_objects:
        new, old = impacted.get("new") or {}, impacted.get("old") or {}
        collection_id = new.get("id") or old.get("id")
        if not settings.is_indexed(bucket_id, collection_id):
            continue
        task = collection_task(
            event.request.registry, event.payload["action"], bucket_id, collection_id, old, new
        )
        if task is not None:
            tasks.append(task)
    _submit(event.request, tasks)


def on_bucket_deleted(event):
    settings = event.request.registry.elasticsearch.settings
    tasks = [
        bucket_task(event.request.registry, impacted["old"]["id"])
        for impacted in event.impacted_objects
        if settings.is_indexed(impacted["old"]["id"])
    ]
    _submit(event.request, tasks)


def _submit(request, tasks):
    plugin = request.registry.elasticsearch
    plugin.sender.submit_admin(tasks, wait=plugin.settings.force_refresh)


def validate_collection_mapping(event):
    """Refuse, inside the transaction, a collection whose ``index:schema`` or
    ``index:settings`` the engine (or the plugin's rules) refuses.

    While the engine is unreachable the write goes through: the index catches up later.
    """
    settings = event.request.registry.elasticsearch.settings
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
        _validate_with_engine(event.request, bucket_id, new, schema_changed, analysis_changed)


def _validate_with_engine(request, bucket_id, metadata, schema_changed, analysis_changed):
    """Ask the engine; the refusal names what changed (the settings first, alone).

    The write waits for that, inside its transaction, no longer than the request timeout in
    all; then, as when the engine is unavailable, it goes through unvalidated (logged). The
    probe indices are deleted after the response.
    """
    plugin = request.registry.elasticsearch
    index_side = plugin.index
    probes = []
    if analysis_changed and schema_changed:
        probes.append((SETTINGS_KEY, False))
    key = "index:schema" if schema_changed else SETTINGS_KEY
    probes.append((key, True))
    deadline = time.monotonic() + plugin.settings.request_timeout
    cleanup = []
    try:
        for key, with_mapping in probes:
            left = deadline - time.monotonic()
            if left <= 0:
                logger.warning("Could not validate %s in time: not waiting longer", key)
                return
            name = probe.probe_name(index_side.prefix)
            cleanup.append(probe_removal_task(index_side, bucket_id, metadata["id"], name))
            try:
                probe.validate_mapping(
                    index_side.admin, metadata, name, with_mapping=with_mapping, timeout=left
                )
            except EngineRequestError as exc:
                message = f"The search engine refused {key}: {exc.message}"
                raise errors.invalid_body(message, key) from None
            except EngineUnavailable as exc:
                logger.warning("Could not validate %s, engine unavailable: %s", key, exc)
                return
    finally:
        plugin.sender.submit_admin(cleanup)


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
