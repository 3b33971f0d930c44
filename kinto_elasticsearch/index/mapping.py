"""Index mappings and settings from collection metadata.

A collection's index gets:

- ``index:schema``, if present: an explicit mapping, as in the engine's API;
- otherwise a mapping derived from the collection's JSON ``schema`` (see
  :func:`from_json_schema`), never more than :data:`DERIVED_FIELDS` fields of it, so that
  records keep room for fields the schema does not name;
- ``index:map_like``: paths of objects whose keys are data (a map from names to values),
  mapped with the engine's flattened type so that they never grow the mapping;
- always: ``id`` as ``keyword``, ``last_modified`` as ``long``, the reserved
  ``_unindexed`` keyword, and every string not mapped otherwise as ``text`` with a
  ``keyword`` sub-field.

Index settings make the engine tolerate values of the wrong type in scalar fields
(``ignore_malformed``: the document is indexed, that value is not) and fix the total
number of fields, which the writer keeps the mapping under (see ``budget.py``).
"""

import copy
import logging

from kinto_elasticsearch.index.fieldnames import UNINDEXED_FIELD, escape_key, escape_path

logger = logging.getLogger(__name__)

# Strings are searchable as text and sortable/aggregatable through ``.keyword``. The
# limit is the largest that keeps every UTF-8 value under Lucene's 32766-byte term limit.
KEYWORD_IGNORE_ABOVE = 8191

STRING_MAPPING = {
    "type": "text",
    "fields": {"keyword": {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}},
}
KEYWORD_MAPPING = {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}
DATE_MAPPING = {"type": "date", "ignore_malformed": True}

REQUIRED_PROPERTIES = {
    "id": {"type": "keyword"},
    "last_modified": {"type": "long"},
    UNINDEXED_FIELD: {"type": "keyword"},
}

# The engines' default ``index.mapping.total_fields.limit`` and ``depth.limit``.
MAX_FIELDS = 1000
MAX_DEPTH = 20
# A JSON schema may name more fields than an index can hold: half of the limit at most,
# the other half stays for dynamic fields.
DERIVED_FIELDS = MAX_FIELDS // 2
# Schema nodes visited at most: references shared by many parts of a large schema are
# expanded at each use, which could otherwise take exponential time.
MAX_SCHEMA_STEPS = 20_000

INDEX_SETTINGS = {
    "index.mapping.ignore_malformed": True,
    "index.mapping.total_fields.limit": MAX_FIELDS,
}

_STRINGS_TEMPLATE = {"strings": {"match_mapping_type": "string", "mapping": STRING_MAPPING}}

_JSON_SCHEMA_SCALARS = {
    "integer": {"type": "long"},
    "number": {"type": "double"},
    "boolean": {"type": "boolean"},
    "string": STRING_MAPPING,
}
_DATE_FORMATS = {"date", "date-time"}

# Collection metadata keys whose change alters the mapping, or the documents.
MAPPING_KEYS = ("index:schema", "schema", "index:map_like")
EXCLUDE_KEY = "index:exclude_fields"
FIELDS_KEY = "index:fields"
MAP_LIKE_KEY = "index:map_like"
PRIVATE_KEY = "index:private_fields"
DOCUMENT_KEYS = (EXCLUDE_KEY, FIELDS_KEY)


def _paths(metadata, key):
    fields = (metadata or {}).get(key) or []
    return [f for f in fields if isinstance(f, str) and f] if isinstance(fields, list) else []


def excluded_fields(metadata):
    """The fields of ``index:exclude_fields``: never sent to the engine."""
    return _paths(metadata, EXCLUDE_KEY)


def selected_fields(metadata):
    """The fields of ``index:fields``: when set, the only ones sent to the engine."""
    return _paths(metadata, FIELDS_KEY)


def map_like_fields(metadata):
    return _paths(metadata, MAP_LIKE_KEY)


def private_fields(metadata):
    """The fields of ``index:private_fields``: searchable by writers of the collection only
    (the read side adds the fields an explicit mapping copies them to)."""
    return _paths(metadata, PRIVATE_KEY)


def metadata_errors(metadata):
    """``(key, message)`` for each indexing key of the metadata that is malformed."""
    errors = []
    explicit = metadata.get("index:schema")
    if "index:schema" in metadata:
        if not isinstance(explicit, dict):
            errors.append(("index:schema", "index:schema must be an object holding a mapping"))
        elif not isinstance(explicit.get("properties", {}), dict):
            errors.append(("index:schema", "index:schema 'properties' must be an object"))
        elif not all(isinstance(v, dict) for v in explicit.get("properties", {}).values()):
            errors.append(("index:schema", "each of index:schema 'properties' must be an object"))
    for key in (EXCLUDE_KEY, FIELDS_KEY, MAP_LIKE_KEY, PRIVATE_KEY):
        value = metadata.get(key)
        if key in metadata and not (
            isinstance(value, list) and all(isinstance(v, str) and v for v in value)
        ):
            errors.append((key, f"{key} must be a list of field names (dotted paths)"))
    return errors


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


def _set_path(properties, path, mapping):
    *parents, leaf = path.split(".")
    for name in parents:
        parent = properties.setdefault(name, {"type": "object", "properties": {}})
        if "properties" not in parent:
            # A scalar where the path needs an object: the path cannot be mapped.
            return
        properties = parent["properties"]
    properties[leaf] = mapping


def _pop_path(properties, path):
    *parents, leaf = path.split(".")
    for name in parents:
        properties = properties.get(name, {}).get("properties", {})
    properties.pop(leaf, None)


def collection_mapping(metadata, flat_type="flattened"):
    """The index mapping for a collection, from its metadata (never raises).

    ``flat_type`` is the engine's type for objects with arbitrary keys (``flattened`` on
    Elasticsearch, ``flat_object`` on OpenSearch).
    """
    metadata = metadata or {}
    explicit = metadata.get("index:schema")
    if isinstance(explicit, dict) and not any(
        key == "index:schema" for key, _ in metadata_errors(metadata)
    ):
        mapping = copy.deepcopy(explicit)
        mapping.setdefault("properties", {})
    else:
        mapping = {"properties": from_json_schema(metadata.get("schema"), flat_type)}
    properties = mapping["properties"]
    for path in map_like_fields(metadata):
        _set_path(properties, escape_path(path), {"type": flat_type})
    for path in excluded_fields(metadata):
        _pop_path(properties, escape_path(path))
    properties.update(copy.deepcopy(REQUIRED_PROPERTIES))
    mapping.setdefault("dynamic_templates", [copy.deepcopy(_STRINGS_TEMPLATE)])
    return mapping


def derives_mapping(metadata):
    """Whether the collection's metadata maps fields otherwise than the plugin's dynamic
    template would (``index:schema``; numbers, booleans, dates, keywords or flattened
    objects from its JSON ``schema`` or ``index:map_like``).

    A schema naming only strings (in objects or not) derives what the template gives any
    string. Where another collection's records typed such a field otherwise first, a
    string value does not fit it and is listed as left out, which tells (``catchup``);
    a number or a boolean would go into a text field unseen.
    """
    mapping = copy.deepcopy(collection_mapping(metadata))
    properties = mapping.pop("properties")
    plain = collection_mapping({})
    plain.pop("properties")
    own = {name: field for name, field in properties.items() if name not in REQUIRED_PROPERTIES}
    return mapping != plain or not _strings_only(own)


def _strings_only(properties):
    for field in properties.values():
        if "properties" in field:
            if set(field) - {"type", "properties"} or not _strings_only(field["properties"]):
                return False
        elif field != STRING_MAPPING:
            return False
    return True


def plugin_settings(metadata):
    """The plugin's own settings of a collection's new index (malformed values, field limit)."""
    return dict(INDEX_SETTINGS)


def documents_changed(old_metadata, new_metadata):
    """Whether existing documents must be rebuilt to follow a collection update."""
    old_metadata, new_metadata = old_metadata or {}, new_metadata or {}
    return any(_paths(old_metadata, k) != _paths(new_metadata, k) for k in DOCUMENT_KEYS)


def mapping_changed(old_metadata, new_metadata):
    """Whether a collection update alters its index mapping."""
    old_metadata, new_metadata = old_metadata or {}, new_metadata or {}
    return any(old_metadata.get(key) != new_metadata.get(key) for key in MAPPING_KEYS)


def flatten_field_types(mapping):
    """``{"dotted.path": "type"}`` for every field of an index mapping, sub-fields included."""
    types = {}

    def walk(properties, prefix):
        for name, field in (properties or {}).items():
            path = f"{prefix}{name}"
            types[path] = field.get("type", "object")
            walk(field.get("properties"), f"{path}.")
            for sub_name, sub in (field.get("fields") or {}).items():
                types[f"{path}.{sub_name}"] = sub.get("type", "object")

    walk(mapping.get("properties"), "")
    return types
