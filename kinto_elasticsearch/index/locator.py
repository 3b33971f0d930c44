"""Where each collection's records live: its hash pool, unless the placement records
(``index/records.py``) say otherwise; remembered a while.

A pooled collection has nothing of its own in the engine but documents, so finding where
it lives costs no request: the records are loaded once for all collections. Only what the
records cannot tell alone is asked of the engine, one collection at a time and cached: before
an older version's aliases are migrated (``migrated``), and for a collection the records do
not name whose metadata asks for an index of its own (created while the engine was away, or
a pooled one waiting for its promotion: its pool says which).
"""

import dataclasses
import fnmatch
import time

from kinto_elasticsearch.client import EngineNotFound
from kinto_elasticsearch.client.engine import WRITE
from kinto_elasticsearch.index import naming, placement
from kinto_elasticsearch.index.placement import COLLECTION_FIELD
from kinto_elasticsearch.index.records import PlacementRecords


class Locator:
    def __init__(self, engine, prefix, known, pools=0, indices=None):
        self.engine = engine
        self.prefix = prefix
        # What is known of a collection's mapping goes with where it lives: a collection
        # that moved or went has another mapping, or none.
        self.known = known
        # How many pooled indices small collections share (0: every collection has its
        # own index, as before pools).
        self.pools = pools
        # What the hash does not give, and the layout, in the sync index.
        self.records = PlacementRecords(engine, prefix, indices, pools)
        # alias -> (fetched at, its pool or None): the engine's word on collections the
        # records cannot place alone.
        self._placements = {}

    def alias(self, bucket_id, collection_id):
        return naming.alias_name(self.prefix, bucket_id, collection_id)

    def placement(
        self, bucket_id, collection_id, metadata=None, max_age=60.0, refresh=False, lane=WRITE
    ):
        """Where the collection's records live: as recorded, else at its hash pool, else
        (see the module) the engine's word, else where :func:`placement.choose` would
        create it. ``lane``: the breaker of the caller (a search's lookup is a search's
        fault). A pooled placement says whether the layout records its pool's tombstones
        marked (``Placement.marked``)."""
        where = self._placement(bucket_id, collection_id, metadata, max_age, refresh, lane)
        if where.pooled and self.records.tombstones_marked:
            return dataclasses.replace(where, marked=True)
        return where

    def _placement(self, bucket_id, collection_id, metadata, max_age, refresh, lane):
        alias = self.alias(bucket_id, collection_id)
        found, pool, moved = self.records.find(alias, refresh=refresh, lane=lane)
        if found:
            return self._recorded(bucket_id, collection_id, alias, pool, moved)
        chosen = self.chosen(bucket_id, collection_id, metadata)
        if chosen.pooled and self.records.migrated:
            return chosen
        cached = self._placements.get(alias)
        if not cached or refresh or time.monotonic() - cached[0] >= max_age:
            if not self.look_up(alias, lane) and not self._in_hash_pool(
                bucket_id, collection_id, lane
            ):
                # Migrated since the records were read (``index/migration.py`` records
                # what the hash does not give before the aliases go): read them again.
                found, pool, moved = self.records.find(alias, refresh=True, lane=lane)
                if found:
                    return self._recorded(bucket_id, collection_id, alias, pool, moved)
                return chosen
            cached = self._placements[alias]
        return placement.Placement(bucket_id, collection_id, alias, cached[1])

    def has_index(self, bucket_id, collection_id, metadata, by_alias, listed):
        """Whether the collection has an index, from what a caller listed: ``by_alias``
        (``{alias: [indices]}``) and ``listed`` (``{index: [aliases]}``). A pooled
        collection has one when its pool exists."""
        alias = self.alias(bucket_id, collection_id)
        if alias in by_alias:
            return True
        where = self.placement(bucket_id, collection_id, metadata)
        if where.pooled and where.pool not in listed and self.records.indices is not None:
            # Deleted behind this process's back: created again at the next need.
            self.records.indices.internal.discard(where.pool)
        return where.pooled and where.pool in listed

    def hash_pool(self, bucket_id, collection_id):
        """The pool a pooled collection the records do not name lives in (None: pools
        were never on)."""
        pools = self.records.pools
        if pools <= 0:
            return None
        number = placement.pool_number(bucket_id, collection_id, pools)
        return naming.pool_index_name(self.prefix, number)

    def _in_hash_pool(self, bucket_id, collection_id, lane):
        """Whether the collection's hash pool holds documents of it (remembered so): a
        collection placed there by an older version, or waiting for its promotion."""
        pool = self.hash_pool(bucket_id, collection_id)
        if pool is None:
            return False
        key = placement.collection_key(bucket_id, collection_id)
        body = {"query": placement.documents_term(key), "size": 0, "terminate_after": 1}
        try:
            found = self.engine.call("search", index=pool, body=body, routing=key, lane=lane)
        except EngineNotFound:
            return False
        if not found["hits"]["total"]["value"]:
            return False
        self._placements[self.alias(bucket_id, collection_id)] = (time.monotonic(), pool)
        return True

    def look_up(self, alias, lane=WRITE):
        """Read where ``alias`` points into the cache; False if it does not exist."""
        try:
            found = self.engine.call("indices.get_alias", name=alias, lane=lane)
        except EngineNotFound:
            self._placements.pop(alias, None)
            return False
        self.remember({alias: sorted(found)})
        return True

    def remember(self, by_alias):
        """Note where collections live from ``{alias: [physical indices]}`` read anyway (a
        catch-up pass lists them all), sparing a lookup per collection."""
        now = time.monotonic()
        for alias, indices in by_alias.items():
            self._placements[alias] = (now, placement.pool_of(self.prefix, indices))

    def _recorded(self, bucket_id, collection_id, alias, pool, moved):
        # Moved out of a pool by the plugin: its searches keep a pooled collection's rules
        # while there are pools (``Placement.shared``); with none, every collection has an
        # index of its own and its rules.
        return placement.Placement(bucket_id, collection_id, alias, pool, moved and self.pools > 0)

    def chosen(self, bucket_id, collection_id, metadata):
        """Where a collection with no index yet would be created: pooled when pools are on
        (``elasticsearch.pools``), in the pool of the recorded layout."""
        where = placement.choose(self.prefix, self.pools, bucket_id, collection_id, metadata)
        if not where.pooled:
            return where
        return placement.Placement(
            bucket_id, collection_id, where.alias, self.hash_pool(bucket_id, collection_id)
        )

    def forget(self, alias=None):
        """Forget where ``alias`` (or every collection) lives, and its mapping: it moved,
        or went."""
        if alias is None:
            self._placements.clear()
            self.records.clear()
            self.known.forget_all()
        else:
            self._placements.pop(alias, None)
            self.known.forget(alias)

    def exists(self, bucket_id, collection_id):
        """Whether the collection has an index: its pool, or its alias."""
        where = self.placement(bucket_id, collection_id)
        if where.pooled:
            return bool(self.engine.call("indices.exists", index=where.pool))
        return bool(self.engine.call("indices.exists_alias", name=where.alias))

    def pooled_aliases(self, alias_pattern=None, lane=WRITE):
        """``{alias: (pool, collection key)}`` for the aliases an older version gave pooled
        collections (whose alias matches ``alias_pattern``, when given): only their
        migration (``index/migration.py``) reads them."""
        # The engine filters the aliases: a bucket's are a few among tens of thousands.
        named = {"name": alias_pattern} if alias_pattern else {}
        try:
            found = self.engine.call(
                "indices.get_alias", index=naming.pool_pattern(self.prefix), lane=lane, **named
            )
        except EngineNotFound:
            return {}
        pooled = {}
        for pool, info in found.items():
            if not naming.is_pool(self.prefix, pool):
                continue
            for alias, details in info.get("aliases", {}).items():
                if naming.is_pool_write_alias(alias):
                    continue
                if alias_pattern and not fnmatch.fnmatchcase(alias, alias_pattern):
                    continue
                term = (details.get("filter") or {}).get("term", {})
                key = term.get(COLLECTION_FIELD)
                if isinstance(key, dict):
                    key = key.get("value")
                pooled[alias] = (pool, key)
        return pooled
