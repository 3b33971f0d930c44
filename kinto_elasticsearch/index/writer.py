"""Writing a collection's records and tombstones to the index, whatever the engine
refuses: the one place documents reach the engine."""

import logging

from kinto_elasticsearch.client import EngineNotFound
from kinto_elasticsearch.index import documents
from kinto_elasticsearch.index.budget import without_new_fields
from kinto_elasticsearch.index.bulk import BulkReport, is_minimal
from kinto_elasticsearch.index.placement import MAX_ID_BYTES, id_fits

logger = logging.getLogger(__name__)

# Bulk requests for one write, refused documents included: the first, one with the
# mapping read again, a few dropping the fields the engine names, and the minimal form.
MAX_ROUNDS = 6


def tombstone(obj):
    return documents.Document(obj["id"], obj["last_modified"], documents.tombstone_document(obj))


def _reduce(document, record, metadata, known, reason, attempt):
    """The next form of a refused document: rebuilt against the mapping read afresh
    (first retry), less the field the engine names; the minimal form when that changes
    nothing."""
    candidate = documents.build(record, metadata, known) if attempt == 1 else document
    field_name = documents.refused_field(reason)
    if field_name:
        candidate = documents.reduced(candidate, [field_name])
    if candidate.source == document.source or attempt == MAX_ROUNDS - 1:
        return documents.minimal(candidate)
    return candidate


class Writer:
    def __init__(self, engine, locator, known, budget, bulk):
        self.engine = engine
        self.locator = locator
        self.known = known
        self.budget = budget
        self.bulk = bulk

    def write(
        self,
        bucket_id,
        collection_id,
        records=(),
        tombstones=(),
        metadata=None,
        ensure_index=None,
        refresh=None,
        same_version=False,
    ):
        """Index ``records`` and the ``tombstones`` of deleted ones in one bulk request.

        Records become documents (``index/documents.py``) with their collection's
        ``metadata``. Every write carries the record's ``last_modified`` as an external
        version, so the index never goes back to an older state, whatever the order of
        writes; ``same_version`` lets a document replace one of the same version (repairs
        of partial documents).

        A delete is indexed as a tombstone document (see :func:`tombstone_document`)
        rather than sent as a bulk delete: the engines forget the version of a deleted
        document after ``index.gc_deletes`` (60 s), after which an older write, late from
        another process or a catch-up, would bring the record back. A tombstone keeps
        its version for as long as the index lives. ``ensure_index`` is called to create
        the index when the alias is missing. ``refresh``: make the write visible to
        searches before answering (default: the ``force_refresh`` setting).
        """
        report = BulkReport()
        where = self.locator.placement(bucket_id, collection_id, metadata)
        records = self.sendable(records, report, where)
        tombstones = self.sendable(tombstones, report, where)
        if not records and not tombstones:
            return report
        if where.pooled:
            # Its write alias is required: a pool found missing is created again.
            self.budget.pools.ensure_cached(where.pool)
        alias = where.write_target
        send = dict(
            version_type="external_gte" if same_version else "external",
            refresh=refresh,
            where=where,
        )
        missing = self.apply(alias, records, tombstones, metadata, report, **send)
        if missing and ensure_index is not None:
            if where.pooled:
                # Lost with its engine (or deleted by hand) since this process made sure of
                # it, and its mapping with it.
                self.budget.pools.forget(where.pool)
                self.known.forget(where.pool)
            ensure_index()
            send["where"] = self.locator.placement(
                bucket_id, collection_id, metadata, refresh=True
            )
            records = [obj for kind, obj in missing if kind == "index"]
            tombstones = [obj for kind, obj in missing if kind == "delete"]
            if self.apply(alias, records, tombstones, metadata, report, **send):
                raise EngineNotFound(f"index {alias} is missing")
        else:
            report.failed.extend(
                (obj["id"], f"index {alias} does not exist") for _, obj in missing
            )
        if report.misplaced:
            self.replace_misplaced(
                bucket_id, collection_id, records, tombstones, metadata, report, send
            )
        return report

    def replace_misplaced(
        self, bucket_id, collection_id, records, tombstones, metadata, report, send
    ):
        """Write again, where the collection lives now, what went through its alias under
        an older placement (another process promoted it meanwhile, or the alias an older
        version left was still on the pool), and delete the copies written with the old
        ``_id``: a dedicated index must not hold pooled documents."""
        misplaced, report.misplaced = report.misplaced, []
        logger.info(
            "The placement of /buckets/%s/collections/%s changed: writing %s documents again",
            bucket_id,
            collection_id,
            len(misplaced),
        )
        body = [{"delete": {"_index": index, "_id": doc_id}} for index, doc_id, _ in misplaced]
        self.engine.call("bulk", body=body)
        again = {record_id for _, _, record_id in misplaced}
        send["where"] = self.locator.placement(bucket_id, collection_id, refresh=True)
        self.apply(
            send["where"].write_target,
            [r for r in records if r["id"] in again],
            [t for t in tombstones if t["id"] in again],
            metadata,
            report,
            **send,
        )

    def fill(self, index, records, tombstones=(), metadata=None):
        """Index ``records`` (and tombstones) into a physical index being rebuilt."""
        report = BulkReport()
        records = self.sendable(records, report)
        tombstones = self.sendable(tombstones, report)
        self.apply(
            index, records, tombstones, metadata, report, require_alias=False, refresh=False
        )
        return report

    @staticmethod
    def sendable(objects, report, where=None):
        kept = []
        for obj in objects:
            document_id = where.document_id(obj["id"]) if where else obj["id"]
            if not id_fits(document_id):
                report.failed.append((obj["id"], f"id is longer than {MAX_ID_BYTES} bytes"))
            else:
                kept.append(obj)
        return kept

    def apply(
        self,
        index,
        records,
        tombstones,
        metadata,
        report,
        version_type="external",
        require_alias=True,
        refresh=None,
        where=None,
    ):
        """Write documents and deletes; send refused documents again, reduced.

        A document the engine refuses is sent again in the same call: first rebuilt
        against the mapping read afresh, then without each field the engine names, and
        at last in its minimal form (id, version, every field left out), which any index
        takes. Its new version thus always replaces the old one. A record the engine
        refuses even then (its old version deleted) is in ``report.failed``.

        Returns ``(action, record or tombstone)`` for what found no index.
        """
        by_id = {record["id"]: record for record in records}
        # The collections of a pool share its mapping: one cached copy for all of them.
        pooled = where is not None and where.pooled
        mapping_of = where.pool if pooled else index
        known, docs = self.budget.documents(mapping_of, records, metadata, where)
        operations = [("index", d.id, d.version, d) for d in docs]
        operations += [("delete", t["id"], t["last_modified"], tombstone(t)) for t in tombstones]
        send = dict(
            require_alias=require_alias, refresh=refresh, version_type=version_type, where=where
        )
        missing, refused = self.bulk.send(index, operations, report, **send)
        reasons, unindexable = {}, []
        for attempt in range(1, MAX_ROUNDS + 1):
            if not refused:
                break
            if any(documents.is_field_limit(reason) for _, reason in refused) and not pooled:
                self.budget.close(index, "", known)
            if attempt == 1 or any(documents.is_field_limit(reason) for _, reason in refused):
                known, _ = self.known.known_mapping(index, refresh=True)
            retry = []
            for operation, reason in refused:
                document = operation[3]
                if operation[0] == "delete" or is_minimal(document) or attempt == MAX_ROUNDS:
                    report.failed.append((operation[1], reason))
                    if operation[0] == "index":
                        unindexable.append(document)
                    continue
                reasons[document.id] = reason
                reduced = _reduce(document, by_id[document.id], metadata, known, reason, attempt)
                if pooled:
                    # Rebuilt against the pool's mapping read afresh, a document must not
                    # add there the fields its collection was refused (``FieldBudget``).
                    reduced = without_new_fields(reduced, known)
                retry.append(("index", document.id, document.version, reduced))
            missing_now, refused = self.bulk.send(index, retry, report, **send)
            missing += missing_now
        if unindexable:
            # Whatever older version the index holds must not stay searchable: a tombstone
            # of the record's version replaces it (and a repair, at the same version, the
            # tombstone; see ``same_version``).
            deletes = [("delete", d.id, d.version, tombstone(d.source)) for d in unindexable]
            self.bulk.send(index, deletes, BulkReport(), **send)
        report.partial = [
            (record_id, left_out, reason or reasons.get(record_id))
            for record_id, left_out, reason in report.partial
        ]
        by_tombstone = {t["id"]: t for t in tombstones}
        return [
            (op[0], by_id[op[1]] if op[0] == "index" else by_tombstone[op[1]]) for op in missing
        ]
