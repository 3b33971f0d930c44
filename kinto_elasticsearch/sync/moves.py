"""A pooled collection moved to an index of its own before the sender writes a record its
pool would take otherwise than an index of its own would (``index/fit.py``).

The move is an ordered admin task (``admin_queue``): the collection's records handed over
meanwhile wait behind it, and a request waiting for its write (read-your-writes) waits for
the move too, within the sender's bound. Once it is done, the records are sent where the
collection lives; if it cannot be done now (another process rebuilds the collection, the
engine refused), they are sent as the pool takes them, and the catch-up moves the
collection later.
"""

import functools
import logging

from kinto_elasticsearch.client import EngineError
from kinto_elasticsearch.storage import collection_uri
from kinto_elasticsearch.sync import collection_admin
from kinto_elasticsearch.sync.admin_queue import AdminTask

logger = logging.getLogger(__name__)


def latest_records(handovers):
    """The latest version of each object ``handovers`` carry, less tombstones."""
    latest = {}
    for handover in handovers:
        for obj in handover.objects:
            if obj["last_modified"] >= latest.get(obj["id"], {}).get("last_modified", -1):
                latest[obj["id"]] = obj
    return [obj for obj in latest.values() if not obj.get("deleted")]


def held_for_move(sender, key, group):
    """Whether ``group`` (the sender's handovers of collection ``key``) waits for its
    collection's move, which this queues: its pool would take its records otherwise than
    an index of its own (``PoolFit.misfit``), and a write indexed so would show another
    tenant in this one's answers."""
    bucket_id, collection_id = key
    metadata = group[-1].metadata
    records = latest_records(group)
    try:
        reason = sender._index_side.fit.misfit(bucket_id, collection_id, records, metadata)
    except EngineError as exc:
        logger.debug("Could not tell whether %s fits its pool: %s", key, exc)
        return False
    if reason is None:
        return False
    uri = collection_uri(bucket_id, collection_id)
    logger.info("%s: %s, moving it to an index of its own first", uri, reason)
    task = AdminTask(key, None, f"move {uri} to an index of its own")
    task.work = functools.partial(_move_then_send, sender, task, key, list(group), metadata)
    sender.admin.put(task)
    return True


def _move_then_send(sender, task, key, handovers, metadata):
    try:
        # Moved meanwhile (a move queued before this one, another process): done.
        if sender._index_side.locator.placement(*key, metadata, refresh=True).pooled:
            collection_admin.move_out_of_pool(sender._registry, *key, metadata)
    except EngineError as exc:
        logger.info("Could not %s, sending its records as its pool takes them: %s",
                    task.description, exc)  # fmt: skip
    # Moved, the records are whole where the collection lives (the move read them from
    # storage, this sends them again at the same version: nothing changes); not, they are
    # indexed as the pool takes them.
    sender._deliver(handovers, forward=False, whole=False)
