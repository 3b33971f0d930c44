"""The clauses a real engine would build for the searches the plugin sends (class 5).

Elasticsearch and OpenSearch refuse a search whose query becomes more than
``max_clause_count`` clauses once its field patterns are expanded over the index's mapping
(``query_string`` over ``*``, ``multi_match`` over many fields: a clause per word and
field). The test servers enforce no such limit (checked: a ``bool`` of 5,000 ``term``
clauses, and ``query_string`` over 1,100 fields, answer 200 on both), so that other tenants'
fields can push T's searches over it is invisible in their answers. This module models it:
it expands the multi-field queries of the bodies the plugin sent over the mapping the
engine holds for the index searched, counts a clause per word and field (one per other leaf
query), and says when the total passes the plugin's own figure for the engines' limit
(``elasticsearch.max_clauses``). On a real cluster the engine's 400 shows the same.
"""

import fnmatch
import re

# Queries that search several fields, and every field of the index without ``fields``.
MULTI_FIELD = ("query_string", "simple_query_string", "multi_match", "combined_fields")
_SYNTAX = {"AND", "OR", "NOT", "&&", "||"}


def mapped_fields(mapping):
    """Every leaf field of an index mapping (sub-fields included), by path."""
    found = []
    stack = [("", mapping.get("properties", {}))]
    while stack:
        prefix, properties = stack.pop()
        for name, spec in properties.items():
            path = f"{prefix}{name}"
            if "properties" in spec:
                stack.append((f"{path}.", spec["properties"]))
                continue
            found.append(path)
            found += [f"{path}.{sub}" for sub in spec.get("fields", {})]
    return found


def _searched(query, fields):
    patterns = query.get("fields") or [query.get("default_field", "*")]
    names = {p.split("^", 1)[0] for p in patterns if isinstance(p, str)}
    return sum(1 for field in fields if any(fnmatch.fnmatchcase(field, p) for p in names))


def clauses(node, fields):
    """The clauses a query body becomes over ``fields``."""
    if isinstance(node, list):
        return sum(clauses(item, fields) for item in node)
    if not isinstance(node, dict):
        return 0
    total = 0
    for key, value in node.items():
        if key in MULTI_FIELD and isinstance(value, dict) and isinstance(value.get("query"), str):
            words = [w for w in value["query"].split() if w not in _SYNTAX]
            # ``title:python`` searches one field; every other word, each field searched.
            named = sum(1 for w in words if re.match(r"^[\w.]+:", w))
            total += named + max(1, len(words) - named) * max(1, _searched(value, fields))
        elif key in ("query", "filter", "must", "should", "must_not", "queries", "positive",
                     "negative", "bool", "dis_max", "constant_score", "function_score",
                     "boosting", "post_filter"):  # fmt: skip
            total += clauses(value, fields)
        elif isinstance(value, dict) and key not in ("aggs", "aggregations", "highlight"):
            total += 1
    return total


class ClauseModel:
    """Reads the search bodies an app sends (through ``spy``, a ``tests.conftest.EngineSpy``
    on its engine) and the mappings of the indices they name."""

    def __init__(self, spy, client, limit):
        self.spy = spy
        self.client = client
        self.limit = limit
        self.fields = {}

    def start(self):
        self.spy.calls.clear()

    def over_limit(self):
        """The clauses of the biggest search sent since :meth:`start`, if over the limit."""
        biggest = 0
        for operation, kwargs in self.spy.calls:
            body = kwargs.get("body")
            if operation != "search" or not isinstance(body, dict):
                continue
            biggest = max(biggest, clauses(body.get("query"), self._fields(kwargs["index"])))
        return biggest if biggest > self.limit else None

    def _fields(self, index):
        if index not in self.fields:
            mappings = self.client.call("indices.get_mapping", index=index)
            self.fields[index] = sorted(
                {f for m in mappings.values() for f in mapped_fields(m.get("mappings", {}))}
            )
        return self.fields[index]
