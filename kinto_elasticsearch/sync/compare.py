"""Proving that indices match storage, and repairing them.

``verify`` streams each side a page at a time and looks every page up on the other side
in one request, rather than merge-joining two id-sorted streams. Memory is bounded the
same way, and correctness does not rest on a storage backend sorting ids exactly as the
engine sorts keywords (Kinto's PostgreSQL schema uses the C collation, which agrees, but
the storage API promises no order and a disagreement would silently misreport).
"""

import fnmatch
import logging
import time
from dataclasses import dataclass, field

from kinto.core.storage import Filter
from kinto.core.utils import COMPARISON

from kinto_elasticsearch.index import naming
from kinto_elasticsearch.index.placement import MAX_ID_BYTES
from kinto_elasticsearch.storage import collection_uri, iter_record_pages
from kinto_elasticsearch.sync.apply import apply_changes
from kinto_elasticsearch.sync.rebuild import LEASE_SECONDS, reindex_collection
from kinto_elasticsearch.sync.sanity import deletion_refused

logger = logging.getLogger(__name__)

# A physical index without alias younger than this may be a rebuild in progress.
DETACHED_GRACE_SECONDS = 3600
EXAMPLES = 5


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
    # Why the repair did not delete the extra documents (``sanity``), or None.
    refused: str = None

    @property
    def uri(self):
        return collection_uri(self.bucket_id, self.collection_id)

    @property
    def differs(self):
        return self.no_index or any(d.count for d in (self.missing, self.outdated, self.extra))


def verify_collection(
    storage,
    index_side,
    bucket_id,
    collection_id,
    metadata,
    repair=False,
    lease_seconds=LEASE_SECONDS,
    sanity_check=False,
):
    """Compare a collection's records with its index; ``repair`` fixes what differs. With
    ``sanity_check``, the repair deletes no extra documents when they look like the sign of
    a storage that is not the server's (``sanity``): they are reported, and ``refused``
    says why."""
    report = CollectionReport(bucket_id, collection_id)
    parent_id = collection_uri(bucket_id, collection_id)
    if not index_side.locator.exists(bucket_id, collection_id):
        report.no_index = True
        report.records = storage.count_all(resource_name="record", parent_id=parent_id)
        if repair:
            result = reindex_collection(
                storage,
                index_side,
                bucket_id,
                collection_id,
                metadata,
                lease_seconds=lease_seconds,
            )
            report.repaired = result.indexed + result.replayed
        return report

    # Storage to index: records missing from the index, indexed at an older version, or
    # at their version with some paths left out.
    where = index_side.locator.placement(bucket_id, collection_id, metadata)
    outgrown = False
    for page in iter_record_pages(storage, "record", parent_id):
        report.records += len(page)
        # A tombstone document holding the id of a live record does not make it indexed.
        versions = index_side.reader.indexed_records(
            bucket_id, collection_id, [r["id"] for r in page]
        )
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
        if where.outgrown_by([r["id"] for r in missing]):
            # Its own index takes those ids, which the pool's ``_id`` makes too long.
            outgrown = True
        elif repair and (missing or outdated):
            # The same version may replace a tombstone of it: a record the engine could not
            # take at all (see ``Writer.apply``) gets another chance.
            written = apply_changes(
                index_side,
                bucket_id,
                collection_id,
                missing + outdated,
                metadata,
                same_version=True,
            )
            report.repaired += len(written.indexed)
        if repair and partial:
            # The same version again: the best form the index takes now (after a mapping
            # change, or a rebuild, it may hold more of the record).
            apply_changes(
                index_side, bucket_id, collection_id, partial, metadata, same_version=True
            )

    # Index to storage: documents of records that storage no longer has. Checked, the
    # extras are counted first, and deleted by a second pass if they may be.
    _compare_documents(
        storage, index_side, bucket_id, collection_id, metadata, report,
        delete=repair and not sanity_check,
    )  # fmt: skip
    if repair and sanity_check and report.extra.count:
        report.refused = deletion_refused("records", report.extra.count, report.records)
        if not report.refused:
            deleting = CollectionReport(bucket_id, collection_id)
            _compare_documents(
                storage, index_side, bucket_id, collection_id, metadata, deleting, delete=True
            )
            report.repaired += deleting.repaired
    if repair and outgrown:
        result = reindex_collection(
            storage,
            index_side,
            bucket_id,
            collection_id,
            metadata,
            promote=True,
            lease_seconds=lease_seconds,
            shared=True,
        )
        report.repaired += result.indexed + result.replayed
    return report


def _compare_documents(storage, index_side, bucket_id, collection_id, metadata, report, delete):
    """Count the index's documents, and those of records storage lacks; ``delete`` them."""
    parent_id = collection_uri(bucket_id, collection_id)
    for documents in index_side.reader.iter_documents(bucket_id, collection_id):
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
        if delete and extra:
            # One version above the indexed one: the delete wins over what is there.
            tombstones = [
                {"id": i, "last_modified": documents[i] + 1, "deleted": True} for i in extra
            ]
            written = apply_changes(index_side, bucket_id, collection_id, tombstones, metadata)
            report.repaired += len(written.deleted)


@dataclass
class IndicesReport:
    # Indices under the prefix that belong to no existing collection.
    orphans: list = field(default_factory=list)
    # Old generations of existing collections, no longer behind the alias.
    detached: list = field(default_factory=list)
    deleted: list = field(default_factory=list)
    # Aliases an older version left (and documents) in pools of collections that no
    # longer exist.
    orphan_aliases: list = field(default_factory=list)
    # Documents in pools of collections that do not live there (gone, or moved):
    # {pool: {collection key: count}}.
    orphan_documents: dict = field(default_factory=dict)
    # Why the repair deleted no collection's documents (``sanity``), or None.
    refused: str = None

    @property
    def differs(self):
        return bool(self.orphans or self.detached or self.orphan_aliases or self.orphan_documents)

    def orphan_collections(self, prefix):
        """The aliases of the collections whose documents the orphans hold."""
        return (
            {name.rsplit(".", 1)[0] for name in self.orphans}
            | set(self.orphan_aliases)
            | {_alias_of_key(prefix, key) for counts in self.orphan_documents.values()
               for key in counts}
        )  # fmt: skip


def verify_indices(
    index_side, expected_aliases, pattern, repair=False, now=None, sanity_check=False
):
    """Check the indices matching ``pattern`` against the collections' aliases. With
    ``sanity_check``, the repair deletes no collection's documents when the orphans look
    like the sign of a storage that is not the server's (``sanity``), and ``refused`` says
    why; old generations of the collections of storage still go."""
    report = IndicesReport()
    now = time.time() if now is None else now
    created = index_side.indices.creation_dates(pattern)
    # A pool is no collection's index. An older version gave its collections aliases.
    pooled = index_side.locator.pooled_aliases(pattern)
    gone = {alias: where for alias, where in pooled.items() if alias not in expected_aliases}
    report.orphan_aliases = sorted(gone)
    for name, aliases in sorted(index_side.indices.listed(pattern).items()):
        if naming.is_internal_index(index_side.prefix, name):
            continue  # Pools, checkpoints and leases, validation probes.
        collection_alias = name.rsplit(".", 1)[0]
        if set(aliases) & expected_aliases:
            continue
        if collection_alias in expected_aliases and name.count(".") == 3:
            if now - created.get(name, now) >= DETACHED_GRACE_SECONDS:
                report.detached.append(name)
        else:
            report.orphans.append(name)
    # Collections of the scope only, though a pool holds any bucket's.
    for pool, counts in index_side.pools.orphan_documents(expected_aliases).items():
        kept = {
            key: count
            for key, count in counts.items()
            if fnmatch.fnmatchcase(_alias_of_key(index_side.prefix, key), pattern)
        }
        if kept:
            report.orphan_documents[pool] = kept
    if repair and sanity_check:
        report.refused = deletion_refused(
            "collections", len(report.orphan_collections(index_side.prefix)), len(expected_aliases)
        )
    if repair and report.refused:
        report.deleted = index_side.indices.delete(report.detached)
    elif repair:
        report.deleted = index_side.indices.delete(report.orphans + report.detached)
        index_side.indices.remove_aliases([(pool, alias) for alias, (pool, _) in gone.items()])
        keys_by_pool = {}
        for pool, key in gone.values():
            keys_by_pool.setdefault(pool, []).append(key)
        index_side.pools.drop(keys_by_pool)
        index_side.pools.delete_orphan_documents(report.orphan_documents)
    return report


def _alias_of_key(prefix, key):
    bucket_id, _, collection_id = str(key).partition("/")
    return naming.alias_name(prefix, bucket_id, collection_id)


def scope_pattern(prefix, bucket_id=None, collection_id=None):
    if collection_id:
        return naming.collection_pattern(prefix, bucket_id, collection_id)
    if bucket_id:
        return naming.bucket_pattern(prefix, bucket_id)
    return naming.prefix_pattern(prefix)
