"""Path ids Kinto's own routes refuse (``*``, patterns, characters outside Kinto's id
rules) get from the search endpoints exactly what ``GET .../records`` (for a bucket's
search, ``GET .../collections``) answers the same caller: status and Kinto's error body,
compared with the real endpoint's answer, not written down here."""

import pytest

from tests.conftest import auth

# Alice owns bucket b and its collection c; bob owns nothing: Kinto's permission backend
# reads a "*" in a path as a wildcard, which only an owner's permissions can match.
CALLERS = {"anonymous": {}, "alice": auth("alice"), "bob": auth("bob")}
COLLECTION_IDS = [
    ("*", "c"),
    ("*", "*"),
    ("b*", "c"),
    ("b", "*"),
    ("a.b", "c"),
    ("b", "a.b"),
    ("%C3%A9t%C3%A9", "c"),
    ("-x", "c"),
    ("_x", "_c"),
    ("nope", "c"),
]


@pytest.fixture
def owned(app):
    app.put_json("/v1/buckets/b", {}, headers=CALLERS["alice"])
    app.put_json("/v1/buckets/b/collections/c", {}, headers=CALLERS["alice"])
    return app


def _answer(response):
    return response.status_int, response.json, response.headers.get("WWW-Authenticate")


@pytest.mark.parametrize("bucket_id,collection_id", COLLECTION_IDS)
def test_collection_search_answers_as_the_records_endpoint(owned, bucket_id, collection_id):
    base = f"/v1/buckets/{bucket_id}/collections/{collection_id}"
    for caller, headers in CALLERS.items():
        records = owned.get(f"{base}/records", headers=headers, expect_errors=True)
        assert records.status_int >= 400, (caller, records.json)
        answers = {
            "GET search": owned.get(f"{base}/search", headers=headers, expect_errors=True),
            "POST search": owned.post_json(
                f"{base}/search", {}, headers=headers, expect_errors=True
            ),
            "GET facets": owned.get(f"{base}/search/facets", headers=headers, expect_errors=True),
        }
        for endpoint, response in answers.items():
            assert _answer(response) == _answer(records), (caller, endpoint)


@pytest.mark.parametrize("bucket_id", sorted({bid for bid, _ in COLLECTION_IDS} - {"b"}))
def test_bucket_search_answers_as_the_collections_endpoint(owned, bucket_id):
    base = f"/v1/buckets/{bucket_id}"
    for caller, headers in CALLERS.items():
        collections = owned.get(f"{base}/collections", headers=headers, expect_errors=True)
        assert collections.status_int >= 400, (caller, collections.json)
        answers = {
            "GET": owned.get(f"{base}/search", headers=headers, expect_errors=True),
            "POST": owned.post_json(f"{base}/search", {}, headers=headers, expect_errors=True),
        }
        for method, response in answers.items():
            assert _answer(response) == _answer(collections), (caller, method)
