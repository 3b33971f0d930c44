"""The one place where the plugin adds its own filters to a search body.

Every search the plugin sends goes through :func:`with_filters`: the collection's records
(not its tombstones, and in a pool not another collection's documents:
``Placement.record_filters``) and the permission filter. The filters wrap the query itself,
so hits, totals, aggregations, highlights and inner hits all see only what they match
(``post_filter`` would leave aggregations out).
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


def collection_filters(readable_ids, where):
    """The plugin's filters of a search of one collection at ``where`` (its placement): its
    records, not its tombstones (in a pool, its term: ``Placement.record_filters``), and
    those of ``readable_ids`` (None: all)."""
    return [*where.record_filters(), permission_filter(readable_ids, where)]


def with_filters(body, filters):
    """``body`` with its query restricted by every filter of ``filters`` (None: no filter)."""
    filters = [f for f in filters if f is not None]
    if not filters:
        return body
    query = body.get("query", {"match_all": {}})
    return {**body, "query": {"bool": {"must": [query], "filter": filters}}}
