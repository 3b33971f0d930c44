"""Scores that read no index statistics, for searches that reach a shared index.

BM25 scores a hit by the statistics of every document of its shard: how many hold each
term, how long their fields are on average. In a pooled index those documents are other
tenants' records, so a tenant's scores, and the order of its own hits, would move when
another tenant writes (and tell it which words that tenant uses). A search that reaches a
pool is therefore scored the way the GET search box ranks (``search/ranking.py``):

- a query that matches text (``match``, ``multi_match``, ``query_string``...) scores its
  boost for matching, plus its boost times the search box's score (``ranking.Scoring``:
  words held, then the proximity of consecutive words, then the weight of the best field
  holding each, then a field equal to the text whole; typos and prefixes aside) when it
  names its fields plainly (after ``scope.py``, in a pool every query does that searches
  all fields); otherwise its boost for each word of its text the record holds (times the
  heaviest of its weighted fields). Either way a record holding more of the words ranks
  higher, whatever the rest of the index holds; a text of one word scores as matching;
- any other query that scores by itself (``term``, ``range``, ``prefix``, a span, an
  interval...) scores its boost when it matches, as it would in ``constant_score``;
- compound queries (``bool``, ``dis_max``, ``boosting``, ``nested``, ``function_score``...)
  combine these scores as they always do: they read no statistics of their own, and
  ``function_score`` functions read the record's own values.

Which records match is unchanged: the user's query stays, whole, as the filter of its
rewritten form. Only the numbers differ from BM25's, and they depend only on the record
and the query: ``_score``, sorting by it, ``min_score``, ``rescore``, ``track_scores``
and ``top_hits`` all see these (samplers are refused in a pool: ``walk.constructs``).
"""

import copy
import re

# Queries whose text is words to match, and where each keeps its text.
TEXT_QUERIES = frozenset(
    {
        "match",
        "match_phrase",
        "match_bool_prefix",
        "multi_match",
        "combined_fields",
        "query_string",
        "simple_query_string",
    }
)
FIELD_KEYED_TEXT = frozenset({"match", "match_phrase", "match_bool_prefix"})
# Queries whose score reads no statistics: kept as they are.
UNCHANGED = frozenset({"match_all", "match_none", "distance_feature", "rank_feature"})
# Words of one query that count in its score (the search box's own bound).
MAX_WORDS = 16
_WORD = re.compile(r"\w+", re.UNICODE)
_SYNTAX_WORDS = frozenset({"AND", "OR", "NOT"})
# Characters the query-string syntaxes read as operators: a word is searched escaped.
_SYNTAX = re.compile(r'([+\-=&|><!(){}\[\]^"~*?:\\/])')


def statistics_free(node, query_type):
    """Rewrite the query object ``node`` (``{query_type: body}``) in place so that its
    score reads no index statistics and what it matches stays the same."""
    body = node[query_type]
    if query_type in UNCHANGED or not isinstance(body, dict):
        return
    boost = _boost(query_type, body)
    matching = {"constant_score": {"filter": {query_type: body}, "boost": boost}}
    ranked = _ranked(query_type, body, boost)
    if ranked:
        node.clear()
        node["bool"] = {"must": [matching], "should": ranked}
        return
    words = [_one_word(query_type, body, word) for word in _words(query_type, body)]
    words = [clause for clause in words if clause is not None]
    node.clear()
    if not words:
        node.update(matching)
        return
    node["bool"] = {"must": [matching], "should": [_weighted(c, boost) for c in words]}


def _ranked(query_type, body, boost):
    """The search box's criteria (``search/ranking.py``: words, proximity, field weight,
    exactness), each clause times ``boost``, for a text query whose fields are named
    (after ``scope.py``, every pooled one that searches all fields); [] when they are not
    (or its text is one word), and the query's own words score instead."""
    from kinto_elasticsearch.search import ranking  # ranking imports the rules package.

    words = _words(query_type, body)
    weighted = _named_fields(query_type, body)
    if not words or not weighted:
        return []
    syntax = query_type in ("query_string", "simple_query_string")
    whole = "" if syntax else " ".join(_text(query_type, body).split())
    scoring = ranking.Scoring.of(words, weighted, None, whole=whole)
    if scoring is None:
        return []
    clauses = scoring.words + scoring.bonuses
    _scale(clauses, boost)
    return clauses


def _scale(value, boost):
    """Every ``constant_score`` of ``value`` (a word's is the best of its variants) times
    ``boost``."""
    if isinstance(value, list):
        for item in value:
            _scale(item, boost)
    elif isinstance(value, dict):
        constant = value.get("constant_score")
        if isinstance(constant, dict):
            constant["boost"] *= boost
        for key, item in value.items():
            if key != "constant_score":
                _scale(item, boost)


def _named_fields(query_type, body):
    """``[(field, weight)]`` a text query searches, when it names them plainly."""
    if query_type in FIELD_KEYED_TEXT:
        names = [key for key in body if key not in ("boost", "_name")]
        return [(names[0], 1.0)] if len(names) == 1 and "*" not in names[0] else []
    fields = body.get("fields")
    if fields is None and isinstance(body.get("default_field"), str):
        fields = [body["default_field"]]
    if not isinstance(fields, list) or not fields or len(fields) > 50:
        return []
    weighted = []
    for spec in fields:
        if not isinstance(spec, str) or "*" in spec:
            return []
        name, _, weight = spec.partition("^")
        try:
            weight = float(weight) if weight else 1.0
        except ValueError:
            return []
        if not 0 < weight <= 1000:
            return []
        weighted.append((name, weight))
    return weighted


def _weighted(clause, boost):
    """A word's score: ``boost`` times the weight of the heaviest field holding it."""
    ((query_type, body),) = clause.items()
    fields = body.get("fields")
    if not (isinstance(fields, list) and all(isinstance(f, str) for f in fields)):
        return {"constant_score": {"filter": clause, "boost": boost}}
    groups = {}
    for spec in fields:
        name, _, weight = spec.partition("^")
        try:
            weight = float(weight) if weight else 1.0
        except ValueError:
            weight = 1.0
        groups.setdefault(weight, []).append(name)
    variants = [
        {"constant_score": {"filter": {query_type: {**body, "fields": names}}, "boost": boost * w}}
        for w, names in sorted(groups.items(), reverse=True)
    ]
    return variants[0] if len(variants) == 1 else {"dis_max": {"queries": variants}}


def _boost(query_type, body):
    """The boost a user gave the query (1 unless told), wherever its type keeps it."""
    candidates = [body]
    if query_type in FIELD_KEYED_TEXT or "boost" not in body:
        candidates += [v for v in body.values() if isinstance(v, dict)]
    for candidate in candidates:
        boost = candidate.get("boost")
        if isinstance(boost, (int, float)) and not isinstance(boost, bool) and boost >= 0:
            return boost
    return 1.0


def _text(query_type, body):
    if query_type in FIELD_KEYED_TEXT:
        fields = [key for key in body if key not in ("boost", "_name")]
        if len(fields) != 1:
            return None
        value = body[fields[0]]
        return value.get("query") if isinstance(value, dict) else value
    return body.get("query")


def _words(query_type, body):
    if query_type not in TEXT_QUERIES:
        return []
    text = _text(query_type, body)
    if not isinstance(text, str):
        return []
    words, seen = [], set()
    for word in _WORD.findall(text):
        if word in _SYNTAX_WORDS or word.lower() in seen:
            continue
        seen.add(word.lower())
        words.append(word)
    return words[:MAX_WORDS] if len(words) > 1 else []


def _one_word(query_type, body, word):
    """The query, searching ``word`` alone in the same fields, as a filter."""
    clause = copy.deepcopy(body)
    for options in [clause, *(v for v in clause.values() if isinstance(v, dict))]:
        for key in ("boost", "_name", "minimum_should_match", "operator", "slop"):
            options.pop(key, None)
    if query_type in FIELD_KEYED_TEXT:
        ((field, value),) = ((k, v) for k, v in clause.items())
        if isinstance(value, dict):
            value["query"] = word
        else:
            clause[field] = word
        return {query_type: clause}
    if query_type in ("query_string", "simple_query_string"):
        word = _SYNTAX.sub(r"\\\1", word)
    clause["query"] = word
    return {query_type: clause}
