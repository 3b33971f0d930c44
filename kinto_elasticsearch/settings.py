"""The plugin's settings: defaults, parsing and validation, read once at include time."""

import logging
import re
import warnings
from dataclasses import dataclass
from urllib.parse import urlsplit

from kinto.core.utils import read_env
from pyramid.exceptions import ConfigurationError
from pyramid.settings import asbool, aslist

logger = logging.getLogger(__name__)

ENGINES = ("elasticsearch", "opensearch")

# Index names are built as ``{prefix}.{bucket}.{collection}.{generation}``; keeping dots and
# ``+`` out of the prefix is what makes the names injective (see ``naming.py``).
PREFIX_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")

DEFAULT_SETTINGS = {
    "elasticsearch.hosts": "http://localhost:9200",
    "elasticsearch.engine": "elasticsearch",
    "elasticsearch.index_prefix": "kinto",
    "elasticsearch.force_refresh": False,
    "elasticsearch.resources": "",
    "elasticsearch.request_timeout_seconds": 2.0,
    "elasticsearch.search_timeout_seconds": 10.0,
    "elasticsearch.max_retries": 0,
    "elasticsearch.circuit_breaker_failures": 3,
    "elasticsearch.circuit_breaker_seconds": 10.0,
    "elasticsearch.catchup_in_process": True,
    "elasticsearch.catchup_interval_seconds": 10.0,
    "elasticsearch.catchup_overlap_seconds": 300.0,
    "elasticsearch.rebuild_lease_seconds": 15.0,
    "elasticsearch.sender_max_pending": 10000,
    "elasticsearch.allow_scripts": False,
    "elasticsearch.max_result_window": 10000,
    "elasticsearch.max_query_depth": 20,
    "elasticsearch.max_aggregations": 50,
    "elasticsearch.max_aggregation_size": 1000,
    "elasticsearch.max_body_bytes": 65536,
    "elasticsearch.max_body_depth": 100,
    "elasticsearch.max_clauses": 1024,
    "elasticsearch.max_buckets": 10000,
    "elasticsearch.max_pattern_length": 256,
    "elasticsearch.max_pattern_repetition": 100,
    "elasticsearch.max_expansions": 50,
    "elasticsearch.number_of_shards": "",
    "elasticsearch.number_of_replicas": "",
    "elasticsearch.pools": 16,
    "elasticsearch.pool_max_records": 100000,
    "elasticsearch.pool_max_fields": 100,
    "elasticsearch.pool_number_of_shards": "",
    "elasticsearch.pool_number_of_replicas": "",
}

_RESOURCE_PATTERN = re.compile(
    r"^/buckets/(?P<bid>[a-zA-Z0-9][a-zA-Z0-9_-]*)"
    r"(?:/collections/(?P<cid>[a-zA-Z0-9][a-zA-Z0-9_-]*))?$"
)


@dataclass(frozen=True)
class PluginSettings:
    hosts: tuple[str, ...]
    engine: str
    index_prefix: str
    force_refresh: bool
    # (bucket, collection) pairs to index; collection None means the whole bucket.
    resources: tuple[tuple[str, str | None], ...]
    request_timeout: float
    search_timeout: float
    max_retries: int
    circuit_breaker_failures: int
    circuit_breaker_seconds: float
    catchup_in_process: bool
    # 0: passes only on events (start, failed writes, engine back, collection changes).
    catchup_interval: float
    catchup_overlap: float
    # How long a rebuild's lease outlives its last renewal (a third of it apart).
    rebuild_lease: float
    sender_max_pending: int
    allow_scripts: bool
    max_result_window: int
    max_query_depth: int
    max_aggregations: int
    max_aggregation_size: int
    max_body_bytes: int
    max_body_depth: int
    max_clauses: int
    max_buckets: int
    max_pattern_length: int
    max_pattern_repetition: int
    max_expansions: int
    # Every index the plugin creates; None leaves the engine's default.
    number_of_shards: int | None = None
    number_of_replicas: int | None = None
    # Pooled indices that small collections share (0: an index per collection), and the
    # shards and replicas of each (None leaves the engine's default).
    pools: int = 16
    # A pooled collection holding more documents than this moves to an index of its own.
    pool_max_records: int = 100000
    # The fields a pooled collection may add to its pool's shared mapping; a collection
    # that needs more moves to an index of its own.
    pool_max_fields: int = 100
    pool_number_of_shards: int | None = None
    pool_number_of_replicas: int | None = None

    def index_settings(self) -> dict:
        """The operator's settings of every dedicated index (a collection adds its
        analysis)."""
        return _chosen(self.number_of_shards, self.number_of_replicas)

    def pool_settings(self) -> dict:
        """The operator's settings of every pooled index."""
        return _chosen(self.pool_number_of_shards, self.pool_number_of_replicas)

    def is_indexed(self, bucket_id: str, collection_id: str | None = None) -> bool:
        if not self.resources:
            return True
        for bid, cid in self.resources:
            if bid == bucket_id and (cid is None or collection_id is None or cid == collection_id):
                return True
        return False


def _chosen(shards, replicas):
    chosen = {"number_of_shards": shards, "number_of_replicas": replicas}
    return {key: value for key, value in chosen.items() if value is not None}


def _setting(settings, key):
    return settings.get(key, DEFAULT_SETTINGS[key])


def _positive_float(settings, key):
    raw = _setting(settings, key)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{key} must be a number of seconds, not {raw!r}") from None
    if value <= 0:
        raise ConfigurationError(f"{key} must be greater than zero, not {raw!r}")
    return value


def _non_negative_float(settings, key):
    raw = _setting(settings, key)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{key} must be a number of seconds, not {raw!r}") from None
    if value < 0:
        raise ConfigurationError(f"{key} must be zero or more, not {raw!r}")
    return value


def _whole_number(settings, key, minimum):
    raw = _setting(settings, key)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = minimum - 1
    if value < minimum or isinstance(raw, float) and raw != value:
        raise ConfigurationError(f"{key} must be a whole number >= {minimum}, not {raw!r}")
    return value


def _optional_whole_number(settings, key, minimum):
    if _setting(settings, key) in ("", None):
        return None
    return _whole_number(settings, key, minimum)


def _hosts(settings):
    key = "elasticsearch.hosts"
    raw = _setting(settings, key)
    hosts = tuple(aslist(raw) if isinstance(raw, str) else raw)
    if not hosts:
        raise ConfigurationError(f"{key} must name at least one host")
    for host in hosts:
        parts = urlsplit(host)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"{key}: {host!r} is not a URL with a scheme, such as http://localhost:9200"
            )
    return hosts


def _resources(settings):
    key = "elasticsearch.resources"
    raw = _setting(settings, key) or ""
    resources = []
    for uri in aslist(raw) if isinstance(raw, str) else raw:
        match = _RESOURCE_PATTERN.match(uri)
        if match is None:
            raise ConfigurationError(
                f"{key}: {uri!r} is not a bucket or collection URI, "
                "such as /buckets/blog or /buckets/blog/collections/articles"
            )
        resources.append((match["bid"], match["cid"]))
    return tuple(resources)


# Settings that are still accepted, do nothing, and say why at startup.
DEPRECATED_SETTINGS = {
    "elasticsearch.retry_queue_size": (
        "the retry queue is gone: storage is the outbox, and the catch-up indexes whatever "
        "the engine missed, however long the outage (see catchup_interval_seconds)"
    ),
}


def _warn_deprecated(settings, project):
    for key, reason in DEPRECATED_SETTINGS.items():
        given = key in settings or f"{project}.{key}" in settings
        if given or read_env(f"{project}.{key}", None) is not None:
            message = f"{project}.{key} is deprecated and ignored: {reason}"
            warnings.warn(message, DeprecationWarning, stacklevel=3)
            logger.warning(message)


def load_settings(config):
    """Fill the plugin's defaults and apply environment overrides, as Kinto does.

    ``kinto.core.load_default_settings`` cannot be called a second time on an ini-based
    configuration: it compares the raw ``kinto.``-prefixed values with the ones Kinto already
    converted (``"true"`` against ``True``) and reports them in conflict.
    """
    settings = config.get_settings()
    project = settings.get("settings_prefix", "kinto")
    _warn_deprecated(settings, project)
    values = {}
    for key, default in DEFAULT_SETTINGS.items():
        value = settings.get(key, settings.get(f"{project}.{key}", default))
        values[key] = read_env(f"{project}.{key}", read_env(key, value))
    config.add_settings(values)
    return parse_settings(values)


def parse_settings(settings) -> PluginSettings:
    """Read the ``elasticsearch.*`` settings, raising Pyramid's ConfigurationError on a bad one."""
    engine = str(_setting(settings, "elasticsearch.engine")).strip().lower()
    if engine not in ENGINES:
        raise ConfigurationError(
            f"elasticsearch.engine must be one of {', '.join(ENGINES)}, not {engine!r}"
        )
    prefix = str(_setting(settings, "elasticsearch.index_prefix"))
    if not PREFIX_PATTERN.match(prefix):
        raise ConfigurationError(
            f"elasticsearch.index_prefix {prefix!r} is invalid: use 1 to 32 lower case letters, "
            "digits, '-' or '_', starting with a letter or digit"
        )
    return PluginSettings(
        hosts=_hosts(settings),
        engine=engine,
        index_prefix=prefix,
        force_refresh=asbool(_setting(settings, "elasticsearch.force_refresh")),
        resources=_resources(settings),
        request_timeout=_positive_float(settings, "elasticsearch.request_timeout_seconds"),
        search_timeout=_positive_float(settings, "elasticsearch.search_timeout_seconds"),
        max_retries=_whole_number(settings, "elasticsearch.max_retries", 0),
        circuit_breaker_failures=_whole_number(
            settings, "elasticsearch.circuit_breaker_failures", 1
        ),
        circuit_breaker_seconds=_positive_float(settings, "elasticsearch.circuit_breaker_seconds"),
        catchup_in_process=asbool(_setting(settings, "elasticsearch.catchup_in_process")),
        catchup_interval=_non_negative_float(settings, "elasticsearch.catchup_interval_seconds"),
        catchup_overlap=_non_negative_float(settings, "elasticsearch.catchup_overlap_seconds"),
        rebuild_lease=_positive_float(settings, "elasticsearch.rebuild_lease_seconds"),
        sender_max_pending=_whole_number(settings, "elasticsearch.sender_max_pending", 1),
        allow_scripts=asbool(_setting(settings, "elasticsearch.allow_scripts")),
        max_result_window=_whole_number(settings, "elasticsearch.max_result_window", 1),
        max_query_depth=_whole_number(settings, "elasticsearch.max_query_depth", 1),
        max_aggregations=_whole_number(settings, "elasticsearch.max_aggregations", 0),
        max_aggregation_size=_whole_number(settings, "elasticsearch.max_aggregation_size", 1),
        max_body_bytes=_whole_number(settings, "elasticsearch.max_body_bytes", 1),
        max_body_depth=_whole_number(settings, "elasticsearch.max_body_depth", 2),
        max_clauses=_whole_number(settings, "elasticsearch.max_clauses", 1),
        max_buckets=_whole_number(settings, "elasticsearch.max_buckets", 1),
        max_pattern_length=_whole_number(settings, "elasticsearch.max_pattern_length", 1),
        max_pattern_repetition=_whole_number(settings, "elasticsearch.max_pattern_repetition", 1),
        max_expansions=_whole_number(settings, "elasticsearch.max_expansions", 1),
        number_of_shards=_optional_whole_number(settings, "elasticsearch.number_of_shards", 1),
        number_of_replicas=_optional_whole_number(settings, "elasticsearch.number_of_replicas", 0),
        pools=_whole_number(settings, "elasticsearch.pools", 0),
        pool_max_records=_whole_number(settings, "elasticsearch.pool_max_records", 1),
        pool_max_fields=_whole_number(settings, "elasticsearch.pool_max_fields", 0),
        pool_number_of_shards=_optional_whole_number(
            settings, "elasticsearch.pool_number_of_shards", 1
        ),
        pool_number_of_replicas=_optional_whole_number(
            settings, "elasticsearch.pool_number_of_replicas", 0
        ),
    )
