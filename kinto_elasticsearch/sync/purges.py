"""Purged tombstones: the count that finds them, and the comparison that repairs them.

``kinto purge-deleted record N`` (``storage.purge_deleted`` with ``max_retained``, or
``before``) removes tombstones; one the index never saw (a record
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
"""

import logging
import time

from kinto.core.storage import Filter
from kinto.core.utils import COMPARISON

from kinto_elasticsearch.storage import collection_uri
from kinto_elasticsearch.sync.compare import verify_collection
from kinto_elasticsearch.sync.scan import live_counts_up_to

logger = logging.getLogger(__name__)

# How often the count that finds purged tombstones runs for collections that look up to date.
PURGE_CHECK_SECONDS = 300.0


class PurgeSchedule:
    """Which passes of a process check every collection for purges: the first, then one
    every :data:`PURGE_CHECK_SECONDS` (counted from the start of the last that succeeded)."""

    def __init__(self):
        self._checked = None

    def run(self, catch_up):
        """Run ``catch_up(check_purges=...)`` for one pass."""
        started = time.monotonic()
        due = self._checked is None or started - self._checked >= PURGE_CHECK_SECONDS
        result = catch_up(check_purges=due)
        if due:
            self._checked = started
        return result


class PurgeCheck:
    """Finds the records of a collection that storage lost without the index knowing, and
    compares the whole index of a collection with storage to delete them."""

    def __init__(self, registry):
        self.storage = registry.storage
        self.index_side = registry.elasticsearch.index
        self.settings = registry.elasticsearch.settings
        # ``{(bucket, collection, timestamp): (indexed, stored)}`` counted ahead, for a
        # slice at once (``prefetch``); used once each.
        self._counted = {}

    def prefetch(self, up_to, refreshed=None):
        """Count ahead, for the collections of ``up_to`` (``{key: timestamp}``), what
        :meth:`purged` compares: one search per index and one storage query for them all,
        where asking one by one costs two requests per collection."""
        self._counted = {}
        if not up_to:
            return
        indexed = self.index_side.reader.count_live_many(up_to, refreshed=refreshed)
        stored = live_counts_up_to(self.storage, up_to)
        for key, timestamp in up_to.items():
            self._counted[(*key, timestamp)] = (indexed[key], stored[key])

    def purged(self, bucket_id, collection_id, timestamp, refreshed=None):
        """Whether the index holds live records up to ``timestamp`` that storage lost: their
        tombstones were purged before the index saw them (see the module's docstring)."""
        counted = self._counted.pop((bucket_id, collection_id, timestamp), None)
        if counted is not None:
            indexed, stored = counted
        else:
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

    def compare_and_repair(self, bucket_id, collection_id, metadata, report):
        """``verify --repair`` of one collection: after a purge, or a change of the
        collection that the changes since its checkpoint may not show."""
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
