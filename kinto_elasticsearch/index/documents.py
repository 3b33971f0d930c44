"""What a record becomes in the index: the document sent, and the paths left out of it.

:func:`build` turns a record, its collection's metadata and what is known of the index
mapping into a :class:`Document`:

- ``index:fields`` (only these) and ``index:exclude_fields`` (never these) select what is
  sent; selected-out fields are a choice, not a loss, and are not listed as left out;
- keys the engine cannot take as field names are escaped (``fieldnames.py``);
- what the engine would refuse is taken out of the document and listed as left out:
  objects nested deeper than the engine's depth limit, arrays mixing objects and scalars,
  objects where the mapping has a scalar and scalars where it has an object, booleans
  that are not;
- what the engine takes but does not index is kept in the document and listed as left
  out: values the mapping's type cannot hold (``ignore_malformed`` keeps them in
  ``_source`` only) and fields an index no longer maps dynamically (near its field limit).

The paths left out are in the document itself, in the reserved ``_unindexed`` keyword
field: ``{"term": {"_unindexed": "price"}}`` finds the records whose ``price`` is not
searchable. Paths are dotted, with escaped keys, and name the outermost field left out.

When the engine refuses a document all the same (a mapping changed by another process,
a cause the plugin does not foresee), the writer asks for :func:`reduced` forms, and as a
last resort the :func:`minimal` one: the record's id and version, every field left out. A
refused update is thus always replaced by its new version, never left at the old one.
"""

import re
from dataclasses import dataclass, field

from kinto_elasticsearch.index.fieldnames import UNINDEXED_FIELD, escape_key, escape_path
from kinto_elasticsearch.index.fields import MAX_DEPTH
from kinto_elasticsearch.index.mapping import (
    excluded_fields,
    private_fields,
    selected_fields,
)

ID_FIELD, MODIFIED_FIELD = "id", "last_modified"

# Every record has an ``id``; a tombstone document has none (and nothing that a mapping,
# even a strict one, could refuse: ``last_modified`` is always mapped). Searches keep to
# documents with an ``id``; see ``search.filters.with_filters``.
LIVE_DOCUMENTS = {"exists": {"field": ID_FIELD}}


def tombstone_document(tombstone):
    """What a deleted record leaves in the index: its version, and nothing searchable."""
    return {MODIFIED_FIELD: tombstone[MODIFIED_FIELD]}


FLAT_TYPES = {"flattened", "flat_object"}
OBJECT_TYPES = {"object", "nested"}
NUMERIC_TYPES = {
    "long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float",
    "unsigned_long",
}  # fmt: skip
DATE_TYPES = {"date", "date_nanos"}
_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")
# The engines' default date format: strict_date_optional_time||epoch_millis.
_DATE = re.compile(
    r"^[-+]?\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])(T\d{2}(:\d{2}(:\d{2}([.,]\d{1,9})?)?)?"
    r"(Z|[+-]\d{2}(:?\d{2})?)?)?)?)?$"
)


@dataclass
class KnownMapping:
    """What the plugin knows of an index's mapping: enough to foresee refusals."""

    # Dotted path -> type; None for a field known to exist but of a type not yet read.
    types: dict = field(default_factory=dict)
    # Objects that map no new fields (``dynamic: false``, set or inherited); "" is the top.
    closed: set = field(default_factory=set)
    # The mapping's ``_meta`` (a pool keeps its tenants' field counts there).
    meta: dict = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, mapping):
        types, closed = {}, set()

        def walk(node, prefix, dynamic):
            dynamic = str(node.get("dynamic", dynamic)).lower()
            if dynamic in ("false", "strict"):
                closed.add(prefix[:-1])
            for name, sub in (node.get("properties") or {}).items():
                path = f"{prefix}{name}"
                types[path] = sub.get("type", "object")
                for sub_name, multi in (sub.get("fields") or {}).items():
                    types[f"{path}.{sub_name}"] = multi.get("type", "object")
                if "properties" in sub or types[path] in OBJECT_TYPES:
                    walk(sub, f"{path}.", dynamic)

        walk(mapping, "", "true")
        meta = mapping.get("_meta")
        return cls(types, closed, dict(meta) if isinstance(meta, dict) else {})

    def is_closed(self, path):
        return ".".join(path) in self.closed


@dataclass
class Document:
    id: str
    version: int
    source: dict
    # Dotted paths (escaped keys) that are not searchable in this document.
    left_out: list = field(default_factory=list)
    # Private fields of the collection (escaped): never listed in the document.
    private: list = field(default_factory=list)


def _without(value, path):
    head, _, rest = path.partition(".")
    if not isinstance(value, dict) or head not in value:
        return value
    if not rest:
        return {k: v for k, v in value.items() if k != head}
    return {**value, head: _without(value[head], rest)}


def _only(record, paths):
    """The record restricted to ``paths`` (dotted, through objects)."""
    kept = {}
    for path in paths:
        head, _, rest = path.partition(".")
        if head not in record:
            continue
        if not rest:
            kept[head] = record[head]
        elif isinstance(record[head], dict):
            inner = _only(record[head], [rest])
            if inner:
                merged = kept.get(head)
                kept[head] = {**merged, **inner} if isinstance(merged, dict) else inner
    return kept


def selected(record, metadata):
    """The part of a record that its collection's metadata sends to the engine."""
    only = selected_fields(metadata)
    if only:
        chosen = _only(record, only)
        chosen.update({k: record[k] for k in (ID_FIELD, MODIFIED_FIELD) if k in record})
        record = chosen
    for path in excluded_fields(metadata):
        if path not in (ID_FIELD, MODIFIED_FIELD):
            record = _without(record, path)
    return record


class _Builder:
    def __init__(self, known):
        self.known = known or KnownMapping()
        self.left_out = []

    def leave_out(self, path):
        self.left_out.append(".".join(path))

    def object(self, value, path):
        if path and value and self.known.is_closed(path):
            prefix = ".".join(path) + "."
            if not any(known.startswith(prefix) for known in self.known.types):
                # An object that maps none of its keys: one path says it all.
                self.leave_out(path)
                return _escaped(value)
        result = {}
        for key, item in value.items():
            name = escape_key(key, top_level=not path)
            kept = self.value(item, (*path, name))
            if kept is not _DROP:
                result[name] = kept
        return result

    def value(self, value, path):
        dotted = ".".join(path)
        kind = self.known.types.get(dotted)
        if kind in FLAT_TYPES:
            return _escaped(value)
        if isinstance(value, list):
            return self.array(value, path, kind)
        if isinstance(value, dict):
            if kind is not None and kind not in OBJECT_TYPES or len(path) >= MAX_DEPTH:
                self.leave_out(path)
                return _DROP
            if self.unmapped(path, dotted) and value:
                # Kept in ``_source``, but nothing under it is searchable.
                self.leave_out(path)
                return _escaped(value)
            return self.object(value, path)
        if value is None:
            return None
        if kind in OBJECT_TYPES:
            self.leave_out(path)
            return _DROP
        if kind == "boolean" and value not in (True, False, "true", "false", ""):
            # Booleans do not tolerate malformed values on every engine version.
            self.leave_out(path)
            return _DROP
        if self.malformed(value, kind) or self.unmapped(path, dotted):
            self.leave_out(path)
        return value

    def array(self, values, path, kind):
        items = list(flat_values(values))
        objects = [v for v in items if isinstance(v, dict)]
        scalars = [v for v in items if not isinstance(v, dict) and v is not None]
        if objects and scalars or objects and kind not in (None, *OBJECT_TYPES):
            self.leave_out(path)
            return _DROP
        if scalars and kind in OBJECT_TYPES:
            self.leave_out(path)
            return _DROP
        if objects:
            if len(path) >= MAX_DEPTH:
                self.leave_out(path)
                return _DROP
            if self.unmapped(path, ".".join(path)):
                self.leave_out(path)
                return _escaped(values)
            merged_left_out = len(self.left_out)
            result = [self.object(v, path) for v in objects]
            # One path per field, however many elements left it out.
            self.left_out[merged_left_out:] = sorted(set(self.left_out[merged_left_out:]))
            return result
        before = len(self.left_out)
        result = [self.value(v, path) for v in items]
        result = [v for v in result if v is not _DROP]
        if len(self.left_out) > before:
            self.left_out[before:] = [".".join(path)]
        return result

    def unmapped(self, path, dotted):
        """Whether a field stays in ``_source`` only, its object mapping no new fields."""
        return dotted not in self.known.types and self.known.is_closed(path[:-1])

    @staticmethod
    def malformed(value, kind):
        if kind in NUMERIC_TYPES:
            if isinstance(value, bool):
                return True
            return not isinstance(value, int | float) and not (
                isinstance(value, str) and _NUMBER.match(value)
            )
        if kind in DATE_TYPES:
            if isinstance(value, bool):
                return True
            is_date = isinstance(value, str) and _DATE.match(value)
            return not isinstance(value, int) and not is_date
        return False


_DROP = object()


def flat_values(values):
    for value in values:
        if isinstance(value, list):
            yield from flat_values(value)
        else:
            yield value


def _escaped(value):
    """A value kept whole (flattened, or not mapped): keys escaped all the same."""
    if isinstance(value, dict):
        return {escape_key(k): _escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    return value


def _with_marker(source, left_out, private=()):
    """The document with its list of paths left out; private fields are not listed in it,
    since any reader could query the list (they are still logged and reported)."""
    listed = [p for p in left_out if not any(p == f or p.startswith(f"{f}.") for f in private)]
    if listed:
        source[UNINDEXED_FIELD] = sorted(set(listed))
    return source


def build(record, metadata=None, known=None):
    """The document for ``record``, and what is left out of it."""
    builder = _Builder(known)
    chosen = selected(record, metadata)
    body = {k: v for k, v in chosen.items() if k not in (ID_FIELD, MODIFIED_FIELD)}
    source = builder.object(body, ())
    source[ID_FIELD] = record[ID_FIELD]
    source[MODIFIED_FIELD] = record[MODIFIED_FIELD]
    left_out = sorted(set(builder.left_out))
    private = [escape_path(path) for path in private_fields(metadata)]
    source = _with_marker(source, left_out, private)
    return Document(record[ID_FIELD], record[MODIFIED_FIELD], source, left_out, private)


def _drop(value, parts):
    if not parts:
        return _DROP
    if isinstance(value, list):
        return [v for v in (_drop(v, parts) for v in value) if v is not _DROP]
    if not isinstance(value, dict) or parts[0] not in value:
        return value
    inner = _drop(value[parts[0]], parts[1:])
    if inner is _DROP:
        return {k: v for k, v in value.items() if k != parts[0]}
    return {**value, parts[0]: inner}


def reduced(document, paths):
    """The document without ``paths``, which are listed as left out."""
    source = {k: v for k, v in document.source.items() if k != UNINDEXED_FIELD}
    for path in paths:
        if path not in (ID_FIELD, MODIFIED_FIELD):
            source = _drop(source, path.split("."))
    left_out = sorted(set(document.left_out) | set(paths) - {ID_FIELD, MODIFIED_FIELD})
    source = _with_marker(source, left_out, document.private)
    return Document(document.id, document.version, source, left_out, document.private)


def minimal(document):
    """The last resort: the record's id and version, every other field left out."""
    left_out = sorted(
        {k for k in document.source if k not in (ID_FIELD, MODIFIED_FIELD, UNINDEXED_FIELD)}
        | {p.split(".")[0] for p in document.left_out}
    )
    source = {ID_FIELD: document.id, MODIFIED_FIELD: document.version}
    source = _with_marker(source, left_out, document.private)
    return Document(document.id, document.version, source, left_out, document.private)


def dynamic_type(value):
    """The type the engine's dynamic mapping gives a new field (with the plugin's string
    template), or None where it depends on the engine (strings that look like dates)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "float"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, str):
        return None if _DATE.match(value) else "text"
    return None


def untyped(document, known):
    """Whether the document holds a field whose type the known mapping has not read yet."""

    def walk(value, path):
        if isinstance(value, list):
            return any(walk(item, path) for item in flat_values(value))
        if path:
            dotted = ".".join(path)
            if dotted in known.types and known.types[dotted] is None:
                return True
            if known.types.get(dotted) in FLAT_TYPES:
                return False
        if isinstance(value, dict):
            return any(walk(item, (*path, key)) for key, item in value.items())
        return False

    return walk(document.source, ())


def new_fields(document, known):
    """The fields this document adds to the mapping (as the engine counts them), with the
    type they would be given (None when the engine decides)."""
    added = {}

    def walk(value, path):
        dotted = ".".join(path)
        if isinstance(value, list):
            for item in flat_values(value):
                walk(item, path)
            return
        if path and known.types.get(dotted) in FLAT_TYPES:
            return
        if path and dotted not in known.types:
            if known.is_closed(path[:-1]):
                return
            kind = dynamic_type(value)
            if kind == "text":
                added[f"{dotted}.keyword"] = "keyword"
            if value is not None:
                added[dotted] = kind
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, (*path, key))

    walk(document.source, ())
    return added


# Where an engine's reason for refusing a document names the field at fault.
_REFUSED_FIELD = [
    re.compile(p)
    for p in (
        r"failed to parse field \[([^\]]+)\]",
        r"object mapping for \[([^\]]+)\] tried to parse",
        r"tried to parse field \[([^\]]+)\] as object",
        r"mapper \[([^\]]+)\] cannot be changed",
        r"can't merge a non object mapping \[([^\]]+)\]",
        r"Field \[([^\]]+)\] is a metadata field",
        r'immense term in field="([^"]+)"',
        r"Could not dynamically add mapping for field \[([^\]]+)\]",
    )
]
_STRICT = re.compile(r"dynamic introduction of \[([^\]]+)\] within \[([^\]]+)\]")
_FIELD_LIMIT = re.compile(r"Limit of total fields \[\d+\]")


def refused_field(reason):
    """The dotted field an engine's refusal names, or None."""
    reason = reason or ""
    strict = _STRICT.search(reason)
    if strict:
        within = strict.group(2)
        return strict.group(1) if within == "_doc" else f"{within}.{strict.group(1)}"
    for pattern in _REFUSED_FIELD:
        found = pattern.search(reason)
        if found:
            return found.group(1)
    return None


def is_field_limit(reason):
    return bool(_FIELD_LIMIT.search(reason or ""))


def widest_object(added):
    """The object (dotted path, "" for the top) that gets the most of the ``added`` fields
    as its direct children: the one to stop mapping new fields under."""
    children = {}
    for path in added:
        parent = path.rpartition(".")[0]
        if added.get(parent) == "text":
            continue  # A string's keyword sub-field: counted with the string.
        children[parent] = children.get(parent, 0) + 1
    # On a tie, the innermost object: the fewer fields it stops, the better.
    return max(children, key=lambda parent: (children[parent], parent.count("."), parent != ""))
