"""What changed in storage since a global position: one query over all objects.

On PostgreSQL, records, collections and buckets are rows of one ``objects`` table, which
has an expression index on ``as_epoch(last_modified)`` (``idx_objects_last_modified_epoch``):
"every object modified after T, tombstones included" is a range scan on it whose cost is
the number of changes, not the number of collections (``all_resources_timestamps`` would
aggregate over every record). The scan is paged by ``(timestamp, parent, kind, id)``, since
timestamps are unique within a parent only, and reads through the storage's own client,
read-only.

A deleted collection or bucket leaves only its own tombstone: its children are purged
without one (Kinto's views delete them ``with_deleted=False``), so the scan sees the
container go, not its content.

Other backends (memory: tests and the quick start, one process) have no such index:
:func:`~kinto_elasticsearch.storage.supports_scan` says so, and the catch-up keeps its full
per-collection pass there.

The slices of the reconciliation (``incremental``) walk collections in ``(bucket,
collection)`` order from a cursor: :func:`collections_after`.
"""

import json

from kinto_elasticsearch.storage import supports_scan

SCAN_PAGE_SIZE = 1000

_SCAN = """
SELECT resource_name, parent_id, id, as_epoch(last_modified) AS ts, deleted,
       CASE WHEN resource_name = 'record' AND NOT :with_records THEN NULL
            ELSE data END AS data
  FROM objects
 WHERE as_epoch(last_modified) >= :after_ts
   AND (as_epoch(last_modified) > :after_ts
        OR (parent_id, resource_name, id) > (:after_parent, :after_kind, :after_id))
   AND resource_name IN ('record', 'collection', 'bucket')
 ORDER BY as_epoch(last_modified), parent_id, resource_name, id
 LIMIT :limit
"""

_COLLECTIONS = """
SELECT parent_id, id, data, as_epoch(last_modified) AS ts
  FROM objects
 WHERE resource_name = 'collection' AND NOT deleted
   AND (parent_id, id) > (:after_parent, :after_id)
 ORDER BY parent_id, id
 LIMIT :limit
"""


def _rows(storage, query, params):
    import sqlalchemy as sa

    with storage.client.connect(readonly=True) as conn:
        return conn.execute(sa.text(query), params).fetchall()


def _data(value):
    if value is None or isinstance(value, dict):
        return value or {}
    return json.loads(value)


class Change:
    """One object of the scan: ``kind`` is ``record``, ``collection`` or ``bucket``."""

    __slots__ = ("kind", "parent_id", "id", "last_modified", "deleted", "data")

    def __init__(self, kind, parent_id, object_id, last_modified, deleted, data):
        self.kind = kind
        self.parent_id = parent_id
        self.id = object_id
        self.last_modified = last_modified
        self.deleted = deleted
        self.data = data

    def as_object(self):
        """The object as Kinto's storage lists it (a tombstone, or the data)."""
        if self.deleted:
            return {"id": self.id, "last_modified": self.last_modified, "deleted": True}
        return {**self.data, "id": self.id, "last_modified": self.last_modified}


def iter_changed(storage, since, with_records=False, page_size=SCAN_PAGE_SIZE):
    """Pages of :class:`Change` modified after ``since``, oldest first, tombstones
    included; a record's data only ``with_records`` (first indexing reads it from here)."""
    after = (since, "", "", "")
    while True:
        rows = _rows(
            storage,
            _SCAN,
            dict(
                after_ts=after[0], after_parent=after[1], after_kind=after[2],
                after_id=after[3], limit=page_size, with_records=with_records,
            ),
        )  # fmt: skip
        if not rows:
            return
        page = [
            Change(r.resource_name, r.parent_id, r.id, r.ts, r.deleted, _data(r.data))
            for r in rows
        ]
        yield page
        if len(rows) < page_size:
            return
        last = page[-1]
        after = (last.last_modified, last.parent_id, last.kind, last.id)


def collections_after(storage, cursor, limit):
    """Up to ``limit`` ``(bucket id, collection id, metadata)`` after ``cursor`` (a
    ``(bucket id, collection id)``, or None from the start), in that order."""
    after_parent, after_id = ("", "") if cursor is None else (f"/buckets/{cursor[0]}", cursor[1])
    if supports_scan(storage):
        rows = _rows(
            storage,
            _COLLECTIONS,
            dict(after_parent=after_parent, after_id=after_id, limit=limit),
        )
        found = [(r.parent_id, r.id, {**_data(r.data), "last_modified": r.ts}) for r in rows]
    else:
        from kinto_elasticsearch.storage import iter_collections

        found = sorted(
            (f"/buckets/{bid}", cid, metadata)
            for bid, cid, metadata in iter_collections(storage)
            if (f"/buckets/{bid}", cid) > (after_parent, after_id)
        )[:limit]
    return [(parent.split("/", 2)[2], cid, {**data, "id": cid}) for parent, cid, data in found]


_LIVE_UP_TO = """
SELECT o.parent_id, COUNT(*) AS live
  FROM objects o
  JOIN (SELECT unnest(CAST(:parents AS TEXT[])) AS parent_id,
               unnest(CAST(:timestamps AS BIGINT[])) AS ts) AS t
    ON o.parent_id = t.parent_id
 WHERE o.resource_name = 'record' AND NOT o.deleted AND as_epoch(o.last_modified) <= t.ts
 GROUP BY o.parent_id
"""


def live_counts_up_to(storage, up_to):
    """``{(bucket id, collection id): records}`` of live records modified up to each
    collection's timestamp in ``up_to`` (``{key: timestamp}``): one query for a slice,
    read-only, as ``count_all`` with a ``last_modified`` maximum counts for one."""
    from kinto.core.storage import Filter
    from kinto.core.utils import COMPARISON

    from kinto_elasticsearch.storage import collection_uri

    if not up_to:
        return {}
    parents = {collection_uri(*key): key for key in up_to}
    if not supports_scan(storage):
        return {
            key: storage.count_all(
                resource_name="record",
                parent_id=parent,
                filters=[Filter("last_modified", up_to[key], COMPARISON.MAX)],
            )
            for parent, key in parents.items()
        }
    import sqlalchemy as sa

    names = list(parents)
    params = {"parents": names, "timestamps": [int(up_to[parents[p]]) for p in names]}
    with storage.client.connect(readonly=True) as conn:
        rows = conn.execute(sa.text(_LIVE_UP_TO), params).fetchall()
    counts = dict.fromkeys(up_to, 0)
    counts.update({parents[r.parent_id]: r.live for r in rows})
    return counts


_COUNTS = """
SELECT parent_id, COUNT(*) AS objects
  FROM objects
 WHERE resource_name = 'record' AND parent_id IN :parents
 GROUP BY parent_id
"""

_RECORDS = """
SELECT parent_id, id, as_epoch(last_modified) AS ts, deleted, data
  FROM objects
 WHERE resource_name = 'record' AND parent_id IN :parents
"""


def _by_parents(storage, query, keys):
    import sqlalchemy as sa

    from kinto_elasticsearch.storage import collection_uri

    parents = {collection_uri(*key): key for key in keys}
    if not parents:
        return parents, []
    query = sa.text(query).bindparams(sa.bindparam("parents", expanding=True))
    with storage.client.connect(readonly=True) as conn:
        return parents, conn.execute(query, dict(parents=list(parents))).fetchall()


def record_counts(storage, keys):
    """``{(bucket id, collection id): records and tombstones}`` of those that have any."""
    parents, rows = _by_parents(storage, _COUNTS, keys)
    return {parents[r.parent_id]: r.objects for r in rows}


def records_of(storage, keys):
    """``{(bucket id, collection id): [objects]}``: the records and tombstones of a few
    small collections, in one query (``first``)."""
    parents, rows = _by_parents(storage, _RECORDS, keys)
    found = {}
    for r in rows:
        change = Change("record", r.parent_id, r.id, r.ts, r.deleted, _data(r.data))
        found.setdefault(parents[r.parent_id], []).append(change.as_object())
    return found
