"""The plugin's settings, as one table: each setting's key, default, parser and documentation.

The defaults Kinto fills (and environment variables override), the validation at include
time and the operators' reference (``reference_rst``) are all read from ``SETTINGS``, so
they cannot drift apart.
"""

import logging
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from kinto.core.utils import read_env
from pyramid.exceptions import ConfigurationError
from pyramid.settings import asbool, aslist

from kinto_elasticsearch.index.naming import KINTO_ID_PATTERN

logger = logging.getLogger(__name__)

ENGINES = ("elasticsearch", "opensearch")

# Index names are built as ``{prefix}.{bucket}.{collection}.{generation}``; keeping dots and
# ``+`` out of the prefix is what makes the names injective (see ``naming.py``).
PREFIX_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")

_RESOURCE_PATTERN = re.compile(
    rf"^/buckets/(?P<bid>{KINTO_ID_PATTERN})(?:/collections/(?P<cid>{KINTO_ID_PATTERN}))?$"
)

# A parser turns the raw value of a setting (a string from the ini or an environment
# variable, or the table's default) into what the plugin uses; it is given the setting's key
# to name it in a ConfigurationError.
Parser = Callable[[str, object], object]


# Parsers


def _boolean(key, raw):
    return asbool(raw)


def _seconds(key, raw):
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{key} must be a number of seconds, not {raw!r}") from None


def _positive_seconds(key, raw):
    value = _seconds(key, raw)
    if value <= 0:
        raise ConfigurationError(f"{key} must be greater than zero, not {raw!r}")
    return value


def _non_negative_seconds(key, raw):
    value = _seconds(key, raw)
    if value < 0:
        raise ConfigurationError(f"{key} must be zero or more, not {raw!r}")
    return value


def _whole_number(minimum) -> Parser:
    def parse(key, raw):
        try:
            value = int(raw)
        except (TypeError, ValueError):
            value = minimum - 1
        if value < minimum or isinstance(raw, float) and raw != value:
            raise ConfigurationError(f"{key} must be a whole number >= {minimum}, not {raw!r}")
        return value

    return parse


def _optional_whole_number(minimum) -> Parser:
    """A whole number, or None (the engine's default) when left empty."""
    whole_number = _whole_number(minimum)

    def parse(key, raw):
        return None if raw in ("", None) else whole_number(key, raw)

    return parse


def _hosts(key, raw):
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


def _engine(key, raw):
    engine = str(raw).strip().lower()
    if engine not in ENGINES:
        raise ConfigurationError(f"{key} must be one of {', '.join(ENGINES)}, not {engine!r}")
    return engine


def _index_prefix(key, raw):
    prefix = str(raw)
    if not PREFIX_PATTERN.match(prefix):
        raise ConfigurationError(
            f"{key} {prefix!r} is invalid: use 1 to 32 lower case letters, "
            "digits, '-' or '_', starting with a letter or digit"
        )
    return prefix


def _resources(key, raw):
    raw = raw or ""
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


# The table


@dataclass(frozen=True)
class Setting:
    """One setting of the plugin, the only place its default, parser and doc are written."""

    # As Kinto stores it: ``elasticsearch.hosts`` is ``kinto.elasticsearch.hosts`` in the ini.
    key: str
    # What Kinto fills when neither the ini nor the environment gives a value ("": unset).
    default: object
    parse: Parser
    # What an operator reads in the reference: what it does, its unit, when to change it.
    doc: str
    # The attribute of ``PluginSettings`` that holds the parsed value (default: the key
    # without ``elasticsearch.``).
    attribute: str = ""

    def __post_init__(self):
        if not self.attribute:
            object.__setattr__(self, "attribute", self.key.removeprefix("elasticsearch."))

    def read(self, settings):
        """This setting's parsed value in ``settings`` (unprefixed keys), or its default's."""
        return self.parse(self.key, settings.get(self.key, self.default))


SETTINGS = (
    # Parsed in this order: the first bad setting is the one reported.
    Setting(
        "elasticsearch.engine",
        "elasticsearch",
        _engine,
        "Which client speaks to the nodes: ``elasticsearch`` (Elasticsearch 8 or 9) or "
        "``opensearch`` (OpenSearch 1 to 3, with the ``opensearch`` extra installed).",
    ),
    Setting(
        "elasticsearch.index_prefix",
        "kinto",
        _index_prefix,
        "Start of the name of every index and alias the plugin creates (``<prefix>.``): 1 to "
        "32 lower case letters, digits, ``-`` or ``_``, starting with a letter or digit. Give "
        "each Kinto server that shares a cluster a prefix of its own.",
    ),
    Setting(
        "elasticsearch.hosts",
        "http://localhost:9200",
        _hosts,
        "The search engine's nodes, as URLs with a scheme (``http://`` or ``https://``), "
        "separated by spaces or new lines. Name several nodes of a cluster so that a "
        "connection failure can be retried on another (``max_retries``).",
    ),
    Setting(
        "elasticsearch.force_refresh",
        False,
        _boolean,
        "Read-your-writes: a write waits (at most ``request_timeout_seconds`` + 1) for the "
        "bulk request carrying it, refreshed, so that a search right after it sees it. Each "
        "write then costs the engine a refresh: leave it off where writes are many.",
    ),
    Setting(
        "elasticsearch.resources",
        "",
        _resources,
        "Index only these buckets and collections, as URIs separated by spaces or new lines "
        "(``/buckets/blog /buckets/shop/collections/items``). Unset: every bucket and "
        "collection.",
    ),
    Setting(
        "elasticsearch.request_timeout_seconds",
        2.0,
        _positive_seconds,
        "Timeout, in seconds, of each request the plugin sends while indexing (a Kinto write "
        "waits for one only with ``force_refresh``), and of the heartbeat's ping (at most "
        "Kinto's ``heartbeat_timeout_seconds``). Raise it if a loaded engine times out healthy "
        "requests.",
        attribute="request_timeout",
    ),
    Setting(
        "elasticsearch.search_timeout_seconds",
        10.0,
        _positive_seconds,
        "Timeout, in seconds, of a search request, also sent to the engine as the search's own "
        "``timeout`` (a body may ask for less, never more).",
        attribute="search_timeout",
    ),
    Setting(
        "elasticsearch.max_retries",
        0,
        _whole_number(0),
        "Extra attempts on another node after a connection failure (``0``: none).",
    ),
    Setting(
        "elasticsearch.circuit_breaker_failures",
        3,
        _whole_number(1),
        "Consecutive failures to *reach* the engine (refused connections, timeouts, a proxy's "
        "502/503/504) after which searches, or writes, stop waiting on it for "
        "``circuit_breaker_seconds``. Queries the engine refuses do not count.",
    ),
    Setting(
        "elasticsearch.circuit_breaker_seconds",
        10.0,
        _positive_seconds,
        "How long, in seconds, searches or writes stop waiting on an unreachable engine before "
        "one request probes it again.",
    ),
    Setting(
        "elasticsearch.catchup_in_process",
        True,
        _boolean,
        "Run the catch-up (index what changed in storage since each collection's checkpoint) "
        "in the background of each Kinto process. Set it to ``false`` if you run "
        "``kinto-elasticsearch sync --follow`` instead.",
    ),
    Setting(
        "elasticsearch.catchup_interval_seconds",
        10.0,
        _non_negative_seconds,
        "Seconds between two catch-up passes. Passes also run at start, after a failed write "
        "and when the engine is back; ``0``: only then.",
        attribute="catchup_interval",
    ),
    Setting(
        "elasticsearch.catchup_overlap_seconds",
        300.0,
        _non_negative_seconds,
        "How far, in seconds, behind its checkpoint a catch-up pass re-reads storage: on "
        "PostgreSQL, writes become visible out of timestamp order. Keep it longer than any "
        "Kinto write transaction may last.",
        attribute="catchup_overlap",
    ),
    Setting(
        "elasticsearch.rebuild_lease_seconds",
        15.0,
        _positive_seconds,
        "How long, in seconds, a rebuild's lease outlives its process (it is renewed every "
        "third of it): a killed rebuild blocks the next one, and keeps its half-filled index, "
        "that long.",
        attribute="rebuild_lease",
    ),
    Setting(
        "elasticsearch.sender_max_pending",
        10000,
        _whole_number(1),
        "Most changes waiting to be sent to the engine in one process; beyond, they are left "
        "to the catch-up, which reads them from storage.",
    ),
    Setting(
        "elasticsearch.allow_scripts",
        False,
        _boolean,
        "Let search bodies run scripts (script queries and fields, runtime mappings, scripted "
        "aggregations...). Even then, a caller from whom private fields are hidden may not: a "
        "script reads any field.",
    ),
    Setting(
        "elasticsearch.max_result_window",
        10000,
        _whole_number(1),
        "Largest ``from + size`` of a search.",
    ),
    Setting(
        "elasticsearch.max_query_depth",
        20,
        _whole_number(1),
        "Deepest nesting of queries, and of aggregations, in a search body.",
    ),
    Setting(
        "elasticsearch.max_aggregations",
        50,
        _whole_number(0),
        "Most aggregations in one search, sub-aggregations included (``0``: none).",
    ),
    Setting(
        "elasticsearch.max_aggregation_size",
        1000,
        _whole_number(1),
        "Largest ``size`` or ``shard_size`` of a bucket aggregation (``terms``, "
        "``composite``...).",
    ),
    Setting(
        "elasticsearch.max_body_bytes",
        65536,
        _whole_number(1),
        "Largest search body, in bytes, refused before it is parsed.",
    ),
    Setting(
        "elasticsearch.max_body_depth",
        100,
        _whole_number(2),
        "Deepest nesting of objects and lists in a search body, measured before it is parsed.",
    ),
    Setting(
        "elasticsearch.max_clauses",
        1024,
        _whole_number(1),
        "Most clauses and terms in one search (queries, terms, ids, words of text queries), as "
        "the engines' ``max_clause_count``.",
    ),
    Setting(
        "elasticsearch.max_buckets",
        10000,
        _whole_number(1),
        "Most buckets a histogram may make over its ``extended_bounds`` (times the sizes of the "
        "aggregations above it).",
    ),
    Setting(
        "elasticsearch.max_pattern_length",
        256,
        _whole_number(1),
        "Longest regular expression or wildcard pattern, in characters (in a body, ``q`` or "
        "``include``).",
    ),
    Setting(
        "elasticsearch.max_pattern_repetition",
        100,
        _whole_number(1),
        "Largest ``{n,m}`` repetition in a regular expression.",
    ),
    Setting(
        "elasticsearch.max_expansions",
        50,
        _whole_number(1),
        "Largest ``max_expansions`` or ``fuzzy_max_expansions`` of a query.",
    ),
    Setting(
        "elasticsearch.number_of_shards",
        "",
        _optional_whole_number(1),
        "Primary shards of every dedicated index (collections cannot choose it). Unset: the "
        "engine's default.",
    ),
    Setting(
        "elasticsearch.number_of_replicas",
        "",
        _optional_whole_number(0),
        "Replicas of every dedicated index (collections cannot choose it). Unset: the engine's "
        "default.",
    ),
    Setting(
        "elasticsearch.pools",
        16,
        _whole_number(0),
        "Pooled indices that small collections share, so that one cluster holds tens of "
        "thousands of collections; ``0``: an index per collection. Changing it moves no "
        "collection: the engine remembers where each one lives.",
    ),
    Setting(
        "elasticsearch.pool_max_records",
        100000,
        _whole_number(1),
        "A pooled collection holding more documents than this (records and tombstones) moves "
        "to an index of its own, online.",
    ),
    Setting(
        "elasticsearch.pool_max_fields",
        100,
        _whole_number(0),
        "Fields one pooled collection may add to its pool's shared mapping; one that needs "
        "more moves to an index of its own, so that no tenant fills a pool's mapping for the "
        "others.",
    ),
    Setting(
        "elasticsearch.pool_number_of_shards",
        "",
        _optional_whole_number(1),
        "Primary shards of each pooled index. Unset: the engine's default.",
    ),
    Setting(
        "elasticsearch.pool_number_of_replicas",
        "",
        _optional_whole_number(0),
        "Replicas of each pooled index. Unset: the engine's default.",
    ),
)

# What Kinto fills for each key absent from the ini.
DEFAULT_SETTINGS = {setting.key: setting.default for setting in SETTINGS}

# Settings that are still accepted, do nothing, and say why at startup.
DEPRECATED_SETTINGS = {
    "elasticsearch.retry_queue_size": (
        "the retry queue is gone: storage is the outbox, and the catch-up indexes whatever "
        "the engine missed, however long the outage (see catchup_interval_seconds)"
    ),
}


@dataclass(frozen=True)
class PluginSettings:
    """The parsed settings: one attribute per entry of ``SETTINGS``."""

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
    # Every dedicated index the plugin creates; None leaves the engine's default.
    number_of_shards: int | None
    number_of_replicas: int | None
    # Pooled indices that small collections share (0: an index per collection).
    pools: int
    pool_max_records: int
    pool_max_fields: int
    # Each pooled index; None leaves the engine's default.
    pool_number_of_shards: int | None
    pool_number_of_replicas: int | None

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
    return PluginSettings(**{setting.attribute: setting.read(settings) for setting in SETTINGS})


# The reference


def _ini_value(value) -> str:
    """A default as an operator writes it in the ini file."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def reference_rst() -> str:
    """The settings reference, as a reStructuredText definition list (for the docs)."""
    entries = []
    for setting in SETTINGS:
        key = f"kinto.{setting.key}"
        default = f"``{_ini_value(setting.default)}``" if setting.default != "" else "unset"
        environment = key.replace(".", "_").upper()
        entries.append(
            f"``{key}``\n"
            f"    {setting.doc}\n\n"
            f"    Default: {default}. Environment variable: ``{environment}``.\n"
        )
    for key, reason in DEPRECATED_SETTINGS.items():
        entries.append(f"``kinto.{key}``\n    Deprecated and ignored: {reason}.\n")
    return "\n".join(entries)
