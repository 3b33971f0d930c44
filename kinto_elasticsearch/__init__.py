"""Index Kinto records into Elasticsearch or OpenSearch, and search them."""

from importlib.metadata import PackageNotFoundError, version

from kinto.core.events import ACTIONS, AfterResourceChanged, ResourceChanged
from kinto.events import ServerFlushed
from pyramid.events import ContextFound, NewRequest

from kinto_elasticsearch.client.engine import quiet_client_loggers
from kinto_elasticsearch.config import load_settings
from kinto_elasticsearch.plugin import SearchPlugin
from kinto_elasticsearch.sync import listeners

try:
    __version__ = version("kinto-elasticsearch")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0.0.0"

CAPABILITY_URL = "https://github.com/Kinto/kinto-elasticsearch"


def includeme(config):
    settings = load_settings(config)

    quiet_client_loggers()
    plugin = SearchPlugin(settings, config.registry)
    config.registry.elasticsearch = plugin

    heartbeat_timeout = float(config.get_settings().get("heartbeat_timeout_seconds", 10))
    config.registry.heartbeats["elasticsearch"] = lambda request: plugin.ping(
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
    config.add_subscriber(listeners.note_legacy_before_flush, ContextFound)
    config.add_subscriber(listeners.on_server_flushed, ServerFlushed)
    config.add_subscriber(listeners.on_new_request, NewRequest)

    config.scan("kinto_elasticsearch.search.views")
