"""Group commit: the changes of many requests, to many collections, sent in one bulk
request.

A request hands its changes over and returns: it does not wait for the engine, unless
the operator asked for read-your-writes (``force_refresh``). Then it waits for the bulk
request that carries its change, which is still shared with the other requests of the
moment, and never longer than ``wait_seconds``: a write never hangs on the engine.
Changes nobody waits for gather for ``linger_seconds`` (50 ms) first: the requests that
handed them over answer before the sender's thread takes the interpreter, and writers of
the same moment share one bulk request (8 concurrent writers: about 3 changes per bulk
request at 5 ms, against the engine's work per request; ``bench/RESULTS.md`` section 10).
A change nobody waits for is searchable after the index's refresh (1 s by default)
anyway: 50 ms more is not seen.

The sender holds at most ``max_pending`` changes. It needs no more: storage is the outbox.
Whatever it cannot deliver (a full queue, an engine down, a crash of the process) is
indexed by the catch-up, which ``on_failure`` wakes up.

The engine administration of collection writes (``submit_admin``) goes through the same
queue, so that it is ordered with the records handed over before and after it, and is
done by the thread of ``admin_queue``: a slow index creation holds back the records of its
own collection only.
"""

import collections
import functools
import logging
import threading
import time
from dataclasses import dataclass

from kinto_elasticsearch import metrics
from kinto_elasticsearch.client import EngineError
from kinto_elasticsearch.config import DEFAULT_SETTINGS
from kinto_elasticsearch.events import RecordsIndexFailed, notify
from kinto_elasticsearch.storage import collection_uri
from kinto_elasticsearch.sync import moves
from kinto_elasticsearch.sync.admin_queue import AdminQueue, AdminTask
from kinto_elasticsearch.sync.apply import apply_many
from kinto_elasticsearch.sync.threads import ProcessThread

logger = logging.getLogger(__name__)

# Objects per bulk request: large enough to amortise a request, small enough for any
# engine's default http.max_content_length with records of a few KiB.
BULK_SIZE = 1000


# How long the sender lets changes gather before it sends them, unless a request waits for
# them (read-your-writes): the requests that handed them over answer first (the thread
# does not take the interpreter from them), and concurrent writers share a bulk request.
LINGER_SECONDS = 0.05


# Versions remembered as delivered: about the changes of an overlap (5 minutes by default).
DELIVERED_MAX = 100_000


class Delivered:
    """The objects (collection, id, version) this process delivered lately (its sender, or
    its catch-up): the engine holds them at that version or a newer one. The catch-up, which
    reads every change since its position again for the overlap's 5 minutes, need neither
    send them again nor look them up: a collection whose changes it reads back are all
    here costs it nothing. The oldest are forgotten past :data:`DELIVERED_MAX` (their
    collection is then looked at as before). An engine that lost them lost the checkpoints
    with them, and the catch-up then indexes everything again without asking this."""

    def __init__(self, limit=DELIVERED_MAX):
        self.limit = limit
        self._versions = collections.OrderedDict()
        self._lock = threading.Lock()

    def note(self, bucket_id, collection_id, objects, report):
        """Remember what ``report`` says the engine now holds of ``objects``."""
        done = set(report.indexed) | set(report.deleted) | set(report.superseded)
        self.note_held(bucket_id, collection_id, [obj for obj in objects if obj["id"] in done])

    def note_held(self, bucket_id, collection_id, objects):
        """Remember ``objects`` as held by the engine at their versions (looked up)."""
        with self._lock:
            for obj in objects:
                key = (bucket_id, collection_id, obj["id"])
                self._versions[key] = max(self._versions.get(key, 0), obj["last_modified"])
                self._versions.move_to_end(key)
            while len(self._versions) > self.limit:
                self._versions.popitem(last=False)

    def held(self, bucket_id, collection_id, obj):
        """Whether ``obj``, at its version (or a newer one), was delivered."""
        with self._lock:
            version = self._versions.get((bucket_id, collection_id, obj["id"]))
        return version is not None and version >= obj["last_modified"]


def bulk_requests(handovers):
    """The bulk requests that carry ``handovers``: per collection the latest version of
    each object, ``BULK_SIZE`` objects a request at most, many collections a request.
    Each request is ``[(bucket_id, collection_id, objects, metadata, wait)]``."""
    groups = {}
    for handover in handovers:
        key = (handover.bucket_id, handover.collection_id)
        group = groups.setdefault(key, {"objects": {}, "metadata": None, "wait": False})
        for obj in handover.objects:
            current = group["objects"].get(obj["id"])
            if current is None or current["last_modified"] < obj["last_modified"]:
                group["objects"][obj["id"]] = obj
        group["metadata"] = handover.metadata
        group["wait"] = group["wait"] or handover.done is not None
    requests, request, size = [], [], 0
    for (bucket_id, collection_id), group in groups.items():
        objects = list(group["objects"].values())
        for start in range(0, len(objects), BULK_SIZE):
            chunk = objects[start : start + BULK_SIZE]
            if request and size + len(chunk) > BULK_SIZE:
                requests.append(request)
                request, size = [], 0
            request.append((bucket_id, collection_id, chunk, group["metadata"], group["wait"]))
            size += len(chunk)
    if request:
        requests.append(request)
    return requests


@dataclass
class _Handover:
    bucket_id: str
    collection_id: str
    objects: list
    metadata: dict
    done: threading.Event | None


class Sender:
    def __init__(
        self,
        index_side,
        registry,
        max_pending=DEFAULT_SETTINGS["elasticsearch.sender_max_pending"],
        wait_seconds=5.0,
        on_failure=None,
        linger_seconds=LINGER_SECONDS,
    ):
        self._index_side = index_side
        # Kinto's registry: where events are sent and metrics counted.
        self._registry = registry
        self.max_pending = max_pending
        self.wait_seconds = wait_seconds
        self.linger_seconds = linger_seconds
        self._on_failure = on_failure or (lambda: None)
        self._stopped = False
        self._thread = ProcessThread("kinto-elasticsearch-sender", self._run)
        self.admin = AdminQueue(on_failure=self._on_failure)
        self.delivered = Delivered()
        self._reset()

    def _reset(self):
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._pending = []
        self._count = 0
        self._busy = False
        # A request waits for something pending: send without lingering.
        self._urgent = False

    def submit(self, bucket_id, collection_id, objects, metadata, wait=False):
        """Hand ``objects`` (records and tombstones of one collection) over for indexing.

        With ``wait``, return once they are indexed and searchable, or after
        ``wait_seconds`` at most.
        """
        if self._thread.forked():
            self._reset()
        done = threading.Event() if wait else None
        with self._lock:
            if self._count + len(objects) > self.max_pending:
                full = True
            else:
                full = False
                self._pending.append(
                    _Handover(bucket_id, collection_id, list(objects), metadata, done)
                )
                self._count += len(objects)
                self._urgent = self._urgent or wait
                self._start()
                self._ready.notify()
        if full:
            # Nothing is lost: the catch-up reads them from storage.
            metrics.count(self._registry, metrics.SENDER_OVERFLOW, len(objects))
            self._on_failure()
            return
        if done is not None and not done.wait(self.wait_seconds):
            metrics.count(self._registry, metrics.SENDER_WAIT_TIMEOUTS)

    def submit_admin(self, tasks, wait=False):
        """Hand ``AdminTask`` objects over, to be done after the records handed over before
        them; with ``wait``, return once they are done, or after ``wait_seconds`` at most.
        True unless the wait timed out."""
        if self._thread.forked():
            self._reset()
        if not tasks:
            return True
        with self._lock:
            self._pending.extend(tasks)
            self._urgent = self._urgent or wait
            self._start()
            self._ready.notify()
        if not wait:
            return True
        deadline = time.monotonic() + self.wait_seconds
        for task in tasks:
            if not task.done.wait(max(0.0, deadline - time.monotonic())):
                metrics.count(self._registry, metrics.SENDER_WAIT_TIMEOUTS)
                logger.info("Answering before %s, which is still under way", task.description)
                return False
        return True

    def wait_until_idle(self, timeout):
        """Block until every change and task handed over was done (or given up); True if so."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._ready.wait(left)
        while not self.admin.idle():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def stop(self):
        """End the thread once what was handed over is sent (an app being closed): it
        holds the registry, so an app would otherwise never be freed."""
        with self._lock:
            self._stopped = True
            self._ready.notify_all()
        self.admin.stop()

    def _start(self):
        if self._stopped:
            return
        self._thread.ensure_started()

    def _run(self):
        while True:
            with self._lock:
                while not self._pending and not self._stopped:
                    self._ready.wait()
                if not self._pending:
                    return
                _linger(self._ready, self.linger_seconds, lambda: self._urgent or self._stopped)
                batch, self._pending, self._count = self._pending, [], 0
                self._busy, self._urgent = True, False
            try:
                self._dispatch(batch)
            finally:
                with self._lock:
                    self._busy = False
                    self._ready.notify_all()

    def _dispatch(self, batch):
        """Send ``batch``'s records, and pass its admin tasks on, in the batch's order."""
        handovers = []
        for item in batch:
            if isinstance(item, AdminTask):
                self._deliver(handovers)
                handovers = []
                self.admin.put(item)
            else:
                handovers.append(item)
        self._deliver(handovers)

    def _deliver(self, handovers, forward=True, whole=True):
        """Send ``handovers``, but those of collections with admin work queued, which go
        behind it (``forward``), and those a pool would index otherwise than an index of
        their own (``whole``), which go behind their collection's move out of its pool;
        their waiters are released once they are sent."""
        by_collection = {}
        for handover in handovers:
            key = (handover.bucket_id, handover.collection_id)
            by_collection.setdefault(key, []).append(handover)
        sent = []
        for key, group in by_collection.items():
            deliver = functools.partial(self._deliver, forward=False)
            if forward and self.admin.forward(key, group, deliver):
                continue
            if whole and moves.held_for_move(self, key, group):
                continue
            sent.extend(group)
        if not sent:
            return
        try:
            self._send(sent)
        except Exception:
            # Whatever went wrong, the thread goes on and the catch-up heals.
            logger.exception("Sending %s change(s) to the search engine failed", len(sent))
            self._on_failure()
        finally:
            for handover in sent:
                if handover.done is not None:
                    handover.done.set()

    def _send(self, batch):
        """``batch``'s changes, the latest version of each object, in bulk requests of
        ``BULK_SIZE`` objects at most, each carrying the changes of as many collections
        as fit: concurrent writers to different collections share a request."""
        failed = False
        for request in bulk_requests(batch):
            changes = [(bid, cid, chunk, metadata) for bid, cid, chunk, metadata, _ in request]
            refresh = any(wait for *_, wait in request) or None
            try:
                reports = apply_many(
                    self._index_side, changes, refresh=refresh, registry=self._registry
                )
            except EngineError as exc:
                failed = True
                for bucket_id, collection_id, chunk, _ in changes:
                    _report_failed(self._registry, bucket_id, collection_id, chunk, exc)
                continue
            for (bucket_id, collection_id, chunk, _), report in zip(changes, reports, strict=True):
                if report.error is not None:
                    failed = True
                    _report_failed(self._registry, bucket_id, collection_id, chunk, report.error)
                else:
                    self.delivered.note(bucket_id, collection_id, chunk, report)
        if failed:
            self._on_failure()


def _linger(ready, seconds, go):
    """Wait ``seconds`` on the condition ``ready`` (its lock held, but while waiting) for
    more changes, unless ``go()`` says to send now (a request waits, the sender stops)."""
    deadline = time.monotonic() + seconds
    while not go():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        ready.wait(left)


def _report_failed(registry, bucket_id, collection_id, chunk, exc):
    """Count and tell that ``chunk`` could not be sent: the catch-up indexes it."""
    metrics.count(registry, metrics.SENDER_FAILED, len(chunk))
    logger.debug(
        "Could not send %s change(s) of %s, left to the catch-up: %s",
        len(chunk),
        collection_uri(bucket_id, collection_id),
        exc,
    )
    failures = [(obj["id"], str(exc)) for obj in chunk]
    notify(registry, RecordsIndexFailed(bucket_id, collection_id, failures, True))
