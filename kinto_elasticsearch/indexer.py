"""Every call the plugin makes to the search engine."""

import fnmatch
import logging
import time
import uuid
from dataclasses import dataclass, field

from kinto_elasticsearch.client import EngineError, EngineNotFound, EngineRequestError
from kinto_elasticsearch.client.engine import SEARCH, WRITE
from kinto_elasticsearch.index import documents, naming, placement
from kinto_elasticsearch.index.analysis import tenant_settings
from kinto_elasticsearch.index.fieldnames import UNINDEXED_FIELD as UNINDEXED
from kinto_elasticsearch.index.mapping import MAX_FIELDS, collection_mapping, plugin_settings
from kinto_elasticsearch.index.placement import COLLECTION_FIELD, MAX_ID_BYTES, id_fits

logger = logging.getLogger(__name__)

# Fields a mapping may reach before new ones stop being mapped: a margin under the
# engine's limit for fields that other processes add at the same time.
FIELD_BUDGET = MAX_FIELDS - 20
# Bulk requests for one write, refused documents included: the first, one with the
# mapping read again, a few dropping the fields the engine names, and the minimal form.
MAX_ROUNDS = 6
# Engine errors that refuse a document (or a mapping) for what it holds: a reduced form
# may pass.
DOCUMENT_ERRORS = {
    "mapper_parsing_exception",
    "document_parsing_exception",
    "illegal_argument_exception",
    "strict_dynamic_mapping_exception",
    "mapper_exception",
    "json_parse_exception",
    "x_content_parse_exception",
}


# A pool's documents are deleted only with their collection (delete-by-query) or when
# written where the collection no longer lives, never for a record's sake (tombstones
# are documents). The engine would remember such a delete's version, one above the
# record's, for ``gc_deletes`` (60 s): a rebuild of the collection within that time, at
# the records' own versions, would be refused as older and leave it empty.
POOL_SETTINGS = {"index.gc_deletes": "0s"}


@dataclass
class BulkReport:
    """What one bulk write did, record by record."""

    indexed: list = field(default_factory=list)
    deleted: list = field(default_factory=list)
    # (record id, paths left out, the engine's reason or None) for each record indexed
    # partially: a subset of ``indexed``.
    partial: list = field(default_factory=list)
    # Writes the index already had a newer version of: success, nothing to do.
    superseded: list = field(default_factory=list)
    # (record id, reason) for each record the engine refused, even in its minimal form
    # (or could not be sent: an id too long).
    failed: list = field(default_factory=list)
    # (physical index, document id, record id) of documents written where the collection
    # no longer lives: its placement changed (a promotion) since this process read it.
    misplaced: list = field(default_factory=list)


# Every record has an ``id``; a tombstone document has none (and nothing that a mapping,
# even a strict one, could refuse: ``last_modified`` is always mapped). Searches keep to
# documents with an ``id``; see ``search.filters.with_filters``.
LIVE_DOCUMENTS = {"exists": {"field": "id"}}


def tombstone_document(tombstone):
    """What a deleted record leaves in the index: its version, and nothing searchable."""
    return {"last_modified": tombstone["last_modified"]}


def _tombstone(obj):
    return documents.Document(obj["id"], obj["last_modified"], tombstone_document(obj))


def _is_minimal(document):
    return set(document.source) <= {"id", "last_modified", documents.UNINDEXED_FIELD}


def _reduce(document, record, metadata, known, reason, attempt):
    """The next form of a refused document: rebuilt against the mapping read afresh
    (first retry), less the field the engine names; the minimal form when that changes
    nothing."""
    candidate = documents.build(record, metadata, known) if attempt == 1 else document
    field_name = documents.refused_field(reason)
    if field_name:
        candidate = documents.reduced(candidate, [field_name])
    if candidate.source == document.source or attempt == MAX_ROUNDS - 1:
        return documents.minimal(candidate)
    return candidate


def _without_new_fields(document, known):
    """``document`` less the fields it would add to the mapping (listed as left out)."""
    added = documents.new_fields(document, known)
    # A string's keyword sub-field goes with the string.
    paths = [p for p in added if added.get(p.rpartition(".")[0]) != "text"]
    paths = [p for p in paths if not any(p.startswith(f"{q}.") for q in paths)]
    return documents.reduced(document, paths) if paths else document


def _is_missing_alias(item):
    error = item.get("error")
    return isinstance(error, dict) and error.get("type") == "index_not_found_exception"


class Indexer:
    def __init__(
        self,
        engine,
        prefix,
        force_refresh=False,
        search_timeout=None,
        index_settings=None,
        pools=0,
        pool_settings=None,
        pool_max_fields=100,
    ):
        self.engine = engine
        self.prefix = prefix
        # The operator's settings of every dedicated index (shards, replicas); a collection
        # adds its own ``index:settings`` (analysis) where its indices are created.
        self.index_settings = dict(index_settings or {})
        # How many pooled indices small collections share (0: every collection has its
        # own index, as before pools), and the operator's settings of those.
        self.pools = pools
        self.pool_settings = dict(pool_settings or {})
        # The fields one pooled collection may add to its pool's mapping (see _documents).
        self.pool_max_fields = pool_max_fields
        # alias -> (fetched at, its pool or None): every write needs it, and it changes only
        # when a collection is created, rebuilt or deleted.
        self._placements = {}
        self.force_refresh = force_refresh
        self.search_timeout = search_timeout
        # index or alias -> (fetched at, KnownMapping): GET search needs the field types
        # on every request, writes need them to foresee what the engine would refuse.
        self._field_types = {}
        # The plugin's own indices (checkpoints, pools) this process created or found:
        # created once, not at every use (each attempt is a 400 the client libraries log),
        # and creating a pooled collection costs one cluster-state update (its alias).
        self.internal_indices = set()

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
            if not self._look_up(alias, lane):
                return self._chosen(bucket_id, collection_id, metadata)
            cached = self._placements[alias]
        return placement.Placement(bucket_id, collection_id, alias, cached[1])

    def _look_up(self, alias, lane=WRITE):
        """Read where ``alias`` points into the cache; False if it does not exist."""
        try:
            found = self.engine.call("indices.get_alias", name=alias, lane=lane)
        except EngineNotFound:
            self._placements.pop(alias, None)
            return False
        self.remember_placements({alias: sorted(found)})
        return True

    def remember_placements(self, by_alias):
        """Note where collections live from ``{alias: [physical indices]}`` read anyway (a
        catch-up pass lists them all), sparing a lookup per collection."""
        now = time.monotonic()
        for alias, indices in by_alias.items():
            self._placements[alias] = (now, placement.pool_of(self.prefix, indices))

    def _chosen(self, bucket_id, collection_id, metadata):
        return placement.choose(self.prefix, self.pools, bucket_id, collection_id, metadata)

    def _forget(self, alias):
        self._placements.pop(alias, None)
        self._field_types.pop(alias, None)

    # Indices.

    def index_body(self, metadata, settings=None):
        """Settings and mappings of a new index for a collection with this metadata.

        The operator's settings (shards, replicas), the plugin's own (malformed values
        tolerated, the field limit), the collection's ``index:settings`` (analysis), and
        ``settings`` last.
        """
        return {
            "settings": {
                **self.index_settings,
                **plugin_settings(metadata),
                **tenant_settings(metadata),
                **(settings or {}),
            },
            "mappings": collection_mapping(metadata, self.engine.flattened_type),
        }

    def _create(self, name, metadata, aliases=None, settings=None):
        """Create an index; if the engine refuses the collection's mapping, create it with
        the plugin's own fields only, so that the collection is never left without one."""
        body = self.index_body(metadata, settings)
        if aliases:
            body["aliases"] = aliases
        try:
            return self.engine.call("indices.create", index=name, body=body)
        except EngineRequestError as exc:
            if exc.error_type not in DOCUMENT_ERRORS or not metadata:
                raise
            logger.error(
                "The engine refused the mapping derived for index %s (%s): created with "
                "dynamic mapping only",
                name,
                exc,
            )
            fallback = self.index_body({}, settings)
            if aliases:
                fallback["aliases"] = aliases
            return self.engine.call("indices.create", index=name, body=fallback)

    def create_index(self, bucket_id, collection_id, metadata, replace=False):
        """Create the collection's index and alias, unless it exists already.

        With ``replace``, indices left from an earlier collection of the same id (deleted
        while the engine was unreachable) are dropped first: a new collection has no records.
        """
        if replace:
            self.delete_collection_indices(bucket_id, collection_id)
        alias = self.alias(bucket_id, collection_id)
        where = self._chosen(bucket_id, collection_id, metadata)
        if where.pooled:
            # A collection that has an index stays where it is: another pool (``pools``
            # changed since) would give its alias two indices, and writes nowhere to go.
            if not replace and self._look_up(alias):
                return self.placement(bucket_id, collection_id).pool or alias
            return self._create_pooled(where)
        if not replace and self._look_up(alias):
            found = self.placement(bucket_id, collection_id)
            if found.pooled:
                # Its alias is on a pool: a second index behind it would leave writes
                # nowhere to go. The catch-up moves it to an index of its own.
                return found.pool
        # The first generation has a fixed name so that concurrent creators converge on
        # one index instead of attaching the alias to several.
        name = f"{alias}.0"
        try:
            self._create(name, metadata, aliases={alias: {}})
        except EngineRequestError as exc:
            if exc.error_type == "invalid_alias_name_exception":
                # An index auto-created under the alias's name (a delete sent while the
                # alias was missing, by an older version or another client): it holds
                # nothing of value, the alias name is ours.
                logger.warning("Replacing index %s, auto-created under an alias name", alias)
                self.delete_indices([alias])
                self._create(name, metadata, aliases={alias: {}})
            elif exc.error_type != "resource_already_exists_exception":
                raise
        self._forget(alias)
        self.remember_placements({alias: [name]})
        return name

    def pool_body(self):
        """Settings and mappings of a pooled index: the plugin's own fields, the
        collection field, the operator's pool settings and :data:`POOL_SETTINGS`."""
        mappings = collection_mapping({}, self.engine.flattened_type)
        mappings.setdefault("properties", {})[COLLECTION_FIELD] = {"type": "keyword"}
        return {
            "settings": {**self.pool_settings, **plugin_settings({}), **POOL_SETTINGS},
            "mappings": mappings,
        }

    def ensure_pool(self, name):
        """Create the pooled index ``name`` unless it exists (processes race for it)."""
        try:
            self.engine.call("indices.create", index=name, body=self.pool_body())
        except EngineRequestError as exc:
            if exc.error_type != "resource_already_exists_exception":
                raise

    def _create_pooled(self, where):
        """Give a pooled collection its filtered alias on its pool (creating the pool)."""
        if where.pool not in self.internal_indices:
            self.ensure_pool(where.pool)
            self.internal_indices.add(where.pool)
        try:
            self.engine.call("indices.update_aliases", body={"actions": [where.alias_action()]})
        except EngineNotFound:
            # The pool went (flushed, or deleted by an operator) since this process saw it.
            self.ensure_pool(where.pool)
            self.engine.call("indices.update_aliases", body={"actions": [where.alias_action()]})
        except EngineRequestError as exc:
            if exc.error_type != "invalid_alias_name_exception":
                raise
            logger.warning("Replacing index %s, auto-created under an alias name", where.alias)
            self.delete_indices([where.alias])
            self.engine.call("indices.update_aliases", body={"actions": [where.alias_action()]})
        self._forget(where.alias)
        self.remember_placements({where.alias: [where.pool]})
        return where.pool

    def create_physical_index(self, bucket_id, collection_id, metadata, name=None):
        """A new, empty physical index for a rebuild (``name``, or a new generation's), not
        yet behind the alias.

        It is not refreshed while it is filled; :meth:`swap_alias` restores that.
        """
        name = name or naming.new_index_name(self.prefix, bucket_id, collection_id)
        self._create(name, metadata, settings={"index.refresh_interval": "-1"})
        return name

    def swap_alias(self, bucket_id, collection_id, index):
        """Move the collection's alias to ``index`` in one atomic step; drop the indices it
        replaced, and only those: another index of the collection may be another rebuild's.
        """
        alias = self.alias(bucket_id, collection_id)
        self.engine.call(
            "indices.put_settings", index=index, body={"index": {"refresh_interval": None}}
        )
        self.engine.call("indices.refresh", index=index)
        pattern = naming.collection_pattern(self.prefix, bucket_id, collection_id)
        old = [
            name
            for name, aliases in self.indices(pattern).items()
            if name != index and alias in aliases
        ]
        # A pooled collection moving to an index of its own (a promotion): the alias leaves
        # the pool in the same atomic step, and its documents there go after the swap.
        was = self.placement(bucket_id, collection_id, refresh=True)
        actions = [{"remove": {"index": name, "alias": alias}} for name in old]
        if was.pooled:
            actions.append({"remove": {"index": was.pool, "alias": alias}})
        actions.append({"add": {"index": index, "alias": alias}})
        try:
            self.engine.call("indices.update_aliases", body={"actions": actions})
        except EngineRequestError as exc:
            if exc.error_type != "invalid_alias_name_exception":
                raise
            logger.warning("Replacing index %s, auto-created under an alias name", alias)
            self.delete_indices([alias])
            self.engine.call("indices.update_aliases", body={"actions": actions})
        self._forget(alias)
        self.delete_indices(old)
        if was.pooled:
            self.delete_pooled_documents(was)
        return old

    def update_mapping(self, bucket_id, collection_id, metadata):
        """Apply a collection's changed mapping to the live index (refused if it conflicts).

        False, doing nothing, for a pooled collection: its pool's mapping is every
        tenant's, and a collection with a mapping of its own needs its own index (a
        rebuild, which the caller leaves to the catch-up).
        """
        alias = self.alias(bucket_id, collection_id)
        if self.placement(bucket_id, collection_id, metadata).pooled:
            return False
        mapping = collection_mapping(metadata, self.engine.flattened_type)
        self._field_types.pop(alias, None)
        self.engine.call("indices.put_mapping", index=alias, body=mapping)
        return True

    def validate_mapping(self, metadata, with_mapping=True):
        """Raise EngineRequestError if the engine would refuse this collection's index.

        Without ``with_mapping``, only the settings are tried (an empty mapping), so
        that a refusal can name the part of the metadata it comes from.

        The probe index lives under the prefix but its part starts with ``-``, which no
        Kinto id does, so it can never be taken for a collection's index.
        """
        name = f"{self.prefix}.-validate-{uuid.uuid4().hex}"
        body = self.index_body(metadata)
        if not with_mapping:
            body["mappings"] = {}
        self.engine.call("indices.create", index=name, body=body)
        self.delete_indices([name])

    def indices(self, pattern, lane=WRITE):
        """``{physical index: [aliases]}`` for the indices matching ``pattern``.

        Some engines resolve a pattern against aliases too (a collection pattern would
        then bring in the pool behind a pooled collection's alias): only indices whose own
        name matches are kept.
        """
        found = self.engine.call("indices.get_alias", index=pattern, lane=lane)
        return {
            name: sorted(info.get("aliases", {}))
            for name, info in found.items()
            if fnmatch.fnmatchcase(name, pattern)
        }

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

    def orphan_documents(self, limit=1000):
        """``{pool: {collection key: documents}}``: documents in a pool whose collection has
        no alias on that pool (a write that raced the collection's delete or its move to an
        index of its own), at most ``limit`` keys per pool."""
        try:
            pools = self.indices(naming.pool_pattern(self.prefix))
        except EngineNotFound:
            return {}
        keys_by_pool = {}
        for pool, key in self.pooled_aliases().values():
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

    def delete_indices(self, names):
        self.internal_indices.difference_update(names)
        # Named one by one in the URL: Elasticsearch refuses wildcard deletes by default.
        for start in range(0, len(names), 50):
            chunk = names[start : start + 50]
            try:
                self.engine.call("indices.delete", index=",".join(chunk))
            except EngineNotFound:
                # Some went away meanwhile: delete the others one at a time.
                for name in chunk:
                    try:
                        self.engine.call("indices.delete", index=name)
                    except EngineNotFound:
                        pass
        return names

    def delete_collection_indices(self, bucket_id, collection_id):
        """Delete a collection's indices, or its documents and alias in its pool."""
        alias = self.alias(bucket_id, collection_id)
        if self._look_up(alias):
            where = self.placement(bucket_id, collection_id)
            if where.pooled:
                self._remove_aliases([(where.pool, alias)])
                self.delete_pooled_documents(where)
        self._forget(alias)
        pattern = naming.collection_pattern(self.prefix, bucket_id, collection_id)
        return self.delete_indices(sorted(self.indices(pattern)))

    def delete_bucket_indices(self, bucket_id):
        """Delete a bucket's indices, and its collections' documents and aliases in pools:
        one delete-by-query per pool, for the keys of that bucket only."""
        pattern = naming.bucket_pattern(self.prefix, bucket_id)
        pooled = self.pooled_aliases(pattern)
        for alias in pooled:
            self._forget(alias)
        self.drop_pooled(pooled)
        return self.delete_indices(sorted(self.indices(pattern)))

    def drop_alias(self, alias, indices):
        """Remove a collection known only by its alias and the ``indices`` behind it (its
        collection is gone): dedicated indices are deleted, a pool loses the collection's
        alias and documents only."""
        dedicated = [name for name in indices if not naming.is_pool(self.prefix, name)]
        if len(dedicated) < len(indices):
            self._forget(alias)
            pooled = self.pooled_aliases(alias)
            self.drop_pooled({alias: pooled[alias]} if alias in pooled else {})
        return self.delete_indices(sorted(dedicated))

    def drop_pooled(self, pooled):
        """Remove pooled collections (``{alias: (pool, key)}``): aliases, then documents."""
        self._remove_aliases([(pool, alias) for alias, (pool, _) in sorted(pooled.items())])
        by_pool = {}
        for pool, key in pooled.values():
            if key:
                by_pool.setdefault(pool, []).append(key)
        for pool, keys in sorted(by_pool.items()):
            self._delete_by_query(pool, {"terms": {COLLECTION_FIELD: sorted(keys)}})
            self._forget_fields(pool, keys)

    def _remove_aliases(self, pairs):
        for start in range(0, len(pairs), 500):
            actions = [
                {"remove": {"index": pool, "alias": alias}}
                for pool, alias in pairs[start : start + 500]
            ]
            try:
                self.engine.call("indices.update_aliases", body={"actions": actions})
            except EngineNotFound:
                # Some went away meanwhile (another process deleted them): one at a time.
                for action in actions:
                    try:
                        self.engine.call("indices.update_aliases", body={"actions": [action]})
                    except EngineNotFound:
                        pass

    def delete_pooled_documents(self, where):
        """Delete every document of a pooled collection from its pool (and no other's):
        routed to the collection's shard, filtered by its key."""
        self._delete_by_query(where.pool, where.collection_term(), routing=where.key)
        self._forget_fields(where.pool, [where.key])

    def _forget_fields(self, pool, keys):
        """Drop the field counts of collections that left ``pool`` (deleted or promoted):
        the pool's ``_meta`` counts its present tenants only. The fields stay mapped (a
        mapping never shrinks) and in the pool's budget."""
        known, _ = self.known_mapping(pool, refresh=True)
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

    def flush(self):
        """Delete every index of this plugin's prefix."""
        self._placements.clear()
        return self.delete_indices(sorted(self.indices(naming.prefix_pattern(self.prefix))))

    def alias_exists(self, bucket_id, collection_id):
        return bool(
            self.engine.call("indices.exists_alias", name=self.alias(bucket_id, collection_id))
        )

    def creation_dates(self, pattern):
        """``{index: creation time in seconds since the epoch}``."""
        found = self.engine.call("indices.get_settings", index=pattern, name="index.creation_date")
        return {
            name: int(info["settings"]["index"]["creation_date"]) / 1000
            for name, info in found.items()
        }

    def field_types(self, bucket_id, collection_id, max_age=60.0, refresh=False):
        """``({dotted field: type}, fresh)`` of a collection's index, cached a while.

        Types of a mapped field never change in place (a rebuild makes a new index, and
        the swap forgets the cache), but new fields appear: callers refetch with
        ``refresh`` when they meet a field the cached copy does not know.
        """
        alias = self.alias(bucket_id, collection_id)
        known, fresh = self.known_mapping(alias, max_age, refresh, missing_ok=False)
        return {k: v for k, v in known.types.items() if v is not None}, fresh

    def known_mapping(self, index, max_age=60.0, refresh=False, missing_ok=True):
        """``(KnownMapping, fresh)`` of an index or alias, cached a while.

        Writes add the fields they create to the cached copy, with no type when the
        engine chooses it, so the field count stays right without reading the mapping
        after each write.
        """
        cached = self._field_types.get(index)
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
        self._field_types[index] = (now, known)
        return known, True

    def get_mapping(self, bucket_id, collection_id, lane=SEARCH):
        body = self.engine.call(
            "indices.get_mapping", index=self.alias(bucket_id, collection_id), lane=lane
        )
        # Behind the alias there is one index; its name does not matter here.
        return next(iter(body.values()), {}).get("mappings", {})

    # Documents.

    def write(
        self,
        bucket_id,
        collection_id,
        records=(),
        tombstones=(),
        metadata=None,
        ensure_index=None,
        refresh=None,
        same_version=False,
    ):
        """Index ``records`` and the ``tombstones`` of deleted ones in one bulk request.

        Records become documents (``index/documents.py``) with their collection's
        ``metadata``. Every write carries the record's ``last_modified`` as an external
        version, so the index never goes back to an older state, whatever the order of
        writes; ``same_version`` lets a document replace one of the same version (repairs
        of partial documents).

        A delete is indexed as a tombstone document (see :func:`tombstone_document`)
        rather than sent as a bulk delete: the engines forget the version of a deleted
        document after ``index.gc_deletes`` (60 s), after which an older write, late from
        another process or a catch-up, would bring the record back. A tombstone keeps
        its version for as long as the index lives. ``ensure_index`` is called to create
        the index when the alias is missing. ``refresh``: make the write visible to
        searches before answering (default: the ``force_refresh`` setting).
        """
        report = BulkReport()
        where = self.placement(bucket_id, collection_id, metadata)
        records = self._sendable(records, report, where)
        tombstones = self._sendable(tombstones, report, where)
        if not records and not tombstones:
            return report
        alias = where.alias
        send = dict(
            version_type="external_gte" if same_version else "external",
            refresh=refresh,
            where=where,
        )
        missing = self._apply(alias, records, tombstones, metadata, report, **send)
        if missing and ensure_index is not None:
            ensure_index()
            send["where"] = self.placement(bucket_id, collection_id, metadata, refresh=True)
            records = [obj for kind, obj in missing if kind == "index"]
            tombstones = [obj for kind, obj in missing if kind == "delete"]
            if self._apply(alias, records, tombstones, metadata, report, **send):
                raise EngineNotFound(f"index {alias} is missing")
        else:
            report.failed.extend(
                (obj["id"], f"index {alias} does not exist") for _, obj in missing
            )
        if report.misplaced:
            self._replace_misplaced(
                bucket_id, collection_id, records, tombstones, metadata, report, send
            )
        return report

    def _replace_misplaced(
        self, bucket_id, collection_id, records, tombstones, metadata, report, send
    ):
        """Write again, where the collection lives now, what went through its alias under
        an older placement (another process promoted it meanwhile), and delete the copies
        written with the old ``_id``: a dedicated index must not hold pooled documents."""
        misplaced, report.misplaced = report.misplaced, []
        logger.info(
            "The placement of /buckets/%s/collections/%s changed: writing %s documents again",
            bucket_id,
            collection_id,
            len(misplaced),
        )
        body = [{"delete": {"_index": index, "_id": doc_id}} for index, doc_id, _ in misplaced]
        self.engine.call("bulk", body=body)
        again = {record_id for _, _, record_id in misplaced}
        send["where"] = self.placement(bucket_id, collection_id, refresh=True)
        self._apply(
            send["where"].alias,
            [r for r in records if r["id"] in again],
            [t for t in tombstones if t["id"] in again],
            metadata,
            report,
            **send,
        )

    def fill(self, index, records, tombstones=(), metadata=None):
        """Index ``records`` (and tombstones) into a physical index being rebuilt."""
        report = BulkReport()
        records = self._sendable(records, report)
        tombstones = self._sendable(tombstones, report)
        self._apply(
            index, records, tombstones, metadata, report, require_alias=False, refresh=False
        )
        return report

    @staticmethod
    def _sendable(objects, report, where=None):
        kept = []
        for obj in objects:
            document_id = where.document_id(obj["id"]) if where else obj["id"]
            if not id_fits(document_id):
                report.failed.append((obj["id"], f"id is longer than {MAX_ID_BYTES} bytes"))
            else:
                kept.append(obj)
        return kept

    def _apply(
        self,
        index,
        records,
        tombstones,
        metadata,
        report,
        version_type="external",
        require_alias=True,
        refresh=None,
        where=None,
    ):
        """Write documents and deletes; send refused documents again, reduced.

        A document the engine refuses is sent again in the same call: first rebuilt
        against the mapping read afresh, then without each field the engine names, and
        at last in its minimal form (id, version, every field left out), which any index
        takes. Its new version thus always replaces the old one. A record the engine
        refuses even then (its old version deleted) is in ``report.failed``.

        Returns ``(action, record or tombstone)`` for what found no index.
        """
        by_id = {record["id"]: record for record in records}
        # The collections of a pool share its mapping: one cached copy for all of them.
        pooled = where is not None and where.pooled
        mapping_of = where.pool if pooled else index
        known, docs = self._documents(mapping_of, records, metadata, where)
        operations = [("index", d.id, d.version, d) for d in docs]
        operations += [("delete", t["id"], t["last_modified"], _tombstone(t)) for t in tombstones]
        send = dict(
            require_alias=require_alias, refresh=refresh, version_type=version_type, where=where
        )
        missing, refused = self._bulk(index, operations, report, **send)
        reasons, unindexable = {}, []
        for attempt in range(1, MAX_ROUNDS + 1):
            if not refused:
                break
            if any(documents.is_field_limit(reason) for _, reason in refused) and not pooled:
                self._close(index, "", known)
            if attempt == 1 or any(documents.is_field_limit(reason) for _, reason in refused):
                known, _ = self.known_mapping(index, refresh=True)
            retry = []
            for operation, reason in refused:
                document = operation[3]
                if operation[0] == "delete" or _is_minimal(document) or attempt == MAX_ROUNDS:
                    report.failed.append((operation[1], reason))
                    if operation[0] == "index":
                        unindexable.append(document)
                    continue
                reasons[document.id] = reason
                reduced = _reduce(document, by_id[document.id], metadata, known, reason, attempt)
                if pooled:
                    # Rebuilt against the pool's mapping read afresh, a document must not
                    # add there the fields its collection was refused (see _documents).
                    reduced = _without_new_fields(reduced, known)
                retry.append(("index", document.id, document.version, reduced))
            missing_now, refused = self._bulk(index, retry, report, **send)
            missing += missing_now
        if unindexable:
            # Whatever older version the index holds must not stay searchable: a tombstone
            # of the record's version replaces it (and a repair, at the same version, the
            # tombstone; see ``same_version``).
            deletes = [("delete", d.id, d.version, _tombstone(d.source)) for d in unindexable]
            self._bulk(index, deletes, BulkReport(), **send)
        report.partial = [
            (record_id, left_out, reason or reasons.get(record_id))
            for record_id, left_out, reason in report.partial
        ]
        by_tombstone = {t["id"]: t for t in tombstones}
        return [
            (op[0], by_id[op[1]] if op[0] == "index" else by_tombstone[op[1]]) for op in missing
        ]

    def _documents(self, index, records, metadata, where=None):
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
        known, fresh = self.known_mapping(index)

        def build():
            docs = [documents.build(record, metadata, known) for record in records]
            added = {}
            for doc in docs:
                added.update(documents.new_fields(doc, known))
            return docs, added

        docs, added = build()
        if not fresh and (added or any(documents.untyped(doc, known) for doc in docs)):
            known, fresh = self.known_mapping(index, refresh=True)
            docs, added = build()
        if pooled and added and not self._pool_takes(index, where, known, len(added)):
            docs = [_without_new_fields(doc, known) for doc in docs]
            added = {}
        for _ in range(4):
            if not added or len(known.types) + len(added) <= FIELD_BUDGET:
                break
            self._close(index, documents.widest_object(added), known)
            known, _ = self.known_mapping(index, refresh=True)
            docs, added = build()
        known.types.update(added)
        return known, docs

    def _pool_takes(self, pool, where, known, count):
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

    def _close(self, index, path, known):
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
            self._close(index, "", known)

    def _bulk(
        self,
        index,
        operations,
        report,
        require_alias=True,
        refresh=None,
        version_type="external",
        where=None,
    ):
        """Send one bulk request; ``where``: the collection's placement (None: a dedicated
        index, as a rebuild fills).

        Returns the operations that found no alias, and ``(operation, reason)`` for the
        documents the engine refused for what they hold.
        """
        if not operations:
            return [], []
        body = []
        for _, record_id, version, document in operations:
            # Deletes too are documents (tombstones), indexed with the version of the delete.
            document_id = where.document_id(record_id) if where else record_id
            meta = {"_index": index, "_id": document_id, "version": version}
            body.append({"index": {**meta, "version_type": version_type}})
            body.append(where.source(document.source) if where else document.source)
        params = {"require_alias": True} if require_alias else {}
        if self.force_refresh if refresh is None else refresh:
            params["refresh"] = "true"
        try:
            response = self.engine.call("bulk", body=body, **params)
        except EngineRequestError as exc:
            if exc.status != 413:
                raise
            if len(operations) == 1:
                reason = f"too large for the engine: {exc}"
                action, record_id, _, document = operations[0]
                if action == "index" and not _is_minimal(document):
                    # Sent again in its minimal form, so that no older version stays.
                    return [], [(operations[0], reason)]
                report.failed.append((record_id, reason))
                return [], []
            # Too large as a whole: send halves, so that one huge record cannot keep the
            # others of the same write out of the index.
            middle = len(operations) // 2
            send = dict(
                require_alias=require_alias,
                refresh=refresh,
                version_type=version_type,
                where=where,
            )
            first = self._bulk(index, operations[:middle], report, **send)
            second = self._bulk(index, operations[middle:], report, **send)
            return first[0] + second[0], first[1] + second[1]
        missing, refused = [], []
        for operation, item in zip(operations, response["items"], strict=True):
            action, record_id, _, document = operation
            result = item["index"]
            status = result.get("status", 500)
            if status < 300 and where is not None and not where.holds(result.get("_index")):
                report.misplaced.append((result["_index"], result.get("_id"), record_id))
            elif status < 300:
                (report.indexed if action == "index" else report.deleted).append(record_id)
                if document is not None and document.left_out:
                    report.partial.append((record_id, document.left_out, None))
            elif status == 409:
                report.superseded.append(record_id)
            elif _is_missing_alias(result):
                missing.append(operation)
            else:
                error = result.get("error") or {}
                reason = error.get("reason", error) if isinstance(error, dict) else error
                caused = error.get("caused_by") if isinstance(error, dict) else None
                if isinstance(caused, dict) and caused.get("reason"):
                    reason = f"{reason}: {caused['reason']}"
                kind = error.get("type") if isinstance(error, dict) else None
                if action == "index" and (kind in DOCUMENT_ERRORS or status == 400):
                    refused.append((operation, str(reason)))
                else:
                    report.failed.append((record_id, str(reason)))
        return missing, refused

    def versions(self, bucket_id, collection_id, ids, tombstones=True):
        """``{id: indexed version}`` for those of ``ids`` the index holds.

        With ``tombstones``, deleted records' tombstone documents count as held.
        """
        return {
            record_id: version
            for record_id, (version, _) in self._held(bucket_id, collection_id, ids, tombstones)
        }

    def indexed_records(self, bucket_id, collection_id, ids):
        """``{id: (indexed version, paths left out)}`` for the records of ``ids`` the index
        holds (tombstones are not records)."""
        return dict(self._held(bucket_id, collection_id, ids, tombstones=False))

    def _held(self, bucket_id, collection_id, ids, tombstones):
        if not ids:
            return []
        where = self.placement(bucket_id, collection_id)
        values = where.document_ids(ids)
        query = {"ids": {"values": values}}
        wanted = [query, where.collection_filter(), None if tombstones else LIVE_DOCUMENTS]
        query = {"bool": {"filter": [f for f in wanted if f is not None]}}
        body = {"query": query, "size": len(values), "_source": [UNINDEXED], "version": True}
        hits = self.engine.call("search", index=where.alias, body=body)
        return [
            (
                where.record_id(hit["_id"]),
                (hit["_version"], (hit.get("_source") or {}).get(UNINDEXED)),
            )
            for hit in hits["hits"]["hits"]
        ]

    def count_live(self, bucket_id, collection_id, up_to, refreshed=None):
        """The records (not tombstones) the index holds at a version up to ``up_to``, as
        of a refresh made now; or, for a physical index in ``refreshed`` (a set this adds
        to), as of the caller's earlier refresh, which shows a collection the caller knows
        unchanged since: a pool is then refreshed once for all its collections."""
        where = self.placement(bucket_id, collection_id)
        alias = where.alias
        physical = where.pool or alias
        if refreshed is None or physical not in refreshed:
            self.engine.call("indices.refresh", index=alias)
            if refreshed is not None:
                refreshed.add(physical)
        wanted = [LIVE_DOCUMENTS, {"range": {"last_modified": {"lte": up_to}}}]
        query = {"bool": {"filter": [*wanted, *filter(None, [where.collection_filter()])]}}
        body = {"query": query, "size": 0, "track_total_hits": True}
        return self.engine.call("search", index=alias, body=body)["hits"]["total"]["value"]

    def partly_indexed(self, bucket_id, collection_id):
        """Whether some record of the collection is indexed without some of its fields."""
        where = self.placement(bucket_id, collection_id)
        wanted = [LIVE_DOCUMENTS, {"exists": {"field": UNINDEXED}}, where.collection_filter()]
        body = {"query": {"bool": {"filter": [f for f in wanted if f is not None]}}}
        return self.engine.call("count", index=where.alias, body=body)["count"] > 0

    def iter_documents(self, bucket_id, collection_id, page_size=1000):
        """Pages of ``{id: indexed version}`` over the records of the index, in id order."""
        where = self.placement(bucket_id, collection_id)
        wanted = [LIVE_DOCUMENTS, where.collection_filter()]
        body = {
            "query": {"bool": {"filter": [f for f in wanted if f is not None]}},
            "size": page_size,
            "sort": [{"id": "asc"}],
            "_source": False,
            "version": True,
        }
        while True:
            hits = self.engine.call("search", index=where.alias, body=body)["hits"]["hits"]
            if not hits:
                return
            yield {where.record_id(hit["_id"]): hit["_version"] for hit in hits}
            body["search_after"] = hits[-1]["sort"]

    # Search.

    def search(self, bucket_id, collection_id, body, ensure_index=None):
        alias = self.alias(bucket_id, collection_id)
        try:
            return self.engine.call(
                "search", index=alias, body=body, timeout=self.search_timeout, lane=SEARCH
            )
        except EngineNotFound:
            if ensure_index is None:
                raise
        # A collection with no index yet (created while the engine was unreachable, or
        # before the plugin was enabled): give it one, so the answer has the engine's shape.
        ensure_index()
        return self.engine.call(
            "search", index=alias, body=body, timeout=self.search_timeout, lane=SEARCH
        )

    def search_indices(self, names, body):
        """Search the named aliases at once (never a pattern); ``body`` restricts further.

        An alias dropped since it was listed (its collection deleted) is skipped."""
        return self.engine.call(
            "search",
            index=",".join(names),
            body=body,
            timeout=self.search_timeout,
            ignore_unavailable=True,
            lane=SEARCH,
        )

    def mappings(self, names):
        """The mappings of the indices behind the named aliases."""
        if not names:
            return []
        found = self.engine.call(
            "indices.get_mapping", index=",".join(names), ignore_unavailable=True, lane=SEARCH
        )
        return [info.get("mappings", {}) for info in found.values()]

    def bucket_indices(self, bucket_id):
        """``({alias: [physical indices]}, {alias: (pool, key)})``: the dedicated and the
        pooled collections of a bucket that have an index."""
        by_alias = {}
        pattern = naming.bucket_pattern(self.prefix, bucket_id)
        for name, aliases in self.indices(pattern, lane=SEARCH).items():
            for alias in aliases:
                by_alias.setdefault(alias, []).append(name)
        return by_alias, self.pooled_aliases(pattern, lane=SEARCH)

    def ping(self, timeout=None):
        """Whether the engine answers and its cluster is usable."""
        try:
            health = self.engine.call("cluster.health", timeout=timeout, probe=True)
        except EngineError as exc:
            logger.warning("Search engine health check failed: %s", exc)
            return False
        return health.get("status") in ("green", "yellow")
