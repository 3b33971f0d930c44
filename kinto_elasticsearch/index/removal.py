"""Removing what the engine holds of collections that went: a collection's indices, or
its documents in its pool, and its placement record; a bucket's; everything of the prefix
(a flush)."""

import fnmatch

from kinto_elasticsearch.index import naming


class Removal:
    def __init__(self, indices, locator, pools):
        self.indices = indices
        self.locator = locator
        self.pools = pools
        self.prefix = locator.prefix

    def delete_collection_indices(self, bucket_id, collection_id):
        """Delete a collection's indices, or its documents in its pool (routed, by its key):
        no alias or index changes for a pooled collection."""
        where = self.locator.placement(bucket_id, collection_id, refresh=True)
        alias = where.alias
        if where.pooled:
            if not self.locator.records.migrated and self.locator.look_up(alias):
                self.indices.remove_aliases([(where.pool, alias)])
            self.pools.delete_documents(where)
        self.locator.forget(alias)
        pattern = naming.collection_pattern(self.prefix, bucket_id, collection_id)
        deleted = self.indices.delete(sorted(self.indices.listed(pattern)))
        self.locator.records.forget([alias])
        return deleted

    def delete_bucket_indices(self, bucket_id):
        """Delete a bucket's indices, and its collections' documents in pools: one
        delete-by-query per pool, for the keys of that bucket only (a prefix query: the
        bucket's collections are gone from storage, with nothing listing them)."""
        pattern = naming.bucket_pattern(self.prefix, bucket_id)
        for alias, (pool, _) in self.locator.pooled_aliases(pattern).items():
            self.indices.remove_aliases([(pool, alias)])
        self.pools.drop_bucket(bucket_id)
        recorded = [a for a in self.locator.records.recorded() if fnmatch.fnmatchcase(a, pattern)]
        deleted = self.indices.delete(sorted(self.indices.listed(pattern)))
        self.locator.records.forget(recorded)
        self.locator.forget()
        return deleted

    def drop_alias(self, alias, indices):
        """Remove a collection known only by its alias and the ``indices`` behind it (its
        collection is gone): dedicated indices are deleted, a pool loses the collection's
        alias (an older version's) and documents only."""
        dedicated = [name for name in indices if not naming.is_pool(self.prefix, name)]
        if len(dedicated) < len(indices):
            self.locator.forget(alias)
            pooled = self.locator.pooled_aliases(alias)
            if alias in pooled:
                pool, key = pooled[alias]
                self.indices.remove_aliases([(pool, alias)])
                self.pools.drop({pool: [key]})
        deleted = self.indices.delete(sorted(dedicated))
        self.locator.records.forget([alias])
        return deleted

    def drop_pooled(self, bucket_id, collection_id):
        """Remove what a pool holds of a collection that went while the engine was away
        (its checkpoint names it): its documents and its placement record. Whether it
        was pooled."""
        where = self.locator.placement(bucket_id, collection_id)
        if where.pooled:
            self.pools.delete_documents(where)
        self.locator.forget(where.alias)
        self.locator.records.forget([where.alias])
        return where.pooled

    def flush(self):
        """Delete every index of this plugin's prefix."""
        self.locator.forget()
        return self.indices.delete(sorted(self.indices.listed(naming.prefix_pattern(self.prefix))))
