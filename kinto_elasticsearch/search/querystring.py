"""Kinto's list querystring as an engine search body.

``GET .../search?<qs>`` answers what ``GET .../records?<qs>`` answers: the same records in
the same order, page after page. The parameters are read by Kinto's own querystring schema
and checked by the rules of ``Resource._extract_filters``, so a malformed one gets the 400
Kinto gives. Filters follow Kinto's PostgreSQL backend (the production one) wherever its
memory backend differs:

- a record without the field matches ``not_``, ``exclude_``, ``gt_``, ``min_`` and
  ``has_field=false``, and no other filter;
- a value of another JSON type than the field's compares by jsonb's type order, null <
  string < number < boolean < array < object: ``min_age="z"`` matches every numeric age;
- missing values sort last ascending and first descending (PostgreSQL's NULLS LAST and
  NULLS FIRST defaults);
- strings are compared, sorted and matched by ``like_`` on their ``keyword`` sub-field;
- ``like_`` is case-insensitive, anchored when the value has a ``*``, a substring match
  otherwise.

``q``, the search box, is not read here: ``search.ranking`` adds it to this search.
``_token`` holds the sort values of the last hit, for ``search_after``; the sort always
ends with ``id`` so that the order is total and pages neither skip nor repeat a record
under concurrent writes.

Known deviations, where the index cannot hold what Kinto compares:

- Deleted records: a filter on ``last_modified`` (``_since``, ``_before``...) also lists
  tombstones on ``/records``; the index holds none.
- JSON null: the engine does not index nulls, so an explicit null behaves as a missing
  field (``field=null`` matches nothing, ``has_field`` is false, nulls sort with the
  missing values instead of first).
- Arrays: the engine indexes an array as its elements. Equality, ranges, ``in_``,
  ``exclude_`` and ``like_`` on an array field match when any element does (Kinto compares
  whole arrays); ``contains_``/``contains_any_`` cannot tell a scalar from a one-element
  array, nor an empty array from a missing field (``contains_f=[]`` means ``has_f=true``);
  sorting on an array uses its smallest element ascending, its largest descending.
- Values that are arrays or objects, in any filter but ``has_``, are refused with a 400:
  the index cannot compare them whole. Sorting on an object field is ignored.
- One type per field: the index maps a field with the type of its first value (numeric
  strings are coerced into number fields, other mismatches are refused at indexing), so
  fields of mixed types in one collection cannot order as Kinto orders them. Fractional
  values in a ``long`` field are truncated, and ``float`` fields hold 32-bit values.
- Strings compare in code point order, as Kinto's memory backend and PostgreSQL with the
  C collation do; other PostgreSQL collations order differently. A string longer than the
  keyword sub-field's ``ignore_above`` is only found by ``q`` and ``has_``.
- ``like_``: only ``*`` is a wildcard (PostgreSQL also takes ``%`` and ``_``, the memory
  backend reads the value as a regular expression), and it never matches numbers or
  booleans (PostgreSQL matches their text).
- ``q`` is the full-text query here: a field named ``q`` can only be filtered by
  operators (``in_q``, ``not_q``...), not by ``q=value``.
- Tokens are not interchangeable with ``/records`` tokens.
"""

import copy
import re
from dataclasses import dataclass
from operator import ge, gt, le, lt

import colander
from kinto.core.resource import has_null_character, is_valid_timestamp
from kinto.core.resource.schema import PluralGetQuerySchema
from kinto.core.utils import COMPARISON

from kinto_elasticsearch import errors
from kinto_elasticsearch.index.fieldnames import UNINDEXED_FIELD
from kinto_elasticsearch.search import ranking, tokens

ID_FIELD = "id"
MODIFIED_FIELD = "last_modified"
QUERY_PARAM = "q"

# The engine's default ``index.max_result_window``: it refuses a larger size, even with
# search_after.
MAX_RESULT_WINDOW = 10_000

# A name no mapping holds: record keys never start with ``_`` at the top level
# (``index/fieldnames.py``), and the plugin maps no such field.
UNMAPPED_SORT = "_unmapped."

MATCH_ALL = {"match_all": {}}
MATCH_NONE = {"match_none": {}}

# Kinto's own patterns (``_extract_filters`` and ``_extract_sorting``).
_OPERATOR = re.compile(r"^(" + "|".join(op.name.lower() for op in COMPARISON) + r")_([\w\.]+)$")
_SORT = re.compile(r"^([\-+]?)([\w\.]+)$")
_TIMESTAMP_PARAMS = {"_since": COMPARISON.GT, "_before": COMPARISON.LT, "_to": COMPARISON.LT}
_RANGES = {
    COMPARISON.LT: ("lt", lt),
    COMPARISON.MAX: ("lte", le),
    COMPARISON.GT: ("gt", gt),
    COMPARISON.MIN: ("gte", ge),
}
_LIST_OPERATORS = (
    COMPARISON.IN,
    COMPARISON.EXCLUDE,
    COMPARISON.CONTAINS,
    COMPARISON.CONTAINS_ANY,
)

# JSON types, in the order jsonb compares values of different types.
_NULL, _STRING, _NUMBER, _BOOLEAN, _ARRAY, _OBJECT = range(6)

_TYPE_RANKS = {
    "keyword": _STRING,
    "constant_keyword": _STRING,
    "wildcard": _STRING,
    "text": _STRING,
    "boolean": _BOOLEAN,
    "object": _OBJECT,
    **dict.fromkeys(
        (
            "long",
            "integer",
            "short",
            "byte",
            "double",
            "float",
            "half_float",
            "scaled_float",
            "unsigned_long",
        ),
        _NUMBER,
    ),
}


@dataclass(frozen=True)
class SearchRequest:
    """A search body, and the page size the caller needs for ``Next-Page``."""

    body: dict
    limit: int
    # Ordered by relevance first (a ``q`` without an explicit ``_sort``).
    ranked: bool = False

    def paginate(self, hits):
        """The hits of this page, and the ``_token`` of the next one (None on the last page).

        As Kinto does, one hit more than the page is asked for, so that a ``Next-Page``
        is only given when another page exists.
        """
        page = hits[: self.limit]
        # Only when the engine's window leaves no room for that extra hit does a full page
        # have to be taken as a maybe.
        more = len(hits) > self.limit or len(hits) == self.limit == self.body["size"]
        return page, (tokens.next_page_token(page[-1]) if more and page else None)


@dataclass(frozen=True)
class _Field:
    """A record field, as the index holds it."""

    path: str
    # False: no document of the index has a value there.
    mapped: bool
    # The JSON type of its values, None when the mapping does not tell.
    rank: int | None = None
    # The engine field holding exact values, for terms, ranges and sorting.
    exact: str | None = None
    sortable: bool = True


def querystring_to_search(
    params, field_types, max_limit: int, by_relevance: bool = False
) -> SearchRequest:
    """The search for the records ``GET .../records?<params>`` would list.

    ``params``: the request's GET parameters; ``field_types``: ``{"dotted.path": type}``
    of the index mapping, sub-fields included; ``max_limit``: Kinto's cap on a page;
    ``by_relevance``: sort by score first, unless ``_sort`` names a field.
    Raises Kinto's 400 for what Kinto would refuse, and for filters on whole arrays or
    objects.
    """
    grouped = {}
    for key, value in params.items():
        grouped.setdefault(key, []).append(value)
    # The search box's, never a filter (see ``search.ranking``).
    grouped.pop(QUERY_PARAM, None)
    # What cornice hands to the schema: repeated parameters become lists.
    cstruct = {key: values[0] if len(values) == 1 else values for key, values in grouped.items()}
    try:
        validated = PluralGetQuerySchema().deserialize(cstruct)
    except colander.Invalid as error:
        raise _invalid(*sorted(error.asdict().items())) from None

    filters = [f for f in _filters(validated, field_types) if f != MATCH_ALL]
    query = {"bool": {"filter": filters}} if filters else MATCH_ALL

    # ``_limit=0`` is no limit to Kinto either.
    limit = min(validated.get("_limit") or max_limit, max_limit, MAX_RESULT_WINDOW)
    sort = _sort(validated.get("_sort", []), field_types)
    ranked = by_relevance and not any(_SORT.match(e.strip()) for e in validated.get("_sort", []))
    if ranked:
        sort = ranking.relevance_order(sort)
    body = {
        # A copy: the caller may edit its body, never the shared constants.
        "query": copy.deepcopy(query),
        "sort": sort,
        "size": min(limit + 1, MAX_RESULT_WINDOW),
        "_source": _source(validated.get("_fields")),
        "track_total_hits": True,
    }
    token = validated.get("_token")
    if token:
        body["search_after"] = tokens.search_after(token, len(sort))
        if body["search_after"] is None:
            raise _invalid((None, "_token has invalid content"))
    return SearchRequest(body=body, limit=limit, ranked=ranked)


def _invalid(*problems):
    """Kinto's 400 for querystring errors: ``problems`` are ``(name, description)``."""
    return errors.invalid(*(("querystring", name, description) for name, description in problems))


def _source(fields):
    if not fields:
        return True
    # Source filtering reads ``*`` as a wildcard where Kinto reads a field name.
    return {"includes": [f for f in fields if "*" not in f] + [ID_FIELD, MODIFIED_FIELD]}


def _resolve(path, field_types):
    if path == ID_FIELD:
        return _Field(path, mapped=True, rank=_STRING, exact=ID_FIELD)
    if path == MODIFIED_FIELD:
        return _Field(path, mapped=True, rank=_NUMBER, exact=MODIFIED_FIELD)
    parts = path.split(".")
    parents = (".".join(parts[:i]) for i in range(1, len(parts)))
    if any(field_types.get(parent, "object") != "object" for parent in parents):
        # A sub-field of a scalar (``title.keyword``) is no record field: nothing holds it.
        return _Field(path, mapped=False, sortable=False)
    kind = field_types.get(path)
    if kind is None:
        return _Field(path, mapped=False)
    rank = _TYPE_RANKS.get(kind)
    if kind == "text":
        keyword = f"{path}.keyword"
        exact = keyword if field_types.get(keyword) == "keyword" else None
    else:
        exact = None if rank == _OBJECT else path
    return _Field(path, mapped=True, rank=rank, exact=exact, sortable=rank != _OBJECT)


def _exact(field, param):
    if field.exact is None:
        description = f"Field '{field.path}' is full text only: it cannot be compared or sorted"
        raise _invalid((param, description))
    return field.exact


def _rank(value):
    if value is None:
        return _NULL
    if isinstance(value, str):
        return _STRING
    # Before numbers: booleans are integers in Python.
    if isinstance(value, bool):
        return _BOOLEAN
    if isinstance(value, int | float):
        return _NUMBER
    return _ARRAY if isinstance(value, list) else _OBJECT


def _integral(value):
    # JSON has one number type, but some engines find no 20.0 in a ``long`` field.
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


def _comparable(field, value):
    return field.mapped and (field.rank is None or field.rank == _rank(value))


def _exists(field):
    return {"exists": {"field": field.path}} if field.mapped else MATCH_NONE


def _negate(query):
    return MATCH_ALL if query == MATCH_NONE else {"bool": {"must_not": [query]}}


def _as_list(value):
    return value if isinstance(value, list) else [value]


def _sort(specified, field_types):
    directions = {}
    for entry in specified:
        match = _SORT.match(entry.strip())
        # Kinto ignores what does not look like a field.
        if match:
            sign, name = match.groups()
            directions.setdefault(name, -1 if sign == "-" else 1)
    # Kinto's test, on the raw values: ``-last_modified`` gets it added again (a no-op).
    if MODIFIED_FIELD not in specified:
        directions.setdefault(MODIFIED_FIELD, -1)
    directions.setdefault(ID_FIELD, 1)

    clauses = []
    for name, direction in directions.items():
        field = _resolve(name, field_types)
        if not field.sortable:
            continue
        order = {"order": "asc", "missing": "_last"}
        if direction < 0:
            order = {"order": "desc", "missing": "_first"}
        if field.mapped:
            clauses.append({_exact(field, "_sort"): order})
        else:
            # Kept rather than dropped, so that tokens stay valid once a record has it;
            # under a name nothing maps: in a pool, another tenant may have mapped the field,
            # whose missing values would sort as that type's, not as the collection's nulls.
            clauses.append({UNMAPPED_SORT + field.path: {**order, "unmapped_type": "keyword"}})
    return clauses


def _filters(validated, field_types):
    for param, value in validated.items():
        param = param.strip()
        if param in _TIMESTAMP_PARAMS:
            if value is not None and not is_valid_timestamp(value):
                raise _invalid((param, f"Invalid value for {param}"))
            # PostgreSQL compares with NULL: no record is before or after null.
            if value is None:
                yield MATCH_NONE
                continue
            operator, name = _TIMESTAMP_PARAMS[param], MODIFIED_FIELD
        elif param.startswith("_"):
            continue
        else:
            match = _OPERATOR.match(param)
            if match:
                operator, name = getattr(COMPARISON, match[1].upper()), match[2]
            else:
                operator, name = COMPARISON.EQ, param
            _check(param, operator, name, value)

        if name == MODIFIED_FIELD and isinstance(value, str):
            # Kinto takes ``"123"`` for a timestamp too.
            value = int(value.strip('"'))
        elif name == ID_FIELD and isinstance(value, int):
            # As both storage backends do.
            value = str(value)
        else:
            value = [_integral(v) for v in value] if isinstance(value, list) else _integral(value)
        yield _filter(operator, _resolve(name, field_types), value, param)


def _check(param, operator, name, value):
    """Kinto's checks of ``_extract_filters``, then the values search cannot compare."""
    invalid = f"Invalid value for {param}"
    values = _as_list(value) if operator in _LIST_OPERATORS else [value]
    if operator == COMPARISON.LIKE and not isinstance(value, str):
        raise _invalid((param, invalid))
    if operator in (COMPARISON.IN, COMPARISON.EXCLUDE):
        if (name == ID_FIELD and not all(isinstance(v, str) for v in values)) or (
            name == MODIFIED_FIELD and not all(isinstance(v, int) for v in values)
        ):
            raise _invalid((param, invalid))
    if "\x00" in name or has_null_character(value):
        raise _invalid((param, "Invalid character 0x00"))
    if name == MODIFIED_FIELD and not is_valid_timestamp(value):
        raise _invalid((param, invalid))
    if name in (ID_FIELD, MODIFIED_FIELD) and operator in (
        COMPARISON.CONTAINS,
        COMPARISON.CONTAINS_ANY,
    ):
        raise _invalid((param, f"Field '{name}' is not an array"))
    if operator != COMPARISON.HAS and any(isinstance(v, list | dict) for v in values):
        raise _invalid((param, "Search cannot compare whole arrays or objects"))


def _held(field):
    """Records that hold the field: searchable there, or listed as left out of the index
    (``index/documents.py``), since the record has it all the same."""
    left_out = [
        {"term": {UNINDEXED_FIELD: field.path}},
        {"prefix": {UNINDEXED_FIELD: f"{field.path}."}},
    ]
    if field.mapped:
        left_out.insert(0, _exists(field))
    return {"bool": {"should": left_out, "minimum_should_match": 1}}


def _filter(operator, field, value, param):
    if operator == COMPARISON.HAS:
        return _held(field) if value else _negate(_held(field))

    if operator == COMPARISON.LIKE:
        if field.rank != _STRING:
            return MATCH_NONE
        # Kinto adds the wildcards when there are none; the engine's other special
        # characters are taken literally, as Kinto documents only ``*``.
        pattern = value if "*" in value else f"*{value}*"
        pattern = pattern.replace("\\", "\\\\").replace("?", "\\?")
        return {"wildcard": {_exact(field, param): {"value": pattern, "case_insensitive": True}}}

    if operator in _LIST_OPERATORS:
        wanted = _as_list(value)
        # A value of another type than the field's never equals any of its values.
        values = [v for v in wanted if _comparable(field, v)]
        if not values:
            if operator == COMPARISON.CONTAINS and not wanted:
                return _exists(field)
            return MATCH_ALL if operator == COMPARISON.EXCLUDE else MATCH_NONE
        if operator == COMPARISON.CONTAINS:
            if len(values) < len(wanted):
                return MATCH_NONE
            return {"bool": {"filter": [{"term": {_exact(field, param): v}} for v in values]}}
        query = {"terms": {_exact(field, param): values}}
        return _negate(query) if operator == COMPARISON.EXCLUDE else query

    if operator in (COMPARISON.EQ, COMPARISON.NOT):
        query = (
            {"term": {_exact(field, param): value}} if _comparable(field, value) else MATCH_NONE
        )
        return query if operator == COMPARISON.EQ else _negate(query)

    bound_is_above = operator in (COMPARISON.LT, COMPARISON.MAX)
    if _comparable(field, value):
        key, compare = _RANGES[operator]
        if field.rank == _BOOLEAN:
            # Not every engine has ranges on booleans; with two values, a set does as well.
            kept = [b for b in (False, True) if compare(b, value)]
            query = {"terms": {_exact(field, param): kept}} if kept else MATCH_NONE
        else:
            query = {"range": {_exact(field, param): {key: value}}}
        if bound_is_above or field.path in (ID_FIELD, MODIFIED_FIELD):
            return query
        # A missing value sorts above everything: it is greater than any bound.
        missing = _negate(_exists(field))
        if query == MATCH_NONE:
            return missing
        return {"bool": {"should": [query, missing], "minimum_should_match": 1}}
    # Every value of the field is of one other type, so all below or all above the bound.
    field_is_above = field.mapped and field.rank > _rank(value)
    if bound_is_above:
        return MATCH_NONE if field_is_above else _exists(field)
    return MATCH_ALL if field_is_above else _negate(_exists(field))
