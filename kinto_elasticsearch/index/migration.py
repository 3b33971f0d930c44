"""The migration of an older version's pooled aliases: that version gave each pooled
collection a filtered alias on its pool; this one gives them none (``index/placement.py``)
and records only what the pool hash does not give (``index/records.py``)."""

import logging

from kinto_elasticsearch.index import naming

logger = logging.getLogger(__name__)


def migrate_aliases(pools, listed=None):
    """Remove the aliases an older version gave the pooled collections of ``pools``
    (``index/pools.py``), online.

    First what the aliases knew and the hash does not is recorded (``index/records.py``):
    the layout, every collection whose alias is on another pool than its hash's, and the
    collections with an index of their own (an older version recorded none). Then the
    aliases go, in chunks: writes and searches address the pool already, and a process
    that has not seen the records yet finds a collection by its documents. ``listed``:
    ``{index: [aliases]}`` of the prefix when the caller read it. The aliases removed.
    """
    records = pools.locator.records
    pooled = pools.locator.pooled_aliases()
    if records.migrated and not pooled:
        return []
    records.record_layout()
    if listed is None:
        listed = pools.indices.listed(naming.prefix_pattern(pools.prefix))
    recorded = records.recorded()
    moved = {}
    for name, aliases in sorted(listed.items()):
        if naming.is_internal_index(pools.prefix, name):
            continue
        for alias in aliases:
            if alias not in recorded and alias not in pooled:
                moved[alias] = (None, None)
    for alias, (pool, key) in sorted(pooled.items()):
        if not key or alias in recorded:
            continue
        bucket_id, _, collection_id = key.partition("/")
        if pool != pools.locator.hash_pool(bucket_id, collection_id):
            moved[alias] = (pool, key)
    records.record_many(moved)
    pools.indices.remove_aliases([(pool, alias) for alias, (pool, _) in sorted(pooled.items())])
    for alias in pooled:
        pools.locator.forget(alias)
    records.record_layout(migrated=True)
    if pooled:
        logger.info("Migrated %s pooled aliases: pooled collections have none", len(pooled))
    return sorted(pooled)
