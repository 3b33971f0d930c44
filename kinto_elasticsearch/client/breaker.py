"""Not waiting on an engine nobody can reach, and saying so once.

``CircuitBreaker``: after a few consecutive failures to *reach* the engine, requests fail at
once for a while instead of each waiting for a timeout; then one probe goes through, and a
success closes it again. Only :class:`~kinto_elasticsearch.client.errors.EngineUnreachable`
counts as a failure: an engine that answers, even with an error, is reachable, and a query
it cannot afford must not stop everybody else's requests. The plugin keeps one breaker for
searches and one for writes (see ``Engine``), so that neither shares the other's fate.

``Reachability``: whether the engine answered the last request. It logs one WARNING when
the engine becomes unreachable and one INFO when it answers again, whatever the number of
failed requests in between (those are counted in metrics), and tells its listeners (the
catch-up) when the engine is back.
"""

import logging
import threading
import time

from kinto_elasticsearch import metrics

logger = logging.getLogger(__name__)


class CircuitBreaker:
    def __init__(self, failures=3, reset_seconds=10.0, clock=time.monotonic, name="engine"):
        self.failures = failures
        self.reset_seconds = reset_seconds
        self.name = name
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
        """The engine answered (whatever it answered)."""
        with self._lock:
            self._consecutive = 0
            self._opened_at = None
            self._probing = False

    def failure(self):
        """The engine could not be reached."""
        with self._lock:
            self._consecutive += 1
            self._probing = False
            if self._consecutive >= self.failures:
                if self._opened_at is None:
                    logger.info(
                        "Not waiting on the search engine for %s for %s s (circuit open).",
                        self.name,
                        self.reset_seconds,
                    )
                self._opened_at = self._clock()

    def release(self):
        """The request ended in neither way (an error the seam does not know): let the next
        request probe again rather than keeping the circuit open for good."""
        with self._lock:
            self._probing = False


class Reachability:
    """Whether the engine answers: one log line per change, counts in metrics."""

    def __init__(self, hosts, registry=None, clock=time.monotonic):
        self.hosts = ", ".join(hosts)
        self._registry = registry
        self._clock = clock
        self._lock = threading.Lock()
        self._down_since = None
        self._listeners = []

    @property
    def is_down(self):
        return self._down_since is not None

    def on_back(self, listener):
        """Call ``listener()`` each time the engine answers again after an outage."""
        self._listeners.append(listener)

    def _count(self, key):
        if self._registry is not None:
            metrics.count(self._registry, key)

    def unreachable(self, error):
        self._count(metrics.ENGINE_UNREACHABLE)
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = self._clock()
        self._count(metrics.ENGINE_OUTAGES)
        logger.warning(
            "The search engine at %s is unreachable (%s): searches answer 503 and the index "
            "catches up from storage once it is back.",
            self.hosts,
            error,
        )

    def reachable(self):
        with self._lock:
            if self._down_since is None:
                return
            seconds = self._clock() - self._down_since
            self._down_since = None
        logger.info("The search engine at %s answers again, after %.0f s.", self.hosts, seconds)
        for listener in self._listeners:
            try:
                listener()
            except Exception:
                logger.exception("A listener of the search engine's return failed")
