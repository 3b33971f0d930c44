"""The one place where the plugin adds its own filters to a search body.

Every search the plugin sends goes through :func:`with_filters`: the tombstone exclusion,
the permission filter, and for a collection in a pooled index its collection filter (the
engine applies it too, as the filter of the collection's alias: the plugin's own copy keeps
a search to the collection whatever became of the alias). The filters wrap the query
itself, so hits, totals, aggregations, highlights and inner hits all see only what they
match (``post_filter`` would leave aggregations out).
"""

from kinto_elasticsearch.index.documents import LIVE_DOCUMENTS

MATCH_NOTHING = {"bool": {"must_not": [{"match_all": {}}]}}

# Records only: the index also holds a tombstone per deleted record (its version, so that
# deletes stay deleted, see ``sync``), which no search, count or facet may see.
RECORDS = LIVE_DOCUMENTS


def permission_filter(readable_ids, where=None):
    """Records a caller may read: None when they may read all, else a filter on their ids
    (as the documents' ``_id`` of the collection's placement ``where``)."""
    if readable_ids is None:
        return None
    if where is not None:
        readable_ids = where.document_ids(readable_ids)
    return {"ids": {"values": list(readable_ids)}}


def collection_filter(where):
    """The documents of one collection, in a pooled index (None: its own index)."""
    return where.collection_filter()


def collection_filters(readable_ids, where):
    """The plugin's filters of a search of one collection at ``where`` (its placement): its
    live records, those of ``readable_ids`` (None: all), its documents in a pool."""
    return [RECORDS, permission_filter(readable_ids, where), collection_filter(where)]


def with_filters(body, filters):
    """``body`` with its query restricted by every filter of ``filters`` (None: no filter)."""
    filters = [f for f in filters if f is not None]
    if not filters:
        return body
    query = body.get("query", {"match_all": {}})
    return {**body, "query": {"bool": {"must": [query], "filter": filters}}}
