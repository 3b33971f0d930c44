"""Removing what the engine holds of collections that went: a collection's indices, or
its alias and documents in its pool; a bucket's; everything of the prefix (a flush)."""

from kinto_elasticsearch.index import naming


class Removal:
    def __init__(self, indices, locator, pools):
        self.indices = indices
        self.locator = locator
        self.pools = pools
        self.prefix = locator.prefix

    def delete_collection_indices(self, bucket_id, collection_id):
        """Delete a collection's indices, or its documents and alias in its pool."""
        alias = self.locator.alias(bucket_id, collection_id)
        if self.locator.look_up(alias):
            where = self.locator.placement(bucket_id, collection_id)
            if where.pooled:
                self.indices.remove_aliases([(where.pool, alias)])
                self.pools.delete_documents(where)
        self.locator.forget(alias)
        pattern = naming.collection_pattern(self.prefix, bucket_id, collection_id)
        return self.indices.delete(sorted(self.indices.listed(pattern)))

    def delete_bucket_indices(self, bucket_id):
        """Delete a bucket's indices, and its collections' documents and aliases in pools:
        one delete-by-query per pool, for the keys of that bucket only."""
        pattern = naming.bucket_pattern(self.prefix, bucket_id)
        pooled = self.locator.pooled_aliases(pattern)
        for alias in pooled:
            self.locator.forget(alias)
        self.pools.drop(pooled)
        return self.indices.delete(sorted(self.indices.listed(pattern)))

    def drop_alias(self, alias, indices):
        """Remove a collection known only by its alias and the ``indices`` behind it (its
        collection is gone): dedicated indices are deleted, a pool loses the collection's
        alias and documents only."""
        dedicated = [name for name in indices if not naming.is_pool(self.prefix, name)]
        if len(dedicated) < len(indices):
            self.locator.forget(alias)
            pooled = self.locator.pooled_aliases(alias)
            self.pools.drop({alias: pooled[alias]} if alias in pooled else {})
        return self.indices.delete(sorted(dedicated))

    def flush(self):
        """Delete every index of this plugin's prefix."""
        self.locator.forget()
        return self.indices.delete(sorted(self.indices.listed(naming.prefix_pattern(self.prefix))))
