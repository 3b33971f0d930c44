"""The plugin's endpoints as Kinto's ``/__api__`` (OpenAPI 2.0) describes them.

Kinto's services declare colander schemas for their request and responses, and its vendored
cornice_swagger turns them into the OpenAPI document; these are the plugin's, passed to its
service definitions. They document, they do not validate: the views check what they receive
(the search body through the query guard, the querystring through Kinto's own schema).
"""

import colander
from kinto.core.resource.schema import (
    ErrorResponseSchema,
    FieldList,
    PluralGetQuerySchema,
    QueryField,
)
from kinto.core.schema import Any

TAGS = ["Search"]


def _optional(typ, **kwargs):
    return colander.SchemaNode(typ, missing=colander.drop, **kwargs)


def _object(**kwargs):
    return _optional(colander.Mapping(unknown="preserve"), **kwargs)


def _any(**kwargs):
    return _optional(Any(), **kwargs)


class OpenObject(colander.MappingSchema):
    """An object that may hold more keys than the ones listed."""

    @staticmethod
    def schema_type():
        return colander.Mapping(unknown="preserve")


# Requests.


class SearchBody(OpenObject):
    """Elasticsearch query DSL, run on the collection's records only (see docs/search-api.rst)."""

    query = _object(description="A query, as in the engine's search API.")
    size = _optional(colander.Integer(), description="Hits to return (capped by Kinto's page).")
    from_ = _optional(colander.Integer(), name="from", title="From", description="Hits to skip.")
    sort = _any(description="Sort order, as in the engine's search API.")
    search_after = _any(description="The sort values of the last hit of the page before.")
    aggs = _object(description="Aggregations, under the caller's permission filter.")
    _source = _any(description="Which fields of the records to return.")
    highlight = _object()
    track_total_hits = _any()


class SearchRequest(colander.MappingSchema):
    # No body at all searches everything the caller may read.
    body = SearchBody(missing=colander.drop)


class SearchQuerystring(PluralGetQuerySchema):
    """Kinto's list querystring, as on ``GET .../records``.

    Besides the parameters listed, Kinto's field filters apply (``title=x``, ``min_age=18``,
    ``in_tags=a,b``, ``has_email=true``, ``like_name=*an*``...): OpenAPI 2.0 cannot list
    parameters by pattern.
    """

    q = QueryField(
        colander.String(),
        description="Search box text (query-string syntax); ranks by relevance unless _sort.",
    )
    _q_fields = FieldList(description="The fields q searches, with weights: title^3,body.")
    _q_operator = QueryField(
        colander.String(),
        validator=colander.OneOf(["and", "or"]),
        description="Whether every word of q is required (default: or when ranked).",
    )
    _fuzzy = QueryField(colander.Boolean(), description="Words of q may hold typos.")
    _prefix = QueryField(
        colander.Boolean(), description="The last word of q may be the start of a word."
    )
    _highlight = FieldList(description="Fields whose matched fragments come in highlight.")


class SearchGetRequest(colander.MappingSchema):
    querystring = SearchQuerystring()


class FacetsQuerystring(colander.MappingSchema):
    limit = QueryField(
        colander.Integer(),
        validator=colander.Range(0, 100),
        description="Values listed per field, 0 to 100 (0: fields only). Default 20.",
    )
    fields = FieldList(description="Only these fields, comma separated.")


class FacetsRequest(colander.MappingSchema):
    querystring = FacetsQuerystring()


# Responses.


class Total(colander.MappingSchema):
    value = colander.SchemaNode(colander.Integer())
    relation = colander.SchemaNode(colander.String(), validator=colander.OneOf(["eq", "gte"]))


class Hit(OpenObject):
    _id = colander.SchemaNode(colander.String(), description="The record id.")
    _index = _optional(colander.String())
    _score = _any(description="A number, or null when sorted.")
    _source = _object(description="The record, or the fields asked for.")
    sort = _any(description="The hit's sort values.")
    highlight = _object()


class BucketHit(Hit):
    _collection = colander.SchemaNode(colander.String(), description="The record's collection.")


class HitList(colander.SequenceSchema):
    hit = Hit()


class BucketHitList(colander.SequenceSchema):
    hit = BucketHit()


class Hits(OpenObject):
    total = Total()
    max_score = _any()
    hits = HitList()


class BucketHits(Hits):
    hits = BucketHitList()


class SearchResult(OpenObject):
    """The engine's search response, restricted to what the caller may read."""

    took = _optional(colander.Integer())
    timed_out = _optional(colander.Boolean())
    hits = Hits()
    aggregations = _object()


class BucketSearchResult(SearchResult):
    hits = BucketHits()


class PagingHeaders(colander.MappingSchema):
    total = colander.SchemaNode(
        colander.Integer(), name="Total-Objects", description="Records matching, all pages."
    )
    next_page = colander.SchemaNode(
        colander.String(),
        name="Next-Page",
        missing=colander.drop,
        description="The URL of the next page, when there is one.",
    )


class SearchResponse(colander.MappingSchema):
    body = SearchResult()


class PagedSearchResponse(SearchResponse):
    header = PagingHeaders()


class BucketSearchResponse(colander.MappingSchema):
    body = BucketSearchResult()


class PagedBucketSearchResponse(BucketSearchResponse):
    header = PagingHeaders()


class FacetValue(colander.MappingSchema):
    value = colander.SchemaNode(Any())
    count = colander.SchemaNode(colander.Integer())


class FacetValues(colander.SequenceSchema):
    value = FacetValue()


class Facet(colander.MappingSchema):
    name = colander.SchemaNode(colander.String())
    type = colander.SchemaNode(colander.String(), description="The field's type in the index.")
    sortable = colander.SchemaNode(colander.Boolean())
    values = FacetValues(missing=colander.drop)
    complete = _optional(colander.Boolean(), description="Whether every value is listed.")


class Facets(colander.SequenceSchema):
    field = Facet()


class FacetsResult(colander.MappingSchema):
    total = colander.SchemaNode(colander.Integer())
    fields = Facets()


class FacetsResponse(colander.MappingSchema):
    body = FacetsResult()


def _errors(*statuses):
    descriptions = {
        "400": "The body or querystring is invalid, or the engine refused the query.",
        "401": "The request is missing authentication headers.",
        "403": "The user may not read the collection's records (or any in the bucket).",
        "404": "The bucket or collection does not exist.",
        "503": "The search engine is unreachable or failing; retry after Retry-After.",
        "default": "Unexpected error.",
    }
    return {
        status: ErrorResponseSchema(description=descriptions[status])
        for status in (*statuses, "default")
    }


def _responses(ok, *errors):
    return {"200": ok, **_errors(*errors)}


_ALL_ERRORS = ("400", "401", "403", "404", "503")
# A bucket search answers 403 (401 anonymously) when no collection is readable, also when
# the bucket does not exist: a 404 would reveal that.
_BUCKET_ERRORS = ("400", "401", "403", "503")

COLLECTION_SEARCH_POST = {
    "schema": SearchRequest(),
    "response_schemas": _responses(
        SearchResponse(description="The hits, as the engine answers."), *_ALL_ERRORS
    ),
    "tags": TAGS,
    "operation_id": "search_collection",
}
COLLECTION_SEARCH_GET = {
    "schema": SearchGetRequest(),
    "response_schemas": _responses(
        PagedSearchResponse(description="One page of hits, as GET .../records pages."),
        *_ALL_ERRORS,
    ),
    "tags": TAGS,
    "operation_id": "get_collection_search",
}
COLLECTION_FACETS_GET = {
    "schema": FacetsRequest(),
    "response_schemas": _responses(
        FacetsResponse(description="The collection's fields, with values and counts."),
        *_ALL_ERRORS,
    ),
    "tags": TAGS,
    "operation_id": "get_collection_search_facets",
}
BUCKET_SEARCH_POST = {
    "schema": SearchRequest(),
    "response_schemas": _responses(
        BucketSearchResponse(description="The hits, each with its collection."),
        *_BUCKET_ERRORS,
    ),
    "tags": TAGS,
    "operation_id": "search_bucket",
}
BUCKET_SEARCH_GET = {
    "schema": SearchGetRequest(),
    "response_schemas": _responses(
        PagedBucketSearchResponse(description="One page of hits, each with its collection."),
        *_BUCKET_ERRORS,
    ),
    "tags": TAGS,
    "operation_id": "get_bucket_search",
}
