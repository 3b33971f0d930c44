"""A total order for the hits of a search that reaches a shared index.

Hits of equal score (or of equal sort values) come back in the shard's order of documents:
the order they were written in, which merges of segments reshuffle. In a pooled index the
shard's documents are every tenant's, so another tenant's writes (and the merges they cause)
could change the order of a tenant's ties, and which of them make a page, a ``top_hits``
bucket or an inner hits list. Scores without statistics (``scoring.py``) make ties common.

Every hit context of a user's pooled search (top level, ``top_hits``, inner hits,
``collapse.inner_hits``) is therefore given Kinto's order after its own: its sort (the
score, when it has none, with ``track_scores``), then ``last_modified`` descending, then
``id`` ascending, the order the GET search box already ties by. The engine reports the
values of those clauses in each hit's ``sort``; :func:`strip` takes them out again, so the
hits say what they would in an index of one's own.

Left as they are: the top level of a body with ``search_after`` (its values follow the
user's sort) or ``rescore`` (which takes no sort), and hit contexts of nested documents,
whose ties are in the order of the record's own array, which no other tenant changes.
"""

TIEBREAK = ({"last_modified": {"order": "desc"}}, {"id": {"order": "asc"}})
# The sort of a hit context that has none: by score, as the engines do.
BY_SCORE = {"_score": {"order": "desc"}}
# Top-level keys with which the engines take no added sort clause.
UNSORTABLE = ("search_after", "rescore")


def sortable(node, top_level):
    """Whether the hit context ``node`` takes the tie-break."""
    return not (top_level and any(key in node for key in UNSORTABLE))


def apply(node, top_level):
    """Give the hit context ``node`` (a body, or ``top_hits`` or inner hits options) the
    tie-break after its own sort, in place, if it takes one (:func:`sortable`)."""
    if not sortable(node, top_level):
        return
    sort = node.get("sort")
    if sort is None or sort == []:  # An empty sort is the engines' default: by score.
        node["sort"] = [dict(BY_SCORE)]
        node["track_scores"] = True
    else:
        node["sort"] = list(sort) if isinstance(sort, list) else [sort]
    node["sort"] += [dict(clause) for clause in TIEBREAK]


def strip(response, top_level):
    """Take the tie-break's values out of the ``sort`` of every hit of ``response`` that
    got one (``top_level``: the top-level hits did), in place; a context sorted by score
    alone reports no ``sort``, as the engines answer one that names no sort."""
    hits = (response.get("hits") or {}).get("hits") or []
    for hit in hits:
        if top_level:
            _strip_hit(hit)
        _inner(hit)
    _aggregations(response.get("aggregations"))
    return response


def _inner(hit):
    for inner in (hit.get("inner_hits") or {}).values():
        for inner_hit in (inner.get("hits") or {}).get("hits") or []:
            _strip_hit(inner_hit)
            _inner(inner_hit)


def _aggregations(value):
    """Every ``top_hits`` answer, wherever aggregations and their buckets hold one."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            hits = item.get("hits")
            if isinstance(hits, dict) and isinstance(hits.get("hits"), list):
                for hit in hits["hits"]:
                    _strip_hit(hit)
                    _inner(hit)
                continue
            stack.extend(v for v in item.values() if isinstance(v, (dict, list)))


def _strip_hit(hit):
    if not isinstance(hit, dict) or "_nested" in hit:
        return
    sort = hit.get("sort")
    if not isinstance(sort, list) or len(sort) < len(TIEBREAK):
        return
    kept = sort[: -len(TIEBREAK)]
    if not kept or (len(kept) == 1 and kept[0] == hit.get("_score")):
        del hit["sort"]
    else:
        hit["sort"] = kept
