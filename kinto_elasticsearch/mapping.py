"""Index mappings from collection metadata."""

import copy

# Strings are searchable as text and sortable/aggregatable through ``.keyword``. The
# limit is the largest that keeps every UTF-8 value under Lucene's 32766-byte term limit.
KEYWORD_IGNORE_ABOVE = 8191

STRING_MAPPING = {
    "type": "text",
    "fields": {"keyword": {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}},
}

REQUIRED_PROPERTIES = {
    "id": {"type": "keyword"},
    "last_modified": {"type": "long"},
}

_STRINGS_TEMPLATE = {"strings": {"match_mapping_type": "string", "mapping": STRING_MAPPING}}

_JSON_SCHEMA_SCALARS = {
    "integer": {"type": "long"},
    "number": {"type": "double"},
    "boolean": {"type": "boolean"},
    "string": STRING_MAPPING,
}

# Collection metadata keys whose change alters the mapping, or the documents.
MAPPING_KEYS = ("index:schema", "schema")
EXCLUDE_KEY = "index:exclude_fields"


def _from_json_schema(schema):
    """A mapping for one JSON schema node, or None to leave the field to dynamic mapping."""
    if not isinstance(schema, dict):
        return None
    kind = schema.get("type")
    if isinstance(kind, list):
        # ["string", "null"] is common; anything more mixed is left to dynamic mapping.
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if kind == "array":
        return _from_json_schema(schema.get("items"))
    if kind == "object" or (kind is None and isinstance(schema.get("properties"), dict)):
        properties = {
            name: mapped
            for name, sub in (schema.get("properties") or {}).items()
            if name and (mapped := _from_json_schema(sub)) is not None
        }
        return {"type": "object", "properties": properties} if properties else None
    if isinstance(kind, str) and kind in _JSON_SCHEMA_SCALARS:
        return copy.deepcopy(_JSON_SCHEMA_SCALARS[kind])
    return None


def collection_mapping(metadata):
    """The index mapping for a collection, from its metadata.

    ``index:schema`` is an explicit mapping (a ``{"properties": ...}`` object, as in the
    engine's API). Without it, a mapping is derived from the collection's JSON ``schema``.
    Either way ``id`` and ``last_modified`` are mapped as the plugin needs them, and strings
    not mapped explicitly get a ``keyword`` sub-field.
    """
    metadata = metadata or {}
    explicit = metadata.get("index:schema")
    if isinstance(explicit, dict):
        mapping = copy.deepcopy(explicit)
    else:
        derived = _from_json_schema(metadata.get("schema"))
        mapping = {"properties": derived["properties"]} if derived else {}
    properties = mapping.setdefault("properties", {})
    for path in excluded_fields(metadata):
        parent = {"properties": properties}
        *parents, leaf = path.split(".")
        for name in parents:
            parent = parent.get("properties", {}).get(name, {})
        parent.get("properties", {}).pop(leaf, None)
    properties.update(copy.deepcopy(REQUIRED_PROPERTIES))
    mapping.setdefault("dynamic_templates", [copy.deepcopy(_STRINGS_TEMPLATE)])
    return mapping


def excluded_fields(metadata):
    """The fields of ``index:exclude_fields``: never sent to the engine."""
    fields = (metadata or {}).get(EXCLUDE_KEY) or []
    return [f for f in fields if isinstance(f, str) and f] if isinstance(fields, list) else []


def _without(value, path):
    head, _, rest = path.partition(".")
    if not isinstance(value, dict) or head not in value:
        return value
    if not rest:
        return {k: v for k, v in value.items() if k != head}
    return {**value, head: _without(value[head], rest)}


def document(record, metadata):
    """The document indexed for a record: the record less its excluded fields."""
    for path in excluded_fields(metadata):
        if path not in ("id", "last_modified"):
            record = _without(record, path)
    return record


def documents_changed(old_metadata, new_metadata):
    """Whether existing documents must be rebuilt to follow a collection update."""
    return excluded_fields(old_metadata) != excluded_fields(new_metadata)


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
