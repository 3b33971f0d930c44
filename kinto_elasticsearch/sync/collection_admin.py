"""What the engine must do after a collection or bucket write: the admin tasks the
listeners hand to the sender (``admin_queue`` does them, after the response).

Each task does what the catch-up would otherwise do at its next pass (create a missing
index, apply a new mapping, rebuild or promote, remove a gone collection's index), sooner:
a failed or lost task is no loss.
"""

import logging

from kinto_elasticsearch.client import EngineRequestError
from kinto_elasticsearch.index.analysis import settings_changed
from kinto_elasticsearch.index.mapping import documents_changed, mapping_changed
from kinto_elasticsearch.storage import bucket_uri, collection_uri
from kinto_elasticsearch.sync.admin_queue import AdminTask
from kinto_elasticsearch.sync.catchup import save_new_collection
from kinto_elasticsearch.sync.checkpoints import SyncStore
from kinto_elasticsearch.sync.rebuild import RebuildInProgress, reindex_collection

logger = logging.getLogger(__name__)


def collection_task(registry, action, bucket_id, collection_id, old, new):
    """The task following a collection's ``action`` from ``old`` to ``new``, or None."""
    index_side = registry.elasticsearch.index
    uri = collection_uri(bucket_id, collection_id)
    key = (bucket_id, collection_id)
    if action == "create":

        def create():
            # What an earlier collection of this id left (deleted while the engine was
            # away, or just before: the catch-up removes its checkpoint) goes first; this
            # one has no records yet. Without its checkpoint, there is nothing to replace
            # (documents a lost checkpoint leaves are the catch-up's purge check's): one
            # multi-get, not the four requests of a replacement.
            alias = index_side.locator.alias(bucket_id, collection_id)
            earlier = bool(SyncStore(index_side).get_many([alias]))
            index_side.admin.create_index(bucket_id, collection_id, new, replace=earlier)
            save_new_collection(index_side, bucket_id, collection_id, new)

        return AdminTask(key, create, f"create the index of {uri}")
    if action == "delete":

        def delete():
            index_side.removal.delete_collection_indices(bucket_id, collection_id)

        return AdminTask(key, delete, f"delete the index of {uri}")
    if action != "update":
        return None
    if documents_changed(old, new) or settings_changed(old, new):
        # Existing documents gain or lose fields, or are analysed anew: only a rebuild does
        # that (an open index cannot change its analysis). Records go on to the live index
        # meanwhile, and the rebuild's replay brings them in.
        return AdminTask(
            key,
            lambda: rebuild(registry, bucket_id, collection_id, new),
            f"rebuild the index of {uri}",
            ordered=False,
        )
    if mapping_changed(old, new):

        def remap():
            try:
                if index_side.admin.update_mapping(bucket_id, collection_id, new):
                    return
            except EngineRequestError as exc:
                logger.warning(
                    "The index of %s cannot take the new mapping (%s): rebuilding it", uri, exc
                )
            # A pooled collection taking a mapping of its own moves to an index of its own
            # (a promotion), before its next records: they are for the new mapping.
            rebuild(registry, bucket_id, collection_id, new)

        return AdminTask(key, remap, f"apply the new mapping of {uri}")
    return None


def bucket_task(registry, bucket_id):
    """The task removing what the engine holds of a deleted bucket."""
    removal = registry.elasticsearch.index.removal
    return AdminTask(
        (bucket_id, None),
        lambda: removal.delete_bucket_indices(bucket_id),
        f"delete the indices of {bucket_uri(bucket_id)}",
    )


def probe_removal_task(index_side, bucket_id, collection_id, name):
    """The task deleting a validation's probe index (whether or not it was created: one
    whose creation timed out may be there)."""
    return AdminTask(
        (bucket_id, collection_id),
        lambda: index_side.indices.delete([name]),
        f"delete the probe index {name}",
        ordered=False,
    )


def rebuild(registry, bucket_id, collection_id, metadata, **options):
    """Rebuild (or promote) the collection's index now; another process doing it is as
    good. ``options``: ``reindex_collection``'s (``promote``, ``shared``). False if another
    process is rebuilding it."""
    settings = registry.elasticsearch.settings
    try:
        reindex_collection(
            registry.storage,
            registry.elasticsearch.index,
            bucket_id,
            collection_id,
            metadata,
            overlap_ms=int(settings.catchup_overlap * 1000),
            registry=registry,
            lease_seconds=settings.rebuild_lease,
            **options,
        )
    except RebuildInProgress as exc:
        logger.info("Not rebuilding %s: %s", collection_uri(bucket_id, collection_id), exc)
        return False
    return True


def move_out_of_pool(registry, bucket_id, collection_id, metadata):
    """Move a pooled collection its pool does not fit (``PoolFit.misfit``) to an index of
    its own, whose searches keep its pool's rules (``Placement.moved``); False if another
    process is rebuilding it."""
    return rebuild(registry, bucket_id, collection_id, metadata, promote=True, shared=True)
