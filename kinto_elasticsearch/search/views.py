"""The search services: collection search, facets and bucket search.

Each view resolves its search once (``search/resolved.py``: the collection or the bucket's
readable collections, permissions, hidden fields, placement) and hands it the body: a
user's JSON for POST, Kinto's querystring translated for GET.
"""

from urllib.parse import urlencode

from kinto.core import Service
from kinto.core.authorization import DYNAMIC
from pyramid.security import NO_PERMISSION_REQUIRED

from kinto_elasticsearch import errors, metrics
from kinto_elasticsearch.client import EngineRequestError, EngineUnavailable
from kinto_elasticsearch.index.mapping import flatten_field_types
from kinto_elasticsearch.search import (
    access,
    facets,
    jsonbody,
    openapi,
    querystring,
    ranking,
)
from kinto_elasticsearch.search.resolved import (
    BucketSearch,
    CollectionSearch,
    max_result_size,
    query_limits,
    refused,
    unavailable,
)

collection_search = Service(
    name="collection-search",
    description="Search the records of a collection",
    path="/buckets/{bucket_id}/collections/{collection_id}/search",
    factory=access.RecordsReadContext,
)


collection_facets = Service(
    name="collection-search-facets",
    description="The fields of a collection a client can filter and sort on, with values",
    path="/buckets/{bucket_id}/collections/{collection_id}/search/facets",
    factory=access.RecordsReadContext,
)


bucket_search = Service(
    name="bucket-search",
    description="Search the records of every collection of a bucket the caller may read",
    path="/buckets/{bucket_id}/search",
)


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


class _RecordingTypes(dict):
    """Field types that note the fields looked up but unknown to them."""

    def __init__(self, types):
        super().__init__(types)
        self.unknown = set()

    def get(self, key, default=None):
        if key not in self:
            self.unknown.add(key)
        return super().get(key, default)


def translate_querystring(request, load_types, hidden, readable_fields, scoped=False):
    """Kinto's querystring as a search; with a ``q``, a search box (``search.ranking``),
    kept from reaching hidden fields. ``scoped``: the types are the fields a pooled
    collection's records hold, which ``q`` searches instead of every field of the pool."""
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
    own = None
    if scoped:
        own = [n for n, kind in sorted(types.items()) if not n.startswith("_")]
        own = [n for n in own if types[n] not in facets.CONTAINERS]
    return box.apply(search, types, hidden, readable_fields() if hidden else None, own)


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


def _querystring_search(request, search):
    """Kinto's querystring, as ``GET .../records`` takes it, run as ``search``."""
    try:
        scoped = search.scoped
    except EngineUnavailable as exc:
        raise unavailable(exc) from None
    built = translate_querystring(
        request, search.field_types, search.hidden, search.readable_fields, scoped
    )
    return paginated(request, built, search.run(built.body, built=True))


@collection_search.post(permission=DYNAMIC, **openapi.COLLECTION_SEARCH_POST)
def post_search(request):
    return CollectionSearch(request).run(_json_body(request))


@collection_search.get(permission=DYNAMIC, **openapi.COLLECTION_SEARCH_GET)
def get_search(request):
    return _querystring_search(request, CollectionSearch(request))


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
    search = CollectionSearch(request)
    hidden = set(search.hidden)
    limit = _values_limit(request)
    wanted = {f for f in request.GET.get("fields", "").split(",") if f}
    try:
        described = facets.describe_fields(flatten_field_types(search.mapping()), hidden=hidden)
        if wanted:
            described = [f for f in described if f["name"] in wanted]

        def run(fields, values_limit):
            # The plugin's own body: only the timeout and the plugin's filters to add.
            body = {
                **facets.facets_body(fields, values_limit),
                "timeout": query_limits(request).timeout,
            }
            return search.send(body)

        # One search, timed as one, whatever the requests it takes.
        with metrics.timed(request.registry, metrics.SEARCH_SECONDS):
            if search.where.shared and limit:
                # A pool's mapping is every tenant's (up to its field budget): values only
                # for the fields this collection's readable records hold, asked first.
                response = run(described, 0)
                described = facets.present_fields(described, response)
                if described:
                    response = run(described, limit)
            else:
                response = run(described, limit)
    except EngineRequestError as exc:
        raise refused(exc, built=True, shared=search.where.shared) from None
    except EngineUnavailable as exc:
        raise unavailable(exc) from None
    return facets.facets_response(described, response, hidden, wanted)


@bucket_search.post(permission=NO_PERMISSION_REQUIRED, **openapi.BUCKET_SEARCH_POST)
def post_bucket_search(request):
    return BucketSearch(request).run(_json_body(request))


@bucket_search.get(permission=NO_PERMISSION_REQUIRED, **openapi.BUCKET_SEARCH_GET)
def get_bucket_search(request):
    return _querystring_search(request, BucketSearch(request))
