import pytest

from tests.conftest import auth

COLLECTION = "/v1/buckets/shop/collections/items"
FACETS = f"{COLLECTION}/search/facets"
ITEMS = [
    {"status": "new", "published": True, "price": 10, "title": "alpha"},
    {"status": "new", "published": False, "price": 20, "title": "beta"},
    {"status": "sold", "published": True, "price": 10, "title": "gamma"},
    {"status": "sold", "published": True, "price": 30, "title": "delta"},
    {"status": "archived", "published": False, "price": 40, "title": "epsilon"},
]


@pytest.fixture
def shop(app, alice):
    app.put_json("/v1/buckets/shop", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    for i, item in enumerate(ITEMS):
        app.put_json(f"{COLLECTION}/records/i{i}", {"data": item}, headers=alice)
    return app


def _by_name(response):
    return {field["name"]: field for field in response.json["fields"]}


def test_facets_list_fields_types_and_values(shop, alice):
    fields = _by_name(shop.get(f"{FACETS}?limit=3", headers=alice))
    assert fields["status"]["type"] == "text" and fields["status"]["sortable"]
    assert fields["status"]["values"] == [
        {"value": "new", "count": 2},
        {"value": "sold", "count": 2},
        {"value": "archived", "count": 1},
    ]
    assert fields["status"]["complete"] is True
    assert sorted(v["value"] for v in fields["published"]["values"]) == [False, True]
    assert fields["price"]["type"] == "long"
    # Five titles, three values asked: a client learns the list is not complete.
    assert len(fields["title"]["values"]) == 3 and fields["title"]["complete"] is False
    # Kinto's own fields are listed, but not their (unique) values.
    assert fields["id"]["sortable"] and "values" not in fields["id"]
    assert "status.keyword" not in fields
    assert shop.get(FACETS, headers=alice).json["total"] == 5


def test_facets_options_select_fields_and_skip_values(shop, alice):
    fields = _by_name(shop.get(f"{FACETS}?fields=status,price&limit=0", headers=alice))
    assert set(fields) == {"status", "price"}
    assert all("values" not in field for field in fields.values())


@pytest.mark.parametrize("limit", ["-1", "abc", "101"])
def test_a_bad_limit_is_a_400(shop, alice, limit):
    response = shop.get(f"{FACETS}?limit={limit}", headers=alice, status=400)
    assert response.json["details"][0]["name"] == "limit"


def test_counts_never_reveal_records_the_caller_cannot_read(shop, alice):
    bob_id = shop.get("/v1/", headers=auth("bob")).json["user"]["id"]
    shop.patch_json(f"{COLLECTION}/records/i4", {"permissions": {"read": [bob_id]}}, headers=alice)
    response = shop.get(FACETS, headers=auth("bob"))
    fields = _by_name(response)
    assert response.json["total"] == 1
    assert fields["status"]["values"] == [{"value": "archived", "count": 1}]
    assert fields["price"]["values"] == [{"value": 40, "count": 1}]


def test_facets_permissions_match_records(shop):
    shop.get(FACETS, status=401)
    shop.get(FACETS, headers=auth("mallory"), status=403)


def test_facets_list_only_fields_of_records_the_caller_may_read(shop, alice):
    """The mapping names every field the index ever saw: a field that only unreadable (or
    deleted) records hold must not be listed, nor its values."""
    bob = auth("bob")
    bob_id = shop.get("/v1/", headers=bob).json["user"]["id"]
    shop.put_json(f"{COLLECTION}/records/secret", {"data": {"acquisition_target": "zzcorp"}},
                  headers=alice)  # fmt: skip
    shop.patch_json(f"{COLLECTION}/records/i0", {"permissions": {"read": [bob_id]}},
                    headers=alice)  # fmt: skip
    names = set(_by_name(shop.get(FACETS, headers=bob)))
    assert "acquisition_target" not in names and "status" in names
    assert "zzcorp" not in shop.get(FACETS, headers=bob).text
    assert "acquisition_target" in _by_name(shop.get(FACETS, headers=alice))
    # Deleted, the record leaves its field in the mapping, and no longer in the facets.
    shop.delete(f"{COLLECTION}/records/secret", headers=alice)
    assert "acquisition_target" not in _by_name(shop.get(FACETS, headers=alice))
