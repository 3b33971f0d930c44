"""Where each collection's records live, as the engine says, remembered a while."""

import fnmatch
import time

from kinto_elasticsearch.client import EngineNotFound
from kinto_elasticsearch.client.engine import WRITE
from kinto_elasticsearch.index import naming, placement
from kinto_elasticsearch.index.placement import COLLECTION_FIELD


class Locator:
    def __init__(self, engine, prefix, known, pools=0):
        self.engine = engine
        self.prefix = prefix
        # What is known of a collection's mapping goes with where it lives: a collection
        # that moved or went has another mapping, or none.
        self.known = known
        # How many pooled indices small collections share (0: every collection has its
        # own index, as before pools).
        self.pools = pools
        # alias -> (fetched at, its pool or None): every write needs it, and it changes only
        # when a collection is created, rebuilt or deleted.
        self._placements = {}

    def alias(self, bucket_id, collection_id):
        return naming.alias_name(self.prefix, bucket_id, collection_id)

    def placement(
        self, bucket_id, collection_id, metadata=None, max_age=60.0, refresh=False, lane=WRITE
    ):
        """Where the collection's records live: the engine's word (its alias) once the
        collection has an index, else where :func:`placement.choose` would create it.
        ``lane``: the breaker of the caller (a search's lookup is a search's fault)."""
        alias = self.alias(bucket_id, collection_id)
        cached = self._placements.get(alias)
        if not cached or refresh or time.monotonic() - cached[0] >= max_age:
            if not self.look_up(alias, lane):
                return self.chosen(bucket_id, collection_id, metadata)
            cached = self._placements[alias]
        return placement.Placement(bucket_id, collection_id, alias, cached[1])

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

    def chosen(self, bucket_id, collection_id, metadata):
        """Where a collection with no index yet would be created."""
        return placement.choose(self.prefix, self.pools, bucket_id, collection_id, metadata)

    def forget(self, alias=None):
        """Forget where ``alias`` (or every collection) lives, and its mapping: it moved,
        or went."""
        if alias is None:
            self._placements.clear()
            self.known.forget_all()
        else:
            self._placements.pop(alias, None)
            self.known.forget(alias)

    def exists(self, bucket_id, collection_id):
        return bool(
            self.engine.call("indices.exists_alias", name=self.alias(bucket_id, collection_id))
        )

    def pooled_aliases(self, alias_pattern=None, lane=WRITE):
        """``{alias: (pool, collection key)}`` for the pooled collections (whose alias
        matches ``alias_pattern``, when given)."""
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
                if alias_pattern and not fnmatch.fnmatchcase(alias, alias_pattern):
                    continue
                term = (details.get("filter") or {}).get("term", {})
                key = term.get(COLLECTION_FIELD)
                if isinstance(key, dict):
                    key = key.get("value")
                pooled[alias] = (pool, key)
        return pooled
