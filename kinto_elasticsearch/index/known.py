"""What the engine has mapped, per index or alias, remembered a while."""

import time

from kinto_elasticsearch.client import EngineNotFound
from kinto_elasticsearch.client.engine import SEARCH
from kinto_elasticsearch.index import documents, naming


class KnownMappings:
    def __init__(self, engine, prefix):
        self.engine = engine
        self.prefix = prefix
        # index or alias -> (fetched at, KnownMapping): GET search needs the field types
        # on every request, writes need them to foresee what the engine would refuse.
        self._known = {}

    def forget(self, index):
        self._known.pop(index, None)

    def forget_all(self):
        self._known.clear()

    def known_mapping(self, index, max_age=60.0, refresh=False, missing_ok=True):
        """``(KnownMapping, fresh)`` of an index or alias, cached a while.

        Writes add the fields they create to the cached copy, with no type when the
        engine chooses it, so the field count stays right without reading the mapping
        after each write.
        """
        cached = self._known.get(index)
        now = time.monotonic()
        if cached and not refresh and now - cached[0] < max_age:
            return cached[1], False
        try:
            body = self.engine.call("indices.get_mapping", index=index)
        except EngineNotFound:
            if not missing_ok:
                raise
            # No index yet: the write finds it missing, and creates it.
            return documents.KnownMapping(), True
        mapping = next(iter(body.values()), {}).get("mappings", {})
        known = documents.KnownMapping.from_mapping(mapping)
        self._known[index] = (now, known)
        return known, True

    def field_types(self, bucket_id, collection_id, max_age=60.0, refresh=False, index=None):
        """``({dotted field: type}, fresh)`` of a collection's index, cached a while.

        Types of a mapped field never change in place (a rebuild makes a new index, and
        the swap forgets the cache), but new fields appear: callers refetch with
        ``refresh`` when they meet a field the cached copy does not know. ``index``: where
        the collection lives (a pooled one's pool; by default its alias).
        """
        index = index or naming.alias_name(self.prefix, bucket_id, collection_id)
        known, fresh = self.known_mapping(index, max_age, refresh, missing_ok=False)
        return {k: v for k, v in known.types.items() if v is not None}, fresh

    def get_mapping(self, bucket_id, collection_id, lane=SEARCH, index=None):
        """The mapping of the collection's index (``index``: a pooled one's pool)."""
        body = self.engine.call(
            "indices.get_mapping",
            index=index or naming.alias_name(self.prefix, bucket_id, collection_id),
            lane=lane,
        )
        # Behind the alias there is one index; its name does not matter here.
        return next(iter(body.values()), {}).get("mappings", {})

    def mappings(self, names):
        """The mappings of the indices of the named indices and aliases."""
        return list(self.indexed_mappings(names).values())

    def indexed_mappings(self, names):
        """``{index: mapping}`` of the indices of the named indices and aliases."""
        if not names:
            return {}
        found = self.engine.call(
            "indices.get_mapping", index=",".join(names), ignore_unavailable=True, lane=SEARCH
        )
        return {index: info.get("mappings", {}) for index, info in found.items()}
