"""Keeping a collection's index the shape its metadata asks for.

A collection without an index gets one. A changed mapping is applied to the live index,
or the index rebuilt (``rebuild``, without downtime) when the engine refuses it or when
the documents themselves change (``index:exclude_fields``). An index without checkpoint
is rebuilt, since nothing says it follows its collection. A pooled collection moves to an
index of its own (a promotion) when its metadata needs one or when it outgrew its pool.
"""

import logging

from kinto_elasticsearch.client import EngineRequestError
from kinto_elasticsearch.index.placement import needs_own_index
from kinto_elasticsearch.storage import collection_uri
from kinto_elasticsearch.sync.checkpoints import SyncStore, fingerprint
from kinto_elasticsearch.sync.rebuild import RebuildInProgress, reindex_collection

logger = logging.getLogger(__name__)


class Reshaper:
    """Creates, reshapes, rebuilds and promotes the index of a collection."""

    def __init__(self, registry, overlap_ms):
        self.registry = registry
        self.storage = registry.storage
        self.index_side = registry.elasticsearch.index
        self.settings = registry.elasticsearch.settings
        self.overlap_ms = overlap_ms

    def follow(self, bucket_id, collection_id, metadata, has_index, checkpoint, report):
        """Give the collection's index the shape of ``metadata``, before its catch-up.

        ``(checkpoint, fingerprint)`` to catch the index up from, or None when a rebuild
        brought it up to date. The checkpoint is None for an index just created; the
        fingerprint stays the checkpoint's while the new shape waits for a rebuild.
        """
        alias = self.index_side.locator.alias(bucket_id, collection_id)
        shape = fingerprint(metadata)
        if not has_index and self.index_side.locator.look_up(alias):
            # Created since the pass looked (the collection's own create, in the background,
            # or the sender on demand): documents may be there already, built from metadata
            # older than this pass read. Its checkpoint, if saved meanwhile, says their
            # shape; without one, the rule below rebuilds it.
            has_index = True
            checkpoint = SyncStore(self.index_side).get_many([alias]).get(alias)
        if not has_index:
            self.index_side.admin.create_index(bucket_id, collection_id, metadata)
            report.created.append(alias)
            checkpoint = None
        elif checkpoint is None:
            # An index without a checkpoint: made by the sender before any pass (the
            # engine restarted empty), or by an earlier version of the plugin. Neither its
            # documents nor its mapping are known to follow the collection: rebuild it.
            if self._rebuild(bucket_id, collection_id, metadata, report):
                return None
        elif checkpoint.fingerprint != shape:
            if self._reshape(bucket_id, collection_id, metadata, checkpoint, shape, report):
                if alias in report.rebuilt:
                    return None
            else:
                # Another process is rebuilding it (or died doing so, until its lease
                # expires): keep the live index caught up meanwhile, and try again next
                # pass (the old fingerprint stays).
                shape = checkpoint.fingerprint
        elif self._pooled_but_shaped(bucket_id, collection_id, metadata):
            # Pooled by an earlier version, which kept only ``index:schema`` and
            # ``index:settings`` out of pools: the index of its own its mapping needs.
            if self._rebuild(bucket_id, collection_id, metadata, report, promote=True):
                return None
        else:
            self._configured_own(bucket_id, collection_id, metadata)
        return checkpoint, shape

    def _configured_own(self, bucket_id, collection_id, metadata):
        """A collection the plugin moved out of its pool whose metadata now asks for an
        index of its own (``index:settings``, ``index:schema``): it has one already, and
        its searches get its rules from now on (``Placement.shared``)."""
        where = self.index_side.locator.placement(bucket_id, collection_id, metadata)
        if where.moved and needs_own_index(metadata):
            self.index_side.locator.records.record(where.alias, where.key, shared=False)
            self.index_side.locator.forget(where.alias)

    def promote_if_misfit(self, bucket_id, collection_id, metadata, objects, outgrown, report):
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
            return False
        return self.move_out(bucket_id, collection_id, metadata, report, reason)

    def move_out(self, bucket_id, collection_id, metadata, report, reason):
        """Move a pooled collection to an index of its own the plugin chose (its searches
        keep its pool's rules: ``Placement.moved``); False if not done."""
        logger.info(
            "%s %s: moving it to an index of its own",
            collection_uri(bucket_id, collection_id),
            reason,
        )
        return self._rebuild(bucket_id, collection_id, metadata, report, promote=True, shared=True)

    def _pooled_but_shaped(self, bucket_id, collection_id, metadata):
        # The placement first: it is cached, a derived mapping is computed.
        where = self.index_side.locator.placement(bucket_id, collection_id, metadata)
        return where.pooled and needs_own_index(metadata)

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

    def _rebuild(self, bucket_id, collection_id, metadata, report, promote=False, shared=False):
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
                shared=shared,
            )
        except RebuildInProgress as exc:
            logger.info("Not rebuilding %s: %s", alias, exc)
            report.busy.append(alias)
            return False
        logger.info("Rebuilt the index of %s: %s records", alias, result.indexed)
        report.rebuilt.append(alias)
        return True
