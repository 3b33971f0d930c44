"""``index:settings``: a collection's analysis, checked before it is stored, applied by a rebuild.

The recipes are the README's, run on both test servers: each search finds a record only
through the analysis the collection chose (the same text in a field left to the default
analysis is not found).
"""

import pytest

from kinto_elasticsearch.index import analysis, naming
from kinto_elasticsearch.sync.catchup import CatchUp
from tests.conftest import indexed

BUCKET = "/v1/buckets/shop"
COLLECTION = f"{BUCKET}/collections/items"
SEARCH = f"{COLLECTION}/search"

FRENCH = {
    "settings": {
        "analysis": {
            "filter": {
                "french_elision": {
                    "type": "elision",
                    "articles_case": True,
                    "articles": ["l", "d", "j", "qu", "n", "s", "t", "c", "m"],
                },
                "french_stemmer": {"type": "stemmer", "language": "light_french"},
            },
            "analyzer": {
                "french_text": {
                    "type": "custom",
                    "tokenizer": "standard",
                    "filter": ["french_elision", "lowercase", "french_stemmer"],
                }
            },
        }
    },
    "schema": {"properties": {"title": {"type": "text", "analyzer": "french_text"}}},
    "records": {"horses": "Les chevaux du village"},
    "query": {"match": {"{field}": "cheval"}},
    "found": ["horses"],
}

ACCENT_FOLDING = {
    "settings": {
        "analysis": {
            "analyzer": {
                "folded": {
                    "type": "custom",
                    "tokenizer": "standard",
                    "filter": ["lowercase", "asciifolding"],
                }
            }
        }
    },
    "schema": {"properties": {"title": {"type": "text", "analyzer": "folded"}}},
    "records": {"dessert": "Crème brûlée", "other": "Tarte"},
    "query": {"match": {"{field}": "creme brulee"}},
    "found": ["dessert"],
}

AUTOCOMPLETE = {
    "settings": {
        "analysis": {
            "filter": {"prefixes": {"type": "edge_ngram", "min_gram": 2, "max_gram": 15}},
            "analyzer": {
                "autocomplete": {
                    "type": "custom",
                    "tokenizer": "standard",
                    "filter": ["lowercase", "prefixes"],
                }
            },
        }
    },
    "schema": {
        "properties": {
            "title": {"type": "text", "analyzer": "autocomplete", "search_analyzer": "standard"}
        }
    },
    "records": {"kinto": "Kinto server", "other": "Kitchen"},
    "query": {"match": {"{field}": "kint"}},
    "found": ["kinto"],
}

SYNONYMS = {
    "settings": {
        "analysis": {
            "filter": {"synonyms": {"type": "synonym", "synonyms": ["laptop, notebook"]}},
            "analyzer": {
                "with_synonyms": {
                    "type": "custom",
                    "tokenizer": "standard",
                    "filter": ["lowercase", "synonyms"],
                }
            },
        }
    },
    "schema": {
        "properties": {
            "title": {"type": "text", "analyzer": "standard", "search_analyzer": "with_synonyms"}
        }
    },
    "records": {"computer": "Cheap laptop", "other": "Paper"},
    "query": {"match": {"{field}": "notebook"}},
    "found": ["computer"],
}

RECIPES = {
    "language": FRENCH,
    "accent-folding": ACCENT_FOLDING,
    "autocomplete": AUTOCOMPLETE,
    "synonyms": SYNONYMS,
}

# Analysis that a test server accepts and stores but does not apply: there the test checks
# that the index holds the collection's settings, and leaves the search to the other server
# (and to a real cluster, named by KINTO_ELASTICSEARCH_TEST_HOSTS, where it runs in full).
NOT_APPLIED_BY_EMULATOR = {
    ("opensearch", "synonyms"),
    # Both match and aggregate through a normalizer, but sort on the raw values.
    ("opensearch", "normalized sort"),
    ("elasticsearch", "normalized sort"),
}


def applies(engine_server, feature):
    """Whether the server applies ``feature`` (a real cluster does, by definition)."""
    emulated = engine_server.process is not None
    return not emulated or (engine_server.engine, feature) not in NOT_APPLIED_BY_EMULATOR


def _collection(app, alice, settings, schema=None, status=None):
    data = {"index:settings": settings}
    if schema is not None:
        data["index:schema"] = schema
    return app.put_json(COLLECTION, {"data": data}, headers=alice, status=status)


@pytest.fixture
def shop(app, alice):
    app.put_json(BUCKET, {}, headers=alice)
    return app


def _hits(response):
    return [hit["_id"] for hit in response.json["hits"]["hits"]]


def _index_settings(engine, index_prefix):
    alias = naming.alias_name(index_prefix, "shop", "items")
    found = engine.call("indices.get_settings", index=alias)
    (settings,) = found.values()
    return settings["settings"]["index"]


@pytest.mark.parametrize("recipe", RECIPES.values(), ids=RECIPES.keys())
def test_a_recipe_finds_through_the_collections_analysis(
    shop, alice, recipe, engine, engine_server, index_prefix
):
    _collection(shop, alice, recipe["settings"], recipe["schema"])
    for record_id, text in recipe["records"].items():
        record = {"title": text, "plain": text}
        shop.put_json(f"{COLLECTION}/records/{record_id}", {"data": record}, headers=alice)
    stored = _index_settings(engine, index_prefix)["analysis"]
    for section, components in recipe["settings"]["analysis"].items():
        assert set(stored[section]) == set(components)
    if recipe is SYNONYMS and not applies(engine_server, "synonyms"):
        return

    def search(field):
        query = {k: {field: v["{field}"]} for k, v in recipe["query"].items()}
        return _hits(shop.post_json(SEARCH, {"query": query}, headers=alice))

    assert sorted(search("title")) == recipe["found"]
    # The same text, left to the default analysis, is not found.
    assert search("plain") == []


def test_case_insensitive_sort_with_a_normalizer(shop, alice, engine_server):
    settings = {
        "analysis": {
            "normalizer": {"folded": {"type": "custom", "filter": ["lowercase", "asciifolding"]}}
        }
    }
    schema = {
        "properties": {
            "name": {
                "type": "keyword",
                "fields": {"sort": {"type": "keyword", "normalizer": "folded"}},
            }
        }
    }
    _collection(shop, alice, settings, schema)
    names = {"b": "Banana", "a": "apple", "e": "Éclair", "f": "fig", "c": "cherry"}
    for record_id, name in names.items():
        shop.put_json(f"{COLLECTION}/records/{record_id}", {"data": {"name": name}}, headers=alice)
    # The normalized field matches whatever the case and accents; the raw one does not.
    for field, found in [("name.sort", ["b"]), ("name", [])]:
        body = {"query": {"term": {field: "BANANA"}}}
        assert _hits(shop.post_json(SEARCH, body, headers=alice)) == found
    # Without the normalizer, upper case sorts first and accents last.
    raw = shop.post_json(SEARCH, {"sort": [{"name": "asc"}]}, headers=alice)
    assert _hits(raw) == ["b", "a", "c", "f", "e"]
    if not applies(engine_server, "normalized sort"):
        return
    folded = shop.post_json(SEARCH, {"sort": [{"name.sort": "asc"}]}, headers=alice)
    assert _hits(folded) == ["a", "b", "c", "e", "f"]
    # Kinto's querystring sorts on it too.
    assert _hits(shop.get(f"{SEARCH}?_sort=name.sort", headers=alice)) == ["a", "b", "c", "e", "f"]


def test_changed_settings_are_applied_by_a_rebuild(shop, alice, engine, index_prefix):
    shop.put_json(COLLECTION, {}, headers=alice)
    shop.put_json(f"{COLLECTION}/records/r1", {"data": {"title": "Crème brûlée"}}, headers=alice)
    query = {"query": {"match": {"title": "creme"}}}
    assert _hits(shop.post_json(SEARCH, query, headers=alice)) == []
    before = set(indexed(engine, index_prefix, "shop", "items"))

    patch = {
        "index:settings": ACCENT_FOLDING["settings"],
        "index:schema": ACCENT_FOLDING["schema"],
    }
    shop.patch_json(COLLECTION, {"data": patch}, headers=alice)
    # The write's rebuild, done in the background: read-your-writes waited for it.
    assert _hits(shop.post_json(SEARCH, query, headers=alice)) == ["r1"]
    report = CatchUp(shop.app.registry, overlap_ms=0).run()
    assert report.rebuilt == []
    assert set(indexed(engine, index_prefix, "shop", "items")) == before
    assert "folded" in _index_settings(engine, index_prefix)["analysis"]["analyzer"]
    # A new generation behind the alias: the first one is gone.
    alias = naming.alias_name(index_prefix, "shop", "items")
    pattern = naming.collection_pattern(index_prefix, "shop", "items")
    ((physical, aliases),) = shop.app.registry.elasticsearch.index.indices.listed(pattern).items()
    assert aliases == [alias] and physical != f"{alias}.0"


@pytest.mark.parametrize(
    "settings,location,fragment",
    [
        ({"number_of_shards": 3}, "index:settings.number_of_shards", "only analysis"),
        ({"refresh_interval": "1ms"}, "index:settings.refresh_interval", "operator"),
        ({"index": {"analysis": {}}}, "index:settings.index", "only analysis"),
        ({"analysis": {"tokenizers": {}}}, "index:settings.analysis.tokenizers", "unknown"),
        (
            {"analysis": {"filter": {"s": {"type": "synonym", "synonyms_path": "/etc/passwd"}}}},
            "index:settings.analysis.filter.s.synonyms_path",
            "outside the index",
        ),
        (
            {"analysis": {"filter": {"s": {"type": "synonym_graph", "synonyms_set": "x"}}}},
            "index:settings.analysis.filter.s.synonyms_set",
            "outside the index",
        ),
        (
            {
                "analysis": {
                    "filter": {"c": {"type": "condition", "filter": ["lowercase"], "script": {}}}
                }
            },
            "index:settings.analysis.filter.c",
            "runs a script",
        ),
        ([], "index:settings", "must be an object"),
    ],
)
def test_settings_a_collection_may_not_choose_are_refused(
    shop, alice, settings, location, fragment
):
    response = _collection(shop, alice, settings, status=400)
    error = response.json
    assert (error["errno"], error["error"]) == (107, "Invalid parameters")
    assert error["details"][0]["name"] == location
    assert fragment in error["message"]


ENGINE_REFUSES = {"analysis": {"filter": {"odd": {"type": "no-such-filter"}}}}


def test_analysis_the_engine_refuses_is_a_400(shop, alice):
    response = _collection(shop, alice, ENGINE_REFUSES, status=400)
    assert response.json["details"][0]["name"] == "index:settings"
    assert "The search engine refused index:settings" in response.json["message"]
    assert "no-such-filter" in response.json["message"]


def test_a_refused_collection_is_not_stored(pg_app, alice):
    # On PostgreSQL, Kinto rolls the write back (its memory backend keeps what it wrote).
    pg_app.put_json(BUCKET, {}, headers=alice)
    for settings in [{"number_of_shards": 3}, ENGINE_REFUSES]:
        _collection(pg_app, alice, settings, status=400)
        pg_app.get(COLLECTION, headers=alice, status=404)
    _collection(pg_app, alice, ACCENT_FOLDING["settings"], ACCENT_FOLDING["schema"])
    patch = {"data": {"index:settings": ENGINE_REFUSES}}
    pg_app.patch_json(COLLECTION, patch, headers=alice, status=400)
    stored = pg_app.get(COLLECTION, headers=alice).json["data"]
    assert stored["index:settings"] == ACCENT_FOLDING["settings"]


def test_a_schema_naming_an_analyzer_the_settings_lack_is_a_400(shop, alice):
    _collection(shop, alice, ACCENT_FOLDING["settings"], ACCENT_FOLDING["schema"])
    schema = {"properties": {"title": {"type": "text", "analyzer": "no_such_analyzer"}}}
    response = shop.patch_json(
        COLLECTION, {"data": {"index:schema": schema}}, headers=alice, status=400
    )
    assert response.json["details"][0]["name"] == "index:schema"
    assert "no_such_analyzer" in response.json["message"]
    # Removing an analyzer the schema uses is the settings' fault.
    response = shop.patch_json(
        COLLECTION, {"data": {"index:settings": {}}}, headers=alice, status=400
    )
    assert response.json["details"][0]["name"] == "index:settings"


def test_while_the_engine_is_unreachable_the_collection_is_stored(make_app, alice):
    app = make_app(**{"elasticsearch.hosts": "http://127.0.0.1:1"})
    app.put_json(BUCKET, {}, headers=alice)
    _collection(app, alice, ACCENT_FOLDING["settings"], ACCENT_FOLDING["schema"], status=201)
    # What needs no engine is still checked.
    patch = {"data": {"index:settings": {"number_of_shards": 9}}}
    response = app.patch_json(COLLECTION, patch, headers=alice, status=400)
    assert response.json["details"][0]["name"] == "index:settings.number_of_shards"


def test_the_operators_settings_go_to_every_index(make_app, alice, engine, index_prefix):
    app = make_app(
        **{"elasticsearch.number_of_shards": "2", "elasticsearch.number_of_replicas": "0"}
    )
    app.put_json(BUCKET, {}, headers=alice)
    _collection(app, alice, ACCENT_FOLDING["settings"], ACCENT_FOLDING["schema"])
    settings = _index_settings(engine, index_prefix)
    assert (settings["number_of_shards"], settings["number_of_replicas"]) == ("2", "0")
    assert "folded" in settings["analysis"]["analyzer"]


def test_tenant_settings_leave_out_what_is_not_allowed():
    allowed = {"analysis": {"analyzer": {"a": {"type": "standard"}}}}
    assert analysis.tenant_settings({"index:settings": allowed}) == allowed
    assert analysis.tenant_settings({"index:settings": {"number_of_shards": 1}}) == {}
    assert analysis.tenant_settings({}) == {}
