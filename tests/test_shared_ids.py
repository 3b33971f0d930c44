"""Shared records, on PostgreSQL, where Kinto finds them with SQL LIKE.

Kinto 26 looks up the records shared with a user by a LIKE pattern built from the
collection's URI, and ``_`` is a LIKE wildcard: a reader who creates ``myXbkt/seXc`` with a
record ``target1`` is given ``target1`` as a shared id of ``my_bkt/se_c``, someone else's
collection (see KINTO26.md). Search checks each shared id against the exact URI.
"""

from tests.conftest import auth

MALLORY = auth("mallory")
TARGET = "/v1/buckets/my_bkt/collections/se_c"
LOOK_ALIKE = "/v1/buckets/myXbkt/collections/seXc"


def test_look_alike_ids_share_nothing(pg_app, alice):
    app = pg_app
    app.put_json("/v1/buckets/my_bkt", {}, headers=alice)
    app.put_json(TARGET, {}, headers=alice)
    app.put_json(f"{TARGET}/records/target1", {"data": {"title": "zzsecretzz"}}, headers=alice)
    app.put_json(f"{TARGET}/records/other", {"data": {"title": "public"}}, headers=alice)
    # Mallory's own bucket, collection and record, with ids that LIKE confuses.
    app.put_json("/v1/buckets/myXbkt", {}, headers=MALLORY)
    app.put_json(LOOK_ALIKE, {}, headers=MALLORY)
    app.put_json(f"{LOOK_ALIKE}/records/target1", {"data": {"title": "mine"}}, headers=MALLORY)

    for response in (
        app.post_json(f"{TARGET}/search", {}, headers=MALLORY, status="*"),
        app.get(f"{TARGET}/search", headers=MALLORY, status="*"),
        app.get(f"{TARGET}/search/facets", headers=MALLORY, status="*"),
        app.post_json("/v1/buckets/my_bkt/search", {}, headers=MALLORY, status="*"),
    ):
        assert response.status_int == 403, response.text
        assert "zzsecretzz" not in response.text
    # Her own collection is hers as ever.
    hits = app.post_json(f"{LOOK_ALIKE}/search", {}, headers=MALLORY).json["hits"]["hits"]
    assert [hit["_source"]["title"] for hit in hits] == ["mine"]

    # A record really shared with her is still found, and only that one.
    mallory_id = app.get("/v1/", headers=MALLORY).json["user"]["id"]
    app.patch_json(f"{TARGET}/records/other", {"permissions": {"read": [mallory_id]}},
                   headers=alice)  # fmt: skip
    response = app.post_json(f"{TARGET}/search", {}, headers=MALLORY)
    assert [hit["_id"] for hit in response.json["hits"]["hits"]] == ["other"]
    assert "zzsecretzz" not in response.text
