"""The table of settings: each setting's key, default, parser and documentation, written
once."""

from dataclasses import dataclass

from kinto_elasticsearch.config import parsers
from kinto_elasticsearch.config.parsers import Parser


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
        parsers.engine,
        "Which client speaks to the nodes: ``elasticsearch`` (Elasticsearch 8 or 9) or "
        "``opensearch`` (OpenSearch 1 to 3, with the ``opensearch`` extra installed).",
    ),
    Setting(
        "elasticsearch.index_prefix",
        "kinto",
        parsers.index_prefix,
        "Start of the name of every index and alias the plugin creates (``<prefix>.``): 1 to "
        "32 lower case letters, digits, ``-`` or ``_``, starting with a letter or digit. Give "
        "each Kinto server that shares a cluster a prefix of its own.",
    ),
    Setting(
        "elasticsearch.hosts",
        "http://localhost:9200",
        parsers.hosts,
        "The search engine's nodes, as URLs with a scheme (``http://`` or ``https://``), "
        "separated by spaces or new lines. Name several nodes of a cluster so that a "
        "connection failure can be retried on another (``max_retries``). A bare "
        "``host[:port]``, as kinto-elasticsearch 0.3 took, is read as ``http://host[:port]`` "
        "with a deprecation warning.",
    ),
    Setting(
        "elasticsearch.force_refresh",
        False,
        parsers.boolean,
        "Read-your-writes: a write waits (at most ``request_timeout_seconds`` + 1) for the "
        "bulk request carrying it, refreshed, or a collection write for its index's creation, "
        "mapping, rebuild or deletion, so that a search right after it sees it. Each "
        "write then costs the engine a refresh: leave it off where writes are many.",
    ),
    Setting(
        "elasticsearch.resources",
        "",
        parsers.resources,
        "Index only these buckets and collections, as URIs separated by spaces or new lines "
        "(``/buckets/blog /buckets/shop/collections/items``). Unset: every bucket and "
        "collection.",
    ),
    Setting(
        "elasticsearch.request_timeout_seconds",
        2.0,
        parsers.positive_seconds,
        "Timeout, in seconds, of each request the plugin sends while indexing (a Kinto write "
        "waits for one only with ``force_refresh``), and of the heartbeat's ping (at most "
        "Kinto's ``heartbeat_timeout_seconds``). Raise it if a loaded engine times out healthy "
        "requests.",
        attribute="request_timeout",
    ),
    Setting(
        "elasticsearch.search_timeout_seconds",
        10.0,
        parsers.positive_seconds,
        "Timeout, in seconds, of a search request, also sent to the engine as the search's own "
        "``timeout`` (a body may ask for less, never more).",
        attribute="search_timeout",
    ),
    Setting(
        "elasticsearch.max_retries",
        0,
        parsers.whole_number(0),
        "Extra attempts on another node after a connection failure (``0``: none).",
    ),
    Setting(
        "elasticsearch.circuit_breaker_failures",
        3,
        parsers.whole_number(1),
        "Consecutive failures to *reach* the engine (refused connections, timeouts, a proxy's "
        "502/503/504) after which searches, or writes, stop waiting on it for "
        "``circuit_breaker_seconds``. Queries the engine refuses do not count.",
    ),
    Setting(
        "elasticsearch.circuit_breaker_seconds",
        10.0,
        parsers.positive_seconds,
        "How long, in seconds, searches or writes stop waiting on an unreachable engine before "
        "one request probes it again.",
    ),
    Setting(
        "elasticsearch.catchup_in_process",
        True,
        parsers.boolean,
        "Run the catch-up (index what changed in storage since each collection's checkpoint) "
        "in the background of each Kinto process. Set it to ``false`` if you run "
        "``kinto-elasticsearch sync --follow`` instead.",
    ),
    Setting(
        "elasticsearch.catchup_interval_seconds",
        10.0,
        parsers.non_negative_seconds,
        "Seconds between two catch-up passes. Passes also run at start, after a failed write "
        "and when the engine is back; ``0``: only then.",
        attribute="catchup_interval",
    ),
    Setting(
        "elasticsearch.catchup_overlap_seconds",
        300.0,
        parsers.non_negative_seconds,
        "How far, in seconds, behind its checkpoint a catch-up pass re-reads storage: on "
        "PostgreSQL, writes become visible out of timestamp order. Keep it longer than any "
        "Kinto write transaction may last.",
        attribute="catchup_overlap",
    ),
    Setting(
        "elasticsearch.catchup_slice_collections",
        50,
        parsers.whole_number(1),
        "Collections (and checkpoints) each catch-up pass reconciles in full (purged "
        "tombstones, a lost index, collections gone) on PostgreSQL: every collection is "
        "checked within ``collections / catchup_slice_collections`` passes.",
        attribute="catchup_slice",
    ),
    Setting(
        "elasticsearch.rebuild_lease_seconds",
        15.0,
        parsers.positive_seconds,
        "How long, in seconds, a rebuild's lease outlives its process (it is renewed every "
        "third of it): a killed rebuild blocks the next one, and keeps its half-filled index, "
        "that long.",
        attribute="rebuild_lease",
    ),
    Setting(
        "elasticsearch.sender_max_pending",
        10000,
        parsers.whole_number(1),
        "Most changes waiting to be sent to the engine in one process; beyond, they are left "
        "to the catch-up, which reads them from storage.",
    ),
    Setting(
        "elasticsearch.allow_scripts",
        False,
        parsers.boolean,
        "Let search bodies run scripts (script queries and fields, runtime mappings, scripted "
        "aggregations...). Even then, a caller from whom private fields are hidden may not: a "
        "script reads any field.",
    ),
    Setting(
        "elasticsearch.max_result_window",
        10000,
        parsers.whole_number(1),
        "Largest ``from + size`` of a search.",
    ),
    Setting(
        "elasticsearch.max_query_depth",
        20,
        parsers.whole_number(1),
        "Deepest nesting of queries, and of aggregations, in a search body.",
    ),
    Setting(
        "elasticsearch.max_aggregations",
        50,
        parsers.whole_number(0),
        "Most aggregations in one search, sub-aggregations included (``0``: none).",
    ),
    Setting(
        "elasticsearch.max_aggregation_size",
        1000,
        parsers.whole_number(1),
        "Largest ``size`` or ``shard_size`` of a bucket aggregation (``terms``, "
        "``composite``...).",
    ),
    Setting(
        "elasticsearch.max_body_bytes",
        65536,
        parsers.whole_number(1),
        "Largest search body, in bytes, refused before it is parsed.",
    ),
    Setting(
        "elasticsearch.max_body_depth",
        100,
        parsers.whole_number(2),
        "Deepest nesting of objects and lists in a search body, measured before it is parsed.",
    ),
    Setting(
        "elasticsearch.max_clauses",
        1024,
        parsers.whole_number(1),
        "Most clauses and terms in one search (queries, terms, ids, words of text queries), as "
        "the engines' ``max_clause_count``.",
    ),
    Setting(
        "elasticsearch.max_buckets",
        10000,
        parsers.whole_number(1),
        "Most buckets a histogram may make over its ``extended_bounds`` (times the sizes of the "
        "aggregations above it).",
    ),
    Setting(
        "elasticsearch.max_pattern_length",
        256,
        parsers.whole_number(1),
        "Longest regular expression or wildcard pattern, in characters (in a body, ``q`` or "
        "``include``).",
    ),
    Setting(
        "elasticsearch.max_pattern_repetition",
        100,
        parsers.whole_number(1),
        "Largest ``{n,m}`` repetition in a regular expression.",
    ),
    Setting(
        "elasticsearch.max_expansions",
        50,
        parsers.whole_number(1),
        "Largest ``max_expansions`` or ``fuzzy_max_expansions`` of a query.",
    ),
    Setting(
        "elasticsearch.number_of_shards",
        "",
        parsers.optional_whole_number(1),
        "Primary shards of every dedicated index (collections cannot choose it). Unset: the "
        "engine's default.",
    ),
    Setting(
        "elasticsearch.number_of_replicas",
        "",
        parsers.optional_whole_number(0),
        "Replicas of every dedicated index (collections cannot choose it). Unset: the engine's "
        "default.",
    ),
    Setting(
        "elasticsearch.pools",
        16,
        parsers.whole_number(0),
        "Pooled indices that small collections share, so that one cluster holds tens of "
        "thousands of collections; ``0``: an index per collection. Changing it moves no "
        "collection: the engine remembers where each one lives.",
    ),
    Setting(
        "elasticsearch.pool_max_records",
        100000,
        parsers.whole_number(1),
        "A pooled collection holding more documents than this (records and tombstones) moves "
        "to an index of its own, online.",
    ),
    Setting(
        "elasticsearch.pool_max_fields",
        100,
        parsers.whole_number(0),
        "Fields one pooled collection may add to its pool's shared mapping; one that needs "
        "more moves to an index of its own, so that no tenant fills a pool's mapping for the "
        "others.",
    ),
    Setting(
        "elasticsearch.pool_number_of_shards",
        "",
        parsers.optional_whole_number(1),
        "Primary shards of each pooled index. Unset: the engine's default.",
    ),
    Setting(
        "elasticsearch.pool_number_of_replicas",
        "",
        parsers.optional_whole_number(0),
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
