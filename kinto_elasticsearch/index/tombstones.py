"""The marking of the tombstones an older version left in pools without their mark.

A pooled tombstone's collection field is its collection's key and ``/``
(``placement.tombstone_key``), so that the key's term alone selects the collection's
records. An older version wrote tombstones with the key itself: they are told from records
by their lack of ``id`` only, a filter as costly as the shard on engines that do not lead a
conjunction with its rarest clause. Until the layout records every pool marked
(``records.tombstones_marked``), searches keep that filter, and stay right meanwhile.

The catch-up marks them, online: each unmarked tombstone is written again with its mark,
under its own version (``external_gte``), so that a record written again since (a newer
version) wins and a tombstone written since is left as it is. Then the layout records the
pools marked. Processes of an older version still running in a rolling upgrade may write
unmarked tombstones after that: each pass marks those of the collections whose changes it
read and this process did not deliver (:func:`mark_changed`, one search per pool they live
in, kept to their keys), and the end of each sweep those of every collection
(:func:`mark_tombstones` with ``recheck``: a write delivered after the overlap); until
then such a tombstone is a hit with no ``id`` in its collection's searches.
"""

import logging

from kinto_elasticsearch.client import EngineNotFound
from kinto_elasticsearch.index import naming, placement
from kinto_elasticsearch.index.documents import LIVE_DOCUMENTS, MODIFIED_FIELD
from kinto_elasticsearch.index.placement import COLLECTION_FIELD

logger = logging.getLogger(__name__)

PAGE_SIZE = 1000
# A pool that still shows unmarked tombstones after this many pages is left for the next
# pass (a write racing each page cannot keep a pass busy).
MAX_PAGES = 100

# Pooled documents with no ``id`` (tombstones) whose collection field lacks the mark.
UNMARKED = {
    "bool": {
        "filter": [{"exists": {"field": COLLECTION_FIELD}}],
        "must_not": [LIVE_DOCUMENTS, {"wildcard": {COLLECTION_FIELD: {"value": "*/"}}}],
    }
}


def mark_tombstones(pools, recheck=False):
    """Give the unmarked tombstones of every pool of ``pools`` (``index/pools.py``) their
    mark, then record the layout marked. Once, unless ``recheck`` (the end of a sweep:
    what an older process wrote since). The number of tombstones marked."""
    records = pools.locator.records
    if not records.has_layout or (records.tombstones_marked and not recheck):
        # No layout: no collection was ever pooled (an older version's pools get one when
        # their aliases are migrated, which comes first).
        return 0
    marked, done = 0, True
    for pool in sorted(pools.listed()):
        count, finished = _mark_pool(pools.engine, pool)
        marked += count
        done = done and finished
    if done:
        records.record_layout(tombstones_marked=True)
    if marked:
        logger.info("Marked %s tombstones of pooled collections", marked)
    return marked


def mark_changed(pools, keys):
    """Give their mark to the unmarked tombstones of the pooled collections of ``keys``
    (``(bucket id, collection id)``, those a catch-up pass saw change): what a process of
    an older version wrote since the pools were marked. The number marked."""
    by_pool = {}
    for key in keys:
        where = pools.locator.placement(*key)
        if where.pooled and where.marked:
            by_pool.setdefault(where.pool, set()).add(where.key)
    marked = 0
    for pool, collection_keys in sorted(by_pool.items()):
        # The collections' key itself, not its mark: their tombstones written unmarked.
        scope = {"terms": {COLLECTION_FIELD: sorted(collection_keys)}}
        query = {"bool": {"filter": [scope], "must_not": [LIVE_DOCUMENTS]}}
        marked += _mark_pool(pools.engine, pool, query)[0]
    if marked:
        logger.info("Marked %s tombstones an older version wrote since", marked)
    return marked


def _mark_pool(engine, pool, query=UNMARKED):
    """``(tombstones marked, whether none is left)`` for one pool: the tombstones
    ``query`` selects."""
    body = {
        "query": query,
        "size": PAGE_SIZE,
        "version": True,
        "_source": [COLLECTION_FIELD, MODIFIED_FIELD],
    }
    marked = 0
    for _ in range(MAX_PAGES):
        try:
            # What the last refresh shows: an older version's tombstones of more than a
            # refresh interval ago, and those of the last page marked (refreshed below).
            hits = engine.call("search", index=pool, body=body)["hits"]["hits"]
        except EngineNotFound:
            return marked, True
        if not hits:
            return marked, True
        lines = []
        for hit in hits:
            source = hit.get("_source") or {}
            key = source.get(COLLECTION_FIELD)
            if not isinstance(key, str) or MODIFIED_FIELD not in source:
                continue
            meta = {"_index": naming.pool_write_alias(pool), "_id": hit["_id"],
                    "routing": key, "version": hit["_version"],
                    "version_type": "external_gte"}  # fmt: skip
            tombstone = {MODIFIED_FIELD: source[MODIFIED_FIELD]}
            tombstone[COLLECTION_FIELD] = placement.tombstone_key(key)
            lines += [{"index": meta}, tombstone]
        if not lines:
            return marked, False
        answer = engine.call("bulk", body=lines, require_alias=True, refresh="true")
        # 409: written again since (a record, or a newer tombstone): nothing to mark.
        statuses = [item["index"].get("status", 500) for item in answer["items"]]
        marked += sum(status < 300 for status in statuses)
        if any(status >= 300 and status != 409 for status in statuses):
            return marked, False
    return marked, False
