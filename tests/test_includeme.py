import time

from kinto_elasticsearch import __version__


def test_capability_is_announced(app, engine_server):
    capability = app.get("/v1/").json["capabilities"]["elasticsearch"]
    assert capability["version"] == __version__
    assert capability["engine"] == engine_server.engine
    assert capability["description"] and capability["url"]


def test_heartbeat_is_true_while_the_engine_is_up(app):
    assert app.get("/v1/__heartbeat__").json["elasticsearch"] is True


def test_heartbeat_is_false_when_the_engine_is_unreachable(make_app):
    app = make_app(**{"elasticsearch.hosts": "http://127.0.0.1:1"})
    response = app.get("/v1/__heartbeat__", status=503)
    assert response.json["elasticsearch"] is False
    assert response.json["storage"] is True


def test_heartbeat_answers_within_its_timeout_when_the_engine_hangs(make_app, blackhole):
    app = make_app(
        **{
            "elasticsearch.hosts": blackhole,
            "elasticsearch.request_timeout_seconds": "30",
            "heartbeat_timeout_seconds": "1",
        }
    )
    started = time.monotonic()
    response = app.get("/v1/__heartbeat__", status=503)
    assert response.json["elasticsearch"] is False
    # Kinto's own timeout (1 s) bounds it, not the plugin's 30 s request timeout.
    assert time.monotonic() - started < 5


def test_kinto_starts_and_serves_records_while_the_engine_is_down(make_app, alice):
    app = make_app(**{"elasticsearch.hosts": "http://127.0.0.1:1"})
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json("/v1/buckets/b/collections/c", {}, headers=alice)
    app.post_json("/v1/buckets/b/collections/c/records", {"data": {"a": 1}}, headers=alice)
    assert len(app.get("/v1/buckets/b/collections/c/records", headers=alice).json["data"]) == 1


def test_writes_stay_fast_when_the_engine_hangs(make_app, alice, blackhole):
    app = make_app(
        **{"elasticsearch.hosts": blackhole, "elasticsearch.request_timeout_seconds": "0.5"}
    )
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json("/v1/buckets/b/collections/c", {}, headers=alice)
    started = time.monotonic()
    app.put_json("/v1/buckets/b/collections/c/records/r1", {"data": {}}, headers=alice)
    # One bulk attempt bounded by the request timeout, no retry loop in the request.
    assert time.monotonic() - started < 3
