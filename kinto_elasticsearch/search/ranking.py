"""``q`` as a search box: which records match, how they rank, typos, prefixes, highlights.

GET search with a ``q`` (collection and bucket-wide) reads these options; without ``q``
they are ignored, as ``GET .../records`` ignores them:

- ``_q_fields=title^3,body``: the fields ``q`` searches, with their weights (default: every
  text field the caller may read, weight 1);
- ``_q_operator=and|or``: whether every word of ``q`` is required;
- ``_fuzzy=true``: words may hold typos (the engines' automatic edit distance: none up to
  2 characters, 1 up to 5, 2 beyond);
- ``_prefix=true``: the last word may be the start of a word (search as you type);
- ``_highlight=title,body``: the matched fragments of those fields, in each hit's
  ``highlight``, HTML-escaped around ``<em>`` tags so that a client can insert them as HTML.

Which records match is ``q`` itself, in the query-string syntax GET search always took
(``simple_query_string`` for callers kept from private fields), plus, when asked for, its
words (``AND``, ``-word`` and ``field:`` aside) with typos or with the last one as a
prefix. It is a filter: it reads no statistics.

How they rank is a score of the record's own, by five criteria, each deciding only
between records the ones before it leave equal (as Algolia's tie-breaking and
Meilisearch's ranking rules do):

1. **words**: how many words of ``q`` the record holds, in any searched field, in any
   form asked for (as typed, with a typo, as a prefix);
2. **typos**: how many of them it holds as typed (with ``_fuzzy`` or ``_prefix`` only);
3. **proximity**: for each pair of consecutive words of ``q``, 2 points when one field
   holds them side by side and in order, 1 when within ``PROXIMITY_SLOP`` moves of each
   other (the phrase slop: a swapped pair is 2 moves);
4. **field**: for each word, the weight of the best field holding it (``_q_fields``), in
   quarters of the heaviest weight, to the nearest (at least one), 2 points a quarter;
5. **exactness**: a field equals ``q`` whole, case aside (its ``.keyword`` sub-field),
   1 point.

The score is ``W * words + T * typos + P * proximity + field + exact``, where each unit is
one more than the most the criteria after it can add up to for this query (``Units``):
with ``n`` words and ``p`` pairs scored, ``P = 8 * n + 2``, ``T = 2 * p * P + P`` (0
without typos or prefixes) and ``W = n * T + 2 * p * P + P``. So the order is
lexicographic: one more word as typed outweighs any proximity, fields and exactness, and
so on. Every score is a whole number below 2**24: the engines' 32-bit floats hold it
exactly, and a ``Next-Page`` token carries it back exactly (a fraction, printed as the
shortest decimal that reads back as the same 32-bit float, would not compare equal again
on every engine, and the page would repeat). Each criterion is a ``constant_score``
clause: a word per field weight and form, a phrase per pair and slop, a case-insensitive
``term`` per field. Where in a field the words stand is not a criterion: ``span_first``
takes terms as indexed rather than analysed and osmem-server lacks it, and ``intervals``
cannot anchor a match at the start of a field. Ties keep Kinto's default order (newest
first, then id).

None of this reads index statistics, unlike the engines' BM25. BM25 reads index-wide term
statistics that every write changes: a record's score, and its place in the order, would
move between two pages and ``search_after`` would skip or repeat records; in a pool, they
are other tenants' data. A score that depends only on the record and the query keeps
``Next-Page`` exact under concurrent writes (every record that matches throughout, exactly
once, in order), and it tells a reader nothing about the records they cannot read.
``text_score`` gives the same score (typos and prefixes aside) to any other search, such
as POST searches of pooled collections.

``_q_operator`` defaults to ``or`` when results are ranked: a search box shows records with
more of the words first rather than dropping those missing one, so an extra or misspelt
word never empties the list. With an explicit ``_sort`` the words only filter a list in
another order, and it defaults to ``and``, as every other parameter narrows the list.

Costs stay bounded: fuzzy and prefix expansions are rewritten as constant-score filters
(every term within the edit distance or under the prefix, none chosen by index-wide
frequencies), at most ``MAX_SCORED_WORDS`` words are scored, proximity scores the first
``MAX_PROXIMITY_PAIRS`` pairs of ``q``, or as many as ``MAX_PROXIMITY_TERMS`` terms allow
over the searched fields, and the search carries the same server-side timeout as every
search the plugin sends. Every clause counts against the guard's ``max_clauses``.
"""

import dataclasses
import itertools
import re
from dataclasses import dataclass

from kinto_elasticsearch import errors
from kinto_elasticsearch.search import box_params
from kinto_elasticsearch.search.rules.private import reaches

QUERY_PARAM = "q"
FIELDS_PARAM = "_q_fields"
OPERATOR_PARAM = "_q_operator"
FUZZY_PARAM = "_fuzzy"
PREFIX_PARAM = "_prefix"
HIGHLIGHT_PARAM = "_highlight"

OPERATORS = ("and", "or")
MAX_SCORED_WORDS = 32
# Moves allowed between two words for a proximity point (a phrase's slop).
PROXIMITY_SLOP = 4
# Terms the proximity phrases may hold over all searched fields: 4 per pair and field.
MAX_PROXIMITY_PAIRS = 8
MAX_PROXIMITY_TERMS = 256
# The field criterion: a word's best field in steps of the heaviest weight, points a step
# (more than exactness, which comes after it); see the module docstring.
FIELD_STEPS = 4
STEP_POINTS = 2
FIELD_POINTS = FIELD_STEPS * STEP_POINTS
EXACT_POINTS = 1
HIGHLIGHT = {
    "pre_tags": ["<em>"],
    "post_tags": ["</em>"],
    # Record text is anyone's: escaped, the fragments are safe to show as HTML.
    "encoder": "html",
    "fragment_size": 150,
    "number_of_fragments": 3,
}
SCORE_ORDER = {"_score": {"order": "desc"}}

# ``title:kinto`` in query-string syntax: the word is what follows the field.
_FIELD_PREFIX = re.compile(r"^[\w.]+:(?=\S)")
_SYNTAX_WORDS = {"AND", "OR", "NOT", "&&", "||"}
_FUZZY = {"fuzziness": "AUTO", "fuzzy_rewrite": "constant_score"}
# What a word may hold at its ends without a field holding it otherwise (``"kinto``).
_QUOTES = '"()'


@dataclass(frozen=True)
class SearchBox:
    """The search-box options of one GET search."""

    text: str
    # ``(name, weight)``; empty: every readable text field, weight 1.
    fields: tuple = ()
    # None: ``or`` when ranked, ``and`` under an explicit ``_sort``.
    operator: str | None = None
    fuzzy: bool = False
    prefix: bool = False
    highlight: tuple = ()

    @classmethod
    def from_params(cls, params):
        """The options of a request's GET parameters; None when there is no ``q``.

        Raises Kinto's 400 for malformed options.
        """
        text = " ".join(t for t in params.getall(QUERY_PARAM) if t.strip())
        if not text:
            return None
        operator = box_params.single(params, OPERATOR_PARAM)
        if operator is not None and operator.lower() not in OPERATORS:
            message = f"{OPERATOR_PARAM} must be 'and' or 'or'"
            raise errors.invalid_querystring(message, OPERATOR_PARAM)
        return cls(
            text=text,
            fields=tuple(box_params.weighted_fields(params, FIELDS_PARAM)),
            operator=operator.lower() if operator else None,
            fuzzy=box_params.boolean(params, FUZZY_PARAM),
            prefix=box_params.boolean(params, PREFIX_PARAM),
            highlight=tuple(box_params.names(params, HIGHLIGHT_PARAM)),
        )

    def check_readable(self, hidden):
        """Refuse fields the caller may not read, in ``_q_fields`` or ``_highlight``."""
        named = [(FIELDS_PARAM, name) for name, _ in self.fields]
        named += [(HIGHLIGHT_PARAM, name) for name in self.highlight]
        for param, name in named:
            if any(_reaches(name, field) for field in hidden):
                raise errors.invalid_querystring(
                    f"{param}: field {name!r} is not readable: it is private to the writers "
                    "of this collection",
                    param,
                )

    def apply(self, search, field_types, hidden=(), syntax_fields=None, default_fields=None):
        """``search`` (Kinto's querystring, without ``q``) narrowed and ranked by ``q``.

        ``field_types``: ``{"dotted.path": type}`` of the mapping, whose text fields the
        caller may read (all but ``hidden``) are searched when ``_q_fields`` is not given.
        ``syntax_fields``: for a caller kept from private fields, the fields ``q``'s syntax
        may search (``simple_query_string``, which cannot name a field); None lets
        ``query_string`` search every field, as GET search always did.
        ``default_fields``: the fields ``query_string`` searches when ``_q_fields`` names
        none (None: every field of the index; in a pool, the collection's own).
        """
        text_fields = readable_text_fields(field_types, hidden)
        operator = self.operator or ("or" if search.ranked else "and")
        searched = [name for name, _ in self.fields] or list(text_fields)
        filters = [self._matching(operator, searched, syntax_fields, default_fields)]
        if search.body["query"] != {"match_all": {}}:
            filters.append(search.body["query"])
        query = {"bool": {"filter": filters}}
        weighted = list(self.fields) or [(name, 1) for name in text_fields]
        chunks = _query_chunks(self.text)
        scoring = Scoring.of(
            _distinct(chunks), weighted, field_types, self.fuzzy, self.prefix, " ".join(chunks)
        )
        if scoring is not None:
            query["bool"]["should"] = scoring.words + scoring.bonuses
        # Scores shown under an explicit ``_sort`` too.
        body = {**search.body, "query": query, "track_scores": True}
        if self.highlight:
            body["highlight"] = {
                "fields": {name: {} for name in self.highlight},
                # The words matched, not the phrases and whole values that score.
                "highlight_query": filters[0],
                **HIGHLIGHT,
            }
        return dataclasses.replace(search, body=body)

    def _matching(self, operator, searched, syntax_fields, default_fields=None):
        names = [name for name, _ in self.fields]
        if syntax_fields is None:
            exact = {"query_string": {"query": self.text, "default_operator": operator.upper()}}
            if names or default_fields:
                exact["query_string"]["fields"] = names or list(default_fields)
            exact["query_string"]["lenient"] = True
        else:
            exact = {
                "simple_query_string": {
                    "query": self.text,
                    "fields": names or list(syntax_fields) or ["id"],
                    "default_operator": operator,
                    "lenient": True,
                }
            }
        alternatives = [exact]
        # Typos and prefixes of the words alone: ``AND`` or ``-spam`` are no words to expand.
        plain = " ".join(_distinct(_query_chunks(self.text)))
        if searched and plain and self.fuzzy:
            alternatives.append(_words(plain, searched, operator, **_FUZZY))
        if searched and plain and self.prefix:
            fuzzy = _FUZZY if self.fuzzy else {}
            alternatives.append(_words(plain, searched, operator, type="bool_prefix", **fuzzy))
        if len(alternatives) == 1:
            return exact
        return {"bool": {"should": alternatives, "minimum_should_match": 1}}


@dataclass(frozen=True)
class Units:
    """The points of one unit of each criterion, for a query of ``words`` scored words and
    ``pairs`` scored pairs: each is one more than the most the criteria after it can add.
    With at most ``MAX_SCORED_WORDS`` words and ``MAX_PROXIMITY_PAIRS`` pairs, every score
    stays a whole number under 2**24 (4.8 million at most), which 32-bit floats hold."""

    word: int
    typed: int
    near: int

    @classmethod
    def of(cls, words, pairs, typos):
        below_near = FIELD_POINTS * words + EXACT_POINTS
        near = below_near + 1
        below_typed = 2 * pairs * near + below_near
        typed = below_typed + 1 if typos else 0
        return cls(word=words * typed + below_typed + 1, typed=typed, near=near)


@dataclass(frozen=True)
class Scoring:
    """The ``constant_score`` clauses whose sum is the search-box score: one per word
    (``words``: the best form and field holding it), the rest for proximity and
    exactness (``bonuses``), which only records holding the words can match."""

    words: list
    bonuses: list

    @classmethod
    def of(cls, words, weighted, field_types=None, fuzzy=False, prefix=False, whole=""):
        """The scoring of ``words`` (distinct, in the order typed) over ``weighted``
        (``(field, weight)``); None when there is nothing to score.

        ``field_types``: the mapping's, to compare ``whole`` (the text typed) only with
        the fields that have the plugin's keyword sub-field; None: every field has one.
        """
        if not words or not weighted:
            return None
        names = list(dict.fromkeys(name for name, _ in weighted))
        pairs = min(len(words) - 1, MAX_PROXIMITY_PAIRS, MAX_PROXIMITY_TERMS // (4 * len(names)))
        units = Units.of(len(words), pairs, fuzzy or prefix)
        heaviest = max(weight for _, weight in weighted)
        scored = [
            _word_clause(word, weighted, heaviest, units, fuzzy, prefix and i == len(words) - 1)
            for i, word in enumerate(words)
        ]
        bonuses = []
        for first, second in itertools.pairwise(words[: pairs + 1]):
            for slop in (0, PROXIMITY_SLOP):
                phrase = _words(f"{first} {second}", names, "and", type="phrase", slop=slop)
                bonuses.append(_constant(phrase, units.near))
        exact = [name for name in names if _has_keyword(name, field_types)]
        if exact and whole:
            equal = [_equals(f"{name}.keyword", whole) for name in exact]
            bonuses.append(_constant(_any(equal), EXACT_POINTS))
        return cls(words=scored, bonuses=bonuses)


def text_score(
    text: str, weighted: list[tuple[str, float]], operator: str = "or", *, field_types=None
) -> dict | None:
    """A query matching the records that hold the words of ``text`` (any of them with
    ``operator`` ``or``, every one with ``and``) in the ``weighted`` fields (``(field,
    weight)``, weights above 0), scored as the search box scores ``q`` over ``_q_fields``
    without typos nor prefixes: a score of the record's own, from no index statistics.

    ``text`` is plain words, not query-string syntax. ``field_types`` (``{"dotted.path":
    type}``), when known, keeps exactness to the fields with the plugin's keyword
    sub-field; without it, every field is taken to be a string the plugin mapped.
    None when ``text`` holds no word to score or ``weighted`` no field.
    """
    if operator not in OPERATORS:
        raise ValueError(f"operator must be one of {OPERATORS}, not {operator!r}")
    if any(not weight > 0 for _, weight in weighted):
        raise ValueError("field weights must be above 0")
    chunks = [chunk for chunk in text.split() if re.search(r"\w", chunk)]
    scoring = Scoring.of(_distinct(chunks), weighted, field_types, whole=" ".join(text.split()))
    if scoring is None:
        return None
    needed = len(scoring.words) if operator == "and" else 1
    matching = {"bool": {"should": scoring.words, "minimum_should_match": needed}}
    query = {"bool": {"must": [matching]}}
    if scoring.bonuses:
        query["bool"]["should"] = scoring.bonuses
    return query


def relevance_order(sort):
    """Kinto's sort, after the score: ties stay in Kinto's order, the order stays total."""
    return [SCORE_ORDER, *sort]


def readable_text_fields(field_types, hidden):
    """Every text field of the mapping (sub-fields included) the caller may read."""
    return sorted(
        path
        for path, kind in field_types.items()
        if kind == "text" and not any(_reaches(path, field) for field in hidden)
    )


def _query_chunks(text):
    """The words of ``q`` in query-string syntax, its operators, exclusions and field
    names left out."""
    chunks = []
    for chunk in text.split():
        if chunk in _SYNTAX_WORDS or chunk.startswith(("-", "!")):
            continue
        word = _FIELD_PREFIX.sub("", chunk.lstrip("+")).strip(_QUOTES)
        if re.search(r"\w", word):
            chunks.append(word)
    return chunks


def _distinct(chunks):
    """The words that count in the score: each once (case aside), the first ones."""
    words, seen = [], set()
    for word in chunks:
        if word.lower() not in seen:
            seen.add(word.lower())
            words.append(word)
    return words[:MAX_SCORED_WORDS]


def _word_clause(word, weighted, heaviest, units, fuzzy, prefix):
    """The points of ``word`` in its best form and field: a constant per field weight and
    form, whatever the index's statistics."""
    groups = {}
    for name, weight in weighted:
        groups.setdefault(weight, []).append(name)
    variants = []
    for weight, names in groups.items():
        found = units.word + field_points(weight, heaviest)
        variants.append(_constant(_words(word, names, "and"), found + units.typed))
        if fuzzy:
            variants.append(_constant(_words(word, names, "and", **_FUZZY), found))
        if prefix:
            variants.append(_constant(_words(word, names, "and", type="bool_prefix"), found))
    return variants[0] if len(variants) == 1 else {"dis_max": {"queries": variants}}


def field_points(weight, heaviest):
    """The field criterion's points for a word whose best field weighs ``weight``."""
    return STEP_POINTS * max(1, int(FIELD_STEPS * weight / heaviest + 0.5))


def _has_keyword(name, field_types):
    if field_types is None:
        return True
    return field_types.get(name) == "text" and field_types.get(f"{name}.keyword") == "keyword"


def _equals(field, text):
    return {"term": {field: {"value": text, "case_insensitive": True}}}


def _any(queries):
    return queries[0] if len(queries) == 1 else {"bool": {"should": queries}}


def _words(text, fields, operator, **options):
    return {
        "multi_match": {
            "query": text,
            "fields": list(fields),
            "operator": operator,
            "lenient": True,
            **options,
        }
    }


def _constant(query, weight):
    return {"constant_score": {"filter": query, "boost": weight}}


def _reaches(name, private):
    # A parent object reaches its private sub-fields too.
    return reaches(name, private) or private.startswith(f"{name}.")
