"""Which fields of a pool's mapping a pooled collection's records hold.

A pool's mapping is every tenant's: a filter, a sort or ``q`` reading it would behave
differently for a field another tenant mapped (its type, and how many fields ``q``
searches), so a pooled search keeps to the fields its collection's records hold, as an
index of its own would map no other. Which they are takes one search: an ``exists`` per
field of the pool, under the collection filter (before the permission filter: an index of
its own maps the fields of every record, readable or not). A bucket-wide search asks it
once for all the bucket's readable pooled collections.

That search is cached per collection (:class:`HeldCache`), keyed by the timestamp of the
collection's records in Kinto's storage, which every write moves in every process: a
field T writes is asked for afresh at its next search; what O writes never moves T's key
(and O's fields are not T's whatever the cache holds). The key is read only when the
entry could be stale for the search: not for one naming only fields the entry holds. The
answer is cached only once the
collection's last write is older than :data:`SETTLE_MS`, by when the write has reached the
engine and been refreshed (writes are sent in the background); and for
:data:`MAX_AGE_SECONDS` at most, for records the catch-up indexes late (after an outage),
which move no timestamp.
"""

import logging
import threading
import time

from kinto_elasticsearch.index.placement import COLLECTION_FIELD
from kinto_elasticsearch.search import facets
from kinto_elasticsearch.storage import record_timestamps

logger = logging.getLogger(__name__)

# A write this recent may not be searchable yet: what ``exists`` finds is not cached.
SETTLE_MS = 3000
# However old the last write: for the catch-up's late documents.
MAX_AGE_SECONDS = 30.0
# Entries kept per process (collections searched recently).
MAX_ENTRIES = 4096


def presence_body(names, timeout):
    """The search that tells which of ``names`` some document holds."""
    present = {f"f{i}": {"exists": {"field": name}} for i, name in enumerate(names)}
    return {
        "size": 0,
        "track_total_hits": False,
        "aggs": {"present": {"filters": {"filters": present}}},
        "timeout": timeout,
    }


def held_names(names, response):
    """The ``names`` of :func:`presence_body` that some document holds, from its answer."""
    buckets = response.get("aggregations", {}).get("present", {}).get("buckets", {})
    return frozenset(n for i, n in enumerate(names) if buckets.get(f"f{i}", {}).get("doc_count"))


def kept_types(types, held):
    """The ``types`` whose field is ``held`` (with its sub-fields, and what every record
    holds)."""

    def holds(name):
        parent = name.rsplit(".", 1)[0]
        # A sub-field (``title.keyword``) is held with its field, whether or not the engine
        # finds it by ``exists``.
        sub_field = parent != name and types.get(parent) not in (None, *facets.CONTAINERS)
        return name in held or name in facets.UNIQUE_FIELDS or (sub_field and holds(parent))

    # The pool's own field (which collection a document is of): every document of a pool
    # holds it, none of an index of its own; a search under a pool's rules reads it nowhere.
    return {name: kind for name, kind in types.items() if holds(name) and name != COLLECTION_FIELD}


def records_timestamp(request, bucket_id, collection_id):
    """The newest timestamp of a collection's records and tombstones in Kinto's storage (0:
    none), which every write of one moves in every process: what the cache of their fields
    is keyed by. A read-only query (``storage.record_timestamps``): Kinto's own
    ``resource_timestamp`` writes the timestamp of an empty collection, a write
    transaction for every search."""
    key = (bucket_id, collection_id)
    try:
        return record_timestamps(request.registry.storage, [key]).get(key, 0)
    except Exception:  # A storage that cannot tell: the fields are asked for, not cached.
        logger.debug("No records timestamp for %s/%s", *key, exc_info=True)
        return None


class HeldCache:
    """``{collection: (records timestamp, fields asked, held, when)}``, per process."""

    def __init__(self, clock=time.monotonic, wall=time.time):
        self.clock = clock
        self.wall = wall
        self.entries = {}
        self.lock = threading.Lock()
        # Engine requests saved, and made: for tests and benchmarks.
        self.hits = 0
        self.misses = 0

    def held(self, key, timestamp, names, ask, enough=None):
        """The ``names`` the collection ``key`` holds: cached, or ``ask(names)``.

        ``timestamp()``: the key, the collection's records timestamp (a storage query).
        ``enough(held)``: whether a fresh entry answers without the key being read: when
        the fields a search names are all held (a write since then can only have added
        fields, which it does not need, or deleted the last records holding one: then, for
        :data:`MAX_AGE_SECONDS` at most, a search of it reads the pool's mapping of a
        field no record of the collection holds any more)."""
        asked = frozenset(names)
        with self.lock:
            entry = self.entries.get(key)
        if entry is not None:
            stamp, known, held, when = entry
            fresh = self.clock() - when < MAX_AGE_SECONDS and asked <= known
            if fresh and enough is not None and enough(held):
                self.hits += 1
                return held & asked
        timestamp = timestamp()
        if entry is not None and fresh and stamp == timestamp:
            self.hits += 1
            return held & asked
        self.misses += 1
        held = ask(sorted(asked))
        if timestamp is not None and self.wall() * 1000 - timestamp > SETTLE_MS:
            with self.lock:
                if len(self.entries) >= MAX_ENTRIES:
                    self.entries.clear()
                self.entries[key] = (timestamp, asked, held, self.clock())
        return held
