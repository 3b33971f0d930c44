"""What a search may ask, as small rules over what the walk of its body reports.

``search/walk`` describes a body; every rule (``checks.py``) reads those findings and refuses
(a :class:`~kinto_elasticsearch.search.walk.QueryRefused` naming the offending key, its path
and, for a cost, the setting that bounds it) or neutralises. The rules:

- forbidden: what reads another index or document, or cannot be checked, whoever asks;
- scripts: refused unless the operator allows them, and always while fields are hidden
  (a script reads any field of the documents it sees);
- private fields (``index:private_fields``, for callers who may not write the collection,
  ``private.py``): a field a query, sort, aggregation, highlight, collapse or field list
  names, as a name, a pattern, a sub-field, an object holding it, or a field it is copied to
  or aliased as, is refused; queries that search fields nobody named are refused; ``_source``
  of every hit context (top level, inner hits, top hits, collapse) is rewritten to exclude
  them;
- partial readers (who may read only some records of what the search reaches): what depends on
  index-wide statistics or on records beyond the permission filter is refused (see
  ``FULL_READ`` in the walk);
- pooled tenants (a search that reaches an index shared with other collections): the record
  ids a body names become the pool's document ids; the pool's metadata fields, what reads
  index-wide dictionaries or statistics (as for partial readers), scripts and what shows the
  shard's counts of writes (sequence numbers, ``_doc`` order) are refused; and queries that
  score by themselves are rescored without statistics (``scoring.py``); and every hit
  context ties in Kinto's order, not the shard's (``tiebreak.py``);
- costs (``limits.py``, ``patterns.py``): sizes, result window, depth, aggregations, clauses
  and terms, buckets, pattern length and repetition, expansions and determinized states.
"""

import copy

from kinto_elasticsearch.search.filters import collection_filters, with_filters
from kinto_elasticsearch.search.rules import tiebreak
from kinto_elasticsearch.search.rules.checks import Rules
from kinto_elasticsearch.search.rules.limits import (
    QueryLimits,
    check_nesting,
    result_window,
    timeout,
)
from kinto_elasticsearch.search.rules.private import private_fields
from kinto_elasticsearch.search.walk import QueryRefused, refuse, walk
from kinto_elasticsearch.search.walk.findings import ANY_FIELD, FIELD


def guard_search(
    body, limits: QueryLimits, restricted: bool, hidden=(), where=None, own=None
) -> dict:
    """Check and cap a user's search body, leaving the plugin's filters to the caller.

    ``restricted``: the search reaches records the caller may not read; ``hidden``: fields
    they may not read. Raises ``QueryRefused`` naming the first offending key and its path.
    ``own``: in a pool, the fields the collection's records hold (others are renamed to
    fields nobody maps, ``scope.py``). The input is never modified.
    """
    if not isinstance(body, dict):
        raise refuse("The search body must be a JSON object", "")
    check_nesting(body, limits)
    body = copy.deepcopy(body)
    checks = Rules(limits, restricted, hidden, where, own=own)
    walk(body, checks)
    checks.finish()
    body["size"] = result_window(body, limits)
    body["timeout"] = timeout(body, limits)
    return body


def check_built_search(body, limits: QueryLimits, restricted: bool, hidden=(), where=None) -> dict:
    """The same rules for a body the plugin built from a user's input (a querystring):
    its sizes are the plugin's own, the rest (``q``, filters, sorts) is the user's."""
    check_nesting(body, limits)
    body = copy.deepcopy(body)
    checks = Rules(limits, restricted, hidden, where, rescore=False)
    walk(body, checks)
    checks.finish()
    body["timeout"] = limits.timeout
    return body


def strip_tiebreak(response, body):
    """``response`` to a pooled user's ``body`` (as sent) without the values of the order
    the rules added to its hits (``tiebreak.py``), in place."""
    return tiebreak.strip(response, top_level=tiebreak.sortable(body, True))


def field_names(body) -> set:
    """The field names (and patterns) ``body`` holds, ``*`` for a query that searches
    every field unless told which; nothing is checked."""
    names = set()

    def note(finding):
        if finding.kind == FIELD and isinstance(finding.name, str):
            names.add(finding.name)
        elif finding.kind == ANY_FIELD:
            names.add("*")

    if isinstance(body, dict):
        walk(body, note)
    return names


def collection_search_body(
    body, limits: QueryLimits, readable_ids, where, hidden=(), built=False, own=None
) -> dict:
    """What the plugin sends for a search of one collection: ``body`` through the rules
    (``built``: made by the plugin from a querystring), then kept to the collection's live
    records at ``where`` (its placement) that the caller may read (``readable_ids``, None:
    all of them)."""
    restricted = readable_ids is not None
    if built:
        body = check_built_search(body, limits, restricted, hidden=hidden, where=where)
    else:
        body = guard_search(body, limits, restricted, hidden=hidden, where=where, own=own)
    return with_filters(body, collection_filters(readable_ids, where))


__all__ = [
    "QueryLimits",
    "QueryRefused",
    "check_built_search",
    "collection_search_body",
    "guard_search",
    "private_fields",
    "strip_tiebreak",
]
