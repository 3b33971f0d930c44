"""Every error of the plugin in Kinto's format, as Kinto's own views answer them."""

import pytest

COLLECTION = "/v1/buckets/blog/collections/articles"
SEARCH = f"{COLLECTION}/search"


@pytest.fixture
def blog(app, alice):
    app.put_json("/v1/buckets/blog", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    return app


def _assert_invalid_parameters(response, location, name):
    """What Kinto's ``json_error_handler`` answers for an invalid request."""
    error = response.json
    assert (error["code"], error["errno"], error["error"]) == (400, 107, "Invalid parameters")
    assert [(d["location"], d["name"]) for d in error["details"]] == [(location, name)]
    description = error["details"][0]["description"]
    if name is None:
        assert error["message"] == f"{location}: {description}"
    else:
        assert error["message"] in (description, f"{name} in {location}: {description}")


@pytest.mark.parametrize(
    "send",
    [
        lambda app, headers: app.post_json(
            SEARCH,
            {"query": {"query_string": {"query": "title:((("}}},
            headers=headers,
            status=400,
        ),
        lambda app, headers: app.post(
            SEARCH,
            "{not json",
            headers={**headers, "Content-Type": "application/json"},
            status=400,
        ),
        lambda app, headers: app.post_json(SEARCH, [1, 2], headers=headers, status=400),
    ],
    ids=["refused-by-engine", "not-json", "not-an-object"],
)
def test_a_bad_search_body_is_kintos_invalid_parameters(blog, alice, send):
    response = send(blog, alice)
    _assert_invalid_parameters(response, "body", None)


def test_a_refused_guard_names_the_path(blog, alice):
    body = {"query": {"script": {"script": "1"}}}
    response = blog.post_json(SEARCH, body, headers=alice, status=400)
    _assert_invalid_parameters(response, "body", "query.script")


def test_a_bad_querystring_is_kintos_invalid_parameters(blog, alice):
    response = blog.get(f"{SEARCH}/facets?limit=-3", headers=alice, status=400)
    _assert_invalid_parameters(response, "querystring", "limit")
    response = blog.get(f"{SEARCH}?_limit=many", headers=alice, status=400)
    _assert_invalid_parameters(response, "querystring", "_limit")


def test_a_refused_index_schema_is_kintos_invalid_parameters(app, alice):
    app.put_json("/v1/buckets/blog", {}, headers=alice)
    schema = {"properties": {"n": {"type": "no-such-type"}}}
    response = app.put_json(
        COLLECTION, {"data": {"index:schema": schema}}, headers=alice, status=400
    )
    _assert_invalid_parameters(response, "body", "index:schema")


@pytest.mark.parametrize("path", [SEARCH, f"{SEARCH}?q=a", f"{SEARCH}/facets"])
def test_an_unreachable_engine_is_kintos_503_with_its_retry_after(make_app, alice, path):
    app = make_app(**{"elasticsearch.hosts": "http://127.0.0.1:1", "retry_after_seconds": "7"})
    app.put_json("/v1/buckets/blog", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    if path == SEARCH:
        response = app.post_json(path, {}, headers=alice, status=503)
    else:
        response = app.get(path, headers=alice, status=503)
    assert (response.json["errno"], response.json["error"]) == (201, "Service Unavailable")
    assert response.headers["Retry-After"] == "7"


def test_an_engine_failure_names_the_request_that_failed(engine, index_prefix):
    """What an operator reads (``kinto-elasticsearch``'s error) says which request failed,
    with the engine's status and error type, not only its reason."""
    from kinto_elasticsearch.client import EngineNotFound

    with pytest.raises(EngineNotFound) as raised:
        engine.call("indices.get_mapping", index=f"{index_prefix}.missing")
    described = raised.value.describe()
    assert "indices.get_mapping" in described and "404" in described, described
