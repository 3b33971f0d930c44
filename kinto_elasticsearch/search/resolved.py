"""One search, resolved once per request: what it reaches (a collection, or a bucket's
readable collections), with whose permissions, which fields are hidden and where the
records live; then the guarded body, the plugin's filters and the engine's answer.

Views build a :class:`CollectionSearch` or a :class:`BucketSearch` and call ``run``:
nothing here is looked up twice for one request.
"""

import logging
import re
from functools import cached_property

from pyramid.httpexceptions import HTTPForbidden

from kinto_elasticsearch import errors, metrics
from kinto_elasticsearch.client import (
    EngineNotFound,
    EngineRequestError,
    EngineUnavailable,
    EngineUnreachable,
)
from kinto_elasticsearch.client.engine import SEARCH
from kinto_elasticsearch.index import naming
from kinto_elasticsearch.index.indices import created_if_missing
from kinto_elasticsearch.index.mapping import flatten_field_types
from kinto_elasticsearch.index.placement import COLLECTION_FIELD
from kinto_elasticsearch.search import access, facets, filters, hits, owned, pooled, rules

logger = logging.getLogger(__name__)


def max_result_size(settings):
    """Kinto's own cap on a page of records."""
    caps = [int(settings["storage_max_fetch_size"])]
    if settings.get("paginate_by"):
        caps.append(int(settings["paginate_by"]))
    return min(caps)


def query_limits(request):
    """The caps of a search body, from the plugin's and Kinto's settings."""
    settings = request.registry.elasticsearch.settings
    return rules.QueryLimits(
        max_size=max_result_size(request.registry.settings),
        max_window=settings.max_result_window,
        max_depth=settings.max_query_depth,
        max_aggregations=settings.max_aggregations,
        max_agg_size=settings.max_aggregation_size,
        timeout=f"{round(settings.search_timeout * 1000)}ms",
        allow_scripts=settings.allow_scripts,
        max_clauses=settings.max_clauses,
        max_buckets=settings.max_buckets,
        max_pattern_length=settings.max_pattern_length,
        max_pattern_repetition=settings.max_pattern_repetition,
        max_expansions=settings.max_expansions,
        max_body_depth=settings.max_body_depth,
    )


def prepared(body, request, restricted, hidden, built, where=None, own=None):
    """The body to send, without the plugin's filters.

    A user's body goes through the rules (refused with a 400 that says where, or capped).
    A ``built`` body, made by the plugin from Kinto's querystring, goes through the same
    rules, sizes aside: its ``q``, filters and sorts are still the user's. ``where``: a
    bucket search's :class:`pooled.BucketIds` (in a pool, the ids the body names are
    namespaced); a collection search goes through ``rules.collection_search_body``.
    ``own``: the fields a user's body is kept to (``rules.guard_search``).
    """
    limits = query_limits(request)
    try:
        if built:
            return rules.check_built_search(body, limits, restricted, hidden, where)
        return rules.guard_search(body, limits, restricted, hidden, where, own)
    except rules.QueryRefused as exc:
        raise invalid(exc, built) from None


def invalid(exc, built):
    """A refused body as a 400 that says where: in the querystring when the plugin built it."""
    refusal = errors.invalid_querystring if built else errors.invalid_body
    return refusal(exc.message, exc.location)


def unavailable(exc):
    # An outage is logged once, by the engine seam, not once per search.
    level = logging.DEBUG if isinstance(exc, EngineUnreachable) else logging.WARNING
    logger.log(level, "Search failed, the engine could not serve it: %s", exc)
    return errors.engine_unavailable()


# What a refusal says instead of the engine's words when the index is shared.
SHARED_REFUSAL = (
    "The search engine refused the query. This collection is searched under the rules of an "
    "index shared with other collections, so the engine's message is not shown: it may name "
    "their fields and types. "
    "Check the query's field names, types and values against the collection's records."
)


# The engine's refusal of a query string's syntax names nothing but that text: shown.
QUERY_SYNTAX = re.compile(r"^(Failed to parse query|Cannot parse) ")


def refused(exc, built=False, shared=False):
    """The engine's refusal of a search, located where the caller wrote it: the body of a
    POST, the querystring of a GET (``built`` by the plugin from it).

    ``shared``: the search reached a pooled index, whose mapping is every tenant's; the
    engine's message may name another tenant's fields and types, so it is logged, not sent.
    """
    refusal = errors.invalid_querystring if built else errors.invalid_body
    if shared and not QUERY_SYNTAX.match(exc.message):
        logger.info("The engine refused a search of a pooled index: %s", exc.message)
        return refusal(SHARED_REFUSAL)
    return refusal(f"The search engine refused the query: {exc.message}")


def _readable_field_names(mappings, hidden):
    names = set()
    for types in mappings:
        described = facets.describe_fields(types, hidden=set(hidden))
        names.update(f["name"] for f in described)
    return sorted(names) or ["id"]


class CollectionSearch:
    """A search of one collection, for the request's caller."""

    def __init__(self, request):
        self.request = request
        self.plugin = request.registry.elasticsearch
        self.bucket_id, self.collection_id, self.collection = access.collection_or_404(request)
        self.hidden = access.hidden_fields(request, self.collection)
        # None: the caller reads every record; else the ids of those they may read.
        self.shared_ids = request.context.shared_ids

    @property
    def scoped(self):
        """Whether the search is kept to the fields its collection's records hold."""
        return self.where.shared

    @cached_property
    def where(self):
        """The collection's placement (a search's lookup is a search's fault)."""
        return self.plugin.index.locator.placement(
            self.bucket_id, self.collection_id, self.collection, lane=SEARCH
        )

    def ensure_index(self):
        """Give a collection with no index yet (created while the engine was unreachable,
        or before the plugin was enabled) its index, so the answer has the engine's shape.
        A pool found missing was lost since this process made sure of it."""
        if self.where.pooled:
            self.plugin.index.pools.forget(self.where.pool)
        self.plugin.index.admin.create_index(self.bucket_id, self.collection_id, self.collection)

    def filters(self):
        return filters.collection_filters(self.shared_ids, self.where)

    def send(self, body):
        """The plugin's own ``body`` (facets: nothing of the user's to guard) with the
        plugin's filters, to the collection."""
        return self._search(filters.with_filters(body, self.filters()))

    def _search(self, body):
        return self.plugin.searcher.search(self.where, body, ensure_index=self.ensure_index)

    def run(self, body, built=False):
        """Guard ``body``, send it, and answer with the engine's response as records."""
        try:
            limits = query_limits(self.request)
            own = self.own_fields(body) if self.where.shared and not built else None
            body = rules.collection_search_body(
                body, limits, self.shared_ids, self.where, self.hidden, built, own
            )
            with metrics.timed(self.request.registry, metrics.SEARCH_SECONDS):
                response = self._search(body)
        except rules.QueryRefused as exc:
            raise invalid(exc, built) from None
        except EngineRequestError as exc:
            raise refused(exc, built, shared=self.where.shared) from None
        except EngineUnavailable as exc:
            raise unavailable(exc) from None
        if self.where.shared:
            pooled.as_one_shard(response)
            if not built:
                rules.strip_tiebreak(response, body)
        return hits.as_records(pooled.restore(response, self.plugin.index.prefix))

    def mapping(self):
        """The collection's mapping (creating its index if it has none yet)."""
        known = self.plugin.index.known
        return created_if_missing(
            lambda: known.get_mapping(self.bucket_id, self.collection_id, index=self.where.target),
            self.ensure_index,
        )

    def field_types(self, refresh):
        """``({field: type}, fresh)`` of the collection's index, for Kinto's querystring
        and the search box: in a pool, only of the fields its own records hold."""
        try:
            types, fresh = self._mapped_types(refresh)
            return (self.own_types(types) if self.where.shared else types), fresh
        except EngineUnavailable as exc:
            raise unavailable(exc) from None
        except EngineRequestError as exc:
            raise refused(exc, built=True, shared=True) from None

    def _mapped_types(self, refresh):
        known = self.plugin.index.known
        try:
            return known.field_types(
                self.bucket_id, self.collection_id, refresh=refresh, index=self.where.target
            )
        except EngineNotFound:
            # Created now: its types are read afresh, not from a cache.
            self.ensure_index()
            return known.field_types(
                self.bucket_id, self.collection_id, refresh=True, index=self.where.target
            )

    def own_types(self, types, named=None):
        """The ``types`` of a pool's mapping that this collection's records hold
        (``search/owned.py``); ``named``: the field names of the body they are for."""
        names = sorted(types)

        def ask(asked):
            body = owned.presence_body(asked, query_limits(self.request).timeout)
            where = filters.collection_filters(None, self.where)
            return owned.held_names(asked, self._search(filters.with_filters(body, where)))

        def stamp():
            return owned.records_timestamp(self.request, self.bucket_id, self.collection_id)

        # A body naming fields (no pattern, no query of every field) the cache has held
        # needs no storage query for the cache's key.
        enough = None
        if named and not any("*" in name for name in named):
            needed = {name for name in named if name[:1] != "_"}

            def enough(held):
                return needed <= owned.kept_types(types, held).keys()

        held = self.plugin.held.held(self.where.key, stamp, names, ask, enough=enough)
        return owned.kept_types(types, held)

    def own_fields(self, body):
        """The fields a pooled collection's records hold, for a ``body`` to be kept to:
        read afresh when the body names a field the cached mapping does not know."""
        named = rules.field_names(body)
        if not named:
            # Nothing to keep to the collection's fields: no engine request for it.
            return {}
        try:
            types, fresh = self._mapped_types(refresh=False)
            if not fresh and any(n[:1] != "_" and "*" not in n and n not in types for n in named):
                types, _ = self._mapped_types(refresh=True)
            return self.own_types(types, named)
        except EngineUnavailable as exc:
            raise unavailable(exc) from None

    def readable_fields(self):
        """The fields a search box may search when some are hidden."""
        try:
            mapping = self.plugin.index.known.get_mapping(
                self.bucket_id, self.collection_id, index=self.where.target
            )
        except EngineNotFound:
            return ["id"]
        except EngineUnavailable as exc:
            raise unavailable(exc) from None
        names = _readable_field_names([flatten_field_types(mapping)], self.hidden)
        if self.where.shared:
            own = self.field_types(refresh=False)[0]
            names = [name for name in names if name in own] or ["id"]
        return names


class BucketSearch:
    """A search of every collection of a bucket the caller may read.

    Collections the caller may not read are not searched, but their records share nothing
    with the readable ones but the bucket: as for a partial reader, nothing that reads
    index-wide statistics is allowed.
    """

    def __init__(self, request):
        self.request = request
        self.plugin = request.registry.elasticsearch
        self.bucket_id = request.matchdict["bucket_id"]
        if not access.is_kinto_id(self.bucket_id):
            access.answer_as_kinto(request, "collection-plural", bucket_id=self.bucket_id)
        self.readable, self.hidden = access.readable_collections(request, self.bucket_id)
        if not self.readable:
            raise HTTPForbidden()

    @cached_property
    def targets(self):
        """``(indices, filter, {alias: collection id}, pooled keys, moved)`` for the
        readable collections (the keys of those in pools; whether the plugin moved one of
        the others out of a pool).

        The search names the alias of each readable collection that has an index of its
        own, and the pools holding the others (a few names, however many collections: a
        URL listing thousands of aliases would be too long), never a pattern. Where a
        pooled collection lives is its placement's word (``index/locator.py``): no engine
        request per collection. The filter keeps each collection to the records the caller
        may read of it, and a pool to the readable collections' documents (a ``terms`` on
        their keys): what the search counts (hits, aggregations) comes from those alone.
        Hits of a pool are told apart by their collection (``search/pooled.py``).
        """
        locator = self.plugin.index.locator
        try:
            physical = self.plugin.searcher.bucket_indices(self.bucket_id)
            places = {
                collection_id: locator.placement(self.bucket_id, collection_id, lane=SEARCH)
                for collection_id in self.readable
                if locator.alias(self.bucket_id, collection_id) not in physical
            }
            # Collections the plugin moved out of a pool keep its rules (``Placement.shared``).
            moved = any(
                locator.placement(self.bucket_id, c, lane=SEARCH).moved
                for c in set(self.readable) - set(places)
            )
        except EngineUnavailable as exc:
            raise unavailable(exc) from None
        names, clauses, collections, keys, everyone = set(), [], {}, [], []
        for collection_id, shared_ids in sorted(self.readable.items()):
            alias = locator.alias(self.bucket_id, collection_id)
            where = places.get(collection_id)
            if where is not None and where.pooled:
                names.add(where.pool)
                collections[alias] = collection_id
                keys.append(where.key)
                clause = {"term": {COLLECTION_FIELD: where.key}}
                if shared_ids is None:
                    # Collections read whole share one ``terms`` clause.
                    everyone.append(where.key)
                    continue
            elif alias in physical:
                names.add(alias)
                # Hits name the alias (``pooled.restore``); the filter, the indices.
                collections[alias] = collection_id
                in_collection = [{"term": {"_index": name}} for name in physical[alias]]
                clause = {"bool": {"should": in_collection, "minimum_should_match": 1}}
                clause = {"bool": {"filter": [filters.RECORDS, clause]}}
                where = None
            else:
                continue
            if shared_ids is not None:
                readable_ids = filters.permission_filter(shared_ids, where)
                clause = {"bool": {"filter": [clause, readable_ids]}}
            clauses.append(clause)
        if everyone:
            clauses.append({"terms": {COLLECTION_FIELD: everyone}})
        permission = {"bool": {"should": clauses, "minimum_should_match": 1}}
        # A pool's records are its collections' terms, once its tombstones are marked.
        if not all(where.marked for where in places.values() if where.pooled):
            permission = {"bool": {"filter": [filters.RECORDS, permission]}}
        return sorted(names), permission, collections, sorted(keys), moved

    @property
    def scoped(self):
        """Whether the search reaches pooled collections, and is kept to the fields the
        readable collections' records hold."""
        return bool(self.targets[3])

    @cached_property
    def mappings(self):
        """``[{field: type}]`` of the indices the search reaches, in a pool only of the
        fields the readable pooled collections' records hold (``search/owned.py``): a
        bucket-wide search reads its collections' fields, as a search of one of them does,
        never those other tenants of its pools wrote."""
        try:
            indexed = self.plugin.index.known.indexed_mappings(self.targets[0])
            prefix = self.plugin.index.prefix
            types = {name: flatten_field_types(m) for name, m in sorted(indexed.items())}
            pools = [name for name in types if naming.is_pool(prefix, name)]
            if pools:
                held = self._held(pools, sorted({f for p in pools for f in types[p]}))
                types.update((p, owned.kept_types(types[p], held)) for p in pools)
            return list(types.values())
        except EngineUnavailable as exc:
            raise unavailable(exc) from None
        except EngineRequestError as exc:
            raise refused(exc, built=True, shared=True) from None

    def _held(self, pools, names):
        """The ``names`` some document of the readable pooled collections holds (before
        the permission filter, as for one collection)."""
        keys = self.targets[3]
        body = owned.presence_body(names, query_limits(self.request).timeout)
        in_collections = {"terms": {COLLECTION_FIELD: sorted(keys)}}
        body = filters.with_filters(body, [filters.RECORDS, in_collections])
        return owned.held_names(names, self.plugin.searcher.search_indices(pools, body))

    def field_types(self, refresh):
        """One set of types for every index: where collections disagree, the first wins."""
        types = {}
        for flat in self.mappings:
            for field, kind in flat.items():
                types.setdefault(field, kind)
        return types, True

    def own_fields(self, body):
        """The fields a user's ``body`` is kept to, when it names some and the search
        reaches pooled collections (None: no scope)."""
        if not self.scoped or not rules.field_names(body):
            return None if not self.scoped else {}
        return self.field_types(refresh=False)[0]

    def readable_fields(self):
        """Every field of the readable collections, less the hidden ones."""
        return _readable_field_names(self.mappings, self.hidden)

    def run(self, body, built=False):
        where = None
        try:
            aliases, permission, collections, keys, moved = self.targets
            # The ids a body names are each collection's: namespaced in the pools.
            where = pooled.BucketIds(keys) if keys or moved else None
            own = None if built else self.own_fields(body)
            body = prepared(body, self.request, True, self.hidden, built, where, own)
            if not aliases:
                return _nothing_found()
            body = filters.with_filters(body, [permission])
            with metrics.timed(self.request.registry, metrics.SEARCH_SECONDS):
                response = self.plugin.searcher.search_indices(aliases, body)
        except rules.QueryRefused as exc:
            # What the walk refuses while listing the fields a body names.
            raise invalid(exc, built) from None
        except EngineRequestError as exc:
            raise refused(exc, built, shared=where is not None) from None
        except EngineUnavailable as exc:
            raise unavailable(exc) from None
        if where is not None:
            pooled.as_one_shard(response)
            if not built:
                rules.strip_tiebreak(response, body)
        pooled.restore(response, self.plugin.index.prefix)
        for hit in response.get("hits", {}).get("hits", []):
            hit["_collection"] = collections.get(hit.get("_index"))
        return hits.as_records(response)


def _nothing_found():
    """What the engine answers when a search reaches no document, for no index at all."""
    return {
        "took": 0,
        "timed_out": False,
        "_shards": {"total": 0, "successful": 0, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": 0, "relation": "eq"}, "max_score": None, "hits": []},
    }
