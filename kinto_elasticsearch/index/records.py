"""The placements that the pool hash does not give, and the pools' layout, kept as
documents of the plugin's sync index (``{prefix}.-sync``, see ``sync/checkpoints.py``).

A pooled collection lives in pool ``pool_number(key, layout)``: nothing in the engine says
so, and nothing needs to (``index/placement.py``). What the hash does not give is recorded
here, one document per collection (kind ``placement``): a collection with an index of its
own (``pool`` None: its alias says which), and a pooled collection in another pool than its
hash's (left where it was when an older version placed it). They are few, so a process
loads them all in one paged search, and again when its copy is :data:`MAX_AGE` old or when
it changes one itself.

The layout document (kind ``layout``) holds the number of pools collections are hashed
over, recorded by the first process that pools a collection, whether the aliases of an
older version were migrated (``migrated``): until then, a collection the records do not
name is looked up by its alias, as that version did (``index/locator.py``); and whether
every pool's tombstones carry their mark (``tombstones_marked``, ``index/tombstones.py``):
until then, searches tell records from tombstones by their ``id``.
"""

import time

from kinto_elasticsearch.client import EngineNotFound, EngineRequestError
from kinto_elasticsearch.client.engine import WRITE
from kinto_elasticsearch.index import naming

# What a process's copy of the records may miss of another process's changes, in seconds:
# a promotion made elsewhere is seen within it.
MAX_AGE = 10.0
PAGE_SIZE = 1000
KIND = "placement"
LAYOUT = "layout"
LAYOUT_ID = "layout"
# The sync index's mapping (``sync/checkpoints.MAPPING``): ``kind`` and ``alias`` only.
MAPPING = {
    "dynamic": False,
    "properties": {"kind": {"type": "keyword"}, "alias": {"type": "keyword"}},
}


def record_id(alias):
    return f"{KIND}:{alias}"


class PlacementRecords:
    def __init__(self, engine, prefix, indices, pools=0):
        self.engine = engine
        self.indices = indices
        self.index = naming.sync_index_name(prefix)
        # The configured number of pools: the layout until one is recorded.
        self.configured = pools
        self._loaded_at = None
        self._records = {}
        self._layout = {}

    def _ensure(self):
        self.indices.ensure_internal(self.index, {"mappings": MAPPING})

    def load(self, refresh=False, lane=WRITE):
        """Read every record and the layout (one paged search) unless the copy is fresh.

        An engine that cannot answer leaves the copy as it was: a collection it does not
        name is then looked up by its alias, which is always right."""
        now = time.monotonic()
        if self._loaded_at is not None:
            age = now - self._loaded_at
            if age < MAX_AGE and not (refresh and age >= 1.0):
                return
        body = {
            "query": {"terms": {"kind": [KIND, LAYOUT]}},
            "size": PAGE_SIZE,
            "sort": [{"alias": "asc"}],
        }
        records, layout = {}, {}
        while True:
            try:
                found = self.engine.call("search", index=self.index, body=body, lane=lane)
            except EngineNotFound:
                break
            except EngineRequestError:
                # The sync index was auto-created without its mapping: the sync starts it over.
                return
            hits = found["hits"]["hits"]
            for hit in hits:
                source = hit.get("_source") or {}
                if source.get("kind") == LAYOUT:
                    layout = source
                elif source.get("alias"):
                    records[source["alias"]] = (source.get("pool"), source.get("shared") is True)
            if len(hits) < PAGE_SIZE:
                break
            body["search_after"] = hits[-1]["sort"]
        self._records, self._layout, self._loaded_at = records, layout, now

    def find(self, alias, refresh=False, lane=WRITE):
        """``(True, pool or None, shared)`` when ``alias`` has a record, else
        ``(False, None, False)``. ``shared``: the plugin moved the collection out of its
        pool on its own, and its searches keep a pooled collection's rules
        (``Placement.moved``)."""
        self.load(refresh, lane)
        if alias in self._records:
            return (True, *self._records[alias])
        return False, None, False

    def recorded(self):
        """``{alias: pool or None}`` of every record (as last loaded)."""
        self.load()
        return {alias: pool for alias, (pool, _) in self._records.items()}

    @property
    def pools(self):
        """How many pools collections are hashed over: the recorded layout's, else the
        configured number."""
        self.load()
        recorded = self._layout.get("pools")
        return recorded if isinstance(recorded, int) and recorded > 0 else self.configured

    @property
    def has_layout(self):
        """Whether a layout is recorded (as last loaded)."""
        self.load()
        return bool(self._layout.get("pools"))

    @property
    def migrated(self):
        """Whether no collection still has an alias on a pool (an older version's)."""
        self.load()
        return bool(self._layout.get("migrated"))

    @property
    def tombstones_marked(self):
        """Whether every pool's tombstones carry their mark (``placement.tombstone_key``)."""
        self.load()
        return bool(self._layout.get("tombstones_marked"))

    def record(self, alias, key, pool=None, shared=False):
        """Record that the collection of ``alias`` lives at ``pool`` (None: an index of its
        own; ``shared``: one the plugin moved it to on its own). Written, and refreshed,
        before the engine holds anything of it there."""
        self.record_many({alias: (pool, key, shared)})

    def record_many(self, placements):
        """Record ``{alias: (pool or None, collection key[, shared])}`` in bulk requests."""
        items = sorted(placements.items())
        if not items:
            return
        self._ensure()
        for start in range(0, len(items), PAGE_SIZE):
            body = []
            for alias, (pool, key, *shared) in items[start : start + PAGE_SIZE]:
                body.append({"index": {"_index": self.index, "_id": record_id(alias)}})
                source = {"kind": KIND, "alias": alias, "key": key, "pool": pool}
                if pool is None and shared and shared[0]:
                    source["shared"] = True
                body.append({**source, "saved_at": time.time()})
            response = self.engine.call("bulk", body=body, refresh="true")
            if response.get("errors"):
                items = [item["index"] for item in response["items"]]
                failed = [item for item in items if item.get("status", 500) >= 300]
                raise EngineRequestError(f"placement records refused: {failed[:3]}")
        for alias, (pool, _, *shared) in items:
            self._records[alias] = (pool, pool is None and bool(shared and shared[0]))

    def forget(self, aliases):
        """Drop the records of ``aliases`` (their collections went)."""
        for alias in aliases:
            self._records.pop(alias, None)
            try:
                self.engine.call("delete", index=self.index, id=record_id(alias), refresh="true")
            except EngineNotFound:
                pass

    def record_layout(self, migrated=None, tombstones_marked=None):
        """Record the layout unless one is: the first process to pool a collection fixes
        the number of pools for good (a create-only write, one winner). ``migrated``: note
        that no older alias remains; ``tombstones_marked``: that no pool holds a tombstone
        without its mark."""
        self.load()
        noted = {"migrated": migrated, "tombstones_marked": tombstones_marked}
        if self._layout.get("pools") and all(
            value is None or self._layout.get(name) for name, value in noted.items()
        ):
            return
        self._ensure()
        layout = {
            "kind": LAYOUT,
            "alias": "",
            "pools": self.pools,
            "migrated": bool(migrated or self._layout.get("migrated")),
            "tombstones_marked": bool(tombstones_marked or self._layout.get("tombstones_marked")),
            "saved_at": time.time(),
        }
        # Create-only when none was read: of two processes pooling their first collection
        # at once, one fixes the layout.
        create = {} if self._layout else {"op_type": "create"}
        try:
            self.engine.call(
                "index", index=self.index, id=LAYOUT_ID, body=layout, refresh="true", **create
            )
        except EngineRequestError as exc:
            if exc.status != 409 and exc.error_type != "version_conflict_engine_exception":
                raise
            # Another process recorded one first: it is the layout.
            self._loaded_at = None
            self.load()
            return
        self._layout = layout

    def clear(self):
        """Forget the copy (a flush deleted the sync index)."""
        self._loaded_at, self._records, self._layout = None, {}, {}
