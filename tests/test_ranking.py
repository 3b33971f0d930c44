"""GET search as a search box, on text others wrote: the summaries and descriptions of the
Python packages installed with the test extra (``importlib.metadata``), on both engines.

Expectations are computed from the corpus itself, with words chosen so that any word
tokenizer (the engines' standard analyzer, a split on punctuation) finds the same records:
the metadata may change from one package version to the next, the assertions do not.
"""

import functools
import importlib.metadata
import itertools
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import kinto
import pytest
import webtest

from kinto_elasticsearch.search.ranking import (
    EXACT_POINTS,
    FIELD_POINTS,
    MAX_PROXIMITY_PAIRS,
    MAX_PROXIMITY_TERMS,
    PROXIMITY_SLOP,
    Units,
    field_points,
    text_score,
)
from tests.conftest import auth, base_settings

BUCKET = "/v1/buckets/pkgs"
DOCS = f"{BUCKET}/collections/docs"
SEARCH = f"{DOCS}/search"
ALICE = auth("alice")
DESCRIPTION_CHARS = 2000

_prefixes = itertools.count()


def package_records():
    """One record per installed distribution with a summary, ours left out."""
    records = {}
    for dist in importlib.metadata.distributions():
        meta = dist.metadata
        name, summary = meta["Name"], meta["Summary"]
        record_id = re.sub(r"[^a-z0-9]+", "-", (name or "").lower()).strip("-")
        if not summary or not record_id or name == "kinto-elasticsearch":
            continue
        description = meta.get_payload() or meta["Description"] or ""
        records.setdefault(
            record_id,
            {"name": name, "title": summary, "body": description[:DESCRIPTION_CHARS]},
        )
    return dict(sorted(records.items()))


def _unicode_words(text):
    return set(re.findall(r"\w+(?:[.:'’]\w+)*", text.lower()))


def _plain_words(text):
    return set(re.split(r"[^a-z0-9]+", text.lower())) - {""}


def words(text):
    """The words any tokenizer finds in ``text``: those two different ones agree on."""
    return {w for w in _unicode_words(text) & _plain_words(text) if w.isascii() and w.isalpha()}


class Corpus:
    def __init__(self, records):
        self.records = records
        self.fields = {
            field: {rid: words(r[field]) for rid, r in records.items()}
            for field in ("name", "title", "body")
        }
        # Words that one tokenizer finds in a field where the other does not.
        self.ambiguous = set()
        for record in records.values():
            for text in record.values():
                self.ambiguous |= _unicode_words(text) ^ _plain_words(text)

    def clean(self, word):
        return word not in self.ambiguous

    def holding(self, word, fields=("title", "body")):
        return {rid for rid in self.records if any(word in self.fields[f][rid] for f in fields)}

    def vocabulary(self, fields=("title", "body")):
        return set().union(*(self.fields[f][rid] for f in fields for rid in self.records))

    def tokens(self):
        """Every token either tokenizer sees, in any field."""
        found = set()
        for record in self.records.values():
            for text in record.values():
                found |= _unicode_words(text) | _plain_words(text)
        return found


@pytest.fixture(scope="module")
def corpus():
    records = package_records()
    # The packages the test extra installs: a fresh machine has them all.
    assert len(records) >= 30
    return Corpus(records)


@pytest.fixture(scope="module")
def search_app(engine_server, corpus):
    """Kinto with the package corpus indexed, once per engine for the whole module."""
    settings = base_settings(engine_server, f"rank{next(_prefixes)}-{id(corpus) % 10**6}")
    app = webtest.TestApp(kinto.main({}, **settings))
    app.put_json(BUCKET, {"permissions": {"read": ["system.Everyone"]}}, headers=ALICE)
    app.put_json(DOCS, {}, headers=ALICE)
    items = list(corpus.records.items())
    for start in range(0, len(items), 25):
        requests = [
            {"method": "PUT", "path": f"{DOCS}/records/{rid}", "body": {"data": data}}
            for rid, data in items[start : start + 25]
        ]
        app.post_json("/v1/batch", {"defaults": {"headers": ALICE}, "requests": requests})
    yield app
    app.delete(BUCKET, headers=ALICE)
    app.app.registry.elasticsearch.index.engine.close()


def hits(app, qs, headers=ALICE, url=SEARCH):
    return app.get(f"{url}?{qs}", headers=headers).json["hits"]["hits"]


def ids(app, qs, **kwargs):
    return [hit["_id"] for hit in hits(app, qs, **kwargs)]


def follow(app, url, headers=ALICE, between_pages=None):
    """Every hit of every page, following Next-Page."""
    seen, page = [], 0
    while url:
        response = app.get(url, headers=headers)
        seen += response.json["hits"]["hits"]
        next_page = response.headers.get("Next-Page")
        url = None
        if next_page:
            parts = urlsplit(next_page)
            url = f"{parts.path}?{parts.query}"
            if between_pages:
                between_pages(page)
        page += 1
    return seen, response.headers["Total-Objects"]


@functools.cache
def _token_lists(text):
    """The tokens of ``text`` by each of the two tokenizers, in order."""
    low = text.lower()
    return re.findall(r"\w+(?:[.:'’]\w+)*", low), [t for t in re.split(r"[^a-z0-9]+", low) if t]


def _slop(tokens, first, second):
    """The least phrase slop that finds ``first second`` in ``tokens`` (Lucene's sloppy
    phrase: in order at distance d costs d - 1, swapped d + 1); None if either is absent."""
    firsts = [i for i, t in enumerate(tokens) if t == first]
    seconds = [i for i, t in enumerate(tokens) if t == second]
    return min((abs(i - (j - 1)) for i in firsts for j in seconds), default=None)


class Ambiguous(Exception):
    """The two tokenizers disagree on what the model computes."""


def proximity(corpus, rid, first, second, fields):
    """2 when a field holds the pair side by side in order, 1 within PROXIMITY_SLOP."""
    found = set()
    for tokens in zip(*(_token_lists(corpus.records[rid][f]) for f in fields), strict=True):
        slops = [_slop(t, first, second) for t in tokens]
        slops = [slop for slop in slops if slop is not None]
        found.add(2 if 0 in slops else 1 if any(s <= PROXIMITY_SLOP for s in slops) else 0)
    if len(found) > 1:
        raise Ambiguous(rid, first, second)
    return found.pop()


@dataclass(frozen=True)
class Criteria:
    """What the README's criteria find in one record, by a model of the corpus."""

    words: int
    proximity: int
    field: int
    exact: bool

    def score(self, units):
        near = units.near * self.proximity + self.field + EXACT_POINTS * self.exact
        return units.word * self.words + near

    def key(self):
        return (self.words, self.proximity, self.field, self.exact)


def criteria(corpus, rid, query_words, weights):
    heaviest = max(weights.values())
    pairs = _pairs(query_words, weights)
    held = [
        field_points(max(w for f, w in weights.items() if word in corpus.fields[f][rid]), heaviest)
        for word in query_words
        if any(word in corpus.fields[f][rid] for f in weights)
    ]
    whole = " ".join(query_words)
    return Criteria(
        words=len(held),
        proximity=sum(
            proximity(corpus, rid, a, b, weights)
            for a, b in itertools.pairwise(query_words[: pairs + 1])
        ),
        field=sum(held),
        exact=any(corpus.records[rid][f].lower() == whole for f in weights),
    )


def _pairs(query_words, weights):
    budget = MAX_PROXIMITY_TERMS // (4 * len(weights))
    return min(len(query_words) - 1, MAX_PROXIMITY_PAIRS, budget)


def units_of(query_words, weights, typos=False):
    return Units.of(len(query_words), _pairs(query_words, weights), typos)


def expected_score(corpus, rid, query_words, weights):
    """The score the README promises, from the criteria the model finds."""
    return criteria(corpus, rid, query_words, weights).score(units_of(query_words, weights))


def _two_title_words(corpus):
    """Two clean words of one title, and the records holding just one of them, in their
    body only (not in their title nor name)."""
    for rid in corpus.records:
        title_words = sorted(w for w in corpus.fields["title"][rid] if len(w) >= 5)
        for pair in itertools.combinations([w for w in title_words if corpus.clean(w)], 2):
            first, second = pair
            single = {
                other
                for other in corpus.holding(first, ("body",)) ^ corpus.holding(second, ("body",))
                if not corpus.holding(first, ("title", "name")) & {other}
                and not corpus.holding(second, ("title", "name")) & {other}
            }
            if single - {rid}:
                return rid, pair, single - {rid}
    raise AssertionError("no title of the corpus has two words found elsewhere alone")


def test_every_word_in_the_title_ranks_above_a_single_word_in_the_body(search_app, corpus):
    rid, query_words, single_in_body = _two_title_words(corpus)
    for qs in (f"q={' '.join(query_words)}&_q_fields=title^3,body", f"q={' '.join(query_words)}"):
        found = ids(search_app, f"{qs}&_limit=100")
        assert rid in found
        assert single_in_body <= set(found)
        assert all(found.index(rid) < found.index(other) for other in single_in_body)


EQUAL = {"name": 1, "title": 1, "body": 1}
WEIGHTED = {"title": 3, "body": 1, "name": 2}


def _q_fields(weights):
    return ",".join(f"{field}^{weight}" for field, weight in weights.items())


CRITERIA_DECIDING = {"words over proximity and fields", "proximity over fields", "exactness"}


def decided_by(ordered):
    """Which precedences of the criteria an order of records shows (``Criteria``, best
    first): a record above another for a criterion while worse in a later one."""
    decided = set()
    for above, below in itertools.combinations(ordered, 2):
        if above.words > below.words and (
            above.proximity < below.proximity or above.field < below.field
        ):
            decided.add("words over proximity and fields")
        elif above.words == below.words and above.proximity > below.proximity:
            if above.field < below.field:
                decided.add("proximity over fields")
        elif above.key()[:3] == below.key()[:3] and above.exact > below.exact:
            decided.add("exactness")
    return decided


def _candidate_queries(corpus):
    """Runs of two or three title words, whole short titles and one-word names."""
    for record in corpus.records.values():
        tokens = _token_lists(record["title"])
        if tokens[0] == tokens[1]:
            for size in (3, 2):
                for start in range(len(tokens[0]) - size + 1):
                    yield tokens[0][start : start + size]
        yield [record["name"].lower()]


def model_queries(corpus):
    """Queries the model reads without ambiguity for every record under both weightings,
    chosen until, by the model, their results show every precedence of the criteria."""
    found, shown = [], set()
    for query_words in _candidate_queries(corpus):
        if len(set(query_words)) < len(query_words) or not all(
            w.isalpha() and corpus.clean(w) for w in query_words
        ):
            continue
        try:
            new = set()
            for weights in (EQUAL, WEIGHTED):
                found_criteria = [
                    criteria(corpus, rid, query_words, weights) for rid in corpus.records
                ]
                ordered = sorted(
                    (c for c in found_criteria if c.words), key=Criteria.key, reverse=True
                )
                new |= decided_by(ordered)
        except Ambiguous:
            continue
        if new - shown:
            found.append(query_words)
            shown |= new
        if shown == CRITERIA_DECIDING:
            return found
    raise AssertionError(f"the corpus shows only {shown} of the criteria deciding")


def ranked(app, query_words, weights):
    """Every hit of the search box, following Next-Page, and the model's criteria."""
    url = f"{SEARCH}?q={' '.join(query_words)}&_q_fields={_q_fields(weights)}&_limit=50"
    return follow(app, url)[0]


def test_records_come_in_score_order_with_ties_in_kintos_order(search_app, corpus):
    for query_words in model_queries(corpus):
        for weights in (EQUAL, WEIGHTED):
            found = ranked(search_app, query_words, weights)
            scores = {
                rid: expected_score(corpus, rid, query_words, weights) for rid in corpus.records
            }
            assert {hit["_id"] for hit in found} == {rid for rid, score in scores.items() if score}
            for hit in found:
                assert hit["_score"] == scores[hit["_id"]]
            for first, second in itertools.pairwise(found):
                assert first["_score"] >= second["_score"]
                # Equal scores: newest first, as GET .../records lists them.
                if first["_score"] == second["_score"]:
                    assert first["_source"]["last_modified"] > second["_source"]["last_modified"]


def test_the_criteria_rank_in_order(search_app, corpus):
    """Words, then proximity, then fields, then exactness: each decides only between
    records the ones before it leave equal, and each has decided somewhere here."""
    decided = set()
    for query_words in model_queries(corpus):
        for weights in (EQUAL, WEIGHTED):
            found = [
                criteria(corpus, hit["_id"], query_words, weights)
                for hit in ranked(search_app, query_words, weights)
            ]
            keys = [c.key() for c in found]
            assert keys == sorted(keys, reverse=True)
            decided |= decided_by(found)
    assert decided == CRITERIA_DECIDING


def test_text_score_scores_a_post_search_as_the_search_box(search_app, corpus):
    for query_words in model_queries(corpus):
        text = " ".join(query_words)
        for weights, operator in ((EQUAL, "or"), (WEIGHTED, "or"), (WEIGHTED, "and")):
            url = f"{SEARCH}?q={text}&_q_fields={_q_fields(weights)}&_q_operator={operator}"
            box, _ = follow(search_app, f"{url}&_limit=50")
            query = text_score(text, list(weights.items()), operator)
            body = {"query": query, "size": 200}
            posted = search_app.post_json(SEARCH, body, headers=ALICE).json["hits"]["hits"]
            assert {h["_id"]: h["_score"] for h in posted} == {h["_id"]: h["_score"] for h in box}
            assert box
    for nothing in ("", "  ", "-- !! ..."):
        assert text_score(nothing, [("title", 1)]) is None
    assert text_score("kinto", []) is None
    with pytest.raises(ValueError):
        text_score("kinto", [("title", 0)])
    with pytest.raises(ValueError):
        text_score("kinto", [("title", 1)], "xor")


def test_text_score_compares_whole_values_only_where_the_mapping_has_keywords(search_app, corpus):
    rid, record = next((r, rec) for r, rec in corpus.records.items() if rec["name"].isalpha())
    weights = [("name", 1)]

    def score(field_types):
        query = text_score(record["name"], weights, field_types=field_types)
        found = search_app.post_json(SEARCH, {"query": query, "size": 200}, headers=ALICE)
        return {hit["_id"]: hit["_score"] for hit in found.json["hits"]["hits"]}[rid]

    mapped = {"name": "text", "name.keyword": "keyword"}
    assert score(None) == score(mapped) == score({"name": "text"}) + EXACT_POINTS


def _phrase_in_a_title(corpus):
    """Two clean words side by side in a title, and the records holding both only apart
    (by more than PROXIMITY_SLOP, in no field near each other)."""
    fields = tuple(EQUAL)
    for rid, record in corpus.records.items():
        tokens = _token_lists(record["title"])
        if tokens[0] != tokens[1]:
            continue
        for first, second in itertools.pairwise(tokens[0]):
            if first == second or not all(
                len(w) >= 4 and corpus.clean(w) for w in (first, second)
            ):
                continue
            both = corpus.holding(first, fields) & corpus.holding(second, fields)
            try:
                apart = {o for o in both if proximity(corpus, o, first, second, fields) == 0}
            except Ambiguous:
                continue
            if apart:
                return rid, (first, second), apart
    raise AssertionError("no title of the corpus holds a pair found apart elsewhere")


def test_a_phrase_in_the_title_ranks_above_the_words_apart(search_app, corpus):
    rid, query_words, apart = _phrase_in_a_title(corpus)
    for weights in (EQUAL, {"title": 1, "body": 1}):
        found = ids(
            search_app, f"q={' '.join(query_words)}&_q_fields={_q_fields(weights)}&_limit=100"
        )
        assert apart <= set(found)
        assert all(found.index(rid) < found.index(other) for other in apart)
    # The same words, swapped: near each other, no longer side by side in order.
    found = hits(
        search_app, f"q={' '.join(reversed(query_words))}&_q_fields=title,body&_limit=100"
    )
    scores = {hit["_id"]: hit["_score"] for hit in found}
    units = units_of(query_words, {"title": 1, "body": 1})
    swapped = criteria(corpus, rid, list(reversed(query_words)), {"title": 1, "body": 1})
    assert swapped.proximity == 1
    assert scores[rid] == swapped.score(units)
    assert all(scores[rid] > scores[other] for other in apart)


def test_an_exact_field_ranks_above_a_longer_one_holding_the_word(search_app, corpus):
    """A package named by a word that other packages' names or titles hold too: its own
    name equals the query, theirs only holds it, every other criterion being equal."""
    tried = 0
    for rid, record in corpus.records.items():
        word = record["name"].lower()
        if not (word.isalpha() and corpus.clean(word)):
            continue
        others = corpus.holding(word, ("name", "title")) - {rid}
        if not others:
            continue
        tried += 1
        weights = {"name": 1, "title": 1}
        found = hits(search_app, f"q={record['name']}&_q_fields=name,title&_limit=100")
        assert found[0]["_id"] == rid
        exact = criteria(corpus, rid, [word], weights)
        for hit in found[1:]:
            other = criteria(corpus, hit["_id"], [word], weights)
            assert not other.exact
            assert hit["_score"] < found[0]["_score"]
            if other.field == exact.field:
                assert found[0]["_score"] - hit["_score"] == EXACT_POINTS
    assert tried >= 2


def test_or_by_default_and_on_demand(search_app, corpus):
    _, (first, second), _ = _two_title_words(corpus)
    either = corpus.holding(first) | corpus.holding(second)
    both = corpus.holding(first) & corpus.holding(second)
    assert both < either
    fields = "&_q_fields=title,body&_limit=100"
    assert set(ids(search_app, f"q={first} {second}{fields}")) == either
    assert set(ids(search_app, f"q={first} {second}{fields}&_q_operator=and")) == both
    # An explicit _sort wins, and the words then filter: every one is required by default.
    sorted_hits = hits(search_app, f"q={first} {second}{fields}&_sort=name")
    assert [h["_id"] for h in sorted_hits] == sorted(both, key=lambda r: corpus.records[r]["name"])
    assert all(isinstance(h["_score"], float) for h in sorted_hits)
    sorted_or = ids(search_app, f"q={first} {second}{fields}&_sort=name&_q_operator=or")
    assert set(sorted_or) == either


def _word_with_a_neighbour(corpus):
    """A clean word of some title, and a clean word one letter longer of other records."""
    vocabulary = corpus.vocabulary()
    for word in sorted(vocabulary):
        longer = word + "s"
        if len(word) >= 6 and longer in vocabulary and corpus.clean(word) and corpus.clean(longer):
            only_longer = corpus.holding(longer) - corpus.holding(word)
            if only_longer and corpus.holding(word):
                return word, only_longer
    raise AssertionError("the corpus has no word next to its plural")


def _typo(word, tokens):
    """``word`` with one letter replaced: one edit away, and no word of the corpus."""
    middle = len(word) // 2
    for letter in "qxzjkv":
        typo = word[:middle] + letter + word[middle + 1 :]
        if typo != word and typo not in tokens:
            return typo
    raise AssertionError(f"no typo of {word!r} is free in the corpus")


def test_typos_are_forgiven_on_demand(search_app, corpus):
    word, _ = _word_with_a_neighbour(corpus)
    typo = _typo(word, corpus.tokens())
    fields = "&_q_fields=title,body&_limit=100"
    assert ids(search_app, f"q={typo}{fields}") == []
    found = hits(search_app, f"q={typo}{fields}&_fuzzy=true")
    assert corpus.holding(word) <= {hit["_id"] for hit in found}
    # One word, found with a typo in a field of the heaviest weight.
    units = units_of([typo], {"title": 1, "body": 1}, typos=True)
    assert {hit["_score"] for hit in found} == {units.word + FIELD_POINTS}


def test_a_word_as_typed_ranks_above_its_neighbours(search_app, corpus):
    word, only_longer = _word_with_a_neighbour(corpus)
    found = ids(search_app, f"q={word}&_q_fields=title,body&_fuzzy=true&_limit=100")
    exact = corpus.holding(word)
    assert only_longer <= set(found)
    assert set(found[: len(exact)]) == exact


def test_a_word_as_typed_in_the_body_ranks_above_a_typo_in_the_title(search_app, corpus):
    """Typos before fields: as typed in the body beats one letter off in a title three
    times heavier."""
    vocabulary = corpus.vocabulary()
    for word in sorted(vocabulary):
        longer = word + "s"
        if len(word) < 6 or longer not in vocabulary or not corpus.clean(word + "s"):
            continue
        if not corpus.clean(word):
            continue
        exact = corpus.holding(word)
        in_body = exact - corpus.holding(word, ("title",))
        typo_in_title = corpus.holding(longer, ("title",)) - exact
        if in_body and typo_in_title:
            break
    else:
        raise AssertionError("no word of the corpus is in a body, and its plural in a title")
    found = ids(search_app, f"q={word}&_q_fields=title^3,body&_fuzzy=true&_limit=100")
    assert typo_in_title <= set(found)
    assert all(found.index(b) < found.index(t) for b in in_body for t in typo_in_title)


def test_the_last_word_may_be_a_prefix(search_app, corpus):
    tokens = corpus.tokens()
    vocabulary = corpus.vocabulary()
    candidates = (
        (w, w[:4])
        for w in sorted(vocabulary)
        if len(w) >= 7 and corpus.clean(w) and w[:4] not in tokens
    )
    word, start = next(candidates)
    completed = {w for w in vocabulary if w.startswith(start) and corpus.clean(w)}
    holding = set().union(*(corpus.holding(w) for w in completed))
    fields = "&_q_fields=title,body&_limit=100"
    assert ids(search_app, f"q={start}{fields}") == []
    found = hits(search_app, f"q={start}{fields}&_prefix=true")
    assert holding <= {hit["_id"] for hit in found}
    units = units_of([start], {"title": 1, "body": 1}, typos=True)
    assert {hit["_score"] for hit in found} == {units.word + FIELD_POINTS}
    # As typed into a search box: whole words, then the start of the one being typed.
    rid, (first, second), _ = _two_title_words(corpus)
    typed = next(second[:n] for n in range(len(second) - 1, 2, -1) if second[:n] not in tokens)
    found = hits(search_app, f"q={first} {typed}&_q_fields=title^3,body&_prefix=true")
    # Both in the title: one as typed, one as a prefix (no phrase: the last is unfinished).
    units = units_of([first, typed], {"title": 3, "body": 1}, typos=True)
    best = 2 * units.word + units.typed + 2 * FIELD_POINTS
    top = {hit["_id"] for hit in found if hit["_score"] == best}
    assert found[0]["_score"] == best
    assert rid in top


def test_highlights_show_the_matched_words_escaped(search_app, corpus):
    word = "https"
    holding_tag = {rid for rid, r in corpus.records.items() if re.search(r"<https?://", r["body"])}
    # The corpus must hold markup next to the word for the escaping to be tested.
    assert holding_tag
    found = hits(search_app, f"q={word}&_q_fields=body&_highlight=title,body&_limit=100")
    assert holding_tag <= {hit["_id"] for hit in found}
    escaped = False
    for hit in found:
        fragments = hit["highlight"]["body"]
        assert any(f"<em>{word}</em>" in fragment.lower() for fragment in fragments)
        for fragment in fragments:
            assert "<" not in re.sub(r"</?em>", "", fragment)
            escaped |= "&lt;" in fragment
        assert "title" not in hit["highlight"]
    assert escaped

    rid, (first, _), _ = _two_title_words(corpus)
    found = hits(search_app, f"q={first}&_highlight=title&_limit=100")
    titles = {hit["_id"]: hit.get("highlight", {}).get("title") for hit in found}
    assert corpus.holding(first, ("title",)) == {r for r, t in titles.items() if t}
    assert f"<em>{first}</em>" in titles[rid][0].lower()


def test_paging_by_relevance_lists_every_match_once_in_order(search_app, corpus):
    _, (first, second), _ = _two_title_words(corpus)
    query = f"q={first} {second} python&_q_fields=title^3,body"
    whole = hits(search_app, f"{query}&_limit=100")
    assert len(whole) > 6
    paged, total = follow(search_app, f"{SEARCH}?{query}&_limit=4")
    assert [hit["_id"] for hit in paged] == [hit["_id"] for hit in whole]
    assert total == str(len(whole))


def test_paging_by_relevance_is_stable_under_concurrent_writes(make_app, corpus):
    """Writes between two pages change every index-wide statistic (BM25 scores would move):
    the records that match throughout still come exactly once, in their order."""
    app = make_app()
    collection = "/v1/buckets/b/collections/c"
    app.put_json("/v1/buckets/b", {}, headers=ALICE)
    app.put_json(collection, {}, headers=ALICE)
    records = list(corpus.records.items())[:40]
    requests = [
        {"method": "PUT", "path": f"{collection}/records/{rid}", "body": {"data": data}}
        for rid, data in records
    ]
    for start in range(0, len(requests), 20):
        app.post_json(
            "/v1/batch", {"defaults": {"headers": ALICE}, "requests": requests[start : start + 20]}
        )
    query = "q=python library for the web&_q_fields=title^3,body,name^2"
    url = f"{collection}/search?{query}"
    before = hits(app, f"{query}&_limit=100", url=f"{collection}/search")
    assert len(before) > 8
    writes = itertools.count()

    def write(page):
        # New records holding the words, and others rewritten without them.
        for _ in range(3):
            n = next(writes)
            app.put_json(
                f"{collection}/records/new{n}",
                {"data": {"title": "python python web library", "body": "for the web " * n}},
                headers=ALICE,
            )
        untouched = [rid for rid, _ in records if rid not in {h["_id"] for h in before}]
        if untouched:
            app.patch_json(
                f"{collection}/records/{untouched[page % len(untouched)]}",
                {"data": {"body": "lorem ipsum " * (page + 1)}},
                headers=ALICE,
            )

    paged, _ = follow(app, f"{url}&_limit=3", between_pages=write)
    paged_ids = [hit["_id"] for hit in paged]
    assert len(paged_ids) == len(set(paged_ids))
    original = [hit["_id"] for hit in before]
    assert [rid for rid in paged_ids if rid in original] == original
    assert [hit["_score"] for hit in paged] == sorted((h["_score"] for h in paged), reverse=True)


def test_without_q_the_options_change_nothing(search_app):
    plain = search_app.get(f"{SEARCH}?_limit=7", headers=ALICE).json["hits"]["hits"]
    optioned = hits(search_app, "_limit=7&_fuzzy=true&_prefix=true&_highlight=title&_q_fields=x")
    assert [h["_id"] for h in optioned] == [h["_id"] for h in plain]
    assert all("highlight" not in h and h["_score"] is None for h in optioned)
    records = search_app.get(f"{DOCS}/records?_limit=7", headers=ALICE).json["data"]
    assert [h["_id"] for h in optioned] == [r["id"] for r in records]


@pytest.mark.parametrize(
    ("qs", "name"),
    [
        ("_q_operator=xor", "_q_operator"),
        ("_fuzzy=maybe", "_fuzzy"),
        ("_prefix=2", "_prefix"),
        ("_q_fields=title^x", "_q_fields"),
        ("_q_fields=^3", "_q_fields"),
        ("_q_fields=title^0", "_q_fields"),
        ("_fuzzy=true&_fuzzy=false", "_fuzzy"),
    ],
)
def test_bad_options_get_kintos_400(search_app, qs, name):
    error = search_app.get(f"{SEARCH}?q=python&{qs}", headers=ALICE, status=400).json
    assert error["errno"] == 107
    assert error["details"][0]["location"] == "querystring"
    assert error["details"][0]["name"] == name


def test_a_relevance_token_does_not_continue_another_order(search_app):
    response = search_app.get(f"{SEARCH}?q=python&_limit=2", headers=ALICE)
    token = dict(p.split("=", 1) for p in urlsplit(response.headers["Next-Page"]).query.split("&"))
    search_app.get(f"{SEARCH}?_token={token['_token']}", headers=ALICE, status=400)


# Private fields and bucket-wide search.

READER = auth("reader")


@pytest.fixture
def private(app):
    app.put_json("/v1/buckets/hr", {}, headers=ALICE)
    reader_id = app.get("/v1/", headers=READER).json["user"]["id"]
    for cid in ("staff", "alumni"):
        app.put_json(
            f"/v1/buckets/hr/collections/{cid}",
            {"data": {"index:private_fields": ["secret"]}, "permissions": {"read": [reader_id]}},
            headers=ALICE,
        )
    records = {
        "staff": {"a1": ("ann smith engineer", "ann salary"), "a2": ("bob", "ann bonus")},
        "alumni": {"a3": ("ann jones", "nothing")},
    }
    for cid, items in records.items():
        for rid, (title, secret) in items.items():
            app.put_json(
                f"/v1/buckets/hr/collections/{cid}/records/{rid}",
                {"data": {"title": title, "secret": secret}},
                headers=ALICE,
            )
    return app


@pytest.mark.parametrize(
    "url", ["/v1/buckets/hr/collections/staff/search", "/v1/buckets/hr/search"]
)
def test_private_fields_are_neither_searched_nor_highlighted(private, url):
    reader_hits = hits(private, "q=ann&_highlight=title", headers=READER, url=url)
    assert {h["_id"] for h in reader_hits} <= {"a1", "a3"}
    assert "a1" in {h["_id"] for h in reader_hits}
    for hit in reader_hits:
        assert set(hit["highlight"]) == {"title"}
        assert "secret" not in hit["_source"]
    for qs in ("_highlight=secret", "_highlight=*", "_highlight=sec*", "_q_fields=secret"):
        error = private.get(f"{url}?q=ann&{qs}", headers=READER, status=400).json
        assert error["details"][0]["location"] == "querystring"
        assert "private" in error["message"]
    assert ids(private, "q=salary&_fuzzy=true&_prefix=true", headers=READER, url=url) == []
    # Writers see and search them.
    writer_hits = hits(private, "q=salary&_highlight=secret", url=url)
    assert [h["_id"] for h in writer_hits] == ["a1"]
    assert writer_hits[0]["highlight"]["secret"] == ["ann <em>salary</em>"]


def test_bucket_search_ranks_across_collections(private):
    url = "/v1/buckets/hr/search"
    found = hits(private, "q=ann smith&_q_fields=title&_highlight=title", url=url)
    assert [(h["_id"], h["_collection"]) for h in found] == [
        ("a1", "staff"),
        ("a3", "alumni"),
    ]
    assert found[0]["_score"] > found[1]["_score"]
    assert found[0]["highlight"]["title"] == ["<em>ann</em> <em>smith</em> engineer"]
    paged, total = follow(private, f"{url}?q=ann smith&_q_fields=title&_limit=1")
    assert [h["_id"] for h in paged] == ["a1", "a3"]
    assert total == "2"


def test_the_readme_quick_start_search(app):
    """The quick start's search box: a typo forgiven, the words found highlighted."""
    articles = "/v1/buckets/blog/collections/articles"
    app.put_json("/v1/buckets/blog", {}, headers=ALICE)
    app.put_json(articles, {}, headers=ALICE)
    data = {"title": "Kinto meets search", "tags": ["kinto", "search"]}
    app.post_json(f"{articles}/records", {"data": data}, headers=ALICE)
    app.post_json(f"{articles}/records", {"data": {"title": "Search engines"}}, headers=ALICE)
    qs = "q=meets+serch&_q_fields=title^3,tags&_fuzzy=true&_highlight=title"
    found = hits(app, qs, url=f"{articles}/search")
    assert [hit["_source"]["title"] for hit in found] == ["Kinto meets search", "Search engines"]
    # Both words in the title, "meets" as typed, "serch" with a typo, not side by side.
    units = units_of(["meets", "serch"], {"title": 3, "tags": 1}, typos=True)
    assert found[0]["_score"] == 2 * units.word + units.typed + 2 * FIELD_POINTS
    assert "<em>meets</em>" in found[0]["highlight"]["title"][0]


def test_a_reader_of_some_records_ranks_only_them(app):
    """Typos and prefixes expand to every term within reach, none chosen by the terms of
    records the reader cannot read: their results depend on their own records only."""
    collection = "/v1/buckets/b/collections/c"
    app.put_json("/v1/buckets/b", {}, headers=ALICE)
    app.put_json(collection, {}, headers=ALICE)
    reader_id = app.get("/v1/", headers=READER).json["user"]["id"]
    titles = {"s1": "kinto search", "s2": "kinto", "h1": "kinto search box", "h2": "searches"}
    for rid, title in titles.items():
        permissions = {"read": [reader_id]} if rid.startswith("s") else {}
        app.put_json(
            f"{collection}/records/{rid}",
            {"data": {"title": title}, "permissions": permissions},
            headers=ALICE,
        )
    url = f"{collection}/search"
    for qs in ("q=kinto serch&_fuzzy=true", "q=kinto sea&_prefix=true", "q=kinto search"):
        found = hits(app, qs, headers=READER, url=url)
        assert [hit["_id"] for hit in found] == ["s1", "s2"]
        assert found[0]["_score"] > found[1]["_score"]
        response = app.get(f"{url}?{qs}&_limit=1", headers=READER)
        assert response.headers["Total-Objects"] == "2"


def test_typos_and_prefixes_expand_the_words_not_the_syntax(app):
    collection = "/v1/buckets/b/collections/c"
    app.put_json("/v1/buckets/b", {}, headers=ALICE)
    app.put_json(collection, {}, headers=ALICE)
    titles = {"k1": "kinto search", "k2": "kinto and spam", "o1": "this and that", "o2": "nothing"}
    for rid, title in titles.items():
        app.put_json(f"{collection}/records/{rid}", {"data": {"title": title}}, headers=ALICE)
    url = f"{collection}/search"
    for options, word in (
        ("_fuzzy=true", "serch"),
        ("_prefix=true", "sea"),
        ("_fuzzy=true&_prefix=true", "sea"),
    ):
        found = ids(app, f"q=title:kinto AND {word}&_q_operator=or&{options}", url=url)
        assert set(found) == {"k1", "k2"}
        assert found[0] == "k1"


def test_the_ranked_search_stays_within_the_guards_cost_limits(make_app):
    """Every clause the search box adds (words, typos, prefixes) counts against the
    operator's ``max_clauses``, and a search over it is Kinto's 400 naming the limit."""
    app = make_app(**{"elasticsearch.max_clauses": "40"})
    collection = "/v1/buckets/b/collections/c"
    app.put_json("/v1/buckets/b", {}, headers=ALICE)
    app.put_json(collection, {}, headers=ALICE)
    app.put_json(f"{collection}/records/r1", {"data": {"title": "kinto search"}}, headers=ALICE)
    url = f"{collection}/search"
    assert ids(app, "q=kinto search", url=url) == ["r1"]
    words = " ".join(["kinto", "search", "box", "relevance", "ranking", "typos"])
    error = app.get(f"{url}?q={words}&_fuzzy=true&_prefix=true", headers=ALICE, status=400).json
    assert "max_clauses" in error["message"]
    assert error["details"][0]["location"] == "querystring"
