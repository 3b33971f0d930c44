"""The plugin's metrics, as Kinto's own StatsD and Prometheus backends send them."""

import socket

import pytest
import webtest

from kinto_elasticsearch import metrics
from kinto_elasticsearch.sync.catchup import CatchUp
from tests.conftest import base_settings

COLLECTION = "/v1/buckets/blog/collections/articles"
INCLUDES = "kinto.plugins.default_bucket kinto.plugins.flush"


def _exercise(app, alice):
    """A catch-up pass, three bulk writes (two records indexed, one deleted) and one search
    of each kind."""
    app.put_json("/v1/buckets/blog", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    # One catch-up pass (nothing to index yet: it sends no bulk).
    CatchUp(app.app.registry, overlap_ms=0).run()
    app.put_json(f"{COLLECTION}/records/r1", {"data": {"n": 1}}, headers=alice)
    app.put_json(f"{COLLECTION}/records/r2", {"data": {"n": 2}}, headers=alice)
    app.delete(f"{COLLECTION}/records/r1", headers=alice)
    app.post_json(f"{COLLECTION}/search", {}, headers=alice)
    app.get(f"{COLLECTION}/search?n=1", headers=alice)
    app.get(f"{COLLECTION}/search/facets", headers=alice)
    app.post_json("/v1/buckets/blog/search", {}, headers=alice)


@pytest.fixture
def prometheus_app(engine_server, index_prefix, engine):
    import kinto
    from kinto.plugins import prometheus

    settings = base_settings(
        engine_server,
        index_prefix,
        includes=f"{INCLUDES} kinto.plugins.prometheus kinto_elasticsearch",
    )
    app = webtest.TestApp(kinto.main({}, **settings))
    yield app
    app.app.registry.elasticsearch.index.engine.close()
    prometheus.reset_registry()


def _prometheus_types(text):
    """``{metric family: type}`` from Prometheus' text exposition format."""
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
    return types


def test_prometheus_gets_timers_as_histograms_and_counts_as_counters(prometheus_app, alice):
    _exercise(prometheus_app, alice)
    exposition = prometheus_app.get("/v1/__metrics__").text
    types = _prometheus_types(exposition)
    for name in metrics.TIMERS:
        family = "kinto_" + name.replace(".", "_")
        assert types.get(family) == "histogram", name
    # One search for each of POST, GET, facets and bucket search.
    assert "kinto_elasticsearch_search_seconds_count 4.0" in exposition
    assert "kinto_elasticsearch_bulk_seconds_count 3.0" in exposition
    for name, value in [(metrics.DOCUMENTS_INDEXED, 2.0), (metrics.DOCUMENTS_DELETED, 1.0)]:
        family = "kinto_" + name.replace(".", "_") + "_total"
        assert types.get(family) == "counter", name
        assert f"{family} {value}" in exposition.splitlines(), name


@pytest.fixture
def statsd_listener():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    yield sock
    sock.close()


def _received(sock):
    packets = []
    while True:
        try:
            packet, _ = sock.recvfrom(65535)
        except TimeoutError:
            return packets
        packets.extend(packet.decode().splitlines())


def test_statsd_gets_timings_and_counters(make_app, alice, statsd_listener):
    port = statsd_listener.getsockname()[1]
    app = make_app(
        includes=f"{INCLUDES} kinto.plugins.statsd kinto_elasticsearch",
        statsd_url=f"udp://127.0.0.1:{port}",
    )
    _exercise(app, alice)
    lines = _received(statsd_listener)
    kinds = {}
    for line in lines:
        name, _, rest = line.partition(":")
        kinds.setdefault(name, set()).add(rest.split("|")[1])
    for name in metrics.TIMERS:
        assert kinds.get(f"kinto.{name}") == {"ms"}, name
    assert sum(1 for line in lines if line.startswith(f"kinto.{metrics.SEARCH_SECONDS}:")) == 4
    assert lines.count(f"kinto.{metrics.DOCUMENTS_INDEXED}:1|c") == 2
    assert lines.count(f"kinto.{metrics.DOCUMENTS_DELETED}:1|c") == 1
