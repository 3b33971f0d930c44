"""Index mappings and settings from collection metadata.

A collection's index gets:

- ``index:schema``, if present: an explicit mapping, as in the engine's API;
- otherwise a mapping derived from the collection's JSON ``schema`` (see
  ``index/schema.py``), never more than ``DERIVED_FIELDS`` fields of it, so that
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

from kinto_elasticsearch.index.fieldnames import UNINDEXED_FIELD, escape_path
from kinto_elasticsearch.index.fields import MAX_FIELDS, STRING_MAPPING
from kinto_elasticsearch.index.schema import from_json_schema

logger = logging.getLogger(__name__)

REQUIRED_PROPERTIES = {
    "id": {"type": "keyword"},
    "last_modified": {"type": "long"},
    UNINDEXED_FIELD: {"type": "keyword"},
}

INDEX_SETTINGS = {
    "index.mapping.ignore_malformed": True,
    "index.mapping.total_fields.limit": MAX_FIELDS,
}

_STRINGS_TEMPLATE = {"strings": {"match_mapping_type": "string", "mapping": STRING_MAPPING}}


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
    if not any(key in (metadata or {}) for key in MAPPING_KEYS):
        # Nothing to derive fields from (``index:exclude_fields`` only removes some): the
        # common case, asked for every collection a first indexing or a write places.
        return False
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
