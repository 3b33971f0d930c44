import pytest

from kinto_elasticsearch.events import RecordsIndexed, RecordsIndexedInPart, RecordsIndexFailed
from tests.conftest import indexed, wait_until

COLLECTION = "/v1/buckets/b/collections/c"
INCLUDES = (
    "kinto.plugins.default_bucket kinto.plugins.flush kinto_elasticsearch tests.subscriber_plugin"
)


@pytest.fixture
def events_app(make_app, alice):
    app = make_app(includes=INCLUDES)
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(
        COLLECTION,
        {"data": {"index:schema": {"properties": {"n": {"type": "long"}}}}},
        headers=alice,
    )
    app.app.registry.received_events.clear()
    return app


def test_subscribers_learn_what_was_indexed_in_part_and_what_failed(
    events_app, alice, engine, index_prefix
):
    long_id = "x" * 600
    requests = [
        {"method": "PUT", "path": f"{COLLECTION}/records/good", "body": {"data": {"n": 1}}},
        {"method": "PUT", "path": f"{COLLECTION}/records/bad", "body": {"data": {"n": "x"}}},
        {"method": "PUT", "path": f"{COLLECTION}/records/{long_id}", "body": {"data": {}}},
    ]
    events_app.post_json("/v1/batch", {"defaults": {"headers": alice}, "requests": requests})
    received = events_app.app.registry.received_events
    indexed_events = [e for e in received if isinstance(e, RecordsIndexed)]
    partial_events = [e for e in received if isinstance(e, RecordsIndexedInPart)]
    failed_events = [e for e in received if isinstance(e, RecordsIndexFailed)]
    assert [(e.bucket_id, e.collection_id, e.indexed) for e in indexed_events] == [
        ("b", "c", ["good", "bad"])
    ]
    # Indexing happens in the sender's thread, after the request handed its changes over.
    assert indexed_events[0].request is None
    [partial] = partial_events
    assert [(record_id, left_out) for record_id, left_out, _ in partial.partial] == [
        ("bad", ["n"])
    ]
    [failed] = failed_events
    assert failed.will_retry is False
    assert failed.failures == [(long_id, "id is longer than 512 bytes")]
    # The broken subscriber did not stop indexing.
    assert set(indexed(engine, index_prefix, "b", "c")) == {"good", "bad"}


def test_subscribers_learn_what_was_unindexed(events_app, alice):
    events_app.put_json(f"{COLLECTION}/records/r1", {"data": {}}, headers=alice)
    events_app.delete(f"{COLLECTION}/records/r1", headers=alice)
    last = events_app.app.registry.received_events[-1]
    assert isinstance(last, RecordsIndexed)
    assert (last.indexed, last.unindexed) == ([], ["r1"])


def test_subscribers_learn_of_failed_writes_and_of_their_recovery(
    make_app, alice, own_engine_server
):
    app = make_app(
        includes=INCLUDES,
        **{
            "elasticsearch.hosts": own_engine_server.url,
            "elasticsearch.circuit_breaker_seconds": "0.1",
            "elasticsearch.catchup_in_process": "true",
        },
    )
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    received = app.app.registry.received_events
    own_engine_server.stop()
    app.put_json(f"{COLLECTION}/records/r1", {"data": {}}, headers=alice)
    [failed] = [e for e in received if isinstance(e, RecordsIndexFailed)]
    # Storage has it: the catch-up will index it.
    assert failed.will_retry is True and failed.failures[0][0] == "r1"
    own_engine_server.restart()

    def recovered():
        events = [e for e in received if isinstance(e, RecordsIndexed)]
        return events and "r1" in events[-1].indexed and events[-1].request is None

    wait_until(recovered, "an event of r1 indexed by the catch-up")
