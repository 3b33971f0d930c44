"""One walk over a search body, reporting what each construct holds.

A search body is Elasticsearch query DSL written by any user. This package knows, for every
query, aggregation, suggester, rescorer and search option it accepts, where that construct
keeps its sub-queries, the field names it reads (plain, as patterns, in ``*_field`` options,
inside span wrappers, as nested paths), its scripts, the hit contexts that bring values back
(``_source``, ``fields``, ``docvalue_fields``, ``stored_fields``, sort values, highlights,
inner hits, top hits, ``collapse.inner_hits``, suggestions) and what it costs (clauses,
patterns, expansions, buckets, sizes). It decides nothing: it hands each of those to
``report`` as a :class:`~.findings.Finding`, in the order of the body, and ``search/rules``
decides. So the guard, the private-field check, the partial-reader rules and the cost limits
read one description of the DSL and cannot drift apart.

The walk is closed-world: query types, aggregation types, suggesters, rescorers and top-level
keys are allow-listed (``constructs.py``), so a key the engine adds later is refused until
someone has decided what it holds. Field names are the users' data (a field may well be
called ``script``), so the keys of field-keyed objects are reported as fields and never read
as DSL.

It is one visitor in parts, one per family of constructs: :class:`Walk` walks the top level
and holds what the parts share; each part reaches the others through it.
"""

from kinto_elasticsearch.search.walk.aggregations import Aggregations
from kinto_elasticsearch.search.walk.constructs import (
    REFUSED_TOP_LEVEL_KEYS,
    RETURNED_FIELD_OPTIONS,
    SCRIPTED_TOP_LEVEL_KEYS,
    TOP_LEVEL_KEYS,
)
from kinto_elasticsearch.search.walk.findings import (
    COUNTERS,
    FORBIDDEN,
    HITS,
    Finding,
    QueryRefused,
    is_count,
    refuse,
)
from kinto_elasticsearch.search.walk.hit_options import HitOptions
from kinto_elasticsearch.search.walk.leaves import LeafQueries
from kinto_elasticsearch.search.walk.options import Options
from kinto_elasticsearch.search.walk.queries import Queries
from kinto_elasticsearch.search.walk.suggest import Suggestions


class Walk:
    """Walks one body, handing every finding to ``report`` (which may raise)."""

    def __init__(self, report):
        self.report = report
        # Nested objects around the construct walked: their inner hits filter their source
        # relative to the object.
        self.nested = 0
        self.options = Options(self)
        self.queries = Queries(self)
        self.leaves = LeafQueries(self)
        self.aggregations = Aggregations(self)
        self.hit_options = HitOptions(self)
        self.suggestions = Suggestions(self)

    def emit(self, kind, path, **details):
        self.report(Finding(kind, path, **details))

    def body(self, body):
        if not isinstance(body, dict):
            raise refuse("The search body must be a JSON object", "")
        if "aggs" in body and "aggregations" in body:
            raise refuse("Give aggregations in 'aggs' or 'aggregations', not both", "aggregations")
        self.emit(HITS, "", node=body)
        for key, value in body.items():
            self.top_level(key, value)

    def top_level(self, key, value):
        if key in REFUSED_TOP_LEVEL_KEYS:
            reason = f"'{key}' is not allowed: {REFUSED_TOP_LEVEL_KEYS[key]}"
            self.emit(FORBIDDEN, key, reason=reason)
        elif key in SCRIPTED_TOP_LEVEL_KEYS:
            self.options.option(key, value, key)
        elif key not in TOP_LEVEL_KEYS:
            raise refuse(f"'{key}' is not a supported search parameter", key)
        elif key in ("query", "post_filter"):
            self.queries.query(value, key, 1)
        elif key in ("aggs", "aggregations"):
            self.aggregations.aggregations(value, key, 1)
        elif key == "sort":
            self.hit_options.sort(value, key, 0)
        elif key == "highlight":
            self.hit_options.highlight(value, key, 0)
        elif key == "rescore":
            self.hit_options.rescore(value, key)
        elif key == "collapse":
            self.hit_options.collapse(value, key, 0)
        elif key == "suggest":
            self.suggestions.suggest(value, key)
        elif key == "explain":
            self.hit_options.explain(value, key)
        elif key in ("size", "from", "terminate_after"):
            if not is_count(value):
                raise refuse(f"'{key}' must be a whole number of 0 or more", key)
            if key == "terminate_after" and value:
                reason = (
                    "'terminate_after' is not allowed: the documents it stops after are the "
                    "shard's first, in the order of writes"
                )
                self.emit(COUNTERS, key, reason=reason)
        elif key == "seq_no_primary_term":
            self.options.option(key, value, key)
        elif key in RETURNED_FIELD_OPTIONS:
            self.options.field_names(value, key, "returned")


def walk(body, report):
    """Walk a whole search body, calling ``report(finding)`` for each finding in order."""
    Walk(report).body(body)


__all__ = ["QueryRefused", "Walk", "refuse", "walk"]
