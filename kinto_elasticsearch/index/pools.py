"""Pooled indices: the indices small collections share, their tenants' documents and
shares of fields, and the migration of the aliases an older version gave each tenant."""

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
# The collections of one pool an orphan check reads (within the engines' limit of buckets
# of one aggregation): a pool holds thousands.
MAX_KEYS = 10_000


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
        """Create the pooled index ``name`` unless it exists (processes race for it), with
        its write alias (``naming.pool_write_alias``); give a pool an older version made
        its write alias."""
        write_alias = naming.pool_write_alias(name)
        if self.engine.call("indices.exists_alias", name=write_alias):
            # Created by another process (or an earlier life of this one): a read, where a
            # create attempt would be an administration request the engine refuses.
            return
        body = {**self.body(), "aliases": {write_alias: {}}}
        try:
            self.engine.call("indices.create", index=name, body=body)
            return
        except EngineRequestError as exc:
            if exc.error_type != "resource_already_exists_exception":
                raise
        if not self.engine.call("indices.exists_alias", name=write_alias):
            self.engine.call(
                "indices.update_aliases",
                body={"actions": [{"add": {"index": name, "alias": write_alias}}]},
            )

    def forget(self, pool):
        """Forget that ``pool`` exists (it was found missing): created again at its next
        use."""
        self.indices.internal.discard(pool)

    def join(self, where):
        """Make room for a pooled collection: its pool exists (created once per process),
        and the layout it was hashed with is recorded. Nothing of the collection's own: no
        alias, no mapping, no cluster-state update."""
        self.ensure_cached(where.pool)
        return where.pool

    def ensure_cached(self, pool):
        """Create ``pool`` unless this process created or found it already, and record the
        layout its collections are hashed with (the first time only, in any process)."""
        if pool not in self.indices.internal:
            records = self.locator.records
            if not records.has_layout:
                # The first layout of a deployment an older version never pooled says
                # there is nothing to migrate: its collections are not looked up by alias,
                # and no pool holds a tombstone without its mark.
                records.record_layout(
                    migrated=not self.locator.pooled_aliases() or None,
                    tombstones_marked=not self.listed() or None,
                )
            self.ensure(pool)
            self.indices.internal.add(pool)

    def drop(self, keys_by_pool):
        """Remove the documents of pooled collections (``{pool: [collection keys]}``)."""
        for pool, keys in sorted(keys_by_pool.items()):
            keys = sorted(k for k in keys if k)
            if keys:
                values = sorted({*keys, *map(placement.tombstone_key, keys)})
                self._delete_by_query(pool, {"terms": {COLLECTION_FIELD: values}})
                self._forget_fields(pool, keys)

    def listed(self):
        """The pools the engine holds (``{pool: [aliases]}``)."""
        try:
            return self.indices.listed(naming.pool_pattern(self.prefix))
        except EngineNotFound:
            return {}

    def drop_bucket(self, bucket_id):
        """Remove the documents of a bucket's pooled collections from every pool: their
        keys (and their tombstones', ``placement.tombstone_key``) start with the bucket's
        id and ``/``, which no other bucket's do."""
        pools = self.listed()
        head = placement.collection_key(bucket_id, "")
        for pool in sorted(pools):
            self._delete_by_query(pool, {"prefix": {COLLECTION_FIELD: head}})
            known, _ = self.known.known_mapping(pool, refresh=True)
            keys = [key for key in placement.fields_added(known.meta) if key.startswith(head)]
            if keys:
                self._forget_fields(pool, keys)

    def delete_documents(self, where):
        """Delete every document of a pooled collection from its pool (and no other's):
        routed to the collection's shard, filtered by its key."""
        self._delete_by_query(where.pool, where.collection_term(), routing=where.key)
        self._forget_fields(where.pool, [where.key])

    def orphan_documents(self, expected, limit=1000):
        """``{pool: {collection key: documents}}``: documents in a pool that are not of a
        collection of ``expected`` (aliases) living there (a write that raced the
        collection's delete or its move to an index of its own), at most ``limit`` keys per
        pool."""
        pools = self.listed()
        found = {}
        for pool in sorted(pools):
            body = {
                "size": 0,
                "aggs": {"keys": {"terms": {"field": COLLECTION_FIELD, "size": MAX_KEYS}}},
            }
            self.engine.call("indices.refresh", index=pool)
            buckets = self.engine.call("search", index=pool, body=body)["aggregations"]["keys"]
            counts = {}
            for bucket in buckets["buckets"]:
                # A tombstone's value is its collection's key and ``/``.
                key = placement.live_key(str(bucket["key"]))
                bucket_id, _, collection_id = key.partition("/")
                alias = naming.alias_name(self.prefix, bucket_id, collection_id)
                if alias in expected:
                    where = self.locator.placement(bucket_id, collection_id)
                    if where.pool == pool:
                        continue
                counts[key] = counts.get(key, 0) + bucket["doc_count"]
                if len(counts) >= limit:
                    break
            if counts:
                found[pool] = counts
        return found

    def delete_orphan_documents(self, orphans):
        """Delete the documents :meth:`orphan_documents` found."""
        for pool, counts in sorted(orphans.items()):
            values = sorted({*counts, *map(placement.tombstone_key, counts)})
            self._delete_by_query(pool, {"terms": {COLLECTION_FIELD: values}})

    def takes(self, pool, where, known, count):
        """Whether ``count`` new fields of a pooled collection fit in its pool (within the
        pool's budget and the collection's share); if so, they are counted as its own.

        The counts live in the pool's ``_meta`` (which an update replaces whole, so it is
        written from the mapping just read): processes adding fields at the same moment may
        each miss the other's count, so a share can be overrun by one write's fields; the
        pool's budget, checked against the mapping itself, cannot.
        """
        if not self.fits(where, known, count):
            return False
        counts = placement.fields_added(known.meta)
        mine = counts.get(where.key, 0) + count
        meta = {**known.meta, placement.FIELDS_ADDED: {**counts, where.key: mine}}
        try:
            self.engine.call("indices.put_mapping", index=pool, body={"_meta": meta})
        except (EngineNotFound, EngineRequestError) as exc:
            # The count is what keeps shares fair, not what makes the write right.
            logger.warning("Could not count the fields %s added to %s: %s", where.key, pool, exc)
        known.meta = meta
        return True

    def fits(self, where, known, count):
        """Whether ``count`` new fields of a pooled collection fit in its pool (``known``
        is the pool's mapping), counting nothing."""
        mine = placement.fields_added(known.meta).get(where.key, 0) + count
        return len(known.types) + count <= FIELD_BUDGET and mine <= self.pool_max_fields

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
            # The query sees what the last refresh made searchable: a write indexed just
            # before, not yet refreshed, would escape it and stay behind as an orphan.
            self.engine.call("indices.refresh", index=pool)
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
