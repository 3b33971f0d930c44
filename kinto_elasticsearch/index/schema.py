"""A collection's JSON ``schema``, as people write them, as index mapping ``properties``.

``type`` (nullable ones too), ``format: date``/``date-time`` (dates, tolerant of bad
values), ``enum``/``const`` (keywords), local ``$ref`` (a cycle stops there),
``allOf``/``anyOf``/``oneOf`` of compatible types, ``items``; objects whose keys are data
(``additionalProperties`` or ``patternProperties`` and no ``properties``) get the
flattened type. Anything else is left to dynamic mapping.
"""

import copy
import logging

from kinto_elasticsearch.index.fieldnames import escape_key
from kinto_elasticsearch.index.fields import (
    DATE_MAPPING,
    DERIVED_FIELDS,
    KEYWORD_MAPPING,
    MAX_DEPTH,
    STRING_MAPPING,
)

logger = logging.getLogger(__name__)

# Schema nodes visited at most: references shared by many parts of a large schema are
# expanded at each use, which could otherwise take exponential time.
MAX_SCHEMA_STEPS = 20_000

_JSON_SCHEMA_SCALARS = {
    "integer": {"type": "long"},
    "number": {"type": "double"},
    "boolean": {"type": "boolean"},
    "string": STRING_MAPPING,
}
_DATE_FORMATS = {"date", "date-time"}


class _Derivation:
    """One JSON schema's walk: local references resolved, cycles and depth bounded."""

    def __init__(self, root, flat_type):
        self.root = root
        self.flat_type = flat_type
        self.steps = 0

    def resolve(self, ref):
        if not isinstance(ref, str) or not ref.startswith("#"):
            return None
        node = self.root
        for part in ref[1:].split("/")[1:] if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return None
        return node

    def node(self, schema, depth, refs=()):
        """A mapping for one schema node, or None to leave the field to dynamic mapping."""
        self.steps += 1
        if not isinstance(schema, dict) or depth >= MAX_DEPTH or self.steps > MAX_SCHEMA_STEPS:
            return None
        ref = schema.get("$ref")
        if ref is not None:
            if ref in refs:
                # A cycle (a tree of itself): below here, dynamic mapping decides.
                return None
            target = self.resolve(ref)
            rest = {k: v for k, v in schema.items() if k not in ("$ref", "$id", "$schema")}
            parts = [target] + ([rest] if rest else [])
            return self.all_of(parts, depth, (*refs, ref))
        if isinstance(schema.get("allOf"), list):
            rest = {k: v for k, v in schema.items() if k != "allOf"}
            return self.all_of([*schema["allOf"], rest], depth, refs)
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list):
                rest = {k: v for k, v in schema.items() if k != key}
                branches = [{**rest, **b} if isinstance(b, dict) else b for b in schema[key]]
                return self.any_of(branches, depth, refs)
        return self.typed(schema, depth, refs)

    def all_of(self, parts, depth, refs):
        merged = None
        for part in parts:
            if isinstance(part, dict) and not part:
                continue
            mapped = self.node(part, depth, refs)
            if mapped is None:
                continue
            merged = mapped if merged is None else _merge(merged, mapped)
            if merged is None:
                return None
        return merged

    def any_of(self, branches, depth, refs):
        mapped = []
        for branch in branches:
            if isinstance(branch, dict) and _is_null(branch):
                continue
            result = self.node(branch, depth, refs)
            if result is None:
                # One branch the plugin cannot map: the field may hold anything.
                return None
            mapped.append(result)
        merged = mapped[0] if mapped else None
        for other in mapped[1:]:
            merged = _merge(merged, other)
            if merged is None:
                return None
        return merged

    def typed(self, schema, depth, refs):
        kind = _kind(schema)
        if kind == "array":
            items = schema.get("items", schema.get("prefixItems"))
            if isinstance(items, list):
                return self.any_of(items, depth, refs)
            return self.node(items, depth, refs)
        if kind == "object":
            return self.object(schema, depth, refs)
        if kind == "string":
            if schema.get("format") in _DATE_FORMATS:
                return copy.deepcopy(DATE_MAPPING)
            if "enum" in schema or "const" in schema:
                # Labels from a closed list: exact values, sorted and counted as they are.
                return copy.deepcopy(KEYWORD_MAPPING)
        if kind in _JSON_SCHEMA_SCALARS:
            return copy.deepcopy(_JSON_SCHEMA_SCALARS[kind])
        return None

    def object(self, schema, depth, refs):
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        additional = schema.get("additionalProperties")
        if not properties and (
            isinstance(additional, dict) and additional or schema.get("patternProperties")
        ):
            # Keys are data (a map from names to values): one field, however many keys.
            return {"type": self.flat_type}
        mapped = {}
        for name, sub in properties.items():
            if not isinstance(name, str):
                continue
            result = self.node(sub, depth + 1, refs)
            if result is not None:
                mapped[escape_key(name, top_level=depth == 0)] = result
        return {"type": "object", "properties": mapped} if mapped else None


def _is_null(schema):
    return schema.get("type") == "null" or ("const" in schema and schema["const"] is None)


def _kind(schema):
    """The JSON type of a schema node, nulls aside, or None when it may be several."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
        if kind is None:
            return None
    if isinstance(kind, str):
        return kind
    values = schema["enum"] if isinstance(schema.get("enum"), list) else None
    if "const" in schema:
        values = [schema["const"]]
    if values is not None:
        kinds = {_value_kind(v) for v in values if v is not None}
        if kinds == {"integer", "number"}:
            return "number"
        return kinds.pop() if len(kinds) == 1 else None
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    if "patternProperties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    if schema.get("format") in _DATE_FORMATS:
        return "string"
    return None


def _value_kind(value):
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _merge(left, right):
    """Two mappings of one field, merged; None if they cannot both hold."""
    if left == right:
        return left
    if left.get("type") == "object" and right.get("type") == "object":
        properties = dict(left["properties"])
        for name, mapped in right["properties"].items():
            if name in properties:
                merged = _merge(properties[name], mapped)
                if merged is None:
                    properties.pop(name)
                    continue
                mapped = merged
            properties[name] = mapped
        return {"type": "object", "properties": properties} if properties else None
    numbers = {"long", "double"}
    if {left.get("type"), right.get("type")} == numbers:
        return {"type": "double"}
    if {left.get("type"), right.get("type")} == {"text", "keyword"}:
        return copy.deepcopy(STRING_MAPPING)
    return None


def count_fields(properties):
    """How many fields the engine counts for ``properties`` (objects and sub-fields too)."""
    count = 0
    for field in (properties or {}).values():
        count += 1 + len(field.get("fields") or {})
        count += count_fields(field.get("properties"))
    return count


def _within(properties, budget):
    """``properties`` cut breadth-first to at most ``budget`` fields: what does not fit is
    left to dynamic mapping."""
    kept = {}
    queue = [(properties, kept)]
    while queue:
        source, target = queue.pop(0)
        for name, field in source.items():
            cost = 1 + len(field.get("fields") or {})
            if cost > budget:
                continue
            budget -= cost
            target[name] = {k: v for k, v in field.items() if k != "properties"}
            if field.get("properties"):
                target[name]["properties"] = {}
                queue.append((field["properties"], target[name]["properties"]))
    return kept


def from_json_schema(schema, flat_type="flattened", budget=DERIVED_FIELDS):
    """The ``properties`` derived from a collection's JSON schema, as people write them.

    ``type`` (nullable ones too), ``format: date``/``date-time`` (dates, tolerant of bad
    values), ``enum``/``const`` (keywords), local ``$ref`` (a cycle stops there),
    ``allOf``/``anyOf``/``oneOf`` of compatible types, ``items``; objects whose keys are
    data (``additionalProperties`` or ``patternProperties`` and no ``properties``) get the
    flattened type. Anything else is left to dynamic mapping, and so is whatever does not
    fit in ``budget`` fields.
    """
    try:
        derived = _Derivation(schema, flat_type).node(schema, depth=0)
    except RecursionError:
        logger.warning("A collection's JSON schema is too deep to map: left to dynamic mapping")
        derived = None
    if not derived or derived.get("type") != "object":
        return {}
    return _within(derived["properties"], budget)
