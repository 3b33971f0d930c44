"""Catch-up: index whatever changed in storage since each collection's checkpoint.

Storage is the outbox. Every record and tombstone of a collection carries a
``last_modified`` that only grows, and tombstones stay until an operator purges them, so
a collection's index needs only a checkpoint (see ``checkpoints``) and this pass, which
indexes the changes since, tombstones included, with external versions: it is
idempotent, and any number of processes may run it at once.

**The trap.** On PostgreSQL a row's timestamp is assigned when it is written, not when its
transaction commits, and nothing serialises the writers of a collection: a transaction
that took timestamp 402 may become visible after one that took 455. "Everything after the
highest timestamp seen" would miss 402 for good. The rule used here: a pass notes the
clock ``R`` before it reads anything. Every write whose timestamp is at most ``R - overlap``
was committed before ``R`` (when no write transaction lasts longer than ``overlap``, the
``catchup_overlap_seconds`` setting), so the read saw it; the checkpoint's ``timestamp``
advances to ``R - overlap`` and no further, while ``seen`` notes the highest timestamp
read. Until ``timestamp`` passes ``seen`` the collection is "unsettled" and every pass
re-reads from ``timestamp``, looking the re-read records' versions up in the index first
so that only what is missing is written: a late commit is indexed at the next pass, and
the cost of the rule is a read, not a write. (The clocks of Kinto's processes and of
PostgreSQL must agree to within the overlap, as NTP keeps them.)

**Cost proportional to change.** On PostgreSQL, once a full pass has run, a pass over
every collection is ``incremental``: one storage scan of what changed since a global
position, checkpoints read for the collections found only, and a bounded slice of
reconciliation, so that everything is still checked within a sweep (see there). One
process of the cluster at a time runs those passes (``lease``). A full pass (this
module's ``_run``) runs when the engine holds no position (the first pass, an engine that
lost its data), for ``kinto-elasticsearch sync`` and for scoped passes, and always on the
memory backend; it lists every collection's timestamp (``all_resources_timestamps``) and
every checkpoint, and indexes new collections together (``first``).

**Purged tombstones.** A tombstone purged before the index saw it would leave its record
searchable: ``purges`` finds such records by a count on each side, and compares the whole
index with storage when they differ.

**Lifecycle.** A collection without an index gets one; the index of a collection that
storage no longer has (deleted, or its bucket deleted, while the engine was away) goes,
and so does an index a rebuild that died left behind (``rebuild.remove_abandoned``);
a changed mapping is applied, or the index rebuilt when the engine refuses it or when the
documents themselves change (``index:exclude_fields``), without downtime (``rebuild``).

This module is the pass over the collections in scope, and their lifecycle: ``changes``
catches one collection up, ``reshape`` keeps its index the shape of its metadata.
"""

import logging
import time
from dataclasses import dataclass, field

from kinto_elasticsearch import metrics
from kinto_elasticsearch.index import naming
from kinto_elasticsearch.index.migration import migrate_aliases
from kinto_elasticsearch.index.tombstones import mark_tombstones
from kinto_elasticsearch.storage import collection_uri, iter_collections, supports_scan
from kinto_elasticsearch.sync.changes import CollectionCatchUp
from kinto_elasticsearch.sync.checkpoints import Checkpoint, Position, SyncStore, fingerprint
from kinto_elasticsearch.sync.first import FirstIndexing
from kinto_elasticsearch.sync.incremental import SLICE_SIZE, IncrementalPass
from kinto_elasticsearch.sync.rebuild import remove_abandoned
from kinto_elasticsearch.sync.sanity import deletion_refused

logger = logging.getLogger(__name__)


def save_new_collection(index_side, bucket_id, collection_id, metadata):
    """The checkpoint of a collection just created, with its index: it has no records."""
    checkpoint = Checkpoint(
        bucket_id,
        collection_id,
        metadata=metadata.get("last_modified", 0),
        fingerprint=fingerprint(metadata),
    )
    SyncStore(index_side).save(index_side.locator.alias(bucket_id, collection_id), checkpoint)


@dataclass
class PassReport:
    collections: int = 0
    up_to_date: int = 0
    indexed: int = 0
    compared: list = field(default_factory=list)
    rebuilt: list = field(default_factory=list)
    created: list = field(default_factory=list)
    removed: list = field(default_factory=list)
    busy: list = field(default_factory=list)
    # Indices left by rebuilds that died, deleted.
    abandoned: list = field(default_factory=list)
    # Why the indices of the collections storage lacks were kept (``sanity``), or None.
    refused: str = None
    # Another process holds the catch-up lease: this pass did nothing.
    standby: bool = False


class CatchUp:
    """One catch-up pass over the collections in scope."""

    def __init__(self, registry, overlap_ms, clock=time.time, sanity_check=False, slice_size=None):
        """``sanity_check``: keep the indices of the collections storage lacks when they
        look like the sign of a storage that is not the server's (``sanity``)."""
        self.registry = registry
        self.sanity_check = sanity_check
        self.storage = registry.storage
        self.index_side = registry.elasticsearch.index
        self.settings = registry.elasticsearch.settings
        self.slice_size = slice_size or getattr(self.settings, "catchup_slice", SLICE_SIZE)
        self.store = SyncStore(self.index_side)
        self.overlap_ms = overlap_ms
        self.clock = clock
        self._collection = CollectionCatchUp(registry, overlap_ms, self.store, clock)

    def run(self, bucket_id=None, collection_id=None, check_purges=False, full=None, turn=None):
        """One pass; with ``check_purges``, look for purged tombstones in every collection,
        not only in those with changes (see ``purges``).

        A pass over every collection is incremental (``incremental``) when storage can
        list what changed since a position (PostgreSQL) and the engine holds one, unless
        ``full`` (by default: ``check_purges``). ``turn`` (``lease.CatchUpTurn``): pass
        only while holding the cluster's catch-up lease; else the report says ``standby``.
        """
        with metrics.timed(self.registry, metrics.CATCHUP_SECONDS):
            if bucket_id is not None or not supports_scan(self.storage):
                return self._run(bucket_id, collection_id, check_purges)
            self.store.ensure_index()
            if turn is not None and not turn.take(self.store):
                return PassReport(standby=True)
            position = self.store.load_position()
            if position is not None and not (check_purges if full is None else full):
                return IncrementalPass(self, self.slice_size).run(position, PassReport())
            # No position (a first pass, or an engine that lost its data): everything.
            started = int(self.clock() * 1000)
            report = self._run(None, None, check_purges)
            position = position or Position()
            position.timestamp = max(position.timestamp, started - self.overlap_ms)
            self.store.save_position(position)
            return report

    def _run(self, bucket_id, collection_id, check_purges):
        report = PassReport()
        # Indices refreshed in this pass for the purge check of unchanged collections.
        refreshed = set()
        self.store.ensure_index()
        # Aliases first, storage second: an alias only exists once its collection was
        # committed, so a collection created meanwhile is never taken for a deleted one.
        indices = self.index_side.indices.listed(naming.prefix_pattern(self.index_side.prefix))
        # The aliases an older version gave pooled collections go (``index/migration.py``).
        if migrate_aliases(self.index_side.pools, indices):
            indices = self.index_side.indices.listed(naming.prefix_pattern(self.index_side.prefix))
        if bucket_id is None:
            # And the tombstones an older version left unmarked (``index/tombstones.py``).
            mark_tombstones(self.index_side.pools, recheck=True)
        aliases = self._aliases(indices)
        checkpoints = self.store.load_all()
        timestamps = self.storage.all_resources_timestamps("record")
        # PostgreSQL lists at most its max fetch size of them, the most recent first.
        truncated = len(timestamps) > getattr(self.storage, "_max_fetch_size", len(timestamps))
        expected = set()
        # New collections, indexed together in bulk (``first``) where storage allows.
        first = [] if supports_scan(self.storage) else None
        for bid, cid, metadata in iter_collections(self.storage, bucket_id, collection_id):
            alias = self.index_side.locator.alias(bid, cid)
            expected.add(alias)
            if not self.settings.is_indexed(bid, cid):
                continue
            report.collections += 1
            timestamp = timestamps.get(collection_uri(bid, cid))
            if timestamp is None:
                # Never written to, unless past the listing's limit.
                timestamp = self._resource_timestamp(bid, cid) if truncated else 0
            if first is not None and alias not in aliases and alias not in checkpoints:
                report.collections -= 1  # Counted by the first indexing.
                first.append((bid, cid, metadata))
                continue
            self._collection.run(
                bid, cid, metadata,
                self.index_side.locator.has_index(bid, cid, metadata, aliases, indices),
                checkpoints.get(alias), timestamp, report,
                check_purges, refreshed,
            )  # fmt: skip
        self.first_indexing(first, report, timestamps)
        if bucket_id is None:
            self._remove_gone(aliases, checkpoints, expected, report)
        elif collection_id is None:
            prefix = naming.alias_name(self.index_side.prefix, bucket_id, "")
            in_bucket = {a: p for a, p in aliases.items() if a.startswith(prefix)}
            self._remove_gone(in_bucket, {}, expected, report)
        if bucket_id is not None:
            scope = naming.alias_name(self.index_side.prefix, bucket_id, collection_id or "")
            scope = f"{scope}." if collection_id else scope  # A bucket's ends with a dot.
            indices = {n: a for n, a in indices.items() if n.startswith(scope)}
        report.abandoned = remove_abandoned(self.store, indices)
        return report

    def first_indexing(self, collections, report, timestamps):
        """Index ``collections`` (no index nor checkpoint) in bulk across collections;
        those the bulk did not take whole go the per-collection way."""
        for bid, cid, metadata in FirstIndexing(self).run(collections or [], report):
            report.collections += 1
            timestamp = timestamps.get(collection_uri(bid, cid)) or 0
            self._collection.run(bid, cid, metadata, False, None, timestamp, report)

    def _resource_timestamp(self, bucket_id, collection_id):
        try:
            return self.storage.resource_timestamp(
                resource_name="record", parent_id=collection_uri(bucket_id, collection_id)
            )
        except Exception:  # A read-only storage cannot give an empty collection one.
            return 0

    def _aliases(self, indices):
        """``{alias: [physical indices]}`` for the collections' aliases of the prefix."""
        by_alias = {}
        for name, aliases in indices.items():
            for alias in aliases:
                by_alias.setdefault(alias, []).append(name)
        self.index_side.locator.remember(by_alias)
        return by_alias

    def _remove_gone(self, aliases, checkpoints, expected, report):
        gone = set(aliases) - expected
        if self.sanity_check:
            report.refused = deletion_refused("collections", len(gone), len(expected))
            if report.refused:
                return
        for alias in sorted(gone):
            logger.info("Deleting the indices of %s: its collection is gone", alias)
            self.index_side.removal.drop_alias(alias, sorted(aliases[alias]))
            self.store.delete(alias)
            report.removed.append(alias)
        for alias in sorted(set(checkpoints) - expected - set(aliases)):
            # A pooled collection has no alias: its checkpoint says whose documents go.
            gone = checkpoints[alias]
            if self.index_side.removal.drop_pooled(gone.bucket_id, gone.collection_id):
                logger.info("Deleting the documents of %s: its collection is gone", alias)
                report.removed.append(alias)
            self.store.delete(alias)
