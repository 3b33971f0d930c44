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

How they rank is a score of the record's own: for each word of ``q``, the weight of the
best field holding it (``_q_fields``), half that for a typo or a prefix, summed over the
words. Ties keep Kinto's default order (newest first, then id). So a record holding more of
the words, in heavier fields, spelled as typed, ranks higher; as Algolia ranks, and unlike
the engines' BM25. BM25 reads index-wide term statistics that every write changes: a
record's score, and its place in the order, would move between two pages and
``search_after`` would skip or repeat records. A score that depends only on the record and
the query keeps ``Next-Page`` exact under concurrent writes (every record that matches
throughout, exactly once, in order), and it tells a reader nothing about the records they
cannot read.

``_q_operator`` defaults to ``or`` when results are ranked: a search box shows records with
more of the words first rather than dropping those missing one, so an extra or misspelt
word never empties the list. With an explicit ``_sort`` the words only filter a list in
another order, and it defaults to ``and``, as every other parameter narrows the list.

Costs stay bounded: fuzzy and prefix expansions are rewritten as constant-score filters
(every term within the edit distance or under the prefix, none chosen by index-wide
frequencies), at most ``MAX_SCORED_WORDS`` words are scored, and the search carries the
same server-side timeout as every search the plugin sends.
"""

import dataclasses
import re
from dataclasses import dataclass

from kinto_elasticsearch import errors
from kinto_elasticsearch.search.rules.private import reaches

QUERY_PARAM = "q"
FIELDS_PARAM = "_q_fields"
OPERATOR_PARAM = "_q_operator"
FUZZY_PARAM = "_fuzzy"
PREFIX_PARAM = "_prefix"
HIGHLIGHT_PARAM = "_highlight"

OPERATORS = ("and", "or")
# A typo or a prefix is a weaker sign than the word as typed.
TYPO_WEIGHT = 0.5
PREFIX_WEIGHT = 0.5
MAX_SCORED_WORDS = 32
MAX_FIELDS = 50
MAX_WEIGHT = 1000
HIGHLIGHT = {
    "pre_tags": ["<em>"],
    "post_tags": ["</em>"],
    # Record text is anyone's: escaped, the fragments are safe to show as HTML.
    "encoder": "html",
    "fragment_size": 150,
    "number_of_fragments": 3,
}
SCORE_ORDER = {"_score": {"order": "desc"}}

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
_WEIGHTED = re.compile(r"^(?P<name>[^\^]+?)(?:\^(?P<weight>\d+(?:\.\d+)?))?$")
# ``title:kinto`` in query-string syntax: the word is what follows the field.
_FIELD_PREFIX = re.compile(r"^[\w.]+:(?=\S)")
_SYNTAX_WORDS = {"AND", "OR", "NOT", "&&", "||"}
_FUZZY = {"fuzziness": "AUTO", "fuzzy_rewrite": "constant_score"}


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
        operator = _single(params, OPERATOR_PARAM)
        if operator is not None and operator.lower() not in OPERATORS:
            message = f"{OPERATOR_PARAM} must be 'and' or 'or'"
            raise errors.invalid_querystring(message, OPERATOR_PARAM)
        return cls(
            text=text,
            fields=tuple(_weighted_fields(params)),
            operator=operator.lower() if operator else None,
            fuzzy=_boolean(params, FUZZY_PARAM),
            prefix=_boolean(params, PREFIX_PARAM),
            highlight=tuple(_names(params, HIGHLIGHT_PARAM)),
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

    def apply(self, search, text_fields, syntax_fields=None, default_fields=None):
        """``search`` (Kinto's querystring, without ``q``) narrowed and ranked by ``q``.

        ``text_fields``: the text fields the caller may read, searched when ``_q_fields``
        is not given. ``syntax_fields``: for a caller kept from private fields, the fields
        ``q``'s syntax may search (``simple_query_string``, which cannot name a field);
        None lets ``query_string`` search every field, as GET search always did.
        ``default_fields``: the fields ``query_string`` searches when ``_q_fields`` names
        none (None: every field of the index; in a pool, the collection's own).
        """
        operator = self.operator or ("or" if search.ranked else "and")
        searched = [name for name, _ in self.fields] or list(text_fields)
        filters = [self._matching(operator, searched, syntax_fields, default_fields)]
        if search.body["query"] != {"match_all": {}}:
            filters.append(search.body["query"])
        query = {"bool": {"filter": filters}}
        weighted = list(self.fields) or [(name, 1) for name in text_fields]
        if weighted:
            words = _scored_words(self)
            scoring = [self._word_score(word, weighted, last) for word, last in words]
            if scoring:
                query["bool"]["should"] = scoring
        # Scores shown under an explicit ``_sort`` too.
        body = {**search.body, "query": query, "track_scores": True}
        if self.highlight:
            body["highlight"] = {"fields": {name: {} for name in self.highlight}, **HIGHLIGHT}
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
        plain = " ".join(word for word, _ in _scored_words(self))
        if searched and plain and self.fuzzy:
            alternatives.append(_words(plain, searched, operator, **_FUZZY))
        if searched and plain and self.prefix:
            fuzzy = _FUZZY if self.fuzzy else {}
            alternatives.append(_words(plain, searched, operator, type="bool_prefix", **fuzzy))
        if len(alternatives) == 1:
            return exact
        return {"bool": {"should": alternatives, "minimum_should_match": 1}}

    def _word_score(self, word, weighted, last):
        """The weight of the best field holding ``word``, as typed, with a typo, or as a
        prefix: a constant, whatever the index's statistics."""
        groups = {}
        for name, weight in weighted:
            groups.setdefault(weight, []).append(name)
        variants = []
        for weight, names in groups.items():
            variants.append(_constant(_words(word, names, "and"), weight))
            if self.fuzzy:
                typo = _words(word, names, "and", **_FUZZY)
                variants.append(_constant(typo, weight * TYPO_WEIGHT))
            if self.prefix and last:
                started = _words(word, names, "and", type="bool_prefix")
                variants.append(_constant(started, weight * PREFIX_WEIGHT))
        return variants[0] if len(variants) == 1 else {"dis_max": {"queries": variants}}


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


def _scored_words(box):
    """``(word, is_last)`` for the words of ``q`` that count in the score."""
    words, seen = [], set()
    for chunk in box.text.split():
        if chunk in _SYNTAX_WORDS or chunk.startswith(("-", "!")):
            continue
        word = _FIELD_PREFIX.sub("", chunk.lstrip("+"))
        if not re.search(r"\w", word) or word.lower() in seen:
            continue
        seen.add(word.lower())
        words.append(word)
    words = words[:MAX_SCORED_WORDS]
    return [(word, i == len(words) - 1) for i, word in enumerate(words)]


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


def _single(params, name):
    values = params.getall(name)
    if len(values) > 1:
        raise errors.invalid_querystring(f"{name} may be given once", name)
    return values[0].strip() if values else None


def _boolean(params, name):
    value = _single(params, name)
    if value is None or value.lower() in _FALSE:
        return False
    if value.lower() in _TRUE:
        return True
    raise errors.invalid_querystring(f"{name} must be true or false", name)


def _names(params, name):
    names = []
    for value in params.getall(name):
        for item in value.split(","):
            item = item.strip()
            if item and item not in names:
                names.append(item)
    if len(names) > MAX_FIELDS:
        raise errors.invalid_querystring(f"{name} may name at most {MAX_FIELDS} fields", name)
    return names


def _weighted_fields(params):
    weighted = {}
    for item in _names(params, FIELDS_PARAM):
        match = _WEIGHTED.match(item)
        weight = float(match["weight"]) if match and match["weight"] else 1.0
        if not match or not 0 < weight <= MAX_WEIGHT:
            raise errors.invalid_querystring(
                f"{FIELDS_PARAM} takes field names with an optional weight from 0 to "
                f"{MAX_WEIGHT} (title^3,body), not {item!r}",
                FIELDS_PARAM,
            )
        weighted.setdefault(match["name"], int(weight) if weight.is_integer() else weight)
    return weighted.items()
