"""The breaker is about reaching the engine, nothing else (issue 11, point 5)."""

import logging

import pytest

from kinto_elasticsearch.client import CircuitBreaker
from kinto_elasticsearch.client.engine import SEARCH, WRITE
from tests.conftest import indexed
from tests.servers import FaultProxy

COLLECTION = "/v1/buckets/b/collections/c"


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_breaker_opens_after_consecutive_failures_and_probes_after_its_delay():
    clock = Clock()
    breaker = CircuitBreaker(failures=3, reset_seconds=10, clock=clock)
    breaker.failure()
    breaker.failure()
    breaker.success()  # Not consecutive any more.
    breaker.failure()
    breaker.failure()
    assert breaker.allow()
    breaker.failure()
    assert breaker.is_open and not breaker.allow()
    clock.now = 10
    assert breaker.allow()  # One probe...
    assert not breaker.allow()  # ...at a time.
    breaker.failure()
    assert not breaker.allow()  # Failed probe: wait again.
    clock.now = 20
    assert breaker.allow()
    breaker.success()
    assert not breaker.is_open and breaker.allow()


def _breakers(app):
    return app.app.registry.elasticsearch.index.engine.breakers


def _proxied_app(make_app, proxy, **overrides):
    return make_app(
        **{
            "elasticsearch.hosts": proxy.url,
            "elasticsearch.circuit_breaker_failures": "2",
            "elasticsearch.circuit_breaker_seconds": "60",
            **overrides,
        }
    )


def _search_marked(marker):
    """A rule answering searches whose body holds ``marker``."""

    def rule(status, payload):
        def answer(method, path, body):
            if "_search" in path and marker.encode() in body:
                return status, payload
            return None

        return answer

    return rule


CIRCUIT_BREAKING = {
    "error": {
        "type": "circuit_breaking_exception",
        "reason": "[parent] Data too large, data for [<http_request>] would be larger than limit",
    },
    "status": 429,
}
ONE_AGGREGATION_FAILED = {
    "error": {"type": "search_phase_execution_exception", "reason": "all shards failed",
              "root_cause": [{"type": "illegal_state_exception", "reason": "agg blew up"}]},
    "status": 500,
}  # fmt: skip


@pytest.mark.parametrize(
    "status,payload", [(429, CIRCUIT_BREAKING), (500, ONE_AGGREGATION_FAILED)]
)
def test_a_query_the_engine_cannot_afford_fails_only_that_query(
    make_app, alice, engine_server, engine, index_prefix, status, payload
):
    proxy = FaultProxy(engine_server.url)
    proxy.answer = _search_marked("costly")(status, payload)
    try:
        app = _proxied_app(make_app, proxy)
        app.put_json("/v1/buckets/b", {}, headers=alice)
        app.put_json(COLLECTION, {}, headers=alice)
        costly = {"query": {"match": {"title": "costly"}}}
        for _ in range(5):
            app.post_json(f"{COLLECTION}/search", costly, headers=alice, status=503)
        assert proxy.answered == 5
        # Nobody else pays: other searches and indexing go on.
        assert not _breakers(app)[SEARCH].is_open and not _breakers(app)[WRITE].is_open
        app.put_json(f"{COLLECTION}/records/r1", {"data": {"title": "x"}}, headers=alice)
        hits = app.post_json(f"{COLLECTION}/search", {}, headers=alice).json["hits"]
        assert [hit["_id"] for hit in hits["hits"]] == ["r1"]
        assert set(indexed(engine, index_prefix, "b", "c")) == {"r1"}
    finally:
        proxy.close()


# What osmem-server answers a ``nested`` aggregation on an object that is not nested (as
# some OpenSearch and Elasticsearch versions do): a 500, for a fault of the query.
NOT_NESTED = {
    "error": {
        "type": "search_phase_execution_exception",
        "reason": "all shards failed",
        "phase": "query",
        "grouped": True,
        "root_cause": [
            {
                "type": "aggregation_execution_exception",
                "reason": "[nested] nested path [obj] is not nested",
            }
        ],
        "failed_shards": [
            {
                "shard": 0,
                "index": "pool",
                "node": "node",
                "reason": {
                    "type": "aggregation_execution_exception",
                    "reason": "[nested] nested path [obj] is not nested",
                },
            }
        ],
    },
    "status": 500,
}
NESTED_ON_AN_OBJECT = {
    "aggs": {"n": {"nested": {"path": "obj"}, "aggs": {"r": {"reverse_nested": {}}}}}
}


def test_a_query_the_engine_fails_on_is_that_querys_400_and_never_opens_the_breaker(
    make_app, alice, engine_server
):
    proxy = FaultProxy(engine_server.url)
    proxy.answer = _search_marked("reverse_nested")(500, NOT_NESTED)
    try:
        # An index of its own, whose refusals quote the engine (a pool's do not).
        app = _proxied_app(make_app, proxy, **{"elasticsearch.pools": "0"})
        app.put_json("/v1/buckets/b", {}, headers=alice)
        app.put_json(COLLECTION, {}, headers=alice)
        app.put_json(f"{COLLECTION}/records/r1", {"data": {"obj": {"a": 1}}}, headers=alice)
        for _ in range(5):
            refused = app.post_json(
                f"{COLLECTION}/search", NESTED_ON_AN_OBJECT, headers=alice, status=400
            ).json
        assert refused["errno"] == 107
        assert "nested path [obj] is not nested" in refused["message"]
        assert not any(breaker.is_open for breaker in _breakers(app).values())
        assert app.post_json(f"{COLLECTION}/search", {}, headers=alice).json["hits"]["hits"]
    finally:
        proxy.close()


def test_a_nested_aggregation_on_an_object_is_a_400_on_both_engines(app, alice):
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    app.put_json(f"{COLLECTION}/records/r1", {"data": {"obj": {"a": 1}}}, headers=alice)
    app.post_json(f"{COLLECTION}/search", NESTED_ON_AN_OBJECT, headers=alice, status=400)


def test_queries_the_engine_refuses_never_open_the_breaker(app, alice):
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    app.put_json(f"{COLLECTION}/records/r1", {"data": {"n": 1}}, headers=alice)
    refused = {"query": {"range": {"last_modified": {"gt": "not a number"}}}}
    for _ in range(5):
        app.post_json(f"{COLLECTION}/search", refused, headers=alice, status=400)
    assert not any(breaker.is_open for breaker in _breakers(app).values())
    assert app.post_json(f"{COLLECTION}/search", {}, headers=alice).json["hits"]["hits"]


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_proxy_with_no_engine_behind_opens_the_breaker(make_app, alice, engine_server, status):
    proxy = FaultProxy(engine_server.url)
    app = _proxied_app(make_app, proxy)
    try:
        app.put_json("/v1/buckets/b", {}, headers=alice)
        app.put_json(COLLECTION, {}, headers=alice)
        proxy.answer = lambda method, path, body: (status, {"error": "Bad Gateway"})
        for _ in range(4):
            app.post_json(f"{COLLECTION}/search", {}, headers=alice, status=503)
        assert _breakers(app)[SEARCH].is_open
        # Two failures opened it: the other searches did not reach the proxy.
        assert proxy.answered == 2
    finally:
        proxy.close()


def test_searches_and_writes_do_not_share_a_fate(
    make_app, alice, engine_server, engine, index_prefix
):
    proxy = FaultProxy(engine_server.url)
    timeouts = {"elasticsearch.request_timeout_seconds": "0.5"}
    app = _proxied_app(
        make_app, proxy, **timeouts, **{"elasticsearch.search_timeout_seconds": "0.5"}
    )
    try:
        app.put_json("/v1/buckets/b", {}, headers=alice)
        app.put_json(COLLECTION, {}, headers=alice)
        # The search path hangs (a stuck search thread pool, a proxy route): searches
        # time out and their breaker opens...
        proxy.answer = lambda method, path, body: "hang" if "_search" in path else None
        for _ in range(3):
            app.post_json(f"{COLLECTION}/search", {}, headers=alice, status=503)
        assert _breakers(app)[SEARCH].is_open
        # ...while indexing goes on.
        for i in range(3):
            app.put_json(f"{COLLECTION}/records/r{i}", {"data": {}}, headers=alice)
        assert not _breakers(app)[WRITE].is_open
        assert set(indexed(engine, index_prefix, "b", "c")) == {"r0", "r1", "r2"}
    finally:
        proxy.close()


def test_the_heartbeat_reports_the_state_without_changing_it(make_app, alice, own_engine_server):
    app = make_app(
        **{
            "elasticsearch.hosts": own_engine_server.url,
            "elasticsearch.circuit_breaker_failures": "2",
            "elasticsearch.circuit_breaker_seconds": "60",
        }
    )
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    own_engine_server.stop()
    for _ in range(3):
        app.post_json(f"{COLLECTION}/search", {}, headers=alice, status=503)
    breaker = _breakers(app)[SEARCH]
    assert breaker.is_open
    assert app.get("/v1/__heartbeat__", status=503).json["elasticsearch"] is False
    own_engine_server.restart()
    # The public heartbeat says the engine is back; it does not close the circuit (anyone
    # may call it): the breaker's own probe does, after its delay.
    assert app.get("/v1/__heartbeat__").json["elasticsearch"] is True
    assert breaker.is_open
    # Nor does a failing heartbeat open a closed one.
    breaker.success()
    own_engine_server.stop()
    for _ in range(3):
        app.get("/v1/__heartbeat__", status=503)
    assert not breaker.is_open


def test_an_error_the_seam_does_not_map_does_not_leave_the_circuit_open(app, alice):
    engine = app.app.registry.elasticsearch.index.engine
    breaker = engine.breakers[SEARCH]
    clock = Clock()
    breaker._clock = clock
    breaker.failure()
    breaker.failure()
    breaker.failure()
    assert breaker.is_open
    clock.now = breaker.reset_seconds
    real_call = engine._call

    def broken(*args):
        raise RuntimeError("a bug in a client library")

    # A mock: no real server raises an exception the seam does not know.
    engine._call = broken
    with pytest.raises(RuntimeError):
        engine.call("search", index="whatever", body={}, lane=SEARCH)
    engine._call = real_call
    # The probe slot is free again: the next request probes, and its success closes it.
    engine.call("cluster.health", lane=SEARCH)
    assert not breaker.is_open


def test_an_outage_is_one_warning_and_one_info_with_counts(
    make_app, alice, own_engine_server, metrics_factory, caplog
):
    app = make_app(
        **{
            "elasticsearch.hosts": own_engine_server.url,
            "elasticsearch.circuit_breaker_seconds": "0.01",
        }
    )
    metrics = metrics_factory(app)
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    own_engine_server.stop()
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        for i in range(10):
            app.put_json(f"{COLLECTION}/records/r{i}", {"data": {}}, headers=alice)
            app.post_json(f"{COLLECTION}/search", {}, headers=alice, status=503)
        own_engine_server.restart()
        app.post_json(f"{COLLECTION}/search", {}, headers=alice)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    unreachable = [r for r in warnings if "is unreachable" in r.getMessage()]
    assert len(unreachable) == 1, [r.getMessage() for r in warnings]
    back = [r for r in caplog.records if "answers again" in r.getMessage()]
    assert len(back) == 1 and back[0].levelno == logging.INFO
    # The client libraries' own per-request tracebacks are quiet by default.
    assert not [r for r in warnings if r.name.split(".")[0] in ("elastic_transport", "opensearch")]
    assert metrics.counts["elasticsearch.engine.outages"] == 1
    assert metrics.counts["elasticsearch.engine.unreachable"] >= 2
