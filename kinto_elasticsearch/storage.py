"""Reading Kinto storage: the URIs of its objects, and pages of them.

Both sides read storage, the write side to index it and the read side to list a bucket's
collections, so this module sits below both. Pages keep memory flat whatever the
collection size. On PostgreSQL, what Kinto's storage API would answer with a write (the
timestamp of an empty collection) or with an aggregate over every record is read with a
query of its own, read-only (:func:`record_timestamps`).
"""

from kinto.core.storage import Filter, Sort
from kinto.core.storage.exceptions import ObjectNotFoundError
from kinto.core.utils import COMPARISON

PAGE_SIZE = 1000


def bucket_uri(bucket_id):
    """The bucket's URI: the ``parent_id`` of its collections in storage."""
    return f"/buckets/{bucket_id}"


def collection_uri(bucket_id, collection_id):
    """The collection's URI: the ``parent_id`` of its records in storage, and the object
    its permissions are granted on."""
    return f"{bucket_uri(bucket_id)}/collections/{collection_id}"


def records_uri(bucket_id, collection_id):
    """The collection's plural records endpoint: what a listing's permissions are checked
    on, and the prefix of its records' URIs."""
    return f"{collection_uri(bucket_id, collection_id)}/records"


def collection_exists(storage, bucket_id, collection_id):
    try:
        storage.get(
            resource_name="collection", parent_id=bucket_uri(bucket_id), object_id=collection_id
        )
    except ObjectNotFoundError:
        return False
    return True


def iter_collections(storage, bucket_id=None, collection_id=None):
    """``(bucket id, collection id, metadata)`` for the collections in scope."""
    if bucket_id is None:
        buckets = [b["id"] for b in _iter_pages(storage, "bucket", "")]
    else:
        buckets = [bucket_id]
    for bid in buckets:
        filters = [Filter("id", collection_id, COMPARISON.EQ)] if collection_id else None
        for collection in _iter_pages(storage, "collection", bucket_uri(bid), filters=filters):
            yield bid, collection["id"], collection


def _iter_pages(storage, resource_name, parent_id, filters=None, include_deleted=False):
    for page in iter_record_pages(storage, resource_name, parent_id, filters, include_deleted):
        yield from page


def iter_record_pages(
    storage, resource_name, parent_id, filters=None, include_deleted=False, page_size=None
):
    """Pages of objects, newest first; ``last_modified`` is unique within a parent."""
    page_size = page_size or PAGE_SIZE
    before = None
    while True:
        rules = [[Filter("last_modified", before, COMPARISON.LT)]] if before else None
        page = storage.list_all(
            resource_name=resource_name,
            parent_id=parent_id,
            filters=filters,
            sorting=[Sort("last_modified", -1)],
            pagination_rules=rules,
            limit=page_size,
            include_deleted=include_deleted,
        )
        if not page:
            return
        yield page
        if len(page) < page_size:
            return
        before = page[-1]["last_modified"]


def iter_changes(storage, parent_id, since=None, page_size=None):
    """Pages of records and tombstones modified after ``since``, oldest first.

    Oldest first, so that a reader may note how far it got after each page.
    """
    page_size = page_size or PAGE_SIZE
    filters = [Filter("last_modified", since, COMPARISON.GT)] if since is not None else None
    after = None
    while True:
        rules = [[Filter("last_modified", after, COMPARISON.GT)]] if after is not None else None
        page = storage.list_all(
            resource_name="record",
            parent_id=parent_id,
            filters=filters,
            sorting=[Sort("last_modified", 1)],
            pagination_rules=rules,
            limit=page_size,
            include_deleted=True,
        )
        if not page:
            return
        yield page
        if len(page) < page_size:
            return
        after = page[-1]["last_modified"]


def supports_scan(storage):
    """Whether ``storage`` can list everything modified since a timestamp in one query."""
    client = getattr(storage, "client", None)
    return (
        client is not None
        and hasattr(client, "connect")
        and type(storage).__module__ == ("kinto.core.storage.postgresql")
    )


_TIMESTAMPS = """
SELECT parent_id, as_epoch(MAX(last_modified)) AS ts
  FROM objects
 WHERE resource_name = 'record' AND parent_id IN :parents
 GROUP BY parent_id
"""


def record_timestamps(storage, keys):
    """``{(bucket id, collection id): highest record timestamp}`` of the collections of
    ``keys`` that have records or tombstones: one query for a slice, read-only."""
    if not keys:
        return {}
    parents = {collection_uri(*key): key for key in keys}
    if not supports_scan(storage):
        return {
            key: storage.resource_timestamp(resource_name="record", parent_id=parent)
            for parent, key in parents.items()
        }
    import sqlalchemy as sa

    query = sa.text(_TIMESTAMPS).bindparams(sa.bindparam("parents", expanding=True))
    with storage.client.connect(readonly=True) as conn:
        rows = conn.execute(query, dict(parents=list(parents))).fetchall()
    return {parents[r.parent_id]: r.ts for r in rows}


_LIVE_COLLECTIONS = """
SELECT id
  FROM objects
 WHERE resource_name = 'collection' AND parent_id = :parent AND NOT deleted AND id IN :ids
"""


def live_collection_ids(storage, bucket_id, ids):
    """Those of the collection ``ids`` of a bucket that storage holds: one query (read-only,
    on PostgreSQL), however many collections the bucket has."""
    ids = sorted(ids)
    if not ids:
        return set()
    if not supports_scan(storage):
        return {cid for cid in ids if collection_exists(storage, bucket_id, cid)}
    import sqlalchemy as sa

    query = sa.text(_LIVE_COLLECTIONS).bindparams(sa.bindparam("ids", expanding=True))
    with storage.client.connect(readonly=True) as conn:
        rows = conn.execute(query, dict(parent=bucket_uri(bucket_id), ids=ids)).fetchall()
    return {row.id for row in rows}
