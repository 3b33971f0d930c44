"""Catching one collection's index up with storage, from its checkpoint.

The pass notes the clock before it reads, indexes the records and tombstones modified
since the checkpoint's ``timestamp`` (re-reading the overlap an unsettled collection needs,
see ``catchup``), and saves the checkpoint as it goes. A collection unchanged since the
last pass costs nothing, but the purge check of ``check_purges`` passes (``purges``).
"""

import logging
import time

from kinto_elasticsearch import metrics
from kinto_elasticsearch.storage import collection_uri, iter_changes
from kinto_elasticsearch.sync.apply import apply_changes
from kinto_elasticsearch.sync.checkpoints import Checkpoint, fingerprint
from kinto_elasticsearch.sync.pipeline import pipelined
from kinto_elasticsearch.sync.purges import PurgeCheck
from kinto_elasticsearch.sync.reshape import Reshaper

logger = logging.getLogger(__name__)

# Pages indexed between two saves of a checkpoint during a long pass.
SAVE_EVERY_PAGES = 10
# Objects a bulk request carries when changes held back for a move are written after all.
WITHHELD_PAGE = 1000


class CollectionCatchUp:
    """Brings the index of one collection up to date with storage, and its checkpoint."""

    def __init__(self, registry, overlap_ms, store, clock=time.time):
        self.registry = registry
        self.storage = registry.storage
        self.index_side = registry.elasticsearch.index
        self.overlap_ms = overlap_ms
        self.store = store
        self.reshaper = Reshaper(registry, overlap_ms)
        self.purges = PurgeCheck(registry)
        self._clock = clock

    def _now_ms(self):
        return int(self._clock() * 1000)

    def run(self, bucket_id, collection_id, metadata, has_index, checkpoint, timestamp,
            report, check_purges=False, refreshed=None):  # fmt: skip
        """Bring one collection's index up to date with storage; ``refreshed`` holds the
        indices this pass refreshed for the purge check of unchanged collections."""
        followed = self.reshaper.follow(
            bucket_id, collection_id, metadata, has_index, checkpoint, report
        )
        if followed is None:
            return
        checkpoint, shape = followed
        alias = self.index_side.locator.alias(bucket_id, collection_id)
        compare = False
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
            if check_purges and self.purges.purged(
                bucket_id, collection_id, checkpoint.timestamp, refreshed=refreshed
            ):
                self.purges.compare_and_repair(bucket_id, collection_id, metadata, report)
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
            self.purges.compare_and_repair(bucket_id, collection_id, metadata, report)
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
        # Changes its pool would index otherwise than an index of its own: held back until
        # the collection is moved out (``PoolFit.misfit``), then written only if it is not.
        withheld, misfit = [], None

        def write(fresh):
            delivered = self._delivered()
            written = apply_changes(
                self.index_side, bucket_id, collection_id, fresh, metadata,
                registry=self.registry,
            )  # fmt: skip
            if delivered is not None:
                delivered.note(bucket_id, collection_id, fresh, written)
            report.indexed += len(fresh)
            metrics.count(self.registry, metrics.CATCHUP_INDEXED, len(fresh))

        def send(page):
            nonlocal pages, outgrown, misfit
            live = [obj["id"] for obj in page if not obj.get("deleted")]
            outgrown = outgrown or where.outgrown_by(live)
            fresh = self._not_indexed(bucket_id, collection_id, page, seen, checkpoint)
            delivered = self._delivered()
            if delivered is not None:
                sent = {obj["id"] for obj in fresh}
                delivered.note_held(
                    bucket_id, collection_id, [o for o in page if o["id"] not in sent]
                )
            if fresh and where.pooled and misfit is None:
                records = [obj for obj in fresh if not obj.get("deleted")]
                misfit = self.index_side.fit.misfit(bucket_id, collection_id, records, metadata)
            if fresh and misfit is not None:
                withheld.extend(fresh)
            elif fresh:
                write(fresh)
            last = page[-1]["last_modified"]
            progress.seen = max(progress.seen, last)
            progress.timestamp = max(progress.timestamp, min(last, started - self.overlap_ms))
            pages += 1
            if pages % SAVE_EVERY_PAGES == 0 and not withheld:
                self.store.save(alias, progress)

        pipelined(iter_changes(self.storage, parent_id, since), send)
        if misfit is not None:
            # The move reads every record from storage and saves the collection's position.
            if self.reshaper.move_out(bucket_id, collection_id, metadata, report, misfit):
                return
            for start in range(0, len(withheld), WITHHELD_PAGE):
                write(withheld[start : start + WITHHELD_PAGE])
        if not compare and since and self.purges.purged(bucket_id, collection_id, since):
            self.purges.compare_and_repair(bucket_id, collection_id, metadata, report)
        # The whole collection was read: everything up to the overlap is in.
        progress.timestamp = max(progress.timestamp, started - self.overlap_ms)
        progress.seen = max(progress.seen, timestamp or 0)
        self.store.save(alias, progress)
        if where.pooled:
            self.reshaper.promote_if_misfit(
                bucket_id, collection_id, metadata, objects, outgrown, report
            )

    def _delivered(self):
        """What this process knows the engine holds (``Sender.delivered``), if it sends."""
        sender = getattr(self.registry.elasticsearch, "sender", None)
        return sender.delivered if sender is not None else None

    def handled(self, bucket_id, collection_id, metadata, checkpoint, objects):
        """Whether the collection needs nothing of this pass: its checkpoint follows its
        metadata, and the engine holds every one of its ``objects`` (the changes the pass
        read of it, again for the overlap's 5 minutes) at its version, as this process
        delivered or looked up before."""
        delivered = self._delivered()
        if delivered is None or checkpoint is None or objects is None:
            return False
        if checkpoint.metadata != metadata.get("last_modified"):
            return False
        if checkpoint.fingerprint != fingerprint(metadata):
            return False
        return all(delivered.held(bucket_id, collection_id, obj) for obj in objects)

    def _not_indexed(self, bucket_id, collection_id, page, seen, checkpoint):
        """The objects of ``page`` the index does not hold at their version.

        What this process's sender delivered is not sent again (``Sender.delivered``),
        unless the index is new (no ``checkpoint``: created again, it may have lost them).
        Other objects newer than anything read before are sent without asking; the re-read
        overlap is looked up first, so that re-reading costs a search, not a write.
        """
        delivered = self._delivered()
        if delivered is not None and checkpoint is not None:
            page = [o for o in page if not delivered.held(bucket_id, collection_id, o)]
            if not page:
                return page
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
