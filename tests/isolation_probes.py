"""The probes of the isolation test, generated from the walk's construct tables.

Every construct the walk knows (``search/walk/constructs.py``: query types, aggregation
types, top-level keys, hit options, sort specials, suggesters, and the options the rules
single out) gets a probe: a minimal body aimed at T's fields (``tests/isolation_world.py``).
The shapes are in :mod:`tests.isolation_shapes`; a construct without a shape of its own gets
a generic one (``{type: {"title": "python"}}``), so that a construct added to the tables is
probed at once. Then the families the tables do not list: fields T never wrote and wildcard
patterns (class 4), searches over every field (class 5), GET querystrings, facets and
bucket-wide search.

Each probe says which class of the issue it is aimed at (1 dictionaries, 2 scores,
3 counters, 4 mapping, 5 availability); the comparison also reads, from what differs, which
channels a difference went through (``tests.isolation_compare``).
"""

from dataclasses import dataclass, field

from kinto_elasticsearch.search.walk import constructs as c
from tests import isolation_shapes as shapes


@dataclass(frozen=True)
class Probe:
    name: str
    cls: int
    kind: str = "post"  # post, get, facets, bucket, bucket_get
    body: dict = field(default=None, hash=False, compare=False)
    qs: str = ""
    family: str = ""


def _query_class(query_type):
    if query_type in shapes.DICTIONARY_QUERIES or query_type in c.FULL_READ_QUERIES:
        return 1
    return 2


def query_probes():
    """One probe per query type of the tables, and the option variants of a few."""
    names = sorted(
        set(c.COMPOUND_QUERIES)
        | c.FIELD_QUERIES
        | c.OPTION_QUERIES
        | set(c.FULL_READ_QUERIES)
        | set(c.REFUSED_QUERIES)
        | {"terms", "more_like_this", "percolate", "function_score", "knn", "script"}
    )
    probes = []
    for name in names:
        for variant, query in shapes.queries(name):
            probes.append(
                Probe(f"query {name}{variant}", _query_class(name), body={"query": query},
                      family="query")
            )  # fmt: skip
    for name, query, cls in shapes.OPTION_VARIANTS:
        probes.append(Probe(f"option {name}", cls, body={"query": query}, family="option"))
    return probes


def aggregation_probes():
    names = sorted(c.AGGREGATIONS | c.SCRIPT_AGGREGATIONS | set(c.REFUSED_AGGREGATIONS))
    probes = []
    for name in names:
        body = {"size": 0, "aggs": shapes.aggregation(name)}
        cls = 1 if name in shapes.DICTIONARY_AGGREGATIONS else 2 if name in shapes.SCORED else 4
        if name in shapes.SCORED:
            # Hits of these aggregations come back in score order: search words.
            body["query"] = shapes.MATCH
        probes.append(Probe(f"agg {name}", cls, body=body, family="aggregation"))
    return probes


def top_level_probes():
    """One probe per top-level key (refused ones included), then hit options and sorts."""
    probes = []
    keys = sorted(c.TOP_LEVEL_KEYS | set(c.REFUSED_TOP_LEVEL_KEYS) | c.SCRIPTED_TOP_LEVEL_KEYS)
    for key in keys:
        for variant, (extra, cls) in shapes.top_level(key):
            body = {"query": shapes.MATCH, **extra}
            probes.append(Probe(f"top {key}{variant}", cls, body=body, family="top-level"))
    for special in sorted(c.SORT_SPECIALS | {"_seq_no", "_primary_term", "_id", "id"}):
        cls = 2 if special == "_score" else 3
        for order in ("asc", "desc"):
            body = {"query": shapes.MATCH, "sort": [{special: order}, "id"]}
            probes.append(Probe(f"sort {special} {order}", cls, body=body, family="sort"))
    for key in sorted(c.HIT_CONTEXT_KEYS):
        options = shapes.HIT_OPTIONS.get(key, {key: True})
        cls = shapes.HIT_OPTION_CLASSES.get(key, 2)
        for where, body in shapes.hit_contexts(options):
            probes.append(Probe(f"hits {where} {key}", cls, body=body, family="hit-option"))
    for name in sorted(c.SUGGESTERS):
        body = {"size": 0, "suggest": shapes.SUGGESTIONS[name]}
        probes.append(Probe(f"suggest {name}", 1, body=body, family="suggest"))
    return probes


def field_probes():
    """Fields T never wrote (O writes them), wildcard patterns, and searches over every
    field (class 5)."""
    probes = []
    for name, body in shapes.UNWRITTEN_FIELDS:
        probes.append(Probe(f"unwritten {name}", 4, body=body, family="unwritten field"))
    for pattern in shapes.PATTERNS:
        for name, body in shapes.pattern_bodies(pattern):
            probes.append(Probe(f"pattern {pattern!r} {name}", 4, body=body, family="pattern"))
    for name, body in shapes.ALL_FIELDS:
        probes.append(Probe(f"all fields {name}", 5, body=body, family="all fields"))
    return probes


def querystring_probes():
    probes = []
    for qs, cls in shapes.QUERYSTRINGS:
        probes.append(Probe(f"GET ?{qs}", cls, kind="get", qs=qs, family="GET"))
    for qs, cls in shapes.FACETS:
        probes.append(Probe(f"facets ?{qs}", cls, kind="facets", qs=qs, family="facets"))
    for name, body in shapes.BUCKET_BODIES:
        probes.append(Probe(f"bucket {name}", 2, kind="bucket", body=body, family="bucket"))
    for qs in shapes.BUCKET_QUERYSTRINGS:
        probes.append(Probe(f"bucket GET ?{qs}", 2, kind="bucket_get", qs=qs, family="bucket"))
    return probes


def all_probes():
    probes = (
        query_probes()
        + aggregation_probes()
        + top_level_probes()
        + field_probes()
        + querystring_probes()
    )
    names = [probe.name for probe in probes]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    assert not duplicates, f"probe names must be unique: {duplicates}"
    return probes
