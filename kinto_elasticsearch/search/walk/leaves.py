"""The walk of leaf queries: those that hold no other query, only fields, text and options."""

import re

from kinto_elasticsearch.search.walk.constructs import (
    ALL_FIELDS_BY_DEFAULT,
    FIELD_QUERY_OPTIONS,
    TEXT_NAMES_FIELDS,
)
from kinto_elasticsearch.search.walk.findings import (
    ANY_FIELD,
    CLAUSES,
    FIELD,
    FORBIDDEN,
    FULL_READ,
    ID_FIELD,
    IDS,
    PATTERN,
    join_path,
)

_WORD = re.compile(r"\S+")


def _words(text):
    return len(_WORD.findall(text)) if isinstance(text, str) else 0


class LeafQueries:
    """Field-keyed and option-only queries, ``terms``, and the queries given documents."""

    def __init__(self, walk):
        self.walk = walk

    def field_query(self, query_type, body, path):
        self.walk.options.fields_then_options(body, path, ids=query_type == "term")
        for name, params in body.items():
            if name in FIELD_QUERY_OPTIONS:
                continue
            name_path = join_path(path, name)
            if query_type in ("regexp", "wildcard"):
                key = "value" if isinstance(params, dict) and "value" in params else query_type
                pattern = params.get(key) if isinstance(params, dict) else params
                pattern_path = join_path(name_path, key) if isinstance(params, dict) else name_path
                self.walk.emit(PATTERN, pattern_path, name=query_type, value=pattern)
            elif query_type == "terms_set" and isinstance(params, dict):
                terms = params.get("terms")
                count = len(terms) if isinstance(terms, list) else 1
                self.walk.emit(CLAUSES, name_path, value=count)
            elif query_type.startswith("match") and query_type != "match_all":
                text = params.get("query") if isinstance(params, dict) else params
                self.walk.emit(CLAUSES, name_path, value=_words(text))

    def option_query(self, query_type, body, path):
        if query_type in TEXT_NAMES_FIELDS:
            reason = f"{query_type} can name any field in its text"
            self.walk.emit(ANY_FIELD, path, reason=reason, name=query_type, node=body)
        elif query_type in ALL_FIELDS_BY_DEFAULT and not body.get("fields"):
            reason = f"{query_type} without fields searches every field"
            self.walk.emit(ANY_FIELD, path, reason=reason, name=query_type, node=body)
        if query_type == "multi_match" and body.get("type") == "phrase_prefix":
            reason = "phrase_prefix expands its last term to the first terms of every record"
            self.walk.emit(FULL_READ, join_path(path, "type"), reason=f"'{query_type}' {reason}")
        if query_type in ("query_string", "simple_query_string"):
            text_path = join_path(path, "query")
            self.walk.emit(PATTERN, text_path, name=query_type, value=body.get("query"))
        if "query" in body:
            fields = body.get("fields")
            width = len(fields) if isinstance(fields, list) and fields else 1
            words = _words(body["query"]) * width
            self.walk.emit(CLAUSES, join_path(path, "query"), value=words)
        if query_type == "ids" and isinstance(body.get("values"), list):
            self.walk.emit(CLAUSES, join_path(path, "values"), value=len(body["values"]))
            self.walk.emit(IDS, join_path(path, "values"), name="values", node=body)
        self.walk.options.scan(body, path)

    def terms(self, body, path):
        for key, value in body.items():
            key_path = join_path(path, key)
            if key in FIELD_QUERY_OPTIONS:
                self.walk.options.scan(value, key_path)
                continue
            if key == ID_FIELD and isinstance(value, list):
                self.walk.emit(IDS, key_path, name=key, node=body)
            else:
                self.walk.emit(FIELD, key_path, name=key, node=body, key=key, keyed=True)
            if isinstance(value, dict):
                reason = "terms lookup is not allowed: it reads another document"
                self.walk.emit(FORBIDDEN, key_path, reason=reason)
            elif isinstance(value, list):
                self.walk.emit(CLAUSES, key_path, value=len(value))

    def more_like_this(self, body, path):
        if not body.get("fields"):
            reason = "more_like_this without fields searches every field"
            self.walk.emit(ANY_FIELD, path, reason=reason)
        for key, value in body.items():
            key_path = join_path(path, key)
            if key in ("like", "unlike"):
                self._like(value, key_path)
            elif key in ("docs", "ids"):
                reason = (
                    f"'{key}' is not allowed in more_like_this: it reads other documents "
                    "(give their text in 'like')"
                )
                self.walk.emit(FORBIDDEN, key_path, reason=reason)
            else:
                self.walk.options.option(key, value, key_path, body)

    def _like(self, value, path):
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            item_path = f"{path}[{i}]" if isinstance(value, list) else path
            if isinstance(item, str):
                self.walk.emit(CLAUSES, item_path, value=_words(item))
            if not isinstance(item, dict):
                continue
            if "_index" in item:
                reason = (
                    "more_like_this documents naming an '_index' are not allowed: "
                    "they read another index"
                )
                self.walk.emit(FORBIDDEN, join_path(item_path, "_index"), reason=reason)
            # A document given inline ("doc") is only text; "_id" reads a stored record.
            if "_id" in item:
                reason = (
                    "more_like_this documents given by '_id' are not allowed: "
                    "they read records you may not be able to read"
                )
                self.walk.emit(FULL_READ, join_path(item_path, "_id"), reason=reason)
                self.walk.emit(IDS, join_path(item_path, "_id"), name="_id", node=item)

    def percolate(self, body, path):
        for key in ("index", "id"):
            if key in body:
                reason = f"'{key}' is not allowed in percolate: it reads a stored document"
                self.walk.emit(FORBIDDEN, join_path(path, key), reason=reason)
        for key, value in body.items():
            # Percolated documents are the user's data, whatever their field names.
            if key not in ("document", "documents"):
                self.walk.options.option(key, value, join_path(path, key), body)
