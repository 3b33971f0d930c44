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

**Cheap when nothing changed.** One listing of every collection's timestamp
(``all_resources_timestamps``, one SQL query on PostgreSQL) and one search for the
checkpoints: a settled collection whose timestamp equals its checkpoint's costs nothing more.

**Purged tombstones.** ``kinto purge-deleted record N`` (``storage.purge_deleted`` with
``max_retained``, or ``before``) removes tombstones; one the index never saw (a record
deleted during an outage, its tombstone purged before the pass) would leave the record
searchable, since nothing in storage says it ever was. What cannot hide such a purge is
the number of *live* records up to the checkpoint's ``timestamp`` ``T``: every record and
tombstone of storage with a ``last_modified`` up to ``T`` is in the index at that version
(that is what ``T`` means), and the index never holds a version storage did not commit.
So after the pass applied the changes since ``T``, the index's live documents up to ``T``
(counted first, after a refresh) are storage's live records up to ``T``, plus the records
whose tombstone was purged (their document stays live, at its old version, up to ``T``),
plus records a write changed between the two counts (which only adds to the index side):
when the index has more, the pass compares the whole index with storage (``verify
--repair``'s comparison, paged, bounded in memory) and deletes what storage lacks. A
record the engine refused is missing from the index side and could offset one purged
record in that count; ``verify`` reports both. The check costs one count on each side,
so it runs for the collections a pass reads changes of, and for every collection only
``check_purges`` passes (the first of each process, then every ``PURGE_CHECK_SECONDS``):
a purge that removed every object written since the checkpoint (``max_retained`` 0)
leaves the collection looking up to date, and is found by the next of those passes.
The count of objects going down (only a purge does that) or the collection timestamp
going back (a purge of the newest tombstone) starts the comparison at once. A changed
collection (updated, or deleted and created again) is compared in full too.

**Lifecycle.** A collection without an index gets one; the index of a collection that
storage no longer has (deleted, or its bucket deleted, while the engine was away) goes,
and so does an index a rebuild that died left behind (``rebuild.remove_abandoned``);
a changed mapping is applied, or the index rebuilt when the engine refuses it or when the
documents themselves change (``index:exclude_fields``), without downtime (``rebuild``).
"""

import logging
import time
from dataclasses import dataclass, field

from kinto.core.storage import Filter
from kinto.core.utils import COMPARISON

from kinto_elasticsearch import metrics
from kinto_elasticsearch.client import EngineRequestError
from kinto_elasticsearch.index import naming
from kinto_elasticsearch.index.placement import needs_own_index
from kinto_elasticsearch.storage import collection_uri, iter_changes, iter_collections
from kinto_elasticsearch.sync.apply import apply_changes
from kinto_elasticsearch.sync.checkpoints import Checkpoint, SyncStore, fingerprint
from kinto_elasticsearch.sync.compare import verify_collection
from kinto_elasticsearch.sync.pipeline import pipelined
from kinto_elasticsearch.sync.rebuild import (
    RebuildInProgress,
    reindex_collection,
    remove_abandoned,
)

logger = logging.getLogger(__name__)

# Pages indexed between two saves of a checkpoint during a long pass.
SAVE_EVERY_PAGES = 10
# How often the count that finds purged tombstones runs for collections that look up to date.
PURGE_CHECK_SECONDS = 300.0


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


class CatchUp:
    """One catch-up pass over the collections in scope."""

    def __init__(self, registry, overlap_ms, clock=time.time):
        self.registry = registry
        self.storage = registry.storage
        self.index_side = registry.elasticsearch.index
        self.settings = registry.elasticsearch.settings
        self.overlap_ms = overlap_ms
        self.store = SyncStore(self.index_side)
        self._clock = clock
        self._refreshed = set()

    def _now_ms(self):
        return int(self._clock() * 1000)

    def run(self, bucket_id=None, collection_id=None, check_purges=False):
        """One pass; with ``check_purges``, look for purged tombstones in every collection,
        not only in those with changes (see the module's docstring)."""
        with metrics.timed(self.registry, metrics.CATCHUP_SECONDS):
            return self._run(bucket_id, collection_id, check_purges)

    def _run(self, bucket_id, collection_id, check_purges):
        report = PassReport()
        # Indices refreshed in this pass for the purge check of unchanged collections.
        self._refreshed = set()
        self.store.ensure_index()
        # Aliases first, storage second: an alias only exists once its collection was
        # committed, so a collection created meanwhile is never taken for a deleted one.
        indices = self.index_side.indices.listed(naming.prefix_pattern(self.index_side.prefix))
        aliases = self._aliases(indices)
        checkpoints = self.store.load_all()
        timestamps = self.storage.all_resources_timestamps("record")
        # PostgreSQL lists at most its max fetch size of them, the most recent first.
        truncated = len(timestamps) > getattr(self.storage, "_max_fetch_size", len(timestamps))
        expected = set()
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
            self.collection(
                bid, cid, metadata, alias in aliases, checkpoints.get(alias), timestamp, report,
                check_purges,
            )  # fmt: skip
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
        for alias in sorted(set(aliases) - expected):
            logger.info("Deleting the indices of %s: its collection is gone", alias)
            self.index_side.admin.drop_alias(alias, sorted(aliases[alias]))
            self.store.delete(alias)
            report.removed.append(alias)
        for alias in sorted(set(checkpoints) - expected - set(aliases)):
            self.store.delete(alias)

    def collection(self, bucket_id, collection_id, metadata, has_index, checkpoint, timestamp,
                   report, check_purges=False):  # fmt: skip
        """Bring one collection's index up to date with storage."""
        alias = self.index_side.locator.alias(bucket_id, collection_id)
        shape = fingerprint(metadata)
        compare = False
        if not has_index:
            self.index_side.admin.create_index(bucket_id, collection_id, metadata)
            report.created.append(alias)
            checkpoint = None
        elif checkpoint is None:
            # An index without a checkpoint: made by the sender before any pass (the
            # engine restarted empty), or by an earlier version of the plugin. Neither its
            # documents nor its mapping are known to follow the collection: rebuild it.
            if self._rebuild(bucket_id, collection_id, metadata, report):
                return
        elif checkpoint.fingerprint != shape:
            if self._reshape(bucket_id, collection_id, metadata, checkpoint, shape, report):
                if alias in report.rebuilt:
                    return
            else:
                # Another process is rebuilding it (or died doing so, until its lease
                # expires): keep the live index caught up meanwhile, and try again next
                # pass (the old fingerprint stays).
                shape = checkpoint.fingerprint
        elif self._pooled_but_shaped(bucket_id, collection_id, metadata):
            # Pooled by an earlier version, which kept only ``index:schema`` and
            # ``index:settings`` out of pools: the index of its own its mapping needs.
            if self._rebuild(bucket_id, collection_id, metadata, report, promote=True):
                return
        if checkpoint is not None and checkpoint.metadata != metadata.get("last_modified"):
            compare = True
        if (
            checkpoint is not None
            and not compare
            and checkpoint.settled
            and timestamp == checkpoint.seen
        ):
            # Unchanged since the last pass: any refresh of this pass shows all it holds, so
            # a pool is refreshed once for all its collections.
            if check_purges and self._purged(
                bucket_id, collection_id, checkpoint.timestamp, refreshed=self._refreshed
            ):
                self._compare(bucket_id, collection_id, metadata, report)
            report.up_to_date += 1
            return
        parent_id = collection_uri(bucket_id, collection_id)
        objects = self.storage.count_all(
            resource_name="record", parent_id=parent_id, include_deleted=True
        )
        if checkpoint is not None and (
            objects < checkpoint.objects or timestamp < checkpoint.seen
        ):
            logger.info(
                "Tombstones of %s were purged: comparing its whole index with storage", parent_id
            )
            compare = True
        started = self._now_ms()
        if compare:
            self._compare(bucket_id, collection_id, metadata, report)
        since = checkpoint.timestamp if checkpoint is not None else None
        seen = checkpoint.seen if checkpoint is not None else 0
        progress = Checkpoint(
            bucket_id,
            collection_id,
            timestamp=since or 0,
            seen=seen,
            objects=objects,
            metadata=metadata.get("last_modified", 0),
            fingerprint=shape,
        )
        pages = 0
        where = self.index_side.locator.placement(bucket_id, collection_id, metadata)
        outgrown = False

        def send(page):
            nonlocal pages, outgrown
            live = [obj["id"] for obj in page if not obj.get("deleted")]
            outgrown = outgrown or where.outgrown_by(live)
            fresh = self._not_indexed(bucket_id, collection_id, page, seen)
            if fresh:
                apply_changes(
                    self.index_side, bucket_id, collection_id, fresh, metadata,
                    registry=self.registry,
                )  # fmt: skip
                report.indexed += len(fresh)
                metrics.count(self.registry, metrics.CATCHUP_INDEXED, len(fresh))
            last = page[-1]["last_modified"]
            progress.seen = max(progress.seen, last)
            progress.timestamp = max(progress.timestamp, min(last, started - self.overlap_ms))
            pages += 1
            if pages % SAVE_EVERY_PAGES == 0:
                self.store.save(alias, progress)

        pipelined(iter_changes(self.storage, parent_id, since), send)
        if not compare and since and self._purged(bucket_id, collection_id, since):
            self._compare(bucket_id, collection_id, metadata, report)
        # The whole collection was read: everything up to the overlap is in.
        progress.timestamp = max(progress.timestamp, started - self.overlap_ms)
        progress.seen = max(progress.seen, timestamp or 0)
        self.store.save(alias, progress)
        if where.pooled:
            self._promote_if_misfit(bucket_id, collection_id, metadata, objects, outgrown, report)

    def _pooled_but_shaped(self, bucket_id, collection_id, metadata):
        # The placement first: it is cached, a derived mapping is computed.
        where = self.index_side.locator.placement(bucket_id, collection_id, metadata)
        return where.pooled and needs_own_index(metadata)

    def _promote_if_misfit(self, bucket_id, collection_id, metadata, objects, outgrown, report):
        """A pooled collection gets an index of its own when it outgrew
        ``pool_max_records`` (its documents would make its pool's shard large, and its
        searches slow others'), when its pool cannot take its records whole (a field
        typed otherwise by another tenant, its share of the pool's fields or the pool's
        field budget reached: there its fields and their types are its own), or when a
        record id is too long for the pool's ``_id`` (``outgrown``, which adds the
        collection's key) but not for an index of its own."""
        if objects > self.settings.pool_max_records:
            reason = f"holds {objects} documents, more than a pooled collection may"
        elif outgrown:
            reason = "has record ids too long for its pool"
        elif self.index_side.reader.partly_indexed(bucket_id, collection_id):
            reason = "has records its pool indexes only in part"
        else:
            return
        logger.info(
            "%s %s: moving it to an index of its own",
            collection_uri(bucket_id, collection_id),
            reason,
        )
        self._rebuild(bucket_id, collection_id, metadata, report, promote=True)

    def _compare(self, bucket_id, collection_id, metadata, report):
        verify_collection(
            self.storage,
            self.index_side,
            bucket_id,
            collection_id,
            metadata,
            repair=True,
            lease_seconds=self.settings.rebuild_lease,
        )
        report.compared.append(self.index_side.locator.alias(bucket_id, collection_id))

    def _purged(self, bucket_id, collection_id, timestamp, refreshed=None):
        """Whether the index holds live records up to ``timestamp`` that storage lost: their
        tombstones were purged before the index saw them (see the module's docstring)."""
        indexed = self.index_side.reader.count_live(
            bucket_id, collection_id, up_to=timestamp, refreshed=refreshed
        )
        stored = self.storage.count_all(
            resource_name="record",
            parent_id=collection_uri(bucket_id, collection_id),
            filters=[Filter("last_modified", timestamp, COMPARISON.MAX)],
        )
        if indexed > stored:
            logger.info(
                "The index of %s has %s live records up to %s, storage %s: tombstones were "
                "purged, comparing its whole index with storage",
                collection_uri(bucket_id, collection_id), indexed, timestamp, stored,
            )  # fmt: skip
            return True
        return False

    def _not_indexed(self, bucket_id, collection_id, page, seen):
        """The objects of ``page`` the index does not hold at their version.

        Objects newer than anything read before are sent without asking; the re-read
        overlap is looked up first, so that re-reading costs a search, not a write.
        """
        overlap = [obj for obj in page if obj["last_modified"] <= seen]
        if not overlap:
            return page
        versions = self.index_side.reader.versions(
            bucket_id, collection_id, [o["id"] for o in overlap]
        )
        return [
            obj
            for obj in page
            if obj["last_modified"] > seen or versions.get(obj["id"], -1) < obj["last_modified"]
        ]

    def _reshape(self, bucket_id, collection_id, metadata, checkpoint, shape, report):
        """Follow a change of the collection's mapping or documents; False if not done."""
        alias = self.index_side.locator.alias(bucket_id, collection_id)
        mapping_part, documents_part = shape.split(":")
        old_mapping, _, old_documents = checkpoint.fingerprint.partition(":")
        if old_documents == documents_part and old_mapping != mapping_part:
            try:
                # A pooled collection's mapping is its pool's: it changes by a rebuild.
                if self.index_side.admin.update_mapping(bucket_id, collection_id, metadata):
                    return True
            except EngineRequestError as exc:
                logger.info("The index of %s cannot take its new mapping (%s): rebuilding",
                            alias, exc)  # fmt: skip
        elif old_documents == documents_part:
            return True
        return self._rebuild(bucket_id, collection_id, metadata, report)

    def _rebuild(self, bucket_id, collection_id, metadata, report, promote=False):
        alias = self.index_side.locator.alias(bucket_id, collection_id)
        try:
            result = reindex_collection(
                self.storage,
                self.index_side,
                bucket_id,
                collection_id,
                metadata,
                overlap_ms=self.overlap_ms,
                registry=self.registry,
                promote=promote,
                lease_seconds=self.settings.rebuild_lease,
            )
        except RebuildInProgress as exc:
            logger.info("Not rebuilding %s: %s", alias, exc)
            report.busy.append(alias)
            return False
        logger.info("Rebuilt the index of %s: %s records", alias, result.indexed)
        report.rebuilt.append(alias)
        return True
