"""One bulk request for the changes of several collections (the sender's group commit),
with the per-collection path of ``index/writer.py`` for what it cannot settle."""

from kinto_elasticsearch.client import EngineError
from kinto_elasticsearch.index.bulk import BulkReport
from kinto_elasticsearch.index.writer import tombstone


def write_many(writer, changes, refresh=None):
    """Write the changes of several collections in one bulk request, as ``writer``
    (``index/writer.py``) writes one collection's.

    ``changes``: ``[(bucket_id, collection_id, records, tombstones, metadata,
    ensure_index)]``; returns their ``BulkReport`` objects, in order. What the shared
    request cannot settle for a collection (a missing index, a refused document) is
    written again through ``Writer.write`` for that collection alone, and what a
    placement changed meanwhile is written where the collection lives: when every
    document is taken, as almost always, many collections cost one request.
    """
    prepared, groups = [], []
    for bucket_id, collection_id, records, tombstones, metadata, ensure_index in changes:
        report = BulkReport()
        where = writer.locator.placement(bucket_id, collection_id, metadata)
        records = writer.sendable(records, report, where)
        tombstones = writer.sendable(tombstones, report, where)
        if where.pooled and (records or tombstones):
            writer.budget.pools.ensure_cached(where.pool)
        mapping_of = where.pool if where.pooled else where.write_target
        _, docs = writer.budget.documents(mapping_of, records, metadata, where)
        operations = [("index", d.id, d.version, d) for d in docs]
        operations += [("delete", t["id"], t["last_modified"], tombstone(t))
                       for t in tombstones]  # fmt: skip
        prepared.append((bucket_id, collection_id, records, tombstones, metadata,
                         ensure_index, where))  # fmt: skip
        groups.append((where.write_target, operations, where, report))
    outcomes = writer.bulk.send_many(groups, refresh=refresh)
    reports = []
    for change, group, (missing, refused) in zip(prepared, groups, outcomes, strict=True):
        bucket_id, collection_id, records, tombstones, metadata, ensure_index, where = change
        report = group[3]
        again = {op[1] for op in missing} | {operation[1] for operation, _ in refused}
        try:
            if again:
                retried = writer.write(
                    bucket_id,
                    collection_id,
                    records=[r for r in records if r["id"] in again],
                    tombstones=[t for t in tombstones if t["id"] in again],
                    metadata=metadata,
                    ensure_index=ensure_index,
                    refresh=refresh,
                )
                for name in ("indexed", "deleted", "partial", "superseded", "failed"):
                    getattr(report, name).extend(getattr(retried, name))
            if report.misplaced:
                send = dict(version_type="external", refresh=refresh, where=where)
                writer.replace_misplaced(
                    bucket_id, collection_id, records, tombstones, metadata, report, send
                )
        except EngineError as exc:
            # This collection's alone: the others' documents were taken.
            report.error = exc
        reports.append(report)
    return reports
