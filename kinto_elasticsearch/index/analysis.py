"""``index:settings``: the index settings a collection chooses, within what a tenant may set.

A collection may set its index's ``analysis`` (analyzers, tokenizers, token filters, char
filters, normalizers, inline synonyms), and nothing else: shards, replicas, refresh
intervals and field limits shape the cluster's load and stay with the operator (the
plugin's settings). Within ``analysis``, nothing may reach beyond the index: files on the
engine's nodes (``*_path``), cluster-wide synonym sets (``synonyms_set``) and scripts
(``script``, the scripted ``condition`` and ``predicate_token_filter`` filters) are refused.
"""

import copy

SETTINGS_KEY = "index:settings"

TENANT_KEYS = ("analysis",)
ANALYSIS_SECTIONS = ("analyzer", "tokenizer", "filter", "char_filter", "normalizer")
SCRIPTED_TYPES = ("condition", "predicate_token_filter")
OUTSIDE_KEYS = ("synonyms_set", "script")


class InvalidIndexSettings(ValueError):
    """``index:settings`` holds something a collection may not set; ``location`` says where."""

    def __init__(self, description, location):
        super().__init__(description)
        self.description = description
        self.location = location


def _check_component(definition, location):
    if not isinstance(definition, dict):
        raise InvalidIndexSettings("must be an object holding a definition", location)
    if definition.get("type") in SCRIPTED_TYPES:
        raise InvalidIndexSettings(
            f"type {definition['type']!r} is not allowed: it runs a script", location
        )
    stack = [(definition, location)]
    while stack:
        value, where = stack.pop()
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            here = f"{where}.{key}" if isinstance(value, dict) else f"{where}[{key}]"
            if isinstance(key, str) and (key.endswith("_path") or key in OUTSIDE_KEYS):
                raise InvalidIndexSettings(
                    f"{key!r} is not allowed: it reads outside the index (give the values inline)",
                    here,
                )
            if isinstance(item, dict | list):
                stack.append((item, here))


def check(value):
    """Raise InvalidIndexSettings unless ``value`` is settings a collection may set."""
    location = SETTINGS_KEY
    if not isinstance(value, dict):
        raise InvalidIndexSettings("must be an object holding index settings", location)
    for key in value:
        if key not in TENANT_KEYS:
            raise InvalidIndexSettings(
                f"{key!r} cannot be set by a collection: only {', '.join(TENANT_KEYS)} can "
                "(the server's operator sets the others)",
                f"{location}.{key}",
            )
    analysis = value.get("analysis", {})
    location = f"{location}.analysis"
    if not isinstance(analysis, dict):
        raise InvalidIndexSettings("must be an object", location)
    for section, components in analysis.items():
        if section not in ANALYSIS_SECTIONS:
            raise InvalidIndexSettings(
                f"unknown section {section!r}: use {', '.join(ANALYSIS_SECTIONS)}",
                f"{location}.{section}",
            )
        if not isinstance(components, dict):
            raise InvalidIndexSettings(
                "must be an object of named definitions", f"{location}.{section}"
            )
        for name, definition in components.items():
            _check_component(definition, f"{location}.{section}.{name}")


def tenant_settings(metadata):
    """The index settings a collection's metadata chooses (``{}`` if none, or not allowed).

    Metadata is checked when written; settings refused since (by a newer version of these
    rules) are left out rather than failing the index of the collection.
    """
    value = (metadata or {}).get(SETTINGS_KEY)
    if value is None:
        return {}
    try:
        check(value)
    except InvalidIndexSettings:
        return {}
    return copy.deepcopy(value)


def settings_changed(old_metadata, new_metadata):
    """Whether a collection update changes its index settings (only a rebuild applies them)."""
    return (old_metadata or {}).get(SETTINGS_KEY) != (new_metadata or {}).get(SETTINGS_KEY)
