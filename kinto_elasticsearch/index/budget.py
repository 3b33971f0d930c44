"""What records become as documents of one index, within the fields its mapping may
still take: the engine's field limit, and a pooled collection's share of its pool."""

import logging

from kinto_elasticsearch.client import EngineNotFound, EngineRequestError
from kinto_elasticsearch.index import documents, pools
from kinto_elasticsearch.index.fields import MAX_FIELDS

logger = logging.getLogger(__name__)


def without_new_fields(document, known):
    """``document`` less the fields it would add to the mapping (listed as left out)."""
    added = documents.new_fields(document, known)
    # A string's keyword sub-field goes with the string.
    paths = [p for p in added if added.get(p.rpartition(".")[0]) != "text"]
    paths = [p for p in paths if not any(p.startswith(f"{q}.") for q in paths)]
    return documents.reduced(document, paths) if paths else document


class FieldBudget:
    def __init__(self, engine, known, pools):
        self.engine = engine
        self.known = known
        self.pools = pools

    def documents(self, index, records, metadata, where=None):
        """``(known mapping, documents)`` for ``records``, keeping the mapping within its
        field limit: near it, the object bringing the most new fields stops mapping them
        (``dynamic: false``: they stay in ``_source``, listed as left out).

        A pool's mapping is every tenant's: closing one of its objects would stop the
        fields of collections that did nothing, and one tenant with many fields (or keys
        that are data) would fill it for all. So each collection may add at most
        ``pool_max_fields`` fields to its pool (counted in the pool's ``_meta``), and the
        pool as a whole stays under its budget. Documents that would go past either leave
        their new fields out instead; their collection is then indexed in part, and moves
        to an index of its own (``catchup``), where its fields are its own. The other
        tenants keep the room they need.
        """
        if not records:
            return None, []
        pooled = where is not None and where.pooled
        known, fresh = self.known.known_mapping(index)

        def build():
            docs = [documents.build(record, metadata, known) for record in records]
            added = {}
            for doc in docs:
                added.update(documents.new_fields(doc, known))
            return docs, added

        docs, added = build()
        if not fresh and (added or any(documents.untyped(doc, known) for doc in docs)):
            known, fresh = self.known.known_mapping(index, refresh=True)
            docs, added = build()
        if pooled and added and not self.pools.takes(index, where, known, len(added)):
            docs = [without_new_fields(doc, known) for doc in docs]
            added = {}
        for _ in range(4):
            if not added or len(known.types) + len(added) <= pools.FIELD_BUDGET:
                break
            self.close(index, documents.widest_object(added), known)
            known, _ = self.known.known_mapping(index, refresh=True)
            docs, added = build()
        known.types.update(added)
        return known, docs

    def close(self, index, path, known):
        """Stop mapping new fields under the object at ``path`` ("" for the top)."""
        logger.warning(
            "Index %s is near its limit of %s fields (%s mapped): new fields under %s are "
            "no longer mapped (kept in _source, listed in %s)",
            index,
            MAX_FIELDS,
            len(known.types) if known else "?",
            repr(path) if path else "the top level",
            documents.UNINDEXED_FIELD,
        )
        body = {"dynamic": False}
        for name in reversed(path.split(".") if path else []):
            body = {"properties": {name: {"type": "object", **body}}}
        try:
            self.engine.call("indices.put_mapping", index=index, body=body)
        except EngineNotFound:
            pass  # No index yet: the write finds it missing, creates it and comes back.
        except EngineRequestError:
            if not path:
                raise
            # The object cannot be closed (another process mapped it otherwise): the top.
            self.close(index, "", known)
