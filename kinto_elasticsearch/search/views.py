"""The search services: collection search, facets and bucket search, with their permissions."""

import logging
import re
from urllib.parse import urlencode

from kinto.core import Service
from kinto.core.authorization import DYNAMIC, RouteFactory
from kinto.core.utils import instance_uri
from kinto.views import object_exists_or_404
from pyramid.httpexceptions import HTTPForbidden
from pyramid.security import NO_PERMISSION_REQUIRED

from kinto_elasticsearch import errors, maintenance, metrics
from kinto_elasticsearch.client import (
    EngineNotFound,
    EngineRequestError,
    EngineUnavailable,
    EngineUnreachable,
)
from kinto_elasticsearch.client.engine import SEARCH
from kinto_elasticsearch.index.mapping import flatten_field_types
from kinto_elasticsearch.index.placement import COLLECTION_FIELD, Placement
from kinto_elasticsearch.search import (
    facets,
    filters,
    hits,
    jsonbody,
    openapi,
    pooled,
    querystring,
    ranking,
    rules,
)
from kinto_elasticsearch.sync.listeners import ensure_index_for

logger = logging.getLogger(__name__)

# Kinto's rule for bucket and collection ids (``kinto.views.NameGenerator``): an id outside
# it names nothing, and must never reach a permission pattern or an index name.
KINTO_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$")


def valid_ids(matchdict):
    return all(
        KINTO_ID.match(matchdict.get(key) or "")
        for key in ("bucket_id", "collection_id")
        if key in matchdict
    )


class RecordsReadContext(RouteFactory):
    """The permissions of ``GET /buckets/{bid}/collections/{cid}/records``.

    Kinto's own factory, configured as the plural records endpoint, so that a search sees
    exactly the records the same user would list: ``shared_ids`` is None with read access
    on the collection (or bucket), else the ids of the records shared with the user.
    """

    def __init__(self, request):
        super().__init__(request)
        self._request = request
        self.resource_name = "record"
        self.on_plural_endpoint = True
        self.required_permission = "read"
        # Built from the matchdict, never by rewriting the request path.
        self.permission_object_id = (
            "/buckets/{bucket_id}/collections/{collection_id}/records".format_map(
                request.matchdict
            )
        )
        self._object_id_match = self.permission_object_id + "/*"

    def fetch_shared_objects(self, perm, principals, get_bound_permissions):
        """Kinto's shared records, kept only when their URI is exactly one of this collection.

        Kinto looks them up with a pattern in which PostgreSQL's LIKE reads ``_`` as any
        character: ``/buckets/my_bkt/...`` also matches the records of ``myXbkt``, which a
        reader may own. Each URI the permission backend returns is checked against the
        collection's own records URI, and ids outside Kinto's rules match nothing.
        """
        self.shared_ids = []
        if not valid_ids(self._request.matchdict):
            return self.shared_ids
        if get_bound_permissions:
            bound_perms = get_bound_permissions(self._object_id_match, perm)
        else:
            bound_perms = [(self._object_id_match, perm)]
        by_uri = self._get_accessible_objects(principals, bound_perms, with_children=False)
        prefix = self.permission_object_id + "/"
        self.shared_ids = [
            uri[len(prefix) :]
            for uri in by_uri
            if uri.startswith(prefix) and "/" not in uri[len(prefix) :]
        ]
        return self.shared_ids


class CollectionWriteContext(RouteFactory):
    """Kinto's permission to write a collection (directly or through its bucket)."""

    def __init__(self, request, collection):
        super().__init__(request)
        self.resource_name = "collection"
        self.required_permission = "write"
        self.current_object = collection
        self.permission_object_id = "/buckets/{bucket_id}/collections/{collection_id}".format_map(
            request.matchdict
        )


def hidden_fields(request, collection):
    """The collection's private fields, unless the caller may write the collection."""
    private = rules.private_fields(collection)
    if not private:
        return []
    if request.has_permission(DYNAMIC, CollectionWriteContext(request, collection)):
        return []
    return private


collection_search = Service(
    name="collection-search",
    description="Search the records of a collection",
    path="/buckets/{bucket_id}/collections/{collection_id}/search",
    factory=RecordsReadContext,
)


collection_facets = Service(
    name="collection-search-facets",
    description="The fields of a collection a client can filter and sort on, with values",
    path="/buckets/{bucket_id}/collections/{collection_id}/search/facets",
    factory=RecordsReadContext,
)


bucket_search = Service(
    name="bucket-search",
    description="Search the records of every collection of a bucket the caller may read",
    path="/buckets/{bucket_id}/search",
)


def max_result_size(settings):
    """Kinto's own cap on a page of records."""
    caps = [int(settings["storage_max_fetch_size"])]
    if settings.get("paginate_by"):
        caps.append(int(settings["paginate_by"]))
    return min(caps)


def _collection_or_404(request):
    if not valid_ids(request.matchdict):
        # What Kinto answers for a collection that does not exist.
        raise errors.not_found("collection", request.matchdict.get("collection_id"))
    bucket_id = request.matchdict["bucket_id"]
    collection_id = request.matchdict["collection_id"]
    collection = object_exists_or_404(
        request,
        resource_name="collection",
        parent_id=instance_uri(request, "bucket", id=bucket_id),
        object_id=collection_id,
    )
    return bucket_id, collection_id, collection


def _json_body(request):
    settings = request.registry.elasticsearch.settings
    try:
        body = (
            jsonbody.parse_body(request.body, settings.max_body_bytes, settings.max_body_depth)
            if request.body
            else {}
        )
    except jsonbody.BodyRefused as exc:
        raise errors.invalid_body(exc.message) from None
    if not isinstance(body, dict):
        raise errors.invalid_body("must be a JSON object holding a search query")
    return body


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


def _prepared(body, request, restricted, hidden, built, where=None):
    """The body to send, without the plugin's filters.

    A user's body goes through the rules (refused with a 400 that says where, or capped).
    A ``built`` body, made by the plugin from Kinto's querystring, goes through the same
    rules, sizes aside: its ``q``, filters and sorts are still the user's. ``where``: the
    collection's placement (in a pool, the ids the body names are namespaced), or a
    bucket search's :class:`pooled.BucketIds`.
    """
    limits = query_limits(request)
    check = rules.check_built_search if built else rules.guard_search
    try:
        return check(body, limits, restricted=restricted, hidden=hidden, where=where)
    except rules.QueryRefused as exc:
        refusal = errors.invalid_querystring if built else errors.invalid_body
        raise refusal(exc.message, exc.location) from None


def _unavailable(exc):
    # An outage is logged once, by the engine seam, not once per search.
    level = logging.DEBUG if isinstance(exc, EngineUnreachable) else logging.WARNING
    logger.log(level, "Search failed, the engine could not serve it: %s", exc)
    return errors.engine_unavailable()


def _refused(exc):
    return errors.invalid_body(f"The search engine refused the query: {exc.message}")


def run_search(request, body, collection=None, built=False):
    """Send ``body`` to the collection's index and answer with the engine's response."""
    bucket_id, collection_id, found = _collection_or_404(request)
    collection = collection or found
    hidden = hidden_fields(request, collection)
    shared_ids = request.context.shared_ids
    plugin = request.registry.elasticsearch
    try:
        where = plugin.index.locator.placement(bucket_id, collection_id, collection, lane=SEARCH)
        body = _prepared(body, request, shared_ids is not None, hidden, built, where)
        body = filters.with_filters(
            body,
            [
                filters.RECORDS,
                filters.permission_filter(shared_ids, where),
                filters.collection_filter(where),
            ],
        )
        with metrics.timed(request.registry, metrics.SEARCH_SECONDS):
            response = plugin.searcher.search(
                bucket_id,
                collection_id,
                body,
                ensure_index=ensure_index_for(request, bucket_id, collection_id),
            )
    except EngineRequestError as exc:
        raise _refused(exc) from None
    except EngineUnavailable as exc:
        raise _unavailable(exc) from None
    return hits.as_records(pooled.restore(response, plugin.index.prefix))


@collection_search.post(permission=DYNAMIC, **openapi.COLLECTION_SEARCH_POST)
def post_search(request):
    return run_search(request, _json_body(request))


def _readable_fields(request, bucket_id, collection_id, hidden):
    def readable():
        try:
            mapping = request.registry.elasticsearch.index.known.get_mapping(
                bucket_id, collection_id
            )
        except EngineNotFound:
            return ["id"]
        except EngineUnavailable as exc:
            raise _unavailable(exc) from None
        described = facets.describe_fields(flatten_field_types(mapping), hidden=set(hidden))
        return [f["name"] for f in described] or ["id"]

    return readable


class _RecordingTypes(dict):
    """Field types that note the fields looked up but unknown to them."""

    def __init__(self, types):
        super().__init__(types)
        self.unknown = set()

    def get(self, key, default=None):
        if key not in self:
            self.unknown.add(key)
        return super().get(key, default)


def translate_querystring(request, load_types, hidden, readable_fields):
    """Kinto's querystring as a search; with a ``q``, a search box (``search.ranking``),
    kept from reaching hidden fields."""
    params = request.GET
    box = ranking.SearchBox.from_params(params)
    if box is not None:
        box.check_readable(hidden)
        params = params.copy()
        del params[querystring.QUERY_PARAM]
    max_limit = max_result_size(request.registry.settings)
    by_relevance = box is not None
    types, fresh = load_types(refresh=False)
    recording = _RecordingTypes(types)
    search = querystring.querystring_to_search(params, recording, max_limit, by_relevance)
    if recording.unknown and not fresh:
        # A field the cached mapping does not know may have appeared since.
        types, _ = load_types(refresh=True)
        search = querystring.querystring_to_search(params, types, max_limit, by_relevance)
    if box is None:
        return search
    text_fields = ranking.readable_text_fields(types, hidden)
    return box.apply(search, text_fields, readable_fields() if hidden else None)


def paginated(request, search, response):
    """The engine response for one page, with Kinto's ``Total-Objects`` and ``Next-Page``."""
    found = response.get("hits", {})
    page, token = search.paginate(found.get("hits", []))
    found["hits"] = page
    total = found.get("total", {})
    request.response.headers["Total-Objects"] = str(
        total.get("value", 0) if isinstance(total, dict) else total
    )
    if token:
        params = {**request.GET, "_limit": str(search.limit), "_token": token}
        url = f"{request.application_url}{request.path}?{urlencode(params)}"
        request.response.headers["Next-Page"] = url
    return response


def _collection_types(request, bucket_id, collection_id):
    plugin = request.registry.elasticsearch

    def load(refresh):
        try:
            return plugin.index.known.field_types(bucket_id, collection_id, refresh=refresh)
        except EngineNotFound:
            ensure_index_for(request, bucket_id, collection_id)()
            return plugin.index.known.field_types(bucket_id, collection_id, refresh=True)
        except EngineUnavailable as exc:
            raise _unavailable(exc) from None

    return load


@collection_search.get(permission=DYNAMIC, **openapi.COLLECTION_SEARCH_GET)
def get_search(request):
    bucket_id, collection_id, collection = _collection_or_404(request)
    hidden = hidden_fields(request, collection)
    readable = _readable_fields(request, bucket_id, collection_id, hidden)
    load_types = _collection_types(request, bucket_id, collection_id)
    search = translate_querystring(request, load_types, hidden, readable)
    response = run_search(request, search.body, collection, built=True)
    return paginated(request, search, response)


def _values_limit(request):
    raw = request.GET.get("limit", str(facets.DEFAULT_VALUES))
    try:
        limit = int(raw)
    except ValueError:
        limit = -1
    if not 0 <= limit <= facets.MAX_VALUES:
        message = f"limit must be a whole number from 0 to {facets.MAX_VALUES}, not {raw!r}"
        raise errors.invalid_querystring(message, "limit")
    return limit


@collection_facets.get(permission=DYNAMIC, **openapi.COLLECTION_FACETS_GET)
def get_facets(request):
    """Fields with their types, and the values of low-cardinality ones with counts.

    ``limit``: values per field (default 20, 0 lists fields only); ``fields``: only these.
    """
    bucket_id, collection_id, collection = _collection_or_404(request)
    hidden = set(hidden_fields(request, collection))
    limit = _values_limit(request)
    wanted = {f for f in request.GET.get("fields", "").split(",") if f}
    plugin = request.registry.elasticsearch
    ensure = ensure_index_for(request, bucket_id, collection_id)
    try:
        try:
            mapping = plugin.index.known.get_mapping(bucket_id, collection_id)
        except EngineNotFound:
            ensure()
            mapping = plugin.index.known.get_mapping(bucket_id, collection_id)
        described = facets.describe_fields(flatten_field_types(mapping), hidden=hidden)
        if wanted:
            described = [f for f in described if f["name"] in wanted]
        where = plugin.index.locator.placement(bucket_id, collection_id, collection, lane=SEARCH)
        readable = filters.permission_filter(request.context.shared_ids, where)

        def run(fields, values_limit):
            # The plugin's own body: only the timeout and the plugin's filters to add.
            body = {
                **facets.facets_body(fields, values_limit),
                "timeout": query_limits(request).timeout,
            }
            body = filters.with_filters(
                body, [filters.RECORDS, readable, filters.collection_filter(where)]
            )
            return plugin.searcher.search(bucket_id, collection_id, body, ensure_index=ensure)

        # One search, timed as one, whatever the requests it takes.
        with metrics.timed(request.registry, metrics.SEARCH_SECONDS):
            if where.pooled and limit:
                # A pool's mapping is every tenant's (up to its field budget): values only
                # for the fields this collection's readable records hold, asked first.
                response = run(described, 0)
                described = facets.present_fields(described, response)
                if described:
                    response = run(described, limit)
            else:
                response = run(described, limit)
    except EngineUnavailable as exc:
        raise _unavailable(exc) from None
    return facets.facets_response(described, response, hidden, wanted)


def readable_collections(request, bucket_id):
    """``({collection id: shared ids}, hidden fields)`` for the bucket's readable collections.

    Private fields of every collection the caller may read but not write are hidden
    from the whole search: one request cannot hide a field in some indices only.

    Each collection is checked by Kinto's own authorization with the context of its
    records endpoint, exactly as ``GET .../records`` would be: shared ids are None for full
    read access, else the ids of the records the caller may read.
    """
    storage = request.registry.storage
    settings = request.registry.elasticsearch.settings
    readable, hidden = {}, set()
    matchdict = request.matchdict
    try:
        for _, collection_id, metadata in maintenance.iter_collections(storage, bucket_id):
            if not settings.is_indexed(bucket_id, collection_id):
                continue
            request.matchdict = {**matchdict, "collection_id": collection_id}
            context = RecordsReadContext(request)
            if request.has_permission(DYNAMIC, context):
                readable[collection_id] = context.shared_ids
                hidden.update(hidden_fields(request, metadata))
    finally:
        request.matchdict = matchdict
    return readable, sorted(hidden)


def _bucket_filter(request, bucket_id, readable):
    """``(indices, filter, {index: collection id}, pooled keys)`` for the readable
    collections (the keys of those in pools).

    The search names the alias of each readable collection that has an index of its own,
    and the pools holding the others (a few names, however many collections: a URL
    listing thousands of aliases would be too long), never a pattern. The filter keeps
    each collection to the records the caller may read of it, and a pool to the readable
    collections' documents: what the search counts (hits, aggregations) comes from those
    alone. Hits of a pool are told apart by their collection (``search/pooled.py``).
    """
    plugin = request.registry.elasticsearch
    physical, in_pools = plugin.searcher.bucket_indices(bucket_id)
    names, clauses, collections = set(), [], {}
    for collection_id, shared_ids in sorted(readable.items()):
        alias = plugin.index.locator.alias(bucket_id, collection_id)
        if alias in in_pools:
            pool, key = in_pools[alias]
            names.add(pool)
            collections[alias] = collection_id
            clause = {"term": {COLLECTION_FIELD: key}}
            where = Placement(bucket_id, collection_id, alias, pool)
        elif alias in physical:
            names.add(alias)
            in_collection = []
            for name in physical[alias]:
                collections[name] = collection_id
                in_collection.append({"term": {"_index": name}})
            clause = {"bool": {"should": in_collection, "minimum_should_match": 1}}
            where = None
        else:
            continue
        if shared_ids is not None:
            readable_ids = filters.permission_filter(shared_ids, where)
            clause = {"bool": {"filter": [clause, readable_ids]}}
        clauses.append(clause)
    permission = {"bool": {"should": clauses, "minimum_should_match": 1}}
    keys = [key for alias, (_, key) in in_pools.items() if alias in collections]
    return sorted(names), permission, collections, keys


def _bucket_fields(request, aliases, hidden):
    """Every field mapped in the readable collections' indices, less the hidden ones."""
    names = set()
    for mapping in request.registry.elasticsearch.index.known.mappings(aliases):
        described = facets.describe_fields(flatten_field_types(mapping), hidden=set(hidden))
        names.update(f["name"] for f in described)
    return sorted(names) or ["id"]


def _nothing_found():
    """What the engine answers when a search reaches no document, for no index at all."""
    return {
        "took": 0,
        "timed_out": False,
        "_shards": {"total": 0, "successful": 0, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": 0, "relation": "eq"}, "max_score": None, "hits": []},
    }


def _readable_or_forbidden(request, bucket_id):
    if not KINTO_ID.match(bucket_id):
        # As for a bucket that does not exist: Kinto's forbidden view answers 401 to
        # anonymous users, 403 to others.
        raise HTTPForbidden()
    readable, hidden = readable_collections(request, bucket_id)
    if not readable:
        raise HTTPForbidden()
    return readable, hidden


def run_bucket_search(request, body, readable, built=False):
    bucket_id = request.matchdict["bucket_id"]
    readable, hidden = readable
    plugin = request.registry.elasticsearch
    try:
        # Collections the caller may not read are not searched, but their records share
        # nothing with the readable ones but the bucket: as for a partial reader, nothing
        # that reads index-wide statistics is allowed.
        aliases, permission, collections, keys = _bucket_filter(request, bucket_id, readable)
        # The ids a body names are each collection's: namespaced in the pools.
        where = pooled.BucketIds(keys) if keys else None
        body = _prepared(body, request, True, hidden, built, where)
        if not aliases:
            return _nothing_found()
        body = filters.with_filters(body, [filters.RECORDS, permission])
        with metrics.timed(request.registry, metrics.SEARCH_SECONDS):
            response = plugin.searcher.search_indices(aliases, body)
    except EngineRequestError as exc:
        raise _refused(exc) from None
    except EngineUnavailable as exc:
        raise _unavailable(exc) from None
    pooled.restore(response, plugin.index.prefix)
    for hit in response.get("hits", {}).get("hits", []):
        hit["_collection"] = collections.get(hit.get("_index"))
    return hits.as_records(response)


@bucket_search.post(permission=NO_PERMISSION_REQUIRED, **openapi.BUCKET_SEARCH_POST)
def post_bucket_search(request):
    readable = _readable_or_forbidden(request, request.matchdict["bucket_id"])
    return run_bucket_search(request, _json_body(request), readable)


@bucket_search.get(permission=NO_PERMISSION_REQUIRED, **openapi.BUCKET_SEARCH_GET)
def get_bucket_search(request):
    bucket_id = request.matchdict["bucket_id"]
    readable, hidden = _readable_or_forbidden(request, bucket_id)
    plugin = request.registry.elasticsearch
    try:
        aliases, _, _, _ = _bucket_filter(request, bucket_id, readable)
    except EngineUnavailable as exc:
        raise _unavailable(exc) from None

    def load_types(refresh):
        # One set of types for every index: where collections disagree, the first wins.
        types = {}
        try:
            for mapping in plugin.index.known.mappings(aliases):
                for field, kind in flatten_field_types(mapping).items():
                    types.setdefault(field, kind)
        except EngineUnavailable as exc:
            raise _unavailable(exc) from None
        return types, True

    search = translate_querystring(
        request, load_types, hidden, lambda: _bucket_fields(request, aliases, hidden)
    )
    response = run_bucket_search(request, search.body, (readable, hidden), built=True)
    return paginated(request, search, response)
