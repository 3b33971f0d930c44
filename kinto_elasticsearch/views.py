"""The search service and its permission factory."""

import logging
from urllib.parse import urlencode

from kinto.core import Service
from kinto.core.authorization import DYNAMIC, RouteFactory
from kinto.core.utils import instance_uri
from kinto.views import object_exists_or_404
from pyramid.httpexceptions import HTTPForbidden
from pyramid.security import NO_PERMISSION_REQUIRED

from kinto_elasticsearch import errors, facets, fields, maintenance, metrics, query, querystring
from kinto_elasticsearch.engine import EngineNotFound, EngineRequestError, EngineUnavailable
from kinto_elasticsearch.listeners import ensure_index_for
from kinto_elasticsearch.mapping import flatten_field_types
from kinto_elasticsearch.search import ranking

logger = logging.getLogger(__name__)


class RecordsReadContext(RouteFactory):
    """The permissions of ``GET /buckets/{bid}/collections/{cid}/records``.

    Kinto's own factory, configured as the plural records endpoint, so that a search sees
    exactly the records the same user would list: ``shared_ids`` is None with read access
    on the collection (or bucket), else the ids of the records shared with the user.
    """

    def __init__(self, request):
        super().__init__(request)
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
    private = fields.private_fields(collection)
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

MATCH_NOTHING = {"bool": {"must_not": [{"match_all": {}}]}}


def max_result_size(settings):
    """Kinto's own cap on a page of records."""
    caps = [int(settings["storage_max_fetch_size"])]
    if settings.get("paginate_by"):
        caps.append(int(settings["paginate_by"]))
    return min(caps)


def _collection_or_404(request):
    bucket_id = request.matchdict["bucket_id"]
    collection_id = request.matchdict["collection_id"]
    collection = object_exists_or_404(
        request,
        resource_name="collection",
        parent_id=instance_uri(request, "bucket", id=bucket_id),
        object_id=collection_id,
    )
    return bucket_id, collection_id, collection


def _guard_private(body, hidden):
    try:
        fields.check_private_fields(body, hidden)
    except fields.PrivateFieldError as exc:
        raise errors.invalid_body(exc.message, exc.location) from None
    return fields.hide_private_source(body, hidden)


def _json_body(request):
    try:
        body = request.json_body if request.body else {}
    except ValueError as exc:
        raise errors.invalid_body(f"Invalid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise errors.invalid_body("must be a JSON object holding a search query")
    return body


def _with_permissions(body, shared_ids):
    """The body, restricted to the records the user may read."""
    if shared_ids is None:
        return body
    return query.with_filter(body, {"ids": {"values": list(shared_ids)}})


def query_limits(request):
    """The caps of a search body, from the plugin's and Kinto's settings."""
    settings = request.registry.elasticsearch_settings
    return query.QueryLimits(
        max_size=max_result_size(request.registry.settings),
        max_window=settings.max_result_window,
        max_depth=settings.max_query_depth,
        max_aggregations=settings.max_aggregations,
        max_agg_size=settings.max_aggregation_size,
        timeout=f"{round(settings.search_timeout * 1000)}ms",
        allow_scripts=settings.allow_scripts,
    )


def _prepared(body, request, restricted, trusted):
    """The body to send, without its permission filter.

    A user's body goes through the query guard (refused with a 400 that says where, or
    capped). A ``trusted`` body, built by the plugin (from Kinto's querystring, or for
    facets), only gets the server-side timeout: a querystring's ``q`` is still the user's
    and may be costly.
    """
    limits = query_limits(request)
    if trusted:
        return {**body, "timeout": limits.timeout}
    try:
        return query.guard_search(body, limits, restricted=restricted)
    except query.QueryRefused as exc:
        raise errors.invalid_body(exc.message, exc.location) from None


def _unavailable(exc):
    logger.error("Search failed, the engine is unavailable: %s", exc)
    return errors.engine_unavailable()


def _refused(exc):
    return errors.invalid_body(f"The search engine refused the query: {exc.message}")


def run_search(request, body, collection=None, trusted=False):
    """Send ``body`` to the collection's index and answer with the engine's response.

    A user's body goes through the query guard; a ``trusted`` one (built by the plugin
    from Kinto's querystring) only gets the permission filter.
    """
    bucket_id, collection_id, found = _collection_or_404(request)
    collection = collection or found
    body = _guard_private(body, hidden_fields(request, collection))
    shared_ids = request.context.shared_ids
    body = _prepared(body, request, restricted=shared_ids is not None, trusted=trusted)
    body = _with_permissions(body, shared_ids)
    indexer = request.registry.indexer
    try:
        with metrics.timed(request.registry, metrics.SEARCH_SECONDS):
            return indexer.search(
                bucket_id,
                collection_id,
                body,
                ensure_index=ensure_index_for(request, bucket_id, collection_id),
            )
    except EngineRequestError as exc:
        raise _refused(exc) from None
    except EngineUnavailable as exc:
        raise _unavailable(exc) from None


@collection_search.post(permission=DYNAMIC)
def post_search(request):
    return run_search(request, _json_body(request))


def _readable_fields(request, bucket_id, collection_id, hidden):
    def readable():
        try:
            mapping = request.registry.indexer.get_mapping(bucket_id, collection_id)
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
    hits = response.get("hits", {})
    page, token = search.paginate(hits.get("hits", []))
    hits["hits"] = page
    total = hits.get("total", {})
    request.response.headers["Total-Objects"] = str(
        total.get("value", 0) if isinstance(total, dict) else total
    )
    if token:
        params = {**request.GET, "_limit": str(search.limit), "_token": token}
        url = f"{request.application_url}{request.path}?{urlencode(params)}"
        request.response.headers["Next-Page"] = url
    return response


def _collection_types(request, bucket_id, collection_id):
    indexer = request.registry.indexer

    def load(refresh):
        try:
            return indexer.field_types(bucket_id, collection_id, refresh=refresh)
        except EngineNotFound:
            ensure_index_for(request, bucket_id, collection_id)()
            return indexer.field_types(bucket_id, collection_id, refresh=True)
        except EngineUnavailable as exc:
            raise _unavailable(exc) from None

    return load


@collection_search.get(permission=DYNAMIC)
def get_search(request):
    bucket_id, collection_id, collection = _collection_or_404(request)
    hidden = hidden_fields(request, collection)
    readable = _readable_fields(request, bucket_id, collection_id, hidden)
    load_types = _collection_types(request, bucket_id, collection_id)
    search = translate_querystring(request, load_types, hidden, readable)
    response = run_search(request, search.body, collection, trusted=True)
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


@collection_facets.get(permission=DYNAMIC)
def get_facets(request):
    """Fields with their types, and the values of low-cardinality ones with counts.

    ``limit``: values per field (default 20, 0 lists fields only); ``fields``: only these.
    """
    bucket_id, collection_id, collection = _collection_or_404(request)
    hidden = set(hidden_fields(request, collection))
    limit = _values_limit(request)
    wanted = {f for f in request.GET.get("fields", "").split(",") if f}
    indexer = request.registry.indexer
    ensure = ensure_index_for(request, bucket_id, collection_id)
    try:
        try:
            mapping = indexer.get_mapping(bucket_id, collection_id)
        except EngineNotFound:
            ensure()
            mapping = indexer.get_mapping(bucket_id, collection_id)
        described = facets.describe_fields(flatten_field_types(mapping), hidden=hidden)
        if wanted:
            described = [f for f in described if f["name"] in wanted]
        body = _prepared(facets.facets_body(described, limit), request, False, trusted=True)
        body = _with_permissions(body, request.context.shared_ids)
        with metrics.timed(request.registry, metrics.SEARCH_SECONDS):
            response = indexer.search(bucket_id, collection_id, body, ensure_index=ensure)
    except EngineUnavailable as exc:
        raise _unavailable(exc) from None
    return facets.facets_response(described, response)


def readable_collections(request, bucket_id):
    """``({collection id: shared ids}, hidden fields)`` for the bucket's readable collections.

    Private fields of every collection the caller may read but not write are hidden
    from the whole search: one request cannot hide a field in some indices only.

    Each collection is checked by Kinto's own authorization with the context of its
    records endpoint, exactly as ``GET .../records`` would be: shared ids are None for full
    read access, else the ids of the records the caller may read.
    """
    storage = request.registry.storage
    settings = request.registry.elasticsearch_settings
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
    """A filter keeping each collection's index to what the caller may read of it."""
    indexer = request.registry.indexer
    physical = indexer.bucket_indices(bucket_id)
    clauses, collections = [], {}
    for collection_id, shared_ids in sorted(readable.items()):
        for name in physical.get(indexer.alias(bucket_id, collection_id), []):
            collections[name] = collection_id
            in_index = {"term": {"_index": name}}
            if shared_ids is None:
                clauses.append(in_index)
            else:
                ids = {"ids": {"values": list(shared_ids)}}
                clauses.append({"bool": {"filter": [in_index, ids]}})
    if not clauses:
        return MATCH_NOTHING, collections
    return {"bool": {"should": clauses, "minimum_should_match": 1}}, collections


def _bucket_fields(request, hidden):
    """Every field mapped in the bucket's indices, less the hidden ones."""
    indexer = request.registry.indexer
    mappings = indexer.bucket_mappings(request.matchdict["bucket_id"])
    names = set()
    for mapping in mappings:
        described = facets.describe_fields(flatten_field_types(mapping), hidden=set(hidden))
        names.update(f["name"] for f in described)
    return sorted(names) or ["id"]


def run_bucket_search(request, body, readable=None, trusted=False):
    bucket_id = request.matchdict["bucket_id"]
    readable, hidden = readable or readable_collections(request, bucket_id)
    if not readable:
        # Kinto's forbidden view answers 401 to anonymous users, 403 to others.
        raise HTTPForbidden()
    indexer = request.registry.indexer
    try:
        permission_filter, collections = _bucket_filter(request, bucket_id, readable)
        body = _guard_private(body, hidden)
        # The index pattern reaches collections the caller may not read: nothing that
        # reads index-wide statistics is allowed, whatever their rights elsewhere.
        body = _prepared(body, request, restricted=True, trusted=trusted)
        body = query.with_filter(body, permission_filter)
        with metrics.timed(request.registry, metrics.SEARCH_SECONDS):
            response = indexer.search_bucket(bucket_id, body)
    except EngineRequestError as exc:
        raise _refused(exc) from None
    except EngineUnavailable as exc:
        raise _unavailable(exc) from None
    for hit in response.get("hits", {}).get("hits", []):
        hit["_collection"] = collections.get(hit.get("_index"))
    return response


@bucket_search.post(permission=NO_PERMISSION_REQUIRED)
def post_bucket_search(request):
    return run_bucket_search(request, _json_body(request))


@bucket_search.get(permission=NO_PERMISSION_REQUIRED)
def get_bucket_search(request):
    bucket_id = request.matchdict["bucket_id"]
    readable, hidden = readable_collections(request, bucket_id)
    indexer = request.registry.indexer

    def load_types(refresh):
        # One set of types for every index: where collections disagree, the first wins.
        types = {}
        try:
            for mapping in indexer.bucket_mappings(bucket_id):
                for field, kind in flatten_field_types(mapping).items():
                    types.setdefault(field, kind)
        except EngineUnavailable as exc:
            raise _unavailable(exc) from None
        return types, True

    search = translate_querystring(
        request, load_types, hidden, lambda: _bucket_fields(request, hidden)
    )
    response = run_bucket_search(request, search.body, readable=(readable, hidden), trusted=True)
    return paginated(request, search, response)
