"""Rebuilding indices from storage, and proving they match it.

Both stream storage a page at a time, so memory stays flat whatever the collection size.

``verify`` streams each side a page at a time and looks every page up on the other side
in one request, rather than merge-joining two id-sorted streams. Memory is bounded the
same way, and correctness does not rest on a storage backend sorting ids exactly as the
engine sorts keywords (Kinto's PostgreSQL schema uses the C collation, which agrees, but
the storage API promises no order and a disagreement would silently misreport).
"""

import logging
import queue
import threading
import time
from dataclasses import dataclass, field

import transaction
from kinto.core.storage import Filter, Sort
from kinto.core.storage.exceptions import ObjectNotFoundError
from kinto.core.utils import COMPARISON

from kinto_elasticsearch.index import naming
from kinto_elasticsearch.indexer import MAX_ID_BYTES

logger = logging.getLogger(__name__)

PAGE_SIZE = 1000
# A physical index without alias younger than this may be a rebuild in progress.
DETACHED_GRACE_SECONDS = 3600
EXAMPLES = 5


def _records_uri(bucket_id, collection_id):
    return f"/buckets/{bucket_id}/collections/{collection_id}"


def iter_collections(storage, bucket_id=None, collection_id=None):
    """``(bucket id, collection id, metadata)`` for the collections in scope."""
    if bucket_id is None:
        buckets = [b["id"] for b in _iter_pages(storage, "bucket", "")]
    else:
        buckets = [bucket_id]
    for bid in buckets:
        filters = [Filter("id", collection_id, COMPARISON.EQ)] if collection_id else None
        for collection in _iter_pages(storage, "collection", f"/buckets/{bid}", filters=filters):
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


def pipelined(items, send):
    """``send`` each item in a thread of its own while the next one is being produced.

    A rebuild spends most of its time waiting for the engine to acknowledge a bulk request;
    reading the next page from storage meanwhile takes that time off the total. The hand-over
    queue holds one item, so at most three are alive at once (one being sent, one waiting,
    one being produced): memory stays bounded whatever the collection size. The first
    error, on either side, stops both and is raised here.
    """
    handover = queue.Queue(maxsize=1)
    failure = []
    done = object()

    def sender():
        while (item := handover.get()) is not done:
            if failure:
                continue  # Drain without sending: the producer is about to stop.
            try:
                send(item)
            except BaseException as exc:
                failure.append(exc)

    thread = threading.Thread(target=sender, name="kinto-elasticsearch-sender", daemon=True)
    thread.start()
    try:
        for item in items:
            if failure:
                break
            handover.put(item)
    except BaseException as exc:
        failure.append(exc)
        raise
    finally:
        handover.put(done)
        thread.join()
    if failure:
        raise failure[0]


@dataclass
class ReindexResult:
    bucket_id: str
    collection_id: str
    index: str = ""
    indexed: int = 0
    replayed: int = 0
    failed: list = field(default_factory=list)
    # (record id, paths left out, reason) of the records indexed in part.
    partial: list = field(default_factory=list)


def reindex_collection(storage, indexer, bucket_id, collection_id, metadata, progress=None):
    """Rebuild a collection's index into a new physical index, then swap the alias.

    Search keeps answering from the old index until the swap. Writes made meanwhile go to
    the old index through the alias; everything modified since the rebuild started is
    replayed after the swap, and versions make the replay safe.
    """
    parent_id = _records_uri(bucket_id, collection_id)
    result = ReindexResult(bucket_id, collection_id)
    since = storage.resource_timestamp(resource_name="record", parent_id=parent_id)
    result.index = indexer.create_physical_index(bucket_id, collection_id, metadata)

    def send(records):
        report = indexer.fill(result.index, records, metadata)
        result.indexed += len(records) - len(report.failed)
        result.failed.extend(report.failed)
        result.partial.extend(report.partial)
        if progress:
            progress(len(records))

    pages = iter_record_pages(storage, "record", parent_id)
    try:
        pipelined(pages, send)
    except Exception:
        indexer.delete_indices([result.index])
        raise
    indexer.swap_alias(bucket_id, collection_id, result.index)
    since_filter = [Filter("last_modified", since, COMPARISON.GT)]
    for page in iter_record_pages(storage, "record", parent_id, since_filter, True):
        records = [r for r in page if not r.get("deleted")]
        tombstones = [r for r in page if r.get("deleted")]
        report = indexer.write(
            bucket_id, collection_id, records=records, tombstones=tombstones, metadata=metadata
        )
        result.replayed += len(page)
        result.failed.extend(report.failed)
    return result


@dataclass
class Difference:
    """One kind of difference in one collection: a count and the first few ids."""

    count: int = 0
    examples: list = field(default_factory=list)

    def add(self, ids):
        self.count += len(ids)
        self.examples.extend(ids[: EXAMPLES - len(self.examples)])


@dataclass
class CollectionReport:
    bucket_id: str
    collection_id: str
    records: int = 0
    documents: int = 0
    no_index: bool = False
    missing: Difference = field(default_factory=Difference)
    outdated: Difference = field(default_factory=Difference)
    extra: Difference = field(default_factory=Difference)
    # Not differences: records indexed at their version with some paths left out
    # (examples are ``(id, paths)``), and records no index can take (``(id, reason)``).
    partial: Difference = field(default_factory=Difference)
    unindexable: Difference = field(default_factory=Difference)
    repaired: int = 0

    @property
    def uri(self):
        return _records_uri(self.bucket_id, self.collection_id)

    @property
    def differs(self):
        return self.no_index or any(d.count for d in (self.missing, self.outdated, self.extra))


def verify_collection(storage, indexer, bucket_id, collection_id, metadata, repair=False):
    report = CollectionReport(bucket_id, collection_id)
    parent_id = _records_uri(bucket_id, collection_id)
    if not indexer.alias_exists(bucket_id, collection_id):
        report.no_index = True
        report.records = storage.count_all(resource_name="record", parent_id=parent_id)
        if repair:
            result = reindex_collection(storage, indexer, bucket_id, collection_id, metadata)
            report.repaired = result.indexed + result.replayed
        return report

    # Storage to index: records missing from the index, indexed at an older version, or
    # at their version with some paths left out.
    for page in iter_record_pages(storage, "record", parent_id):
        report.records += len(page)
        versions = indexer.versions(bucket_id, collection_id, [r["id"] for r in page])
        absent = [r for r in page if r["id"] not in versions]
        too_long = [r for r in absent if len(r["id"].encode()) > MAX_ID_BYTES]
        missing = [r for r in absent if r not in too_long]
        outdated = [
            r for r in page if r["id"] in versions and versions[r["id"]][0] < r["last_modified"]
        ]
        partial = [
            r
            for r in page
            if r["id"] in versions
            and versions[r["id"]][0] >= r["last_modified"]
            and versions[r["id"]][1]
        ]
        report.missing.add([r["id"] for r in missing])
        report.outdated.add([r["id"] for r in outdated])
        report.partial.add([(r["id"], versions[r["id"]][1]) for r in partial])
        report.unindexable.add(
            [(r["id"], f"id is longer than {MAX_ID_BYTES} bytes") for r in too_long]
        )
        if repair and (missing or outdated):
            written = indexer.write(
                bucket_id, collection_id, records=missing + outdated, metadata=metadata
            )
            report.repaired += len(written.indexed)
        if repair and partial:
            # The same version again: the best form the index takes now (after a mapping
            # change, or a rebuild, it may hold more of the record).
            indexer.write(
                bucket_id, collection_id, records=partial, metadata=metadata, same_version=True
            )

    # Index to storage: documents of records that storage no longer has.
    for documents in indexer.iter_documents(bucket_id, collection_id):
        report.documents += len(documents)
        ids = list(documents)
        present = {
            r["id"]
            for r in storage.list_all(
                resource_name="record",
                parent_id=parent_id,
                filters=[Filter("id", ids, COMPARISON.IN)],
                limit=len(ids),
            )
        }
        extra = [i for i in ids if i not in present]
        report.extra.add(extra)
        if repair and extra:
            # One version above the indexed one: the delete wins over what is there.
            tombstones = [{"id": i, "last_modified": documents[i] + 1} for i in extra]
            written = indexer.write(bucket_id, collection_id, tombstones=tombstones)
            report.repaired += len(written.deleted)
    return report


@dataclass
class IndicesReport:
    # Indices under the prefix that belong to no existing collection.
    orphans: list = field(default_factory=list)
    # Old generations of existing collections, no longer behind the alias.
    detached: list = field(default_factory=list)
    deleted: list = field(default_factory=list)

    @property
    def differs(self):
        return bool(self.orphans or self.detached)


def verify_indices(indexer, expected_aliases, pattern, repair=False, now=None):
    """Check the indices matching ``pattern`` against the collections' aliases."""
    report = IndicesReport()
    now = time.time() if now is None else now
    created = indexer.creation_dates(pattern)
    for name, aliases in sorted(indexer.indices(pattern).items()):
        collection_alias = name.rsplit(".", 1)[0]
        if set(aliases) & expected_aliases:
            continue
        if collection_alias in expected_aliases and name.count(".") == 3:
            if now - created.get(name, now) >= DETACHED_GRACE_SECONDS:
                report.detached.append(name)
        else:
            report.orphans.append(name)
    if repair:
        report.deleted = indexer.delete_indices(report.orphans + report.detached)
    return report


def scope_pattern(prefix, bucket_id=None, collection_id=None):
    if collection_id:
        return naming.collection_pattern(prefix, bucket_id, collection_id)
    if bucket_id:
        return naming.bucket_pattern(prefix, bucket_id)
    return naming.prefix_pattern(prefix)


class BackgroundRebuilder:
    """Rebuilds collections' indices one at a time in a background thread.

    Used when existing documents must change (``index:exclude_fields`` changed) or when
    the live index cannot take a new mapping. The rebuild is the ``reindex`` command's:
    writes made meanwhile are replayed after the swap.
    """

    def __init__(self, registry):
        self._registry = registry
        self._queue = queue.Queue()
        self._pending = set()
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._thread = None

    def request(self, bucket_id, collection_id):
        with self._lock:
            if (bucket_id, collection_id) in self._pending:
                return
            self._pending.add((bucket_id, collection_id))
            self._idle.clear()
            self._queue.put((bucket_id, collection_id))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="kinto-elasticsearch-rebuild", daemon=True
                )
                self._thread.start()

    def wait_until_idle(self, timeout):
        return self._idle.wait(timeout)

    def _run(self):
        while True:
            bucket_id, collection_id = self._queue.get()
            with self._lock:
                # A change arriving from now on asks for another rebuild.
                self._pending.discard((bucket_id, collection_id))
            try:
                self._rebuild(bucket_id, collection_id)
            except Exception:
                logger.exception(
                    "Rebuilding the index of /buckets/%s/collections/%s failed; "
                    "run: kinto-elasticsearch reindex -b %s -c %s",
                    bucket_id,
                    collection_id,
                    bucket_id,
                    collection_id,
                )
            finally:
                transaction.abort()
                with self._lock:
                    if not self._pending:
                        self._idle.set()

    def _rebuild(self, bucket_id, collection_id):
        storage = self._registry.storage
        try:
            metadata = storage.get(
                resource_name="collection",
                parent_id=f"/buckets/{bucket_id}",
                object_id=collection_id,
            )
        except ObjectNotFoundError:
            return
        result = reindex_collection(
            storage, self._registry.indexer, bucket_id, collection_id, metadata
        )
        logger.info(
            "Rebuilt the index of /buckets/%s/collections/%s: %s records",
            bucket_id,
            collection_id,
            result.indexed,
        )
