"""Where a collection's records live: an index of its own, or one of the pooled indices.

Every index costs shards (``cluster.max_shards_per_node`` caps them, 1000 per node by
default) and a cluster-state update to create, so small collections share a few pooled
indices (``elasticsearch.pools``). This module is the one place that decides a collection's
placement and what its documents become there (``_id``, the collection field, routing);
nothing else inlines it.

A pooled collection has no alias (aliases live in the cluster state, and a hundred
thousand of them is the engines' known anti-pattern): its requests address its pool
(:attr:`Placement.target`) routed on its key (:attr:`Placement.routing`), so a search
reads one shard, and the plugin's own collection filter (:meth:`Placement.collection_filter`,
added next to the permission filter) keeps it to its documents. Hits still name the
collection's alias as ``_index`` (``search/pooled.py``).

A deleted record leaves a tombstone document (its version, ``index/documents.py``). In a
pool, a tombstone's collection field is the collection's key followed by ``/``
(:func:`tombstone_key`), so that one term selects a collection's records
(:meth:`Placement.record_filters`): a search then costs what the collection holds, where
"has an ``id``" (how an index of its own tells records from tombstones) is a filter over
the whole shard on engines that do not lead a conjunction with its rarest clause. Pools an
older version wrote hold tombstones without the mark until the catch-up marks them
(``index/tombstones.py``): searches keep the ``id`` filter until the layout records that
they are (:attr:`Placement.marked`).

Two collections of one pool may both hold record ``r1``: a pooled document's ``_id`` is
``{bucket}/{collection}/{record}``. ``/`` never occurs in a Kinto id, so that is injective,
and :func:`Placement.record_id` gives users back their own ids.

Placement is chosen once, when the collection's index is created (:func:`choose`): a
pooled collection lives at its hash pool, over the number of pools recorded first
(``index/records.py``), so changing ``elasticsearch.pools`` moves no collection; what the
hash does not give (an index of its own, a pool an older version chose) is recorded in the
sync index (``index/records.py``, read by ``index/locator.py``). A collection that asks for
an index of its own later gets it through a rebuild (``sync/rebuild.py``).
"""

import hashlib
from dataclasses import dataclass

from kinto_elasticsearch.index import naming
from kinto_elasticsearch.index.analysis import SETTINGS_KEY
from kinto_elasticsearch.index.documents import ID_FIELD, LIVE_DOCUMENTS
from kinto_elasticsearch.index.indices import WRITE_INDEX
from kinto_elasticsearch.index.mapping import derives_mapping

# Which collection a pooled document belongs to. A leading ``_`` at the top level is
# reserved for the plugin (``fieldnames``): no record key can take this name.
COLLECTION_FIELD = "_collection"
# The engines' limit on a document's ``_id``, in bytes. They refuse a whole bulk request,
# not one item, when an ``_id`` is longer: such documents are never sent.
MAX_ID_BYTES = 512
# In a pool's ``_meta``: how many fields each collection added to the pool's mapping
# (``{collection key: count}``), so that no tenant takes more than its share.
FIELDS_ADDED = "fields_added"
# A collection with one of these keys shapes its index itself: it needs one of its own.
DEDICATED_KEYS = ("index:schema", SETTINGS_KEY)


def collection_key(bucket_id, collection_id):
    """The collection's value of :data:`COLLECTION_FIELD` and its routing key."""
    return f"{bucket_id}/{collection_id}"


def tombstone_key(key):
    """The value of :data:`COLLECTION_FIELD` of a pooled collection's tombstones: its key
    and ``/``, which no collection's key ends with (Kinto ids have no ``/``), and which a
    bucket's prefix (``{bucket}/``) still matches."""
    return f"{key}/"


def live_key(value):
    """The collection key of a pooled document's :data:`COLLECTION_FIELD` value, a
    tombstone's or a record's."""
    return value[:-1] if value.endswith("/") else value


def documents_term(key):
    """Every document of the pooled collection of ``key`` (records and tombstones)."""
    return {"terms": {COLLECTION_FIELD: [key, tombstone_key(key)]}}


def is_tombstone(document_source):
    """Whether a document's source is a tombstone's: every record has an ``id``."""
    return ID_FIELD not in document_source


@dataclass(frozen=True)
class Placement:
    bucket_id: str
    collection_id: str
    alias: str
    # The pool index, or None for a dedicated index.
    pool: str | None = None
    # An index of its own the plugin moved the collection to on its own (a type another
    # tenant of its pool chose first, its share of the pool's fields, its size), not one
    # its configuration asks for: see :attr:`shared`.
    moved: bool = False
    # Every tombstone of the pool carries the mark (:func:`tombstone_key`), as the layout
    # records: the collection's term alone then selects its records.
    marked: bool = False

    @property
    def pooled(self):
        """Whether the collection's documents are in a pool: namespaced ``_id``, routing,
        the collection filter. Where documents are, not what a search may do
        (:attr:`shared`)."""
        return self.pool is not None

    @property
    def shared(self):
        """Whether the collection's searches follow a pooled collection's rules
        (statistics-free scores, the pool's refusals, Kinto's order among ties, the
        engine's words withheld, fields scoped to its records): pooled, or moved out of
        its pool by the plugin on its own. A move the plugin decides must not change what
        a tenant's searches answer, or the other tenant whose field types caused it would
        show through; a collection gets an index of its own's rules (BM25 with its own
        statistics) when its configuration asks (``index:settings``, ``index:schema``,
        ``elasticsearch.pools = 0``) or an operator promotes it (``reindex --promote``)."""
        return self.pooled or self.moved

    @property
    def key(self):
        return collection_key(self.bucket_id, self.collection_id)

    @property
    def target(self):
        """The index the collection's requests name: its pool, or its alias."""
        return self.pool or self.alias

    @property
    def write_target(self):
        """The index the collection's writes name: its pool's write alias (writes require
        an alias, ``naming.pool_write_alias``), or its alias."""
        return naming.pool_write_alias(self.pool) if self.pooled else self.alias

    @property
    def routing(self):
        """The routing of the collection's requests: its key in a pool (all its documents
        on one shard, which a search reads alone), else none. ``{}`` or ``{"routing":
        key}``, to pass as request parameters."""
        return {"routing": self.key} if self.pooled else {}

    def document_id(self, record_id):
        """The ``_id`` of a record's document."""
        return f"{self.key}/{record_id}" if self.pooled else record_id

    def document_ids(self, record_ids):
        """The ``_id`` values to look records up by: a pooled collection's namespaced ones,
        and the plain ones too, which only its own index would hold: a process that has
        not yet seen the collection promoted (its placement is cached) still finds its
        records. In the pool, plain ids match nothing (the alias's filter keeps any
        document outside the collection out, and no pooled document has one)."""
        record_ids = list(record_ids)
        if not self.pooled:
            return record_ids
        return [self.document_id(record_id) for record_id in record_ids] + record_ids

    def outgrown_by(self, record_ids):
        """Whether a record of ``record_ids`` fits an index of its own but not the pool,
        whose ``_id`` adds the collection's key: that collection needs its own index."""
        return self.pooled and any(
            id_fits(record_id) and not id_fits(self.document_id(record_id))
            for record_id in record_ids
        )

    def record_id(self, document_id):
        """The record id of a document's ``_id`` (the inverse of :meth:`document_id`)."""
        if self.pooled and document_id.startswith(f"{self.key}/"):
            return document_id[len(self.key) + 1 :]
        return document_id

    def source(self, document_source):
        """A document's ``_source`` as sent to the engine."""
        if not self.pooled:
            return document_source
        if is_tombstone(document_source):
            return {**document_source, COLLECTION_FIELD: tombstone_key(self.key)}
        return {**document_source, COLLECTION_FIELD: self.key}

    def holds(self, index):
        """Whether a document written into physical ``index`` is where this placement
        says the collection lives (an engine that does not say is believed)."""
        if index is None:
            return True
        if self.pooled:
            return index == self.pool
        return not naming.is_pool(self.alias.split(".", 1)[0], index)

    def collection_term(self):
        """Exactly this collection's documents in its pool, records and tombstones: what
        deleting it from the pool deletes."""
        return documents_term(self.key)

    def collection_filter(self):
        """The filter keeping a request to this collection's documents, records and
        tombstones (None: its index holds nothing else), whose cost is the collection's
        documents, not the shard's.

        A pooled collection is searched in its pool (:attr:`target`), never through an
        alias an index of its own may have since: a process that has not yet seen it
        promoted finds what the pool still holds of it, then, its placement records read
        again (10 s at most), its own index. (Documents without a collection field passed
        too when pooled collections had filtered aliases: a negation every search paid
        for with a pass over the whole shard.)
        """
        if not self.pooled:
            return None
        return self.collection_term()

    def record_filters(self):
        """The filters keeping a request to this collection's records, not its tombstones:
        in a pool whose tombstones are all marked, the collection's term alone (one term,
        whose cost is the collection's records); else "has an ``id``", and the collection's
        documents in a pool."""
        if not self.pooled:
            return [LIVE_DOCUMENTS]
        records = {"term": {COLLECTION_FIELD: self.key}}
        return [records] if self.marked else [LIVE_DOCUMENTS, records]

    def alias_action(self):
        """The ``update_aliases`` ``add`` action of the alias an older version gave a pooled
        collection (its filter a term of the key)."""
        return {
            "add": {
                "index": self.pool,
                "alias": self.alias,
                "filter": {"term": {COLLECTION_FIELD: self.key}},
                "routing": self.key,
                **WRITE_INDEX,
            }
        }


def id_fits(document_id):
    return len(document_id.encode()) <= MAX_ID_BYTES


def fields_added(meta):
    """``{collection key: fields it added}`` from a pool's ``_meta`` (any shape read).

    A collection that left the pool has a count of 0 rather than no entry: an update of
    ``_meta`` replaces it whole on the real engines but merges into it on some emulators,
    and a 0 reads the same under both."""
    counts = (meta or {}).get(FIELDS_ADDED)
    if not isinstance(counts, dict):
        return {}
    return {
        key: n
        for key, n in counts.items()
        if isinstance(n, int) and not isinstance(n, bool) and n > 0
    }


def pool_number(bucket_id, collection_id, pools):
    """A stable choice among ``pools`` pools: the same on every process and every run."""
    digest = hashlib.sha256(collection_key(bucket_id, collection_id).encode()).digest()
    return int.from_bytes(digest[:8], "big") % pools


def needs_own_index(metadata):
    """Whether the collection shapes its index itself: its analysis (``index:settings``) or
    a mapping of its own (``index:schema``, or one derived from its JSON ``schema`` or
    ``index:map_like``: dates, formats, flattened objects). A pool's mapping and analysis
    are every tenant's, and the first tenant to write a field types it for all: a derived
    mapping kept only in a pool would be lost to dynamic mapping."""
    metadata = metadata or {}
    return any(key in metadata for key in DEDICATED_KEYS) or derives_mapping(metadata)


def choose(prefix, pools, bucket_id, collection_id, metadata):
    """The placement of a collection that has no index yet.

    Dedicated when pools are off (``pools == 0``) or when the collection shapes its own
    index (:func:`needs_own_index`: a pool's mapping and analysis are shared);
    else the pool chosen by a stable hash of the collection, which spreads collections
    evenly and needs no coordination between processes.
    """
    alias = naming.alias_name(prefix, bucket_id, collection_id)
    if pools <= 0 or needs_own_index(metadata):
        return Placement(bucket_id, collection_id, alias)
    pool = naming.pool_index_name(prefix, pool_number(bucket_id, collection_id, pools))
    return Placement(bucket_id, collection_id, alias, pool)


def pool_of(prefix, indices):
    """The pool of a collection whose alias points at ``indices`` (the engine's word), or
    None when it has an index of its own."""
    pools = [name for name in indices if naming.is_pool(prefix, name)]
    return pools[0] if pools and len(pools) == len(indices) else None
