import pytest

from tests.conftest import auth

COLLECTION = "/v1/buckets/hr/collections/staff"
SEARCH = f"{COLLECTION}/search"
PEOPLE = {
    "p1": {"name": "ann", "salary": 5000, "contact": {"email": "ann@secret.org", "desk": "1A"}},
    "p2": {"name": "bob", "salary": 7000, "contact": {"email": "bob@secret.org", "desk": "2B"}},
}
READER = auth("reader")


def user_id(app, headers):
    return app.get("/v1/", headers=headers).json["user"]["id"]


@pytest.fixture
def hr(app, alice):
    app.put_json("/v1/buckets/hr", {}, headers=alice)
    app.put_json(
        COLLECTION,
        {
            "data": {"index:private_fields": ["salary", "contact.email"]},
            "permissions": {"read": [user_id(app, READER)]},
        },
        headers=alice,
    )
    for record_id, person in PEOPLE.items():
        app.put_json(f"{COLLECTION}/records/{record_id}", {"data": person}, headers=alice)
    return app


def _sources(response):
    return {hit["_id"]: hit["_source"] for hit in response.json["hits"]["hits"]}


def test_readers_do_not_see_private_fields(hr):
    sources = _sources(hr.post_json(SEARCH, {}, headers=READER))
    assert sources["p1"] == {
        "id": "p1", "name": "ann", "contact": {"desk": "1A"},
        "last_modified": sources["p1"]["last_modified"],
    }  # fmt: skip
    # Asking for them explicitly does not help.
    sources = _sources(hr.post_json(SEARCH, {"_source": ["salary", "name"]}, headers=READER))
    assert sources["p1"] == {"name": "ann"}
    hits = hr.post_json(SEARCH, {"_source": ["salary"]}, headers=READER).json["hits"]["hits"]
    assert all("_source" not in hit for hit in hits)


def test_writers_see_and_query_private_fields(hr, alice):
    body = {"query": {"range": {"salary": {"gte": 6000}}}}
    sources = _sources(hr.post_json(SEARCH, body, headers=alice))
    assert list(sources) == ["p2"] and sources["p2"]["salary"] == 7000
    assert _sources(hr.get(f"{SEARCH}?q=contact.email:ann*", headers=alice)).keys() == {"p1"}


@pytest.mark.parametrize(
    "body,location",
    [
        ({"query": {"range": {"salary": {"gte": 6000}}}}, "query.range.salary"),
        ({"query": {"term": {"contact.email.keyword": "ann@secret.org"}}},
         "query.term.contact.email.keyword"),
        ({"query": {"bool": {"filter": [{"exists": {"field": "salary"}}]}}},
         "query.bool.filter[0].exists.field"),
        ({"aggs": {"pay": {"max": {"field": "salary"}}}}, "aggs.pay.max.field"),
        ({"aggs": {"t": {"terms": {"field": "contact.email.keyword"}}}},
         "aggs.t.terms.field"),
        ({"sort": [{"salary": "desc"}]}, "sort[0].salary"),
        ({"sort": "salary"}, "sort"),
        ({"highlight": {"fields": {"*": {}}}, "query": {"match": {"name": "ann"}}},
         "highlight.fields.*"),
        ({"fields": ["sal*"]}, "fields[0]"),
        ({"docvalue_fields": ["contact.*.keyword"]}, "docvalue_fields[0]"),
        ({"collapse": {"field": "salary"}}, "collapse.field"),
        ({"query": {"query_string": {"query": "salary:>6000"}}}, "query.query_string"),
        ({"query": {"multi_match": {"query": "secret"}}}, "query.multi_match"),
        ({"query": {"multi_match": {"query": "x", "fields": ["name", "contact.*"]}}},
         "query.multi_match.fields[1]"),
        ({"query": {"simple_query_string": {"query": "secret"}}},
         "query.simple_query_string"),
    ],
)  # fmt: skip
def test_readers_cannot_probe_private_fields(hr, alice, body, location):
    response = hr.post_json(SEARCH, body, headers=READER, status=400)
    assert response.json["errno"] == 107
    assert f"(at {location})" in response.json["message"]
    assert response.json["details"][0]["name"] == location
    # The same body is fine for a writer.
    hr.post_json(SEARCH, body, headers=alice)


def test_readers_querystring_search_skips_private_fields(hr, alice):
    assert _sources(hr.get(f"{SEARCH}?q=secret.org", headers=READER)) == {}
    assert _sources(hr.get(f"{SEARCH}?q=ann", headers=READER)).keys() == {"p1"}
    assert _sources(hr.get(f"{SEARCH}?q=secret.org", headers=alice)).keys() == {"p1", "p2"}


def test_readers_of_shared_records_are_kept_out_too(hr, alice):
    sharer = auth("sharer")
    hr.patch_json(f"{COLLECTION}/records/p1", {"permissions": {"read": [user_id(hr, sharer)]}},
                  headers=alice)  # fmt: skip
    assert _sources(hr.post_json(SEARCH, {}, headers=sharer))["p1"].get("salary") is None
    hr.post_json(SEARCH, {"sort": ["salary"]}, headers=sharer, status=400)


def test_facets_hide_private_fields_from_readers(hr, alice):
    names = {f["name"] for f in hr.get(f"{SEARCH}/facets", headers=READER).json["fields"]}
    assert "salary" not in names and "contact.email" not in names and "contact.desk" in names
    names = {f["name"] for f in hr.get(f"{SEARCH}/facets", headers=alice).json["fields"]}
    assert {"salary", "contact.email"} <= names


def test_bucket_search_hides_private_fields_from_readers(hr, alice):
    response = hr.post_json("/v1/buckets/hr/search", {}, headers=READER)
    assert all("salary" not in hit["_source"] for hit in response.json["hits"]["hits"])
    hr.post_json("/v1/buckets/hr/search", {"sort": ["salary"]}, headers=READER, status=400)
    assert hr.get("/v1/buckets/hr/search?q=secret.org", headers=READER).json["hits"]["hits"] == []
    writer = hr.post_json("/v1/buckets/hr/search", {"sort": ["salary"]}, headers=alice)
    assert [hit["_id"] for hit in writer.json["hits"]["hits"]] == ["p1", "p2"]


def test_changing_the_list_takes_effect_at_once(hr, alice):
    """Private fields are enforced at query time: no document needs rebuilding."""
    hr.patch_json(COLLECTION, {"data": {"index:private_fields": ["name"]}}, headers=alice)
    sources = _sources(hr.post_json(SEARCH, {"sort": ["salary"]}, headers=READER))
    assert sources["p1"]["salary"] == 5000 and "name" not in sources["p1"]
    hr.post_json(SEARCH, {"query": {"match": {"name": "ann"}}}, headers=READER, status=400)
