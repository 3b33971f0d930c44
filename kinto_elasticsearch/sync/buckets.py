"""What the catch-up's pass (``incremental``) does of the buckets its scan finds.

A deleted bucket leaves its tombstone only (its collections are purged without one): what
the engine holds of it goes, with a request each for its indices, its pooled documents and
its checkpoints, whatever its number of collections.

A bucket deleted and created again looks, to the scan, like a bucket changed: its earlier
collections went without tombstones. So a bucket seen created or changed is checked, once
per change (``Position.buckets`` keeps what was checked and where a check stands: every
pass of the overlap reads the bucket again). A bucket's delete purges all its collections
at once, so one checkpoint whose collection storage still holds, and that no change of the
pass explains, shows that nothing was lost: a sample of :data:`SAMPLE_SIZE` checkpoints (one
small search) settles a bucket changed or new. Only when a sampled collection is gone are
the bucket's checkpoints read, :data:`BUCKET_PAGE` a pass, and those of collections storage
no longer has dropped (the reconciliation's sweep finds them too, later).
"""

import logging

from kinto_elasticsearch.index import naming
from kinto_elasticsearch.storage import live_collection_ids

logger = logging.getLogger(__name__)

SAMPLE_SIZE = 10
BUCKET_PAGE = 1000
SAMPLE, PAGE, DONE = "sample", "page", "done"


class BucketChecks:
    """The buckets of one pass (``pass_``, an ``IncrementalPass``) and its ``position``."""

    def __init__(self, pass_, position):
        self.store = pass_.store
        self.storage = pass_.storage
        self.index_side = pass_.index_side
        self.drop_collection = pass_.drop_collection
        self.position = position

    def drop(self, bucket_id, report):
        """Remove a bucket storage deleted, if the engine holds a checkpoint of it: its
        indices and documents, then its checkpoints, with a request each, not one per
        collection. ``report.removed`` names the bucket's pattern."""
        if not self.store.search(self._checkpoints_of(bucket_id), 1):
            return
        logger.info("Deleting the indices of bucket %s: it is gone", bucket_id)
        self.index_side.removal.delete_bucket_indices(bucket_id)
        self.store.delete_prefix(self._alias_prefix(bucket_id))
        report.removed.append(naming.bucket_pattern(self.index_side.prefix, bucket_id))
        self.position.buckets.pop(bucket_id, None)

    def seen(self, buckets_seen):
        """Note the buckets the scan found created or changed, ``{bucket id: timestamp}``:
        one read again with the timestamp it was checked at is not checked again."""
        for bucket_id, last_modified in sorted(buckets_seen.items()):
            entry = self.position.buckets.get(bucket_id)
            if entry is None or entry["timestamp"] != last_modified:
                self.position.buckets[bucket_id] = {"timestamp": last_modified, "state": SAMPLE}

    def check(self, report, changed):
        """Check the buckets seen created or changed for collections storage lost with an
        earlier life of the bucket: a sample, then (a sampled one gone) a page a pass.
        ``changed``: the collections this pass found changed."""
        for bucket_id, entry in sorted(self.position.buckets.items()):
            if entry["state"] == SAMPLE:
                entry["state"] = DONE if self._bucket_kept(bucket_id, changed) else PAGE
            if entry["state"] == PAGE:
                after = self._drop_lost_collections(bucket_id, entry.get("after"), report)
                entry["state"], entry["after"] = (PAGE, after) if after else (DONE, None)

    def _bucket_kept(self, bucket_id, changed):
        """Whether a sample of the bucket's checkpoints, of collections this pass saw no
        change of, all have their collection in storage (or there are none). The sample
        is taken past the checkpoints of the collections changed with the bucket."""
        seen = {cid for bid, cid in changed if bid == bucket_id}
        if len(seen) + SAMPLE_SIZE > BUCKET_PAGE:
            return False  # Too many changed with it to sample past them: read its pages.
        query = self._checkpoints_of(bucket_id)
        sample = self.store.search(query, len(seen) + SAMPLE_SIZE, sort=False)
        ids = {checkpoint.collection_id for checkpoint in sample.values()} - seen
        return live_collection_ids(self.storage, bucket_id, ids) == ids

    def _drop_lost_collections(self, bucket_id, after, report):
        """Drop the collections of one page of a bucket's checkpoints, after the alias
        ``after``, that storage no longer has. The last alias read, or None when the page
        was the bucket's last."""
        page = self.store.search(self._checkpoints_of(bucket_id), BUCKET_PAGE, after=after)
        ids = {checkpoint.collection_id for checkpoint in page.values()}
        live = live_collection_ids(self.storage, bucket_id, ids)
        for checkpoint in page.values():
            if checkpoint.collection_id not in live:
                self.drop_collection(bucket_id, checkpoint.collection_id, report)
        return max(page) if len(page) == BUCKET_PAGE else None

    def _alias_prefix(self, bucket_id):
        return naming.alias_name(self.index_side.prefix, bucket_id, "")

    def _checkpoints_of(self, bucket_id):
        """The query of a bucket's checkpoints (their aliases start with its prefix)."""
        return {"prefix": {"alias": self._alias_prefix(bucket_id)}}

    def forget_settled(self):
        """Forget the buckets checked and past the overlap: no pass reads them again."""
        timestamp = self.position.timestamp
        self.position.buckets = {
            bucket_id: entry
            for bucket_id, entry in self.position.buckets.items()
            if entry["state"] != DONE or entry["timestamp"] >= timestamp
        }
