"""The engine requests of the read side: searches of one collection or of a bucket's, and
which of a bucket's collections have an index."""

from kinto_elasticsearch.client.engine import SEARCH
from kinto_elasticsearch.index import naming
from kinto_elasticsearch.index.indices import created_if_missing


class Searcher:
    def __init__(self, index, search_timeout=None):
        self.engine = index.engine
        self.index = index
        # The engine stops at the search timeout (the body says so) and answers with what
        # it found; the client waits a little longer, for that answer.
        self.search_timeout = search_timeout

    def search(self, where, body, ensure_index=None):
        """Search one collection at ``where`` (its placement): its pool, routed to its
        shard (the caller's body keeps to its documents), or its alias."""
        return created_if_missing(lambda: self._search(where, body), ensure_index)

    def _search(self, where, body):
        return self.engine.call(
            "search",
            index=where.target,
            body=body,
            timeout=self.search_timeout,
            lane=SEARCH,
            **where.routing,
        )

    def search_indices(self, names, body):
        """Search the named aliases at once (never a pattern); ``body`` restricts further.

        An alias dropped since it was listed (its collection deleted) is skipped."""
        return self.engine.call(
            "search",
            index=",".join(names),
            body=body,
            timeout=self.search_timeout,
            ignore_unavailable=True,
            lane=SEARCH,
        )

    def bucket_indices(self, bucket_id):
        """``{alias: [physical indices]}``: the collections of a bucket that have an index
        of their own (pooled ones have no alias, and their placement says where they are)."""
        by_alias = {}
        pattern = naming.bucket_pattern(self.index.prefix, bucket_id)
        for name, aliases in self.index.indices.listed(pattern, lane=SEARCH).items():
            for alias in aliases:
                by_alias.setdefault(alias, []).append(name)
        return by_alias
