"""The plugin's one object on the Kinto registry: its settings, the engine seam and the
parts of each side, built once at include time.

``registry.elasticsearch`` is how listeners, views, the command line,
tests and benchmarks reach them, as Kinto's own backends are reached from the registry.
"""

import logging

from kinto_elasticsearch.client import CircuitBreaker, Engine, EngineError, Reachability
from kinto_elasticsearch.client.engine import SEARCH, WRITE
from kinto_elasticsearch.index.side import IndexSide
from kinto_elasticsearch.search.owned import HeldCache
from kinto_elasticsearch.search.searcher import Searcher
from kinto_elasticsearch.sync.sender import Sender
from kinto_elasticsearch.sync.worker import CatchUpWorker

logger = logging.getLogger(__name__)


class SearchPlugin:
    def __init__(self, settings, registry):
        self.settings = settings
        # Building the client connects to nothing: Kinto starts while the engine is down.
        breakers = {
            lane: CircuitBreaker(
                failures=settings.circuit_breaker_failures,
                reset_seconds=settings.circuit_breaker_seconds,
                name=f"{lane}s",
            )
            for lane in (SEARCH, WRITE)
        }
        self.reachability = Reachability(settings.hosts, registry=registry)
        self.engine = Engine(settings, breakers=breakers, reachability=self.reachability)
        self.index = IndexSide.build(
            self.engine,
            prefix=settings.index_prefix,
            force_refresh=settings.force_refresh,
            index_settings=settings.index_settings(),
            pools=settings.pools,
            pool_settings=settings.pool_settings(),
            pool_max_fields=settings.pool_max_fields,
        )
        # The engine stops at the search timeout (the body says so) and answers with what
        # it found; the client waits a little longer, for that answer.
        self.searcher = Searcher(self.index, search_timeout=settings.search_timeout + 1)
        # Which fields pooled collections' records hold (``search/owned.py``).
        self.held = HeldCache()
        self.catchup = CatchUpWorker(
            registry,
            overlap_ms=int(settings.catchup_overlap * 1000),
            interval=settings.catchup_interval,
            enabled=settings.catchup_in_process,
        )
        self.sender = Sender(
            self.index,
            registry,
            max_pending=settings.sender_max_pending,
            # Read-your-writes waits for the bulk carrying the change, never for ever.
            wait_seconds=settings.request_timeout + 1,
            on_failure=self.catchup.wake,
        )
        self.reachability.on_back(self.catchup.wake)

    def ping(self, timeout=None):
        """Whether the engine answers and its cluster is usable."""
        try:
            health = self.engine.call("cluster.health", timeout=timeout, probe=True)
        except EngineError as exc:
            logger.warning("Search engine health check failed: %s", exc)
            return False
        return health.get("status") in ("green", "yellow")

    def close(self):
        """Stop the background threads and close the client: they hold the registry."""
        self.sender.stop()
        self.catchup.stop()
        self.engine.close()
