"""The catch-up pass whose cost is the change, not the number of collections.

Once a full pass has run (``catchup``), the engine holds a global ``Position`` (in the sync
index): every object of storage modified up to its ``timestamp`` was seen. A pass:

1. notes the clock ``R``, and scans storage for every record, collection and bucket
   modified after the position, tombstones included (``scan``: one range scan on
   PostgreSQL's timestamp index, paged);
2. removes what the engine holds of the collections and buckets found deleted (their
   children leave no tombstone: the container's is all there is), and of the collections
   of a bucket found created or changed that storage no longer has (a bucket deleted and
   created again looks like one changed): ``buckets``;
3. reads the checkpoints of the collections found changed only (one multi-get) and
   catches each up as before (``changes``: a new collection gets its index);
4. reconciles one *slice*: the next ``slice_size`` collections after a cursor, with the
   purge check and a lost index recreated, and the next ``slice_size`` checkpoints, whose
   collection storage may have lost with its tombstone purged; when the cursor wraps, a
   sweep ends, and the indices left by dead rebuilds are removed (the one listing of the
   engine's indices, :func:`engine_inventory`);
5. advances the position to ``R - overlap``, the overlap rule of ``catchup`` applied to
   the global position: a write committed late with an older timestamp is within the
   re-read window, and re-reads cost a version look-up, not a write.

Everything a full comparison finds (purged tombstones, a lost index, drift, checkpoints of
collections gone) is thus found within one sweep: ``collections / slice_size`` passes.
"""

import logging

from kinto.core.storage.exceptions import ObjectNotFoundError

from kinto_elasticsearch.client import EngineNotFound
from kinto_elasticsearch.index import naming
from kinto_elasticsearch.index.migration import migrate_aliases
from kinto_elasticsearch.index.tombstones import mark_changed, mark_tombstones
from kinto_elasticsearch.storage import (
    bucket_uri,
    collection_exists,
    collection_uri,
    record_timestamps,
)
from kinto_elasticsearch.sync.buckets import BucketChecks
from kinto_elasticsearch.sync.rebuild import remove_abandoned
from kinto_elasticsearch.sync.scan import collections_after, iter_changed

logger = logging.getLogger(__name__)

# Collections (and checkpoints) reconciled per pass: with the default interval of 10 s,
# 100,000 collections are all checked within 100,000 / 50 x 10 s, under 6 hours.
SLICE_SIZE = 50


def engine_inventory(index_side):
    """``{physical index: [aliases]}`` of the prefix: the one listing of the engine's
    indices the incremental pass makes, once per sweep (dead rebuilds' indices)."""
    return index_side.indices.listed(naming.prefix_pattern(index_side.prefix))


def scan_changes(storage, since):
    """What changed since ``since``, in one scan: ``(changed, metadata, gone, buckets_gone,
    buckets_seen, scanned)``, ``changed`` the collections with their newest record
    timestamp (None: the collection itself changed), ``buckets_seen`` the buckets created
    or changed with their timestamp, and ``scanned`` the collections' records."""
    changed, metadata, gone, buckets_gone, buckets_seen = {}, {}, set(), set(), {}
    # The records and tombstones read of each collection: ``{key: [{id, last_modified}]}``.
    scanned = {}
    for page in iter_changed(storage, since):
        for change in page:
            if change.kind == "record":
                key = _collection_of(change.parent_id)
                if key is None:
                    continue
                changed[key] = max(changed.get(key) or 0, change.last_modified)
                scanned.setdefault(key, []).append(
                    {"id": change.id, "last_modified": change.last_modified}
                )
            elif change.kind == "collection":
                key = (change.parent_id.split("/", 2)[2], change.id)
                if change.deleted:
                    gone.add(key)
                else:
                    gone.discard(key)
                    changed.setdefault(key, None)
                    metadata[key] = change.as_object()
            elif change.deleted:
                buckets_gone.add(change.id)
                buckets_seen.pop(change.id, None)
            else:
                buckets_gone.discard(change.id)
                buckets_seen[change.id] = change.last_modified
    return changed, metadata, gone, buckets_gone, buckets_seen, scanned


def _unchanged(timestamps, checkpoints, aliases):
    """``{key: checkpoint timestamp}`` of the collections of ``timestamps`` whose
    checkpoint is settled and saw their last change: those a purge check applies to."""
    unchanged = {}
    for key, timestamp in timestamps.items():
        checkpoint = checkpoints.get(aliases[key])
        if checkpoint is not None and checkpoint.settled and timestamp == checkpoint.seen:
            unchanged[key] = checkpoint.timestamp
    return unchanged


def _collection_of(parent_id):
    """``(bucket id, collection id)`` of a record's ``parent_id``, or None."""
    parts = parent_id.split("/", 4)
    if len(parts) != 5 or parts[1] != "buckets" or parts[3] != "collections":
        return None  # Another plugin's records.
    return parts[2], parts[4]


class IncrementalPass:
    def __init__(self, catchup, slice_size=SLICE_SIZE):
        self.catchup = catchup
        self.storage = catchup.storage
        self.index_side = catchup.index_side
        self.settings = catchup.settings
        self.store = catchup.store
        self.collection = catchup._collection
        self.overlap_ms = catchup.overlap_ms
        self.slice_size = slice_size
        self._clock = catchup.clock

    def run(self, position, report):
        started = int(self._clock() * 1000)
        if not self.index_side.locator.records.migrated:
            # Once, online (``index/migration.py``); later ones go at the end of a sweep.
            migrate_aliases(self.index_side.pools)
        # Likewise the tombstones an older version left unmarked (``index/tombstones.py``).
        mark_tombstones(self.index_side.pools)
        changed, metadata, gone, buckets_gone, buckets_seen, scanned = scan_changes(
            self.storage, position.timestamp
        )
        buckets = BucketChecks(self, position)
        for bucket_id in sorted(buckets_gone):
            buckets.drop(bucket_id, report)
        buckets.seen(buckets_seen)
        seen = set(changed)
        for key in sorted(gone):
            self.drop_collection(*key, report)
        done = set()
        changed = {k: v for k, v in changed.items() if k not in gone and k[0] not in buckets_gone}
        self._catch_up(changed, metadata, report, done, check_purges=False, scanned=scanned)
        self._reconcile(position, report, done)
        # Last: what changed is indexed even when this check cannot be made (the position is
        # then not saved, and the next pass, reading the same changes again, tries again).
        buckets.check(report, seen)
        position.timestamp = max(position.timestamp, started - self.overlap_ms)
        buckets.forget_settled()
        self.store.save_position(position)
        return report

    def _metadata(self, bucket_id, collection_id, known):
        if (bucket_id, collection_id) in known:
            return known[(bucket_id, collection_id)]
        try:
            return self.storage.get(
                resource_name="collection",
                parent_id=bucket_uri(bucket_id),
                object_id=collection_id,
            )
        except ObjectNotFoundError:
            return None

    def _catch_up(
        self, timestamps, known, report, done, check_purges, refreshed=None, scanned=None
    ):
        """Catch up the collections of ``timestamps`` (``{(bucket, collection): record
        timestamp or None}``); their checkpoints only are read. ``scanned``: the changes
        the scan read of each; a collection whose changes the engine is known to hold
        (``CollectionCatchUp.handled``) costs nothing more."""
        aliases = {key: self.index_side.locator.alias(*key) for key in timestamps}
        checkpoints = self.store.get_many(aliases.values())
        if check_purges:
            # The purge checks of the unchanged collections, counted for them all at once.
            try:
                self.collection.purges.prefetch(
                    _unchanged(timestamps, checkpoints, aliases), refreshed=refreshed
                )
            except EngineNotFound:
                # An index gone: each collection is then checked on its own, as it runs.
                self.collection.purges.prefetch({})
        first, worked = [], []
        for key, timestamp in sorted(timestamps.items()):
            bucket_id, collection_id = key
            if key in done or not self.settings.is_indexed(bucket_id, collection_id):
                continue
            metadata = self._metadata(bucket_id, collection_id, known)
            if metadata is None:
                continue  # Deleted since the scan: the next pass sees its tombstone.
            done.add(key)
            report.collections += 1
            checkpoint = checkpoints.get(aliases[key])
            if checkpoint is None:
                report.collections -= 1  # Counted by the first indexing.
                first.append((bucket_id, collection_id, metadata))
                continue
            if scanned is not None and self.collection.handled(
                bucket_id, collection_id, metadata, checkpoint, scanned.get(key, [])
            ):
                report.up_to_date += 1
                continue
            if timestamp is None:
                timestamp = checkpoint.seen if checkpoint is not None else 0
            worked.append(key)
            self._one(bucket_id, collection_id, metadata, checkpoint, timestamp, report,
                      check_purges, refreshed)  # fmt: skip
        if scanned is not None:
            # Changes this process did not deliver may be an older process's in a rolling
            # upgrade, whose tombstones lack their mark (``index/tombstones.py``); a slice's
            # collections are left to the end of the sweep.
            mark_changed(self.index_side.pools, worked)
        # Counted for this pass only.
        self.collection.purges.prefetch({})
        self.catchup.first_indexing(
            first, report, {collection_uri(*key): ts for key, ts in timestamps.items()}
        )

    def _one(self, bucket_id, collection_id, metadata, checkpoint, timestamp, report,
             check_purges, refreshed):  # fmt: skip
        # Whether an index exists is known by its checkpoint: one is saved with the index.
        try:
            self.collection.run(
                bucket_id, collection_id, metadata, checkpoint is not None, checkpoint,
                timestamp, report, check_purges, refreshed,
            )  # fmt: skip
        except EngineNotFound:
            if checkpoint is None:
                raise
            # A checkpoint without its index: the index was lost. Start it over.
            logger.info("The index of %s/%s is gone: indexing it again", bucket_id, collection_id)
            self.store.delete(self.index_side.locator.alias(bucket_id, collection_id))
            self.collection.run(
                bucket_id, collection_id, metadata, False, None, timestamp, report,
            )  # fmt: skip

    def _reconcile(self, position, report, done):
        """One slice of collections, and one of checkpoints (see the module docstring)."""
        found = collections_after(self.storage, position.cursor, self.slice_size)
        keys = [(bid, cid) for bid, cid, _ in found]
        timestamps = record_timestamps(self.storage, keys)
        known = {(bid, cid): metadata for bid, cid, metadata in found}
        self._catch_up(
            {key: timestamps.get(key, 0) for key in keys}, known, report, done,
            check_purges=True, refreshed=set(),
        )  # fmt: skip
        checkpoints = self.store.search(
            {"match_all": {}}, self.slice_size, after=position.checkpoint_cursor
        )
        for checkpoint in checkpoints.values():
            key = (checkpoint.bucket_id, checkpoint.collection_id)
            if key not in done and not collection_exists(self.storage, *key):
                self.drop_collection(*key, report)
        full = len(checkpoints) == self.slice_size
        position.checkpoint_cursor = max(checkpoints) if full else None
        if len(found) < self.slice_size:
            position.cursor = None
            position.sweeps += 1
            inventory = engine_inventory(self.index_side)
            prefix = self.index_side.prefix
            if any(aliases for name, aliases in inventory.items() if naming.is_pool(prefix, name)):
                migrate_aliases(self.index_side.pools, listed=inventory)
            mark_tombstones(self.index_side.pools, recheck=True)
            report.abandoned = remove_abandoned(self.store, inventory)
        else:
            position.cursor = keys[-1]

    def drop_collection(self, bucket_id, collection_id, report):
        """Remove a collection storage deleted, if the engine holds it (its checkpoint)."""
        alias = self.index_side.locator.alias(bucket_id, collection_id)
        if not self.store.get_many([alias]):
            return
        logger.info("Deleting the indices of %s: its collection is gone", alias)
        self.index_side.removal.delete_collection_indices(bucket_id, collection_id)
        self.store.delete(alias)
        report.removed.append(alias)
