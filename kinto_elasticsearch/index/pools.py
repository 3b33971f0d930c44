"""Pooled indices: the indices small collections share, their tenants' aliases,
documents and shares of fields."""

import logging

from kinto_elasticsearch.client import EngineNotFound, EngineRequestError
from kinto_elasticsearch.index import naming, placement
from kinto_elasticsearch.index.fields import MAX_FIELDS
from kinto_elasticsearch.index.mapping import collection_mapping, plugin_settings
from kinto_elasticsearch.index.placement import COLLECTION_FIELD

logger = logging.getLogger(__name__)

# Fields a mapping may reach before new ones stop being mapped: a margin under the
# engine's limit for fields that other processes add at the same time.
FIELD_BUDGET = MAX_FIELDS - 20

# A pool's documents are deleted only with their collection (delete-by-query) or when
# written where the collection no longer lives, never for a record's sake (tombstones
# are documents). The engine would remember such a delete's version, one above the
# record's, for ``gc_deletes`` (60 s): a rebuild of the collection within that time, at
# the records' own versions, would be refused as older and leave it empty.
POOL_SETTINGS = {"index.gc_deletes": "0s"}


class Pools:
    def __init__(self, engine, indices, locator, known, pool_settings=None, pool_max_fields=100):
        self.engine = engine
        self.indices = indices
        self.locator = locator
        self.known = known
        self.prefix = locator.prefix
        # The operator's settings of every pooled index (shards, replicas).
        self.pool_settings = dict(pool_settings or {})
        # The fields one pooled collection may add to its pool's mapping (see ``takes``).
        self.pool_max_fields = pool_max_fields

    def body(self):
        """Settings and mappings of a pooled index: the plugin's own fields, the
        collection field, the operator's pool settings and :data:`POOL_SETTINGS`."""
        mappings = collection_mapping({}, self.engine.flattened_type)
        mappings.setdefault("properties", {})[COLLECTION_FIELD] = {"type": "keyword"}
        return {
            "settings": {**self.pool_settings, **plugin_settings({}), **POOL_SETTINGS},
            "mappings": mappings,
        }

    def ensure(self, name):
        """Create the pooled index ``name`` unless it exists (processes race for it)."""
        self.indices.create_unless_exists(name, self.body())

    def join(self, where):
        """Give a pooled collection its filtered alias on its pool (creating the pool)."""
        if where.pool not in self.indices.internal:
            self.ensure(where.pool)
            self.indices.internal.add(where.pool)
        actions = [where.alias_action()]
        try:
            self.indices.update_aliases(actions, where.alias)
        except EngineNotFound:
            # The pool went (flushed, or deleted by an operator) since this process saw it.
            self.ensure(where.pool)
            self.indices.update_aliases(actions, where.alias)
        self.locator.forget(where.alias)
        self.locator.remember({where.alias: [where.pool]})
        return where.pool

    def drop(self, pooled):
        """Remove pooled collections (``{alias: (pool, key)}``): aliases, then documents."""
        self.indices.remove_aliases([(pool, alias) for alias, (pool, _) in sorted(pooled.items())])
        by_pool = {}
        for pool, key in pooled.values():
            if key:
                by_pool.setdefault(pool, []).append(key)
        for pool, keys in sorted(by_pool.items()):
            self._delete_by_query(pool, {"terms": {COLLECTION_FIELD: sorted(keys)}})
            self._forget_fields(pool, keys)

    def delete_documents(self, where):
        """Delete every document of a pooled collection from its pool (and no other's):
        routed to the collection's shard, filtered by its key."""
        self._delete_by_query(where.pool, where.collection_term(), routing=where.key)
        self._forget_fields(where.pool, [where.key])

    def orphan_documents(self, limit=1000):
        """``{pool: {collection key: documents}}``: documents in a pool whose collection has
        no alias on that pool (a write that raced the collection's delete or its move to an
        index of its own), at most ``limit`` keys per pool."""
        try:
            pools = self.indices.listed(naming.pool_pattern(self.prefix))
        except EngineNotFound:
            return {}
        keys_by_pool = {}
        for pool, key in self.locator.pooled_aliases().values():
            keys_by_pool.setdefault(pool, set()).add(key)
        found = {}
        for pool in sorted(pools):
            # A pool's collections number thousands, far below the engines' limit of
            # terms in one query (``index.max_terms_count``, 65,536).
            kept = sorted(keys_by_pool.get(pool, ()))
            query = {"bool": {"must_not": [{"terms": {COLLECTION_FIELD: kept}}]}} if kept else None
            body = {
                "size": 0,
                "query": query or {"match_all": {}},
                "aggs": {"keys": {"terms": {"field": COLLECTION_FIELD, "size": limit}}},
            }
            self.engine.call("indices.refresh", index=pool)
            buckets = self.engine.call("search", index=pool, body=body)["aggregations"]["keys"]
            counts = {b["key"]: b["doc_count"] for b in buckets["buckets"]}
            if counts:
                found[pool] = counts
        return found

    def delete_orphan_documents(self, orphans):
        """Delete the documents :meth:`orphan_documents` found."""
        for pool, counts in sorted(orphans.items()):
            self._delete_by_query(pool, {"terms": {COLLECTION_FIELD: sorted(counts)}})

    def takes(self, pool, where, known, count):
        """Whether ``count`` new fields of a pooled collection fit in its pool (within the
        pool's budget and the collection's share); if so, they are counted as its own.

        The counts live in the pool's ``_meta`` (which an update replaces whole, so it is
        written from the mapping just read): processes adding fields at the same moment may
        each miss the other's count, so a share can be overrun by one write's fields; the
        pool's budget, checked against the mapping itself, cannot.
        """
        counts = placement.fields_added(known.meta)
        mine = counts.get(where.key, 0) + count
        if len(known.types) + count > FIELD_BUDGET or mine > self.pool_max_fields:
            return False
        meta = {**known.meta, placement.FIELDS_ADDED: {**counts, where.key: mine}}
        try:
            self.engine.call("indices.put_mapping", index=pool, body={"_meta": meta})
        except (EngineNotFound, EngineRequestError) as exc:
            # The count is what keeps shares fair, not what makes the write right.
            logger.warning("Could not count the fields %s added to %s: %s", where.key, pool, exc)
        known.meta = meta
        return True

    def _forget_fields(self, pool, keys):
        """Drop the field counts of collections that left ``pool`` (deleted or promoted):
        the pool's ``_meta`` counts its present tenants only. The fields stay mapped (a
        mapping never shrinks) and in the pool's budget."""
        known, _ = self.known.known_mapping(pool, refresh=True)
        counts = placement.fields_added(known.meta)
        if not any(key in counts for key in keys):
            return
        meta = {**known.meta, placement.FIELDS_ADDED: {**counts, **dict.fromkeys(keys, 0)}}
        try:
            self.engine.call("indices.put_mapping", index=pool, body={"_meta": meta})
        except EngineNotFound:
            return
        known.meta = meta

    def _delete_by_query(self, pool, query, routing=None):
        params = {"routing": routing} if routing else {}
        try:
            self.engine.call(
                "delete_by_query",
                index=pool,
                body={"query": query},
                conflicts="proceed",
                refresh=True,
                **params,
            )
        except EngineNotFound:
            pass  # No pool, no documents.
