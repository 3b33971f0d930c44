import time

import pytest

from kinto_elasticsearch.resilience import CircuitBreaker
from tests.conftest import indexed

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


class NetworkSpy:
    """Counts the requests that really leave for the engine (below the breaker)."""

    def __init__(self, engine):
        self.count = 0
        self._call = engine._call
        engine._call = self

    def __call__(self, *args):
        self.count += 1
        return self._call(*args)


def test_the_breaker_bounds_write_latency_while_the_engine_hangs(make_app, alice, blackhole):
    app = make_app(
        **{
            "elasticsearch.hosts": blackhole,
            "elasticsearch.request_timeout_seconds": "0.3",
            "elasticsearch.circuit_breaker_failures": "2",
            "elasticsearch.circuit_breaker_seconds": "60",
        }
    )
    network = NetworkSpy(app.app.registry.indexer.engine)
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)  # Pays one timeout.
    app.put_json(f"{COLLECTION}/records/r0", {"data": {}}, headers=alice)  # Pays another.
    assert network.count == 2
    started = time.monotonic()
    for i in range(1, 21):
        app.put_json(f"{COLLECTION}/records/r{i}", {"data": {}}, headers=alice)
    elapsed = time.monotonic() - started
    # The circuit is open: no write waits on the engine any more.
    assert network.count == 2
    assert elapsed < 20 * 0.3
    assert len(app.app.registry.retry_queue) == 21


def test_writes_during_an_outage_are_retried_once_the_engine_is_back(
    make_app, alice, own_engine_server, metrics_factory, index_prefix
):
    app = make_app(
        **{
            "elasticsearch.hosts": own_engine_server.url,
            "elasticsearch.request_timeout_seconds": "1",
            "elasticsearch.circuit_breaker_failures": "2",
            "elasticsearch.circuit_breaker_seconds": "0.2",
        }
    )
    metrics = metrics_factory(app)
    queue = app.app.registry.retry_queue
    queue.initial_backoff = queue.max_backoff = 0.1
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    app.put_json(f"{COLLECTION}/records/before", {"data": {"n": 0}}, headers=alice)

    own_engine_server.stop()
    for i in range(10):
        app.put_json(f"{COLLECTION}/records/r{i}", {"data": {"n": i}}, headers=alice)
    app.patch_json(f"{COLLECTION}/records/r0", {"data": {"n": 100}}, headers=alice)
    app.delete(f"{COLLECTION}/records/r1", headers=alice)
    # One pending operation per record: the newest.
    assert len(queue) == 10
    own_engine_server.restart()

    assert queue.wait_until_empty(timeout=30)
    stored = {r["id"]: r for r in app.get(f"{COLLECTION}/records", headers=alice).json["data"]}
    engine = app.app.registry.indexer.engine
    docs = indexed(engine, index_prefix, "b", "c")
    for record_id in (f"r{i}" for i in range(10) if i != 1):
        assert docs[record_id] == (stored[record_id]["last_modified"], stored[record_id])
    assert "r1" not in docs
    assert metrics.counts["elasticsearch.retry.queued"] == 12
    assert metrics.counts["elasticsearch.retry.recovered"] == 10


@pytest.mark.parametrize("body", [{"_id": "x"}, {"": 1}, {"_source": {"a": 1}}])
def test_unindexable_records_do_not_keep_the_others_out(
    app, alice, engine, index_prefix, metrics, body
):
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    requests = [
        {"method": "PUT", "path": f"{COLLECTION}/records/good1", "body": {"data": {"a": 1}}},
        {"method": "PUT", "path": f"{COLLECTION}/records/bad", "body": {"data": body}},
        {"method": "PUT", "path": f"{COLLECTION}/records/good2", "body": {"data": {"a": 2}}},
    ]
    responses = app.post_json(
        "/v1/batch", {"defaults": {"headers": alice}, "requests": requests}
    ).json["responses"]
    assert [r["status"] for r in responses] == [201, 201, 201]
    docs = indexed(engine, index_prefix, "b", "c")
    assert {"good1", "good2"} <= set(docs)
    # Real engines refuse such documents (noida-db accepts them): either way, counted right.
    refused = metrics.counts.get("elasticsearch.documents.failed", 0)
    assert ("bad" not in docs) == (refused == 1)


def test_mapping_conflicts_and_long_ids_do_not_keep_the_others_out(
    app, alice, engine, index_prefix, metrics, caplog
):
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(
        COLLECTION,
        {"data": {"index:schema": {"properties": {"n": {"type": "long"}}}}},
        headers=alice,
    )
    long_id = "x" * 600
    requests = [
        {"method": "PUT", "path": f"{COLLECTION}/records/good1", "body": {"data": {"n": 1}}},
        {"method": "PUT", "path": f"{COLLECTION}/records/bad", "body": {"data": {"n": "abc"}}},
        {"method": "PUT", "path": f"{COLLECTION}/records/{long_id}", "body": {"data": {}}},
        {"method": "PUT", "path": f"{COLLECTION}/records/good2", "body": {"data": {"n": 2}}},
    ]
    responses = app.post_json(
        "/v1/batch", {"defaults": {"headers": alice}, "requests": requests}
    ).json["responses"]
    assert [r["status"] for r in responses] == [201, 201, 201, 201]
    documents = indexed(engine, index_prefix, "b", "c")
    # "bad" is indexed without the value its field cannot hold; only the id no engine
    # takes keeps a record out.
    assert set(documents) == {"good1", "good2", "bad"}
    assert documents["bad"][1]["_unindexed"] == ["n"]
    assert metrics.counts["elasticsearch.documents.failed"] == 1
    assert metrics.counts["elasticsearch.documents.partial"] == 1
    assert "/buckets/b/collections/c/records/bad without n" in caplog.text
    assert "longer than 512 bytes" in caplog.text


def test_a_record_too_large_for_the_engine_is_indexed_in_minimal_form(
    make_app, alice, engine_server, engine, index_prefix, metrics_factory, caplog
):
    from tests.servers import BodySizeLimit

    proxy = BodySizeLimit(engine_server.url, limit=20_000)
    try:
        app = make_app(**{"elasticsearch.hosts": proxy.url})
        metrics = metrics_factory(app)
        app.put_json("/v1/buckets/b", {}, headers=alice)
        app.put_json(COLLECTION, {}, headers=alice)
        requests = [
            {"method": "PUT", "path": f"{COLLECTION}/records/small{i}", "body": {"data": {"i": i}}}
            for i in range(4)
        ]
        requests.insert(2, {"method": "PUT", "path": f"{COLLECTION}/records/huge",
                            "body": {"data": {"text": "x" * 50_000}}})  # fmt: skip
        responses = app.post_json(
            "/v1/batch", {"defaults": {"headers": alice}, "requests": requests}
        ).json["responses"]
        assert [r["status"] for r in responses] == [201] * 5
    finally:
        proxy.close()
    assert proxy.refused >= 2  # The whole bulk, then the huge record alone.
    documents = indexed(engine, index_prefix, "b", "c")
    assert set(documents) == {f"small{i}" for i in range(4)} | {"huge"}
    # The huge one in its minimal form: found by id, its text not searchable.
    assert documents["huge"][1]["_unindexed"] == ["text"]
    assert metrics.counts["elasticsearch.documents.partial"] == 1
    assert "/buckets/b/collections/c/records/huge without text" in caplog.text
    assert "too large" in caplog.text
