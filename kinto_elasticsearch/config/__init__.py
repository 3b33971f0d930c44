"""The plugin's settings, as one table: each setting's key, default, parser and documentation.

The defaults Kinto fills (and environment variables override), the validation at include
time and the operators' reference (``reference_rst``) are all read from ``SETTINGS``
(``config/table.py``, with its parsers in ``config/parsers.py``), so they cannot drift
apart.
"""

from dataclasses import dataclass

from kinto.core.utils import read_env

from kinto_elasticsearch.config.parsers import warn_deprecated
from kinto_elasticsearch.config.table import DEFAULT_SETTINGS, DEPRECATED_SETTINGS, SETTINGS

__all__ = [
    "DEFAULT_SETTINGS",
    "DEPRECATED_SETTINGS",
    "SETTINGS",
    "PluginSettings",
    "load_settings",
    "parse_settings",
    "reference_rst",
]


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
    # Collections reconciled in full per pass (``sync/incremental.py``).
    catchup_slice: int
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
            warn_deprecated(f"{project}.{key} is deprecated and ignored: {reason}", stacklevel=3)


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
