"""How the raw value of each setting (a string from the ini or an environment variable, or
the table's default) becomes what the plugin uses, with a clear error when it cannot."""

import logging
import re
import warnings
from collections.abc import Callable
from urllib.parse import urlsplit

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

# ``host[:port]``, as kinto-elasticsearch 0.3 took hosts (its default was localhost:9200):
# a host name, an IPv4 address or a bracketed IPv6 address, nothing else.
_SCHEMELESS_HOST_PATTERN = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$"
)

# A parser turns the raw value of a setting (a string from the ini or an environment
# variable, or the table's default) into what the plugin uses; it is given the setting's key
# to name it in a ConfigurationError.
Parser = Callable[[str, object], object]


def warn_deprecated(message, stacklevel=2):
    """A DeprecationWarning (for tests and ``-W``) and a log line (what an operator reads)."""
    warnings.warn(message, DeprecationWarning, stacklevel=stacklevel + 1)
    logger.warning(message)


def boolean(key, raw):
    return asbool(raw)


def seconds(key, raw):
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{key} must be a number of seconds, not {raw!r}") from None


def positive_seconds(key, raw):
    value = seconds(key, raw)
    if value <= 0:
        raise ConfigurationError(f"{key} must be greater than zero, not {raw!r}")
    return value


def non_negative_seconds(key, raw):
    value = seconds(key, raw)
    if value < 0:
        raise ConfigurationError(f"{key} must be zero or more, not {raw!r}")
    return value


def whole_number(minimum) -> Parser:
    def parse(key, raw):
        try:
            value = int(raw)
        except (TypeError, ValueError):
            value = minimum - 1
        if value < minimum or isinstance(raw, float) and raw != value:
            raise ConfigurationError(f"{key} must be a whole number >= {minimum}, not {raw!r}")
        return value

    return parse


def optional_whole_number(minimum) -> Parser:
    """A whole number, or None (the engine's default) when left empty."""
    parse_whole = whole_number(minimum)

    def parse(key, raw):
        return None if raw in ("", None) else parse_whole(key, raw)

    return parse


def hosts(key, raw):
    hosts = tuple(aslist(raw) if isinstance(raw, str) else raw)
    if not hosts:
        raise ConfigurationError(f"{key} must name at least one host")
    return tuple(_host_url(key, host) for host in hosts)


def _host_url(key, host):
    if _SCHEMELESS_HOST_PATTERN.match(host):
        url = f"http://{host}"
        warn_deprecated(
            f"{key}: {host!r} has no scheme and is read as {url}; write {url} "
            "(or https://...): hosts without a scheme are deprecated"
        )
        return url
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"{key}: {host!r} is not a URL with a scheme, such as http://localhost:9200"
        )
    return host


def engine(key, raw):
    engine = str(raw).strip().lower()
    if engine not in ENGINES:
        raise ConfigurationError(f"{key} must be one of {', '.join(ENGINES)}, not {engine!r}")
    return engine


def index_prefix(key, raw):
    prefix = str(raw)
    if not PREFIX_PATTERN.match(prefix):
        raise ConfigurationError(
            f"{key} {prefix!r} is invalid: use 1 to 32 lower case letters, "
            "digits, '-' or '_', starting with a letter or digit"
        )
    return prefix


def resources(key, raw):
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
