"""Keeping Kinto writes fast and the index whole while the engine is unhappy.

``CircuitBreaker``: after a few consecutive failures the plugin stops waiting on the
engine for a while, then lets one probe through; a success closes it again.

``RetryQueue``: writes that could not reach the engine are retried in a background
thread, with exponential back-off. Only the newest operation per record is kept, so its
memory is bounded by the number of distinct records pending (and by ``max_size``; beyond
it the oldest are dropped, counted, and left to ``verify --repair``).
"""

import collections
import logging
import threading
import time

from kinto_elasticsearch import metrics
from kinto_elasticsearch.engine import EngineError, EngineUnavailable
from kinto_elasticsearch.events import RecordsIndexFailed, notify, notify_report

logger = logging.getLogger(__name__)


class CircuitBreaker:
    def __init__(self, failures=3, reset_seconds=10.0, clock=time.monotonic):
        self.failures = failures
        self.reset_seconds = reset_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._consecutive = 0
        self._opened_at = None
        self._probing = False

    @property
    def is_open(self):
        return self._opened_at is not None

    def allow(self):
        """Whether a request may go to the engine now."""
        with self._lock:
            if self._opened_at is None:
                return True
            if not self._probing and self._clock() - self._opened_at >= self.reset_seconds:
                self._probing = True
                return True
            return False

    def success(self):
        with self._lock:
            if self._opened_at is not None:
                logger.info("The search engine answers again: circuit closed.")
            self._consecutive = 0
            self._opened_at = None
            self._probing = False

    def failure(self):
        with self._lock:
            self._consecutive += 1
            self._probing = False
            if self._consecutive >= self.failures:
                if self._opened_at is None:
                    logger.warning(
                        "The search engine failed %s times in a row: not waiting on it "
                        "for %s s (circuit open).",
                        self._consecutive,
                        self.reset_seconds,
                    )
                self._opened_at = self._clock()


class RetryQueue:
    """Pending index operations, retried by a background thread."""

    def __init__(
        self, indexer, registry, max_size=10000, batch_size=500, backoff=1.0, max_backoff=60.0
    ):
        self._indexer = indexer
        self._registry = registry
        self.max_size = max_size
        self.batch_size = batch_size
        self.initial_backoff = backoff
        self.max_backoff = max_backoff
        # (bucket, collection, record id) -> (action, record or tombstone), oldest first.
        self._pending = collections.OrderedDict()
        self._metadata = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread = None
        self._stopped = False

    def __len__(self):
        return len(self._pending)

    def add(self, bucket_id, collection_id, records=(), tombstones=(), metadata=None):
        """Queue writes that could not reach the engine."""
        metrics.count(self._registry, metrics.RETRY_QUEUED, len(records) + len(tombstones))
        self._put(bucket_id, collection_id, records, tombstones, metadata)

    def _put(self, bucket_id, collection_id, records, tombstones, metadata=None):
        dropped = 0
        with self._lock:
            if metadata is not None:
                self._metadata[(bucket_id, collection_id)] = metadata
            for action, objects in (("index", records), ("delete", tombstones)):
                for obj in objects:
                    key = (bucket_id, collection_id, obj["id"])
                    current = self._pending.get(key)
                    if current and current[1]["last_modified"] >= obj["last_modified"]:
                        continue
                    self._pending.pop(key, None)
                    self._pending[key] = (action, obj)
            while len(self._pending) > self.max_size:
                self._pending.popitem(last=False)
                dropped += 1
            self._idle.clear()
            self._start()
        if dropped:
            metrics.count(self._registry, metrics.RETRY_DROPPED, dropped)
            logger.error(
                "Retry queue full: %s pending write(s) dropped; run "
                "'kinto-elasticsearch verify --repair' once the engine is back.",
                dropped,
            )
        self._wake.set()

    def wait_until_empty(self, timeout):
        """Block until every pending write was sent (or given up); True if so."""
        return self._idle.wait(timeout)

    def stop(self):
        self._stopped = True
        self._wake.set()

    def _start(self):
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name="kinto-elasticsearch-retry", daemon=True
            )
            self._thread.start()

    def _take(self):
        """The oldest pending operations of one collection, removed from the queue."""
        with self._lock:
            if not self._pending:
                self._idle.set()
                return None, None, []
            bucket_id, collection_id, _ = next(iter(self._pending))
            keys = [k for k in self._pending if k[:2] == (bucket_id, collection_id)]
            batch = [self._pending.pop(k) for k in keys[: self.batch_size]]
            return bucket_id, collection_id, batch

    def _run(self):
        delay = self.initial_backoff
        while not self._stopped:
            bucket_id, collection_id, batch = self._take()
            if not batch:
                self._wake.wait()
                self._wake.clear()
                continue
            if self._send(bucket_id, collection_id, batch):
                delay = self.initial_backoff
                continue
            self._wake.clear()
            self._wake.wait(delay)
            delay = min(delay * 2, self.max_backoff)

    def _send(self, bucket_id, collection_id, batch):
        from kinto_elasticsearch.listeners import log_report

        records = [obj for action, obj in batch if action == "index"]
        tombstones = [obj for action, obj in batch if action == "delete"]
        metadata = self._metadata.get((bucket_id, collection_id))
        try:
            report = self._indexer.write(
                bucket_id,
                collection_id,
                records=records,
                tombstones=tombstones,
                metadata=metadata,
                ensure_index=lambda: self._indexer.create_index(
                    bucket_id, collection_id, metadata
                ),
            )
        except EngineUnavailable:
            # Put them back, unless a newer write for the same record came in meanwhile.
            self._put(bucket_id, collection_id, records, tombstones)
            return False
        except EngineError as exc:
            logger.error(
                "Giving up %s pending write(s) of /buckets/%s/collections/%s: %s",
                len(batch),
                bucket_id,
                collection_id,
                exc,
            )
            metrics.count(self._registry, metrics.DOCUMENTS_FAILED, len(batch))
            failures = [(obj["id"], str(exc)) for _, obj in batch]
            notify(self._registry, RecordsIndexFailed(bucket_id, collection_id, failures))
            return True
        recovered = len(batch) - len(report.failed)
        metrics.count(self._registry, metrics.RETRY_RECOVERED, recovered)
        metrics.count(self._registry, metrics.DOCUMENTS_INDEXED, len(report.indexed))
        metrics.count(self._registry, metrics.DOCUMENTS_DELETED, len(report.deleted))
        log_report(self._registry, bucket_id, collection_id, report)
        notify_report(self._registry, bucket_id, collection_id, report)
        return True
