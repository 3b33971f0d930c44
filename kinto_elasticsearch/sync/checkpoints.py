"""Checkpoints and leases, kept in the engine in one small index of the plugin's prefix.

The index is ``{prefix}.-sync``: Kinto ids never start with ``-``, so the name can never be
a collection's (see ``naming``), and bucket patterns never match it. Keeping checkpoints in
the engine, not in storage, is what makes an engine that lost its data (restarted empty,
restored from an old snapshot of another cluster) rebuild itself: with its data it lost
its checkpoints, and the catch-up starts over for every collection, without an operator.

A checkpoint says how far a collection's index is known to follow storage:

- ``timestamp``: every record and tombstone with a ``last_modified`` up to it is indexed;
- ``seen``: the highest ``last_modified`` indexed (between the two, records may still
  be missing: transactions that took their timestamp earlier but committed later);
- ``objects``: records and tombstones in storage when it was read (only a purge of
  tombstones or a collection recreated makes that number go down);
- ``metadata``: the collection's ``last_modified``, and ``fingerprint``: what of the
  collection shapes its index (mapping, excluded fields).
"""

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field

from kinto_elasticsearch.client import EngineNotFound, EngineRequestError
from kinto_elasticsearch.index import naming
from kinto_elasticsearch.index.analysis import tenant_settings
from kinto_elasticsearch.index.mapping import (
    collection_mapping,
    excluded_fields,
    private_fields,
    selected_fields,
)

PAGE_SIZE = 1000
MAPPING = {
    "dynamic": False,
    "properties": {"kind": {"type": "keyword"}, "alias": {"type": "keyword"}},
}


# Raised when the plugin changes what a record becomes in the index (see ``index.documents``).
DOCUMENTS_VERSION = 2


def _digest(value):
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def fingerprint(metadata):
    """``"{mapping}:{documents}"``: what of a collection shapes its index. The second part
    changes what only a rebuild applies: the fields sent (excluded, selected), those never
    listed as left out (private), and the analysis settings. A version of the plugin that
    builds documents otherwise changes it too, so that its indices are rebuilt once."""
    documents = [
        DOCUMENTS_VERSION,
        excluded_fields(metadata),
        selected_fields(metadata),
        private_fields(metadata),
        tenant_settings(metadata),
    ]
    return f"{_digest(collection_mapping(metadata))}:{_digest(documents)}"


@dataclass
class Checkpoint:
    bucket_id: str
    collection_id: str
    timestamp: int = 0
    seen: int = 0
    objects: int = 0
    metadata: int = 0
    fingerprint: str = ""

    @property
    def settled(self):
        """Whether nothing may still be missing below ``seen``."""
        return self.timestamp >= self.seen


# The catch-up's global position, and its lease (``worker``), in the same index.
POSITION_ID = "position"


@dataclass
class Position:
    """How far the catch-up of every collection follows storage (``incremental``).

    ``timestamp``: every object modified up to it was seen by a pass (the clock noted
    before it read, less the overlap); ``cursor``: the last collection of the
    reconciliation's slices, ``(bucket, collection)``, None at the start of a sweep;
    ``checkpoint_cursor``: the last checkpoint (alias) the slices checked against storage;
    ``sweeps``: the sweeps completed, for reports and tests; ``buckets``: the buckets seen
    created or changed whose checkpoints are checked against storage (a bucket created
    again lost its earlier collections without tombstones), ``{bucket id: {"timestamp":
    its last_modified, "state": "sample", "page" or "done", "after": the last alias a page
    checked}}`` (``incremental``).
    """

    timestamp: int = 0
    cursor: tuple = None
    checkpoint_cursor: str = None
    sweeps: int = 0
    buckets: dict = field(default_factory=dict)


class SyncStore:
    """Checkpoints (and rebuild leases) of one prefix, in the engine."""

    def __init__(self, index_side):
        self.index_side = index_side
        self.index = naming.sync_index_name(index_side.prefix)

    def _call(self, operation, **kwargs):
        return self.index_side.engine.call(operation, **kwargs)

    def ensure_index(self):
        """Create the index, unless it exists.

        A save into a missing index would auto-create it with dynamic mappings, where
        ``alias`` cannot be sorted on: :meth:`load_all` then starts it over.
        """
        self.index_side.indices.ensure_internal(self.index, {"mappings": MAPPING})

    def _recreate(self):
        self.index_side.indices.delete([self.index])
        self.ensure_index()

    def load_all(self):
        """``{alias: Checkpoint}``; empty when the engine holds none (or lost them)."""
        body = {
            "query": {"term": {"kind": "checkpoint"}},
            "size": PAGE_SIZE,
            "sort": [{"alias": "asc"}],
        }
        found = {}
        while True:
            try:
                hits = self._call("search", index=self.index, body=body)["hits"]["hits"]
            except EngineNotFound:
                return found
            except EngineRequestError:
                self._recreate()
                return {}
            for hit in hits:
                source = hit["_source"]
                fields = {k: source[k] for k in Checkpoint.__dataclass_fields__ if k in source}
                found[source["alias"]] = Checkpoint(**fields)
            if len(hits) < PAGE_SIZE:
                return found
            body["search_after"] = hits[-1]["sort"]

    def search(self, query, limit, after=None, sort=True):
        """Up to ``limit`` ``{alias: Checkpoint}`` matching ``query``, in alias order after
        ``after`` (or in no order, not ``sort``: a sample): a bounded read however many are
        stored."""
        body = {
            "query": {"bool": {"filter": [{"term": {"kind": "checkpoint"}}, query]}},
            "size": limit,
        }
        if sort:
            body["sort"] = [{"alias": "asc"}]
        if after is not None:
            body["search_after"] = [after]
        try:
            hits = self._call("search", index=self.index, body=body)["hits"]["hits"]
        except EngineNotFound:
            return {}
        found = {}
        for hit in hits:
            source = hit["_source"]
            fields = {k: source[k] for k in Checkpoint.__dataclass_fields__ if k in source}
            found[source["alias"]] = Checkpoint(**fields)
        return found

    def get_many(self, aliases):
        """``{alias: Checkpoint}`` of those of ``aliases`` that have one: one realtime
        multi-get by id, whatever the number of checkpoints stored."""
        found = {}
        aliases = sorted(set(aliases))
        for start in range(0, len(aliases), PAGE_SIZE):
            ids = [f"checkpoint:{alias}" for alias in aliases[start : start + PAGE_SIZE]]
            try:
                docs = self._call("mget", index=self.index, body={"ids": ids})["docs"]
            except EngineNotFound:
                return found
            for doc in docs:
                if doc.get("found"):
                    source = doc["_source"]
                    fields = {k: source[k] for k in Checkpoint.__dataclass_fields__ if k in source}
                    found[source["alias"]] = Checkpoint(**fields)
        return found

    def load_position(self):
        """The global position of the catch-up (``incremental``), or None: never saved,
        or lost with the engine's data."""
        try:
            answer = self._call("get", index=self.index, id=POSITION_ID)
        except EngineNotFound:
            return None
        if not answer.get("found", True):
            return None
        source = answer["_source"]
        return Position(
            timestamp=source.get("timestamp", 0),
            cursor=tuple(source["cursor"]) if source.get("cursor") else None,
            checkpoint_cursor=source.get("checkpoint_cursor"),
            sweeps=source.get("sweeps", 0),
            buckets=source.get("buckets") or {},
        )

    def save_position(self, position):
        self.ensure_index()
        body = {"kind": "position", "saved_at": time.time(), **asdict(position)}
        self._call("index", index=self.index, id=POSITION_ID, body=body)

    def save(self, alias, checkpoint):
        body = {
            "kind": "checkpoint",
            "alias": alias,
            "saved_at": time.time(),
            **asdict(checkpoint),
        }
        # Created first (once per store): a write would auto-create it, with dynamic mappings.
        self.ensure_index()
        # Refreshed at once: the next pass, maybe in another process, searches for it.
        self._call("index", index=self.index, id=f"checkpoint:{alias}", body=body, refresh="true")

    def refresh(self):
        """Make what was saved without a refresh visible to searches."""
        self._call("indices.refresh", index=self.index)

    def save_many(self, saved, refresh=True):
        """Save ``[(alias, Checkpoint)]`` in one bulk request, refreshed once (or not:
        ``refresh`` False, for a caller that saves many and refreshes after them)."""
        if not saved:
            return
        self.ensure_index()
        body = []
        for alias, checkpoint in saved:
            body.append({"index": {"_index": self.index, "_id": f"checkpoint:{alias}"}})
            body.append({"kind": "checkpoint", "alias": alias, "saved_at": time.time(),
                         **asdict(checkpoint)})  # fmt: skip
        answer = self._call("bulk", body=body, **({"refresh": "true"} if refresh else {}))
        if answer.get("errors"):
            failed = [i["index"].get("error") for i in answer["items"] if "error" in i["index"]]
            raise EngineRequestError(f"checkpoints not saved: {failed[:3]}")

    def delete(self, alias):
        try:
            self._call("delete", index=self.index, id=f"checkpoint:{alias}", refresh="true")
        except EngineNotFound:
            pass

    def delete_prefix(self, prefix):
        """Delete every checkpoint whose alias starts with ``prefix`` (a bucket's): one
        delete-by-query, refreshed, however many there are."""
        query = {"bool": {"filter": [{"term": {"kind": "checkpoint"}},
                                     {"prefix": {"alias": prefix}}]}}  # fmt: skip
        try:
            self._call("indices.refresh", index=self.index)
            self._call("delete_by_query", index=self.index, body={"query": query},
                       conflicts="proceed", refresh=True)  # fmt: skip
        except EngineNotFound:
            pass
