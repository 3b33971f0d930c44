"""The sender's group commit across collections: the changes of concurrent writers to
different collections share one bulk request, and what that request cannot settle for one
collection (a refused document, a lost index) is settled for that one alone."""

import time

from kinto_elasticsearch.sync.sender import _Handover
from tests.conftest import EngineSpy, auth, indexed

ALICE = auth("alice")
OWN = {"index:schema": {"properties": {"n": {"type": "integer"}}}}


def _records(app, uri, objects):
    """The stored objects, as a request would hand them over."""
    stored = []
    for record_id, data in objects:
        stored.append(app.put_json(f"{uri}/records/{record_id}", {"data": data},
                                   headers=ALICE).json["data"])  # fmt: skip
    return stored


def test_changes_of_many_collections_share_one_bulk_request(make_app, engine, index_prefix):
    app = make_app()
    plugin = app.app.registry.elasticsearch
    app.put_json("/v1/buckets/b", {}, headers=ALICE)
    uris = {}
    for collection_id, data in (("p1", {}), ("p2", {}), ("own", OWN), ("lost", OWN)):
        uris[collection_id] = f"/v1/buckets/b/collections/{collection_id}"
        app.put_json(uris[collection_id], {"data": data}, headers=ALICE)
    assert plugin.sender.wait_until_idle(timeout=30)
    stored = {
        "p1": _records(app, uris["p1"], [("a", {"n": 1}), ("b", {"n": 2})]),
        "p2": _records(app, uris["p2"], [("a", {"title": "kinto"})]),
        # The engine refuses this one as it is (its schema says integer): it is indexed in
        # part, on its own.
        "own": _records(app, uris["own"], [("ok", {"n": 3}), ("bad", {"n": "three"})]),
        "lost": _records(app, uris["lost"], [("x", {"n": 4})]),
    }
    assert plugin.sender.wait_until_idle(timeout=30)
    # The index of "lost" goes behind the plugin's back: its write finds it missing.
    plugin.index.removal.delete_collection_indices("b", "lost")
    assert indexed(engine, index_prefix, "b", "lost") == {}
    metadata = {
        cid: app.get(uri, headers=ALICE).json["data"] for cid, uri in uris.items()
    }  # fmt: skip
    # Newer versions of the same records, in one batch, as concurrent requests leave them.
    batch = []
    for collection_id, objects in stored.items():
        newer = [{**obj, "last_modified": obj["last_modified"] + 1000} for obj in objects]
        batch.append(_Handover("b", collection_id, newer, metadata[collection_id], None))
    spy = EngineSpy(plugin.index.engine)
    plugin.sender._send(batch)
    bulks = [kwargs for op, kwargs in spy.calls if op == "bulk"]
    # One request for all four collections, then one more for each collection it could not
    # settle: the refused document sent again alone, the lost index's once it is created.
    first = bulks[0]["body"][0::2]
    assert {line["index"]["_index"] for line in first} >= {
        plugin.index.locator.placement("b", cid).write_target for cid in ("p1", "p2", "own")
    }
    assert len(first) == 6
    assert len(bulks) < 1 + 2 * 2 + 1
    for collection_id, objects in stored.items():
        found = indexed(engine, index_prefix, "b", collection_id)
        assert {rid: version for rid, (version, _) in found.items()} == {
            obj["id"]: obj["last_modified"] + 1000 for obj in objects
        }, collection_id
    _, bad = indexed(engine, index_prefix, "b", "own")["bad"]
    assert bad["_unindexed"] == ["n"]
    # What was delivered is known to the catch-up, which does not send it again.
    delivered = plugin.sender.delivered
    for collection_id, objects in stored.items():
        for obj in objects:
            assert delivered.held("b", collection_id, {**obj, "last_modified": obj[
                "last_modified"] + 1000})  # fmt: skip


def test_changes_nobody_waits_for_gather_and_a_waited_one_goes_at_once(make_app, engine,
                                                                      index_prefix):  # fmt: skip
    """Changes handed over within the sender's linger share one bulk request; a change a
    request waits for (read-your-writes) is sent without lingering."""
    app = make_app(**{"elasticsearch.force_refresh": "false"})
    plugin = app.app.registry.elasticsearch
    app.put_json("/v1/buckets/b", {}, headers=ALICE)
    for collection_id in ("c1", "c2", "c3"):
        app.put_json(f"/v1/buckets/b/collections/{collection_id}", {}, headers=ALICE)
    assert plugin.sender.wait_until_idle(timeout=30)
    metadata = app.get("/v1/buckets/b/collections/c1", headers=ALICE).json["data"]
    plugin.sender.linger_seconds = 0.5
    spy = EngineSpy(plugin.index.engine)
    for n, collection_id in enumerate(("c1", "c2", "c3")):
        record = {"id": f"r{n}", "last_modified": 1000 + n, "title": "gathered"}
        plugin.sender.submit("b", collection_id, [record], metadata)
        time.sleep(0.05)  # Requests a moment apart, within the linger.
    assert plugin.sender.wait_until_idle(timeout=30)
    assert spy.count("bulk") == 1
    engine.call("indices.refresh", index=f"{index_prefix}.*")
    assert all(f"r{n}" in indexed(engine, index_prefix, "b", f"c{n + 1}") for n in range(3))
    # Waited for: not held back by the linger (here far longer than the wait allows).
    plugin.sender.linger_seconds = 60.0
    plugin.sender.wait_seconds = 10.0
    record = {"id": "now", "last_modified": 2000, "title": "waited"}
    started = time.monotonic()
    plugin.sender.submit("b", "c1", [record], metadata, wait=True)
    assert time.monotonic() - started < 10.0
    assert "now" in indexed(engine, index_prefix, "b", "c1")
    plugin.sender.linger_seconds = 0.0
