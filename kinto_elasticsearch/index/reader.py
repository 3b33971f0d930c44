"""Reading back what the index holds of a collection: versions, partial documents,
counts. Comparing the index with storage (catch-up, verify) is built on these."""

from kinto_elasticsearch.index.documents import LIVE_DOCUMENTS
from kinto_elasticsearch.index.fieldnames import UNINDEXED_FIELD
from kinto_elasticsearch.index.placement import COLLECTION_FIELD


class Reader:
    def __init__(self, engine, locator):
        self.engine = engine
        self.locator = locator

    def versions(self, bucket_id, collection_id, ids, tombstones=True):
        """``{id: indexed version}`` for those of ``ids`` the index holds.

        With ``tombstones``, deleted records' tombstone documents count as held.
        """
        return {
            record_id: version
            for record_id, (version, _) in self._held(bucket_id, collection_id, ids, tombstones)
        }

    def indexed_records(self, bucket_id, collection_id, ids):
        """``{id: (indexed version, paths left out)}`` for the records of ``ids`` the index
        holds (tombstones are not records)."""
        return dict(self._held(bucket_id, collection_id, ids, tombstones=False))

    def _held(self, bucket_id, collection_id, ids, tombstones):
        if not ids:
            return []
        where = self.locator.placement(bucket_id, collection_id)
        values = where.document_ids(ids)
        query = {"ids": {"values": values}}
        wanted = [where.collection_filter()] if tombstones else where.record_filters()
        query = {"bool": {"filter": [query, *(f for f in wanted if f is not None)]}}
        body = {"query": query, "size": len(values), "_source": [UNINDEXED_FIELD], "version": True}
        hits = self.engine.call("search", index=where.target, body=body, **where.routing)
        return [
            (
                where.record_id(hit["_id"]),
                (hit["_version"], (hit.get("_source") or {}).get(UNINDEXED_FIELD)),
            )
            for hit in hits["hits"]["hits"]
        ]

    def count_live(self, bucket_id, collection_id, up_to=None, refreshed=None):
        """The records (not tombstones) the index holds (at a version up to ``up_to``), as
        of a refresh made now; or, for a physical index in ``refreshed`` (a set this adds
        to), as of the caller's earlier refresh, which shows a collection the caller knows
        unchanged since: a pool is then refreshed once for all its collections."""
        where = self.locator.placement(bucket_id, collection_id)
        self._refresh_once(where.target, refreshed)
        body = {"query": _live(where, up_to), "size": 0, "track_total_hits": True}
        found = self.engine.call("search", index=where.target, body=body, **where.routing)
        return found["hits"]["total"]["value"]

    def count_live_many(self, up_to, refreshed=None):
        """``{(bucket id, collection id): records}`` as :meth:`count_live` counts them up
        to each collection's timestamp in ``up_to`` (``{key: timestamp}``): one refresh and
        one search per index, however many of a pool's collections are asked."""
        by_target = {}
        for key, timestamp in up_to.items():
            where = self.locator.placement(*key)
            by_target.setdefault(where.target, []).append((key, where, timestamp))
        counts = {}
        for target, items in sorted(by_target.items()):
            self._refresh_once(target, refreshed)
            wanted = {f"c{n}": _live(where, ts) for n, (_, where, ts) in enumerate(items)}
            body = {"size": 0, "track_total_hits": False,
                    "aggs": {"live": {"filters": {"filters": wanted}}}}  # fmt: skip
            if items[0][1].pooled:
                # Only the records of the asked collections are aggregated, not the whole
                # pool, which grows with every collection.
                keys = sorted(where.key for _, where, _ in items)
                in_keys = {"terms": {COLLECTION_FIELD: keys}}
                scope = [in_keys]
                if not all(where.marked for _, where, _ in items):
                    scope.insert(0, LIVE_DOCUMENTS)
                body["query"] = {"bool": {"filter": scope}}
            found = self.engine.call("search", index=target, body=body)
            buckets = found["aggregations"]["live"]["buckets"]
            for n, (key, _, _) in enumerate(items):
                counts[key] = buckets[f"c{n}"]["doc_count"]
        return counts

    def _refresh_once(self, target, refreshed):
        """Refresh ``target``, unless it is in ``refreshed`` (None: always), which it joins."""
        if refreshed is None or target not in refreshed:
            self.engine.call("indices.refresh", index=target)
            if refreshed is not None:
                refreshed.add(target)

    def partly_indexed(self, bucket_id, collection_id):
        """Whether some record of the collection is indexed without some of its fields."""
        where = self.locator.placement(bucket_id, collection_id)
        wanted = [*where.record_filters(), {"exists": {"field": UNINDEXED_FIELD}}]
        body = {"query": {"bool": {"filter": wanted}}}
        found = self.engine.call("count", index=where.target, body=body, **where.routing)
        return found["count"] > 0

    def iter_documents(self, bucket_id, collection_id, page_size=1000):
        """Pages of ``{id: indexed version}`` over the records of the index, in id order."""
        where = self.locator.placement(bucket_id, collection_id)
        body = {
            "query": {"bool": {"filter": where.record_filters()}},
            "size": page_size,
            "sort": [{"id": "asc"}],
            "_source": False,
            "version": True,
        }
        while True:
            found = self.engine.call("search", index=where.target, body=body, **where.routing)
            hits = found["hits"]["hits"]
            if not hits:
                return
            yield {where.record_id(hit["_id"]): hit["_version"] for hit in hits}
            body["search_after"] = hits[-1]["sort"]


def _live(where, up_to=None):
    """The query of a collection's records (not tombstones), at a version up to ``up_to``."""
    up_to_filter = None if up_to is None else {"range": {"last_modified": {"lte": up_to}}}
    wanted = [*where.record_filters(), *filter(None, [up_to_filter])]
    return {"bool": {"filter": wanted}}
