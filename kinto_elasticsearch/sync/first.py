"""First indexing of many collections at once: pages across collections, one bulk request.

An existing deployment that installs the plugin (or an engine that lost its data) has
every collection to index for the first time. Collection by collection, that is a dozen
requests and queries per collection whatever its size (44 collections of two records a
second). Here the small collections with no checkpoint are read together (one query for
their counts, one per page of records across them) and their documents sent in bulk
requests that mix collections, then their checkpoints saved in one bulk request.

Only the plain case goes this way: a collection the bulk did not take whole (a document
refused, indexed in part, an index missing), or too large for a page, is caught up by the
per-collection path (``changes``), which knows every other case; its documents already
sent are superseded there (external versions), not written twice. PostgreSQL only (the
queries are ``scan``'s); the memory backend keeps the per-collection path.
"""

import logging

from kinto_elasticsearch import metrics
from kinto_elasticsearch.events import notify_report
from kinto_elasticsearch.index import documents
from kinto_elasticsearch.index.bulk import BulkReport
from kinto_elasticsearch.sync.checkpoints import Checkpoint, fingerprint
from kinto_elasticsearch.sync.scan import record_counts, records_of

logger = logging.getLogger(__name__)

# Records per bulk request, and the largest collection indexed this way.
BULK_DOCUMENTS = 2000
SMALL_COLLECTION = 200


def _tombstone(obj):
    return documents.tombstone_document(obj)


class FirstIndexing:
    def __init__(self, catchup):
        self.registry = catchup.registry
        self.storage = catchup.storage
        self.index_side = catchup.index_side
        self.store = catchup.store
        self.overlap_ms = catchup.overlap_ms
        self._clock = catchup.clock

    def run(self, collections, report):
        """Index ``collections`` (``[(bucket, collection, metadata)]``, no index nor
        checkpoint yet); those it could not are returned, for the per-collection path."""
        if not collections:
            return []
        started = int(self._clock() * 1000)
        counts = record_counts(self.storage, [(b, c) for b, c, _ in collections])
        small = [k for k in collections if counts.get(k[:2], 0) <= SMALL_COLLECTION]
        left = [k for k in collections if counts.get(k[:2], 0) > SMALL_COLLECTION]
        groups, group, size = [], [], 0
        for key in small:
            group.append(key)
            size += counts.get(key[:2], 0)
            if size >= BULK_DOCUMENTS:
                groups.append(group)
                group, size = [], 0
        if group:
            groups.append(group)
        for group in groups:
            left += self._group(group, counts, started, report)
        if groups:
            # The checkpoints of every group, visible to searches at once (a multi-get
            # reads them before any refresh).
            self.store.refresh()
        return left

    def _group(self, group, counts, started, report):
        by_key = {(b, c): metadata for b, c, metadata in group}
        for bid, cid, metadata in group:
            # A pooled collection's place is its hash pool: nothing to create but the pool
            # (once per process), no request of its own.
            where = self.index_side.locator.placement(bid, cid, metadata)
            if where.pooled:
                self.index_side.pools.join(where)
            else:
                self.index_side.admin.create_index(bid, cid, metadata)
            report.created.append(self.index_side.locator.alias(bid, cid))
        objects = records_of(self.storage, list(by_key))
        body, items, failed = [], [], set()
        writer = self.index_side.writer
        for key, metadata in by_key.items():
            where = self.index_side.locator.placement(*key, metadata)
            found = objects.get(key, [])
            records = [o for o in found if not o.get("deleted")]
            tombstones = [o for o in found if o.get("deleted")]
            mapping_of = where.pool if where.pooled else where.alias
            _, docs = writer.budget.documents(mapping_of, records, metadata, where)
            if any(d.left_out for d in docs) or where.outgrown_by([r["id"] for r in records]):
                failed.add(key)
                continue
            operations = [("index", d.id, d.version, d.source) for d in docs]
            operations += [("delete", t["id"], t["last_modified"], _tombstone(t))
                           for t in tombstones]  # fmt: skip
            # ``external_gte``: a document of the same version may be there already, sent
            # from other metadata (the sender's, before a change of the collection): the
            # checkpoint saved below says this one's shape, so this one must be what the
            # index holds. A newer version still wins.
            for action, record_id, version, source in operations:
                meta = {"_index": where.write_target, "_id": where.document_id(record_id),
                        "version": version, "version_type": "external_gte",
                        **where.routing}  # fmt: skip
                body += [{"index": meta}, where.source(source)]
                items.append((key, where, action, record_id))
        reports = {key: BulkReport() for key in by_key}
        if body:
            # Every target is an alias (a pool's is its write alias): one missing is not
            # created by the write without its mapping.
            params = {"require_alias": True}
            if writer.bulk.force_refresh:
                params["refresh"] = "true"
            answer = self.index_side.engine.call("bulk", body=body, **params)
            for (key, where, action, record_id), item in zip(items, answer["items"], strict=True):
                result = item["index"]
                status = result.get("status", 500)
                if status < 300 and where.holds(result.get("_index")):
                    (reports[key].indexed if action == "index" else reports[key].deleted).append(
                        record_id
                    )
                elif status != 409:
                    failed.add(key)
                    if where.pooled and status == 404:
                        # Lost with its engine: created again by the next pass.
                        self.index_side.pools.forget(where.pool)
        saved = []
        for key, metadata in by_key.items():
            if key in failed:
                continue
            found = objects.get(key, [])
            checkpoint = Checkpoint(
                *key,
                timestamp=started - self.overlap_ms,
                seen=max([o["last_modified"] for o in found] or [0]),
                objects=counts.get(key, 0),
                metadata=metadata.get("last_modified", 0),
                fingerprint=fingerprint(metadata),
            )
            checkpoint.timestamp = max(checkpoint.timestamp, 0)
            saved.append((self.index_side.locator.alias(*key), checkpoint))
            indexed = len(reports[key].indexed) + len(reports[key].deleted)
            report.indexed += indexed
            report.collections += 1
            metrics.count(self.registry, metrics.CATCHUP_INDEXED, indexed)
            metrics.count(self.registry, metrics.DOCUMENTS_INDEXED, len(reports[key].indexed))
            notify_report(self.registry, *key, reports[key])
        self.store.save_many(saved, refresh=False)
        return [(b, c, m) for (b, c), m in by_key.items() if (b, c) in failed]
