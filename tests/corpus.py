"""Real-world JSON written by others, from packages on PyPI (installed by the test extra).

- ``check-jsonschema`` vendors the JSON schemas of CI systems, package managers and
  tools (GitHub workflows, GitLab CI, Renovate, Docker Compose...), from a few kilobytes
  to over two megabytes: deep, recursive, full of ``$ref``, ``oneOf`` and map-like
  objects, with keys holding dots and fields whose type changes from one to the next;
- ``jsonschema-specifications`` ships the JSON Schema metaschemas (drafts 3 to 2020-12),
  which describe the schemas above: the collection schema they are stored under.

Kinto takes a top-level ``id`` for the record id, so the ``id`` of draft-04 schemas is
stored as ``schema_id``; nothing else is changed.
"""

import json
import re
from importlib.resources import files

import jsonschema_specifications

DRAFT_07 = "http://json-schema.org/draft-07/schema"
# Definitions taken from each vendored schema as records of their own: enough for a few
# hundred records in all (the test servers scan linearly).
DEFINITIONS_PER_SCHEMA = 12


def _record_id(name):
    return re.sub(r"[^a-zA-Z0-9_-]+", "-", name).strip("-")[:120] or "x"


def _as_record(document):
    document = dict(document)
    if "id" in document:
        document["schema_id"] = document.pop("id")
    document.pop("last_modified", None)
    return document


def vendored_schemas():
    """``{name: schema}`` for every schema check-jsonschema vendors."""
    folder = files("check_jsonschema.builtin_schemas.vendor")
    return {
        entry.name.removesuffix(".json"): json.loads(entry.read_text(encoding="utf-8"))
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".json")
    }


def metaschemas():
    """``{uri: schema}`` of the JSON Schema metaschemas."""
    registry = jsonschema_specifications.REGISTRY
    return {uri: registry.contents(uri) for uri in sorted(registry)}


def schema_records():
    """``{record id: data}``: every vendored schema and metaschema, as a record."""
    records = {_record_id(name): _as_record(s) for name, s in vendored_schemas().items()}
    for uri, schema in metaschemas().items():
        records[_record_id(uri.split("//", 1)[1])] = _as_record(schema)
    return records


def definition_records():
    """``{record id: data}``: the first definitions of each vendored schema."""
    records = {}
    for name, schema in vendored_schemas().items():
        definitions = schema.get("definitions") or schema.get("$defs") or {}
        for key in sorted(definitions)[:DEFINITIONS_PER_SCHEMA]:
            if isinstance(definitions[key], dict):
                records[_record_id(f"{name}-{key}")] = _as_record(definitions[key])
    return records
