"""Whether a pool takes a collection's records as an index of its own would.

A pool maps a field once, with the type of the first value any tenant wrote there, and
has room for so many fields. A record whose field another tenant typed otherwise would be
indexed with that type (a number where the pool maps text is compared as text) or left
out of its document; one past its collection's share of the pool's fields, or the pool's
budget, would lose its new fields. Either would make its tenant's answers show the other
tenants. The writers ask :meth:`PoolFit.misfit` before they write, and move such a
collection to an index of its own first (``Placement.moved``).
"""

from kinto_elasticsearch.index import documents
from kinto_elasticsearch.index.mapping import collection_mapping

# Fields typed otherwise in a pool looked up among a collection's documents, at most: past
# them, the collection is moved out.
MAX_HELD_CHECKS = 8


def foreign_types(document, known, own):
    """``{field: (its type in known, its type in own)}`` for the fields of ``document``
    (built against ``own``: the mapping an index of its own would have) that ``known``
    types otherwise: a pool's mapping, where another tenant may have typed them first."""
    found = {}

    def walk(value, path):
        if isinstance(value, list):
            for item in documents.flat_values(value):
                walk(item, path)
            return
        if path:
            dotted = ".".join(path)
            theirs = known.types.get(dotted)
            mine = own.types.get(dotted) or (
                None if value is None else documents.dynamic_type(value)
            )
            if theirs is not None and mine is not None and theirs != mine:
                found[dotted] = (theirs, mine)
                return
            if mine in documents.FLAT_TYPES:
                return
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, (*path, key))

    walk(document.source, ())
    return found


class PoolFit:
    def __init__(self, engine, locator, known, pools):
        self.engine = engine
        self.locator = locator
        self.known = known
        self.pools = pools

    def misfit(self, bucket_id, collection_id, records, metadata):
        """Why its pool would take ``records`` otherwise than an index of its own would,
        or None (an index of its own, nothing to write). Costs no request, but a mapping
        read when a field's type is not known yet, and a count when a field's types
        disagree (the collection's own records may have typed it first)."""
        where = self.locator.placement(bucket_id, collection_id, metadata)
        if not where.pooled or not records:
            return None
        own = documents.KnownMapping.from_mapping(
            collection_mapping(metadata, self.engine.flattened_type)
        )
        docs = [documents.build(record, metadata, own) for record in records]
        known, fresh = self.known.known_mapping(where.pool)
        if not fresh and any(documents.untyped(doc, known) for doc in docs):
            known, _ = self.known.known_mapping(where.pool, refresh=True)
        added, foreign = {}, {}
        for doc in docs:
            foreign.update(foreign_types(doc, known, own))
            added.update(documents.new_fields(doc, known))
        # A type the collection's own records gave first is its own: an index of its own
        # would have it too (each record of the collection met it when written, and the
        # collection was moved out had it been another's).
        for path in sorted(set(foreign) - self._held(where, sorted(foreign))):
            theirs, mine = foreign[path]
            return f"its field {path!r} ({mine}) is a {theirs} in its pool"
        if added and not self.pools.fits(where, known, len(added)):
            return f"its pool has no room for {len(added)} more of its fields"
        return None

    def _held(self, where, fields):
        """The ``fields`` some live document of the collection holds in its pool (as last
        refreshed: a field it gave a type in the last second may look another's, which
        costs a move, not a wrong answer)."""
        held = set()
        for path in fields[:MAX_HELD_CHECKS]:
            wanted = [*where.record_filters(), {"exists": {"field": path}}]
            body = {"query": {"bool": {"filter": wanted}}}
            found = self.engine.call("count", index=where.pool, body=body, **where.routing)
            if found["count"]:
                held.add(path)
        return held
