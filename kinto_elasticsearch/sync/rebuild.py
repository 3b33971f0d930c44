"""Rebuilding a collection's index from storage into a new generation, behind its alias.

Search keeps answering from the old index until the swap. Writes made meanwhile go to the
old index through the alias; after the swap, everything modified since the rebuild
started is replayed into the new one. "Since it started" has the trap of the catch-up
(``catchup``): a transaction that took its timestamp before the start may commit after
the fill read its page. So the replay re-reads an overlap behind the start, as long as
any write transaction may last, and versions make the replay safe.

A pooled collection (``index/placement.py``) is rebuilt in place when it stays pooled:
its pool's mapping and analysis are every tenant's, so a new index would change nothing but
the placement; its records are sent again at their own version (``same_version``), which
replaces each document by its new form. It moves to an index of its own (a *promotion*)
when its metadata asks for one (``placement.needs_own_index``), when it grew past
``elasticsearch.pool_max_records``, or when asked (``promote``): the fill and swap above,
the swap recording the move, and the collection's documents deleted from the pool
(routed, by its key) after the replay. Writes meanwhile go to the pool through the
alias until the swap, and the replay brings them into the new index.

One rebuild per collection at a time, in any number of processes: a rebuild holds a lease
in the engine (``RebuildLease``), with an expiry so that a crashed rebuild does not block
the next one for ever, and renewed by a thread of its own while it runs. A rebuild never
deletes an index it did not replace: the swap moves the alias from the indices it points
to, and only those go.

A rebuild killed midway (SIGKILL, OOM) leaves its new index behind, with no alias. The
lease names that index, so the index is known to be abandoned once the lease expired (or
was taken over): ``remove_abandoned`` deletes the indices of a collection that no alias
points to and no live lease names, and the catch-up calls it at every pass.
"""

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from kinto.core.storage import Filter
from kinto.core.utils import COMPARISON

from kinto_elasticsearch.client import EngineError, EngineNotFound, EngineRequestError
from kinto_elasticsearch.index import naming
from kinto_elasticsearch.index.placement import needs_own_index
from kinto_elasticsearch.storage import collection_uri, iter_record_pages
from kinto_elasticsearch.sync.apply import apply_changes, split_changes
from kinto_elasticsearch.sync.checkpoints import Checkpoint, SyncStore, fingerprint
from kinto_elasticsearch.sync.pipeline import pipelined

logger = logging.getLogger(__name__)

# Renewed every third of it by the rebuild's heartbeat, however long one page takes: a live
# rebuild keeps it, and a dead one blocks the next (and keeps its index) no longer
# (``rebuild_lease_seconds``).
LEASE_SECONDS = 15.0
DEFAULT_OVERLAP_MS = 300_000


class RebuildInProgress(Exception):
    """Another process (or thread) holds this collection's rebuild lease."""


class Misfit(Exception):
    """A pooled collection's records its pool would index otherwise than an index of its
    own (``PoolFit.misfit``): the refill stops, and the collection moves out."""


class RebuildLease:
    """An expiring lease on rebuilding one collection, held in the sync index.

    Taken with a create-only write (one winner); an expired lease is taken over with a
    compare-and-set on its sequence number (one winner again). It names the physical
    ``index`` the rebuild fills, which no one else may delete while the lease lives.
    """

    def __init__(self, store, alias, index="", seconds=LEASE_SECONDS):
        self._store = store
        self.alias = alias
        self.index = index
        self.seconds = seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._id = lease_id(alias)
        self._seq = None
        self.expires_at = 0.0
        self._lost = None
        self._released = threading.Event()
        self._heartbeat = None

    def _call(self, operation, **kwargs):
        return self._store.index_side.engine.call(operation, index=self._store.index, **kwargs)

    def _body(self):
        self.expires_at = time.time() + self.seconds
        return {"kind": "lease", "alias": self.alias, "owner": self.owner,
                "index": self.index, "expires_at": self.expires_at}  # fmt: skip

    def acquire(self):
        self._store.ensure_index()
        while True:
            try:
                answer = self._call("index", id=self._id, body=self._body(), op_type="create")
                break
            except EngineRequestError as exc:
                if exc.status != 409:
                    raise
            try:
                answer = self._take_over()
                break
            except EngineNotFound:
                continue  # Released between the create and the read: free to take again.
        self._seq = (answer["_seq_no"], answer["_primary_term"])
        self._heartbeat = threading.Thread(
            target=self._beat, name="kinto-elasticsearch-lease", daemon=True
        )
        self._heartbeat.start()
        return self

    def _take_over(self):
        current = self._call("get", id=self._id)
        source = current["_source"]
        if source.get("expires_at", 0) > time.time() and not holder_died(source.get("owner")):
            raise RebuildInProgress(
                f"{self.alias} is being rebuilt by {current['_source'].get('owner')}"
            )
        try:
            return self._call(
                "index",
                id=self._id,
                body=self._body(),
                if_seq_no=current["_seq_no"],
                if_primary_term=current["_primary_term"],
            )
        except EngineRequestError as exc:
            if exc.status == 409:
                raise RebuildInProgress(
                    f"{self.alias} was taken over by another rebuild"
                ) from None
            raise

    def _beat(self):
        while not self._released.wait(self.seconds / 3):
            try:
                answer = self._call(
                    "index",
                    id=self._id,
                    body=self._body(),
                    if_seq_no=self._seq[0],
                    if_primary_term=self._seq[1],
                )
            except EngineRequestError as exc:
                if exc.status == 409:
                    self._lost = RebuildInProgress(f"the lease on {self.alias} was lost")
                    return
            except EngineNotFound:
                self._lost = RebuildInProgress(f"the lease on {self.alias} is gone")
                return
            except EngineError:
                continue  # The engine is away: the rebuild's own requests fail too.
            else:
                self._seq = (answer["_seq_no"], answer["_primary_term"])

    def renew(self):
        """Raise if the lease was lost or expired: the rebuild must stop (the heartbeat
        renews it)."""
        if self._lost is not None:
            raise self._lost
        if time.time() >= self.expires_at:
            raise RebuildInProgress(f"the lease on {self.alias} expired")

    def release(self):
        self._released.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        try:
            self._call("delete", id=self._id, if_seq_no=self._seq[0], if_primary_term=self._seq[1])
        except (EngineNotFound, EngineRequestError):
            pass  # Expired and taken over, or gone with the index: not ours any more.

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def holder_died(owner):
    """Whether the ``owner`` of a lease was a process of this host that is gone (killed):
    its lease is taken over at once, not when it expires. Another host's is never known
    dead (its lease expires); a pid reused meanwhile only keeps the lease until expiry."""
    host, _, rest = (owner or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def lease_id(alias):
    return f"lease:{alias}"


def live_lease_index(store, alias, now=None):
    """The index a live rebuild of ``alias`` is filling, or None.

    A realtime get, not a search: a lease taken a moment ago must count.
    """
    try:
        lease = store.index_side.engine.call("get", index=store.index, id=lease_id(alias))
    except EngineNotFound:
        return None
    source = lease.get("_source", {})
    if source.get("expires_at", 0) <= (time.time() if now is None else now):
        return None
    return source.get("index") or None


def abandoned_indices(prefix, indices):
    """``{alias: [indices]}`` of the collections' physical indices no alias points to.

    ``indices`` is ``{physical index: [aliases]}`` of the prefix. Names are
    ``{prefix}.{bucket}.{collection}.{generation}``; the plugin's own (``{prefix}.-...``)
    and an index auto-created under an alias's name are not a rebuild's.
    """
    found = {}
    head = f"{prefix}."
    for name, aliases in indices.items():
        if aliases or not name.startswith(head):
            continue
        parts = name[len(head) :].split(".")
        if len(parts) != 3 or parts[0].startswith("-") or not parts[2].isdigit():
            continue
        found.setdefault(name.rsplit(".", 1)[0], []).append(name)
    return found


def remove_abandoned(store, indices):
    """Delete the indices left by dead rebuilds: behind no alias, named by no live lease.

    Listed first, leases read second: a rebuild takes its lease before it creates its
    index, so an index in the listing whose rebuild is alive has a lease by then.
    """
    removed = []
    for alias, names in sorted(abandoned_indices(store.index_side.prefix, indices).items()):
        filling = live_lease_index(store, alias)
        dead = sorted(name for name in names if name != filling)
        if dead:
            logger.info("Deleting %s, left by a rebuild that did not finish", ", ".join(dead))
            store.index_side.indices.delete(dead)
            removed.extend(dead)
    return removed


@dataclass
class ReindexResult:
    bucket_id: str
    collection_id: str
    index: str = ""
    indexed: int = 0
    replayed: int = 0
    failed: list = field(default_factory=list)
    # (record id, paths left out, reason) of the records indexed in part.
    partial: list = field(default_factory=list)
    # The clock (ms) before the fill read anything, and the collection's timestamp then.
    started: int = 0
    timestamp: int = 0

    def add(self, records, report, progress=None):
        """Account for one page sent: ``records`` of it, with the ``report`` of sending."""
        self.indexed += len(records) - len(report.failed)
        self.failed.extend(report.failed)
        self.partial.extend(report.partial)
        if progress:
            progress(len(records))


def _started(storage, bucket_id, collection_id):
    """The result of a rebuild starting now: the clock read before anything else is, so
    that the replay's overlap counts from before the fill's first page."""
    result = ReindexResult(bucket_id, collection_id)
    result.started = int(time.time() * 1000)
    result.timestamp = storage.resource_timestamp(
        resource_name="record", parent_id=collection_uri(bucket_id, collection_id)
    )
    return result


def reindex_collection(
    storage,
    index_side,
    bucket_id,
    collection_id,
    metadata,
    progress=None,
    overlap_ms=DEFAULT_OVERLAP_MS,
    registry=None,
    promote=False,
    lease_seconds=LEASE_SECONDS,
    shared=False,
):
    """Rebuild a collection's index into a new physical index, then swap the alias (or, for
    a pooled collection that stays pooled, in place). ``promote``: a pooled collection
    moves to an index of its own.

    ``shared``: the plugin moves it on its own (it is a misfit of its pool), and its
    searches keep a pooled collection's rules (``Placement.shared``). Otherwise a
    collection the plugin moved keeps them through later rebuilds, until an operator
    promotes it (``promote``) or its metadata asks for an index of its own.

    Raises :class:`RebuildInProgress` if another rebuild of the collection holds the lease.
    """
    store = SyncStore(index_side)
    alias = index_side.locator.alias(bucket_id, collection_id)
    # Named before the lease is taken, so that the lease can name it before it exists.
    index = naming.new_index_name(index_side.prefix, bucket_id, collection_id)
    with RebuildLease(store, alias, index=index, seconds=lease_seconds) as lease:
        # Holding the lease, any other index of the collection behind no alias is dead.
        remove_abandoned(
            store,
            index_side.indices.listed(
                naming.collection_pattern(index_side.prefix, bucket_id, collection_id)
            ),
        )
        where = index_side.locator.placement(bucket_id, collection_id, metadata, refresh=True)
        rebuild = _reindex
        if where.pooled and not (promote or needs_own_index(metadata)):
            rebuild = _refill
        shared = shared or (where.moved and not promote and not needs_own_index(metadata))
        args = (storage, index_side, bucket_id, collection_id, metadata, progress, overlap_ms,
                lease, registry)  # fmt: skip
        try:
            result = rebuild(*args, shared)
        except Misfit as exc:
            # Its pool would take a record otherwise than an index of its own would (a
            # field another tenant typed first, since the pool was filled anew): moved out
            # before that record is written, with the pool's rules.
            logger.info("%s %s: moving it to an index of its own", collection_uri(bucket_id,
                        collection_id), exc)  # fmt: skip
            rebuild = _reindex
            result = rebuild(*args, True)
        if where.pooled and rebuild is _reindex:
            # A promotion: the collection's documents leave its pool once the replay is
            # done, not at the swap, so that a write this process placed in the pool just
            # before the swap has landed there (the replay brought it to the new index).
            index_side.pools.delete_documents(where)
        # The catch-up goes on from there: the replay re-read everything since the overlap
        # before the start, and the index has the collection's current shape.
        checkpoint = Checkpoint(
            bucket_id,
            collection_id,
            timestamp=result.started - overlap_ms,
            seen=result.timestamp,
            metadata=metadata.get("last_modified", 0),
            fingerprint=fingerprint(metadata),
        )
        store.save(alias, checkpoint)
    return result


def _refill(
    storage, index_side, bucket_id, collection_id, metadata, progress, overlap_ms, lease, registry,
    shared,
):  # fmt: skip
    """Send a pooled collection's records again, in place, each at its own version."""
    parent_id = collection_uri(bucket_id, collection_id)
    result = _started(storage, bucket_id, collection_id)
    where = index_side.locator.placement(bucket_id, collection_id, metadata)
    result.index = (
        where.pool
        if where.pooled
        else index_side.admin.create_index(bucket_id, collection_id, metadata)
    )

    def send(objects):
        lease.renew()
        records, _ = split_changes(objects)
        reason = index_side.fit.misfit(bucket_id, collection_id, records, metadata)
        if reason is not None:
            raise Misfit(reason)
        report = apply_changes(
            index_side, bucket_id, collection_id, objects, metadata, registry=registry,
            same_version=True,
        )  # fmt: skip
        result.add(records, report, progress)

    pipelined(iter_record_pages(storage, "record", parent_id, include_deleted=True), send)
    return result


def _reindex(
    storage, index_side, bucket_id, collection_id, metadata, progress, overlap_ms, lease, registry,
    shared,
):  # fmt: skip
    parent_id = collection_uri(bucket_id, collection_id)
    result = _started(storage, bucket_id, collection_id)
    result.index = index_side.admin.create_physical_index(
        bucket_id, collection_id, metadata, name=lease.index
    )

    def send(objects):
        lease.renew()
        records, tombstones = split_changes(objects)
        result.add(
            records, index_side.writer.fill(result.index, records, tombstones, metadata), progress
        )

    # Tombstones too: a late write older than a delete must find the delete's version.
    pages = iter_record_pages(storage, "record", parent_id, include_deleted=True)
    try:
        pipelined(pages, send)
        lease.renew()
        index_side.admin.swap_alias(bucket_id, collection_id, result.index, shared=shared)
    except BaseException:
        try:
            index_side.indices.delete([result.index])
        except EngineError:
            logger.warning("Could not delete %s, left by a failed rebuild", result.index)
        raise
    since = [Filter("last_modified", result.started - overlap_ms, COMPARISON.GT)]
    for page in iter_record_pages(storage, "record", parent_id, since, include_deleted=True):
        report = apply_changes(
            index_side, bucket_id, collection_id, page, metadata, registry=registry
        )
        result.replayed += len(page)
        result.failed.extend(report.failed)
    return result
