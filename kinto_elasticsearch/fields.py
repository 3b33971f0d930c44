"""Which fields a search body reaches, to keep private fields from readers.

Collection metadata may name ``index:private_fields``: only users with write permission on
the collection (or its bucket) may see or query them. For everybody else a body that
names one, in a query, sort, aggregation, highlight, collapse or field list, is refused,
so that their values cannot be probed with ranges or aggregations either.

Field names are found conservatively: the keys of field-keyed queries (``term``,
``match``, ``range``...), and every value of a ``field``, ``fields``, ``default_field`` or
``path`` parameter anywhere. A wildcard pattern is refused if it could match a private
field or one of its sub-fields. Queries that search fields nobody named
(``query_string``, whose text can name any field, and ``multi_match``,
``simple_query_string``, ``combined_fields`` or ``more_like_this`` without ``fields``)
cannot be checked and are refused too; GET search then uses ``simple_query_string`` over
the fields the caller may read.
"""

import fnmatch

PRIVATE_KEY = "index:private_fields"

# Queries whose single key is the field they apply to.
FIELD_KEYED = {
    "term", "terms", "terms_set", "match", "match_phrase", "match_phrase_prefix",
    "match_bool_prefix", "range", "prefix", "wildcard", "regexp", "fuzzy", "intervals",
    "span_term", "geo_distance", "geo_bounding_box", "geo_polygon", "geo_shape", "shape",
    "distance_feature", "rank_feature", "text_expansion", "sparse_vector", "knn",
}  # fmt: skip
# Keys whose string (or list of strings) values are field names.
FIELD_PARAMS = {"field", "fields", "default_field", "path"}
# Queries that search every field unless told which.
ALL_FIELDS = {"multi_match", "simple_query_string", "combined_fields", "more_like_this"}
# Parameters that are not field names even though they sit beside them.
NOT_FIELDS = {
    "query", "value", "values", "boost", "_name", "format", "order", "missing", "size",
    "shard_size", "min_doc_count", "include", "exclude", "ranges", "keyed", "script",
    "execution_hint", "collect_mode", "minimum_should_match", "minimum_should_match_field",
    "minimum_should_match_script", "time_zone", "relation", "case_insensitive",
}  # fmt: skip


class PrivateFieldError(ValueError):
    def __init__(self, message, location):
        super().__init__(message)
        self.message = message
        self.location = location


def private_fields(metadata):
    fields = (metadata or {}).get(PRIVATE_KEY) or []
    return [f for f in fields if isinstance(f, str) and f] if isinstance(fields, list) else []


def reaches(reference, private):
    """Whether a field reference (possibly a wildcard pattern) can reach a private field."""
    if reference == private or reference.startswith(private + "."):
        return True
    if not any(c in reference for c in "*?"):
        return False
    literal = reference.split("*")[0].split("?")[0]
    return (
        fnmatch.fnmatchcase(private, reference)
        or private.startswith(literal)
        or literal.startswith(private + ".")
    )


def _strip_boost(name):
    # "title^2" in multi_match fields.
    return name.split("^", 1)[0]


def referenced_fields(body):
    """``(field, location)`` for every field name the body reaches."""
    found = []

    def field_names(value, location):
        if isinstance(value, str):
            found.append((_strip_boost(value), location))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, str):
                    found.append((_strip_boost(item), f"{location}[{i}]"))
                elif isinstance(item, dict) and isinstance(item.get("field"), str):
                    found.append((item["field"], f"{location}[{i}].field"))

    def walk(node, location):
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{location}[{i}]")
            return
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            here = f"{location}.{key}" if location else key
            if key in FIELD_KEYED and isinstance(value, dict):
                for field, params in value.items():
                    if field in FIELD_PARAMS:
                        field_names(params, f"{here}.{field}")
                    elif field not in NOT_FIELDS:
                        found.append((field, f"{here}.{field}"))
                    walk(params, f"{here}.{field}")
                continue
            if key in FIELD_PARAMS:
                field_names(value, here)
                if isinstance(value, dict):
                    walk(value, here)
                continue
            walk(value, here)

    walk(body, "")
    return found


def _sort_fields(body):
    sort = body.get("sort")
    entries = sort if isinstance(sort, list) else [sort] if sort is not None else []
    for i, entry in enumerate(entries):
        location = f"sort[{i}]" if isinstance(sort, list) else "sort"
        if isinstance(entry, str):
            yield entry, location
        elif isinstance(entry, dict):
            for field in entry:
                yield field, f"{location}.{field}"


def _named_field_lists(body):
    for key in ("docvalue_fields", "stored_fields", "fields"):
        value = body.get(key)
        values = value if isinstance(value, list) else [value] if value is not None else []
        for i, item in enumerate(values):
            name = item.get("field") if isinstance(item, dict) else item
            if isinstance(name, str):
                yield name, f"{key}[{i}]"
    highlight = body.get("highlight")
    if isinstance(highlight, dict):
        fields = highlight.get("fields")
        items = fields.items() if isinstance(fields, dict) else []
        if isinstance(fields, list):
            items = [
                (k, v) for entry in fields if isinstance(entry, dict) for k, v in entry.items()
            ]
        for name, _ in items:
            yield name, f"highlight.fields.{name}"
    collapse = body.get("collapse")
    if isinstance(collapse, dict) and isinstance(collapse.get("field"), str):
        yield collapse["field"], "collapse.field"


def _unbounded_queries(node, location=""):
    """Queries that would search fields nobody named."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _unbounded_queries(item, f"{location}[{i}]")
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        here = f"{location}.{key}" if location else key
        if key == "query_string" and isinstance(value, dict):
            yield here, "query_string can name any field in its text"
        elif key in ALL_FIELDS and isinstance(value, dict) and not value.get("fields"):
            yield here, f"{key} without fields searches every field"
        yield from _unbounded_queries(value, here)


def check_private_fields(body, private):
    """Raise PrivateFieldError if ``body`` can reach one of the ``private`` fields."""
    if not private:
        return
    for location, reason in _unbounded_queries(body):
        raise PrivateFieldError(
            f"{reason}, and this collection has fields you may not read: "
            f"name the fields to search (at {location})",
            location,
        )
    references = [*referenced_fields(body), *_sort_fields(body), *_named_field_lists(body)]
    for reference, location in references:
        for field in private:
            if reaches(reference, field):
                raise PrivateFieldError(
                    f"field {reference!r} is not readable: it is private to the writers of "
                    f"this collection (at {location})",
                    location,
                )


def hide_private_source(body, private):
    """The body, with private fields removed from every hit's ``_source``."""
    if not private:
        return body
    source = body.get("_source", True)
    if source is False:
        return body
    if isinstance(source, dict):
        includes = source.get("includes", source.get("include"))
        excludes = source.get("excludes", source.get("exclude")) or []
    elif isinstance(source, (str, list)):
        includes, excludes = source, []
    else:
        includes, excludes = None, []
    excludes = [excludes] if isinstance(excludes, str) else list(excludes)
    hidden = {"excludes": excludes + [f for f in private if f not in excludes]}
    if includes is not None:
        includes = [includes] if isinstance(includes, str) else list(includes)
        # The engine refuses a field both included and excluded; patterns stay, the
        # excludes apply after them.
        kept = [i for i in includes if not any(_within(i, f) for f in private)]
        if includes and not kept:
            return {**body, "_source": False}
        hidden["includes"] = kept
    return {**body, "_source": hidden}


def _within(reference, private):
    return reference == private or reference.startswith(private + ".")
