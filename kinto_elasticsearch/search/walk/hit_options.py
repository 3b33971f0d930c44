"""The walk of what shapes the hits: sort, highlight, rescore, collapse, inner and top hits."""

from kinto_elasticsearch.search.walk.constructs import (
    GEO_SORT_OPTIONS,
    HIT_CONTEXT_KEYS,
    SORT_SPECIALS,
)
from kinto_elasticsearch.search.walk.findings import (
    COUNTERS,
    FIELD,
    FULL_READ,
    HITS,
    join_path,
    refuse,
)

# Sorts whose order is the order documents were written to the shard.
WRITE_ORDER_SORTS = frozenset({"_doc", "_shard_doc"})
WRITE_ORDER_REASON = "its order is the shard's order of writes"


class HitOptions:
    """Options that bring values back with the hits, and the hit contexts of inner hits,
    ``top_hits`` and ``collapse.inner_hits`` (each a small search of its own)."""

    def __init__(self, walk):
        self.walk = walk

    def sort(self, value, path, depth):
        entries = value if isinstance(value, list) else [value]
        for i, entry in enumerate(entries):
            entry_path = f"{path}[{i}]" if isinstance(value, list) else path
            if isinstance(entry, str):
                self._write_order(entry, entry_path)
                if entry not in SORT_SPECIALS:
                    place = {"node": value, "key": i} if isinstance(value, list) else {}
                    self.walk.emit(FIELD, entry_path, name=entry, role="returned", **place)
                continue
            if not isinstance(entry, dict):
                raise refuse("A sort must be a field name or an object", entry_path)
            for key, spec in entry.items():
                key_path = join_path(entry_path, key)
                self._write_order(key, key_path)
                if key == "_script":
                    self.walk.options.option(key, spec, key_path)
                    continue
                if key == "_geo_distance" and isinstance(spec, dict):
                    for name in spec:
                        if name not in GEO_SORT_OPTIONS:
                            name_path = join_path(key_path, name)
                            self.walk.emit(
                                FIELD, name_path, name=name, role="returned",
                                node=spec, key=name, keyed=True,
                            )  # fmt: skip
                elif key not in SORT_SPECIALS:
                    self.walk.emit(
                        FIELD, key_path, name=key, role="returned", node=entry, key=key, keyed=True
                    )
                if isinstance(spec, dict):
                    self._sort_options(spec, key_path, depth)

    def _write_order(self, key, path):
        if key in WRITE_ORDER_SORTS:
            reason = f"sorting by '{key}' is not allowed: {WRITE_ORDER_REASON}"
            self.walk.emit(COUNTERS, path, reason=reason)

    def _sort_options(self, spec, path, depth):
        # The keys are sort options or, for _geo_distance, field names: never scripts.
        for key, value in spec.items():
            key_path = join_path(path, key)
            if key == "nested":
                self._nested_sort(value, key_path, depth)
            elif key == "nested_filter":
                self.walk.queries.query(value, key_path, depth + 1)
            elif key == "nested_path":
                self.walk.options.field_names(value, key_path, "path")
            else:
                self.walk.options.scan(value, key_path)

    def _nested_sort(self, nested, path, depth):
        if not isinstance(nested, dict):
            raise refuse("'nested' must be an object", path)
        for key, value in nested.items():
            key_path = join_path(path, key)
            if key == "filter":
                self.walk.queries.query(value, key_path, depth + 1)
            elif key == "nested":
                self._nested_sort(value, key_path, depth + 1)
            else:
                self.walk.options.option(key, value, key_path, nested)

    def highlight(self, highlight, path, depth):
        if not isinstance(highlight, dict):
            raise refuse("'highlight' must be an object", path)
        for key, value in highlight.items():
            key_path = join_path(path, key)
            if key == "highlight_query":
                self.walk.queries.query(value, key_path, depth + 1)
            elif key == "fields":
                self._highlight_fields(value, key_path, depth)
            else:
                self.walk.options.option(key, value, key_path, highlight)

    def _highlight_fields(self, fields, path, depth):
        if isinstance(fields, list):
            named = [(f"{path}[{i}]", item) for i, item in enumerate(fields)]
        else:
            named = [(path, fields)]
        for named_path, item in named:
            if not isinstance(item, dict):
                raise refuse("Highlighted fields must be objects keyed by field name", named_path)
            for name, options in item.items():
                field_path = join_path(named_path, name)
                self.walk.emit(
                    FIELD, field_path, name=name, role="returned", node=item, key=name, keyed=True
                )
                if not isinstance(options, dict):
                    raise refuse("Highlight options must be an object", field_path)
                for key, value in options.items():
                    key_path = join_path(field_path, key)
                    if key == "highlight_query":
                        self.walk.queries.query(value, key_path, depth + 1)
                    elif key == "matched_fields":
                        self.walk.options.field_names(value, key_path, "returned")
                    else:
                        self.walk.options.option(key, value, key_path, options)

    def rescore(self, rescore, path):
        items = rescore if isinstance(rescore, list) else [rescore]
        for i, item in enumerate(items):
            item_path = f"{path}[{i}]" if isinstance(rescore, list) else path
            if not isinstance(item, dict):
                raise refuse("A rescorer must be an object", item_path)
            for key, value in item.items():
                key_path = join_path(item_path, key)
                if key == "window_size":
                    self.walk.options.size(key, value, key_path, "max_result_window")
                elif key == "query":
                    self._rescore_query(value, key_path)
                else:
                    raise refuse(f"'{key}' is not a supported rescorer", key_path)

    def _rescore_query(self, body, path):
        if not isinstance(body, dict):
            raise refuse("'query' must be an object", path)
        for key, value in body.items():
            key_path = join_path(path, key)
            if key == "rescore_query":
                self.walk.queries.query(value, key_path, 1)
            else:
                self.walk.options.option(key, value, key_path, body)

    def collapse(self, collapse, path, depth):
        if not isinstance(collapse, dict):
            raise refuse("'collapse' must be an object", path)
        for key, value in collapse.items():
            key_path = join_path(path, key)
            if key == "inner_hits":
                for i, options in enumerate(value if isinstance(value, list) else [value]):
                    options_path = f"{key_path}[{i}]" if isinstance(value, list) else key_path
                    self.hit_options(options, options_path, depth)
            elif key == "field":
                self.walk.options.field_names(value, key_path, "returned")
            else:
                self.walk.options.option(key, value, key_path, collapse)

    def hit_options(self, options, path, depth):
        """The options of ``top_hits`` and inner hits: a small search of their own."""
        if not isinstance(options, dict):
            raise refuse("Hit options must be an object", path)
        self.walk.emit(HITS, path, node=options, nested=self.walk.nested > 0)
        for key, value in options.items():
            key_path = join_path(path, key)
            if key not in HIT_CONTEXT_KEYS:
                raise refuse(f"'{key}' is not a supported option of hits", key_path)
            if key == "size":
                self.walk.options.size(key, value, key_path, "max_aggregation_size")
            elif key == "from":
                self.walk.options.size(key, value, key_path, "max_result_window")
            elif key == "sort":
                self.sort(value, key_path, depth)
            elif key == "highlight":
                self.highlight(value, key_path, depth)
            elif key == "explain":
                self.explain(value, key_path)
            elif key == "collapse":
                self.collapse(value, key_path, depth)
            elif key in ("_source", "name"):
                # Source filtering is rewritten by the rules; a name is the user's.
                continue
            else:
                self.walk.options.option(key, value, key_path, options)

    def explain(self, value, path):
        if not isinstance(value, bool):
            raise refuse("'explain' must be true or false", path)
        if value:
            reason = "'explain' is not allowed: it shows statistics of records you cannot read"
            self.walk.emit(FULL_READ, path, reason=reason)
