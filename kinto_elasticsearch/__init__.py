"""Index Kinto records into Elasticsearch or OpenSearch, and search them."""

from importlib.metadata import PackageNotFoundError, version

from kinto.core.events import ACTIONS, AfterResourceChanged, ResourceChanged
from kinto.events import ServerFlushed
from pyramid.events import NewRequest

from kinto_elasticsearch.client import CircuitBreaker, Engine, Reachability
from kinto_elasticsearch.client.engine import SEARCH, WRITE, quiet_client_loggers
from kinto_elasticsearch.indexer import Indexer
from kinto_elasticsearch.settings import load_settings
from kinto_elasticsearch.sync import listeners
from kinto_elasticsearch.sync.sender import Sender
from kinto_elasticsearch.sync.worker import CatchUpWorker

try:
    __version__ = version("kinto-elasticsearch")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0.0.0"

CAPABILITY_URL = "https://github.com/Kinto/kinto-elasticsearch"


def includeme(config):
    settings = load_settings(config)

    quiet_client_loggers()
    registry = config.registry
    # Building the client connects to nothing: Kinto starts while the engine is down.
    breakers = {
        lane: CircuitBreaker(
            failures=settings.circuit_breaker_failures,
            reset_seconds=settings.circuit_breaker_seconds,
            name=f"{lane}s",
        )
        for lane in (SEARCH, WRITE)
    }
    reachability = Reachability(settings.hosts, registry=registry)
    indexer = Indexer(
        Engine(settings, breakers=breakers, reachability=reachability),
        prefix=settings.index_prefix,
        force_refresh=settings.force_refresh,
        # The engine stops at the search timeout (the body says so) and answers with what
        # it found; the client waits a little longer, for that answer.
        search_timeout=settings.search_timeout + 1,
        index_settings=settings.index_settings(),
        pools=settings.pools,
        pool_settings=settings.pool_settings(),
        pool_max_fields=settings.pool_max_fields,
    )
    registry.elasticsearch_settings = settings
    registry.indexer = indexer
    registry.catchup = CatchUpWorker(
        registry,
        overlap_ms=int(settings.catchup_overlap * 1000),
        interval=settings.catchup_interval,
        enabled=settings.catchup_in_process,
    )
    registry.sender = Sender(
        registry,
        max_pending=settings.sender_max_pending,
        # Read-your-writes waits for the bulk carrying the change, never for ever.
        wait_seconds=settings.request_timeout + 1,
        on_failure=registry.catchup.wake,
    )
    reachability.on_back(registry.catchup.wake)

    heartbeat_timeout = float(config.get_settings().get("heartbeat_timeout_seconds", 10))
    config.registry.heartbeats["elasticsearch"] = lambda request: indexer.ping(
        timeout=min(settings.request_timeout, heartbeat_timeout)
    )

    config.add_api_capability(
        "elasticsearch",
        description="Index and search records using Elasticsearch or OpenSearch.",
        url=CAPABILITY_URL,
        version=__version__,
        engine=settings.engine,
    )

    config.add_subscriber(
        listeners.validate_collection_mapping,
        ResourceChanged,
        for_resources=("collection",),
        for_actions=(ACTIONS.CREATE, ACTIONS.UPDATE),
    )
    config.add_subscriber(
        listeners.on_record_changed, AfterResourceChanged, for_resources=("record",)
    )
    config.add_subscriber(
        listeners.on_collection_changed, AfterResourceChanged, for_resources=("collection",)
    )
    config.add_subscriber(
        listeners.on_bucket_deleted,
        AfterResourceChanged,
        for_resources=("bucket",),
        for_actions=(ACTIONS.DELETE,),
    )
    config.add_subscriber(listeners.on_server_flushed, ServerFlushed)
    config.add_subscriber(listeners.on_new_request, NewRequest)

    config.scan("kinto_elasticsearch.search.views")
