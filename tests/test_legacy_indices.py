"""kinto-elasticsearch 0.3's indices (``{prefix}-{bucket}-{collection}``), left behind by
an upgrade: ``verify`` reports them, ``remove-legacy`` removes them once the new index of
their collection is complete, ``/__flush__`` removes them with the collections it flushes.
"""

import pytest

from kinto_elasticsearch.client import EngineNotFound
from kinto_elasticsearch.index.legacy import legacy_name, readings
from tests.test_cli import cli, filled  # noqa: F401 (a fixture)


@pytest.fixture
def legacy(engine, index_prefix):
    """Create indices on the engine, as 0.3 (or someone else) did, behind the plugin's back;
    those still there at the end are deleted."""
    created = []

    def create(name, **body):
        engine.call("indices.create", index=name, body=body or None)
        created.append(name)
        return name

    yield create
    for name in created:
        try:
            engine.call("indices.delete", index=name)
        except EngineNotFound:
            pass


def _left(engine, index_prefix):
    return set(engine.call("indices.get_alias", index=f"{index_prefix}-*"))


@pytest.fixture
def upgraded(filled, alice, legacy, index_prefix):  # noqa: F811 (a fixture)
    """A server upgraded from 0.3: b/c has its new index and its 0.3 index; two buckets
    make ``{prefix}-a-b-c`` name two collections; ``{prefix}-gone-x`` names none; a
    plugin of prefix ``{prefix}-x`` shares the cluster."""
    for bucket_id, collection_id in (("a-b", "c"), ("a", "b-c")):
        filled.put_json(f"/v1/buckets/{bucket_id}", {}, headers=alice)
        filled.put_json(f"/v1/buckets/{bucket_id}/collections/{collection_id}", {},
                        headers=alice)  # fmt: skip
    other = f"{index_prefix}-x.b.c"
    names = {
        "matched": legacy(f"{index_prefix}-b-c"),
        "ambiguous": legacy(f"{index_prefix}-a-b-c"),
        "unmatched": legacy(f"{index_prefix}-gone-x"),
        "other plugin": legacy(f"{other}.1", aliases={other: {}}),
    }
    return filled, names


def test_verify_reports_0_3s_indices_without_counting_them_as_differences(
    upgraded, write_ini, index_prefix
):
    _, names = upgraded
    result = cli("verify", "--ini", write_ini())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "everything matches" in result.stdout
    assert (
        f"0.3 index {names['matched']}: of /buckets/b/collections/c, left by "
        "kinto-elasticsearch 0.3; 'kinto-elasticsearch remove-legacy' deletes it once this "
        "collection's index is complete"
    ) in result.stdout
    assert (
        f"0.3 index {names['ambiguous']}: of /buckets/a/collections/b-c or "
        "/buckets/a-b/collections/c, which cannot be told apart: kept, delete it yourself"
    ) in result.stdout
    assert (
        f"index {names['unmatched']}: named as 0.3 named indices, of no collection in "
        "storage: kept, delete it yourself if it is 0.3's"
    ) in result.stdout
    assert f"{index_prefix}-x." not in result.stdout


def test_verify_of_one_collection_reports_only_its_0_3_index(upgraded, write_ini):
    _, names = upgraded
    result = cli("verify", "--ini", write_ini(), "-b", "a", "-c", "b-c")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"0.3 index {names['ambiguous']}:" in result.stdout
    assert names["matched"] not in result.stdout and names["unmatched"] not in result.stdout


def test_remove_legacy_deletes_only_0_3s_indices_of_collections_storage_holds(
    upgraded, write_ini, engine, index_prefix
):
    _, names = upgraded
    result = cli("remove-legacy", "--ini", write_ini())
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"0.3 index {names['matched']}: deleted" in result.stdout
    assert f"0.3 index {names['ambiguous']}: of /buckets/a/collections/b-c or" in result.stdout
    assert f"index {names['unmatched']}: named as 0.3 named indices" in result.stdout
    assert "1 0.3 index(es) deleted, 2 kept." in result.stdout
    assert _left(engine, index_prefix) == {
        names["ambiguous"],
        names["unmatched"],
        names["other plugin"],
    }
    again = cli("verify", "--ini", write_ini())
    assert again.returncode == 0 and names["matched"] not in again.stdout


def test_remove_legacy_refuses_while_the_new_index_is_incomplete(
    upgraded, write_ini, engine, index_prefix
):
    app, names = upgraded
    app.app.registry.elasticsearch.index.removal.delete_collection_indices("b", "c")
    result = cli("remove-legacy", "--ini", write_ini(), "-b", "b")
    assert result.returncode == 2, result.stdout + result.stderr
    # Pooled, the collection still has its pool: it is its documents that are missing.
    assert (
        f"0.3 index {names['matched']}: kept: /buckets/b/collections/c's index differs from "
        "storage" in result.stdout
    )
    assert result.stderr.strip().splitlines()[-1] == (
        "kinto-elasticsearch: error: 1 0.3 index(es) kept, their collection's new index "
        "being incomplete: run 'kinto-elasticsearch reindex' (or verify --repair) first, "
        "or insist with --even-if-incomplete"
    )
    assert names["matched"] in _left(engine, index_prefix)

    forced = cli("remove-legacy", "--ini", write_ini(), "-b", "b", "--even-if-incomplete")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert names["matched"] not in _left(engine, index_prefix)


def test_flush_deletes_0_3s_indices_of_the_collections_it_flushes(
    make_app, alice, legacy, engine, index_prefix
):
    app = make_app(**{"flush_endpoint_enabled": "true"})
    for bucket_id, collection_id in (("b", "c"), ("a-b", "c"), ("a", "b-c")):
        app.put_json(f"/v1/buckets/{bucket_id}", {}, headers=alice)
        app.put_json(f"/v1/buckets/{bucket_id}/collections/{collection_id}", {},
                     headers=alice)  # fmt: skip
    for name in ("b-c", "a-b-c", "gone-x"):
        legacy(f"{index_prefix}-{name}")
    other = legacy(f"{index_prefix}-x.b.c.1")
    app.post("/v1/__flush__", status=202)
    # Both readings of a-b-c were flushed: it was 0.3's, whichever it was.
    assert _left(engine, index_prefix) == {f"{index_prefix}-gone-x", other}


@pytest.mark.parametrize(
    "name,pairs",
    [
        ("kinto-b-c", [("b", "c")]),
        ("kinto-a-b-c", [("a", "b-c"), ("a-b", "c")]),
        ("kinto-a--b", [("a-", "b")]),
        ("kinto-a_b-c_", [("a_b", "c_")]),
        # What this plugin names, whatever its prefix: never 0.3's.
        ("kinto-a.b.c", []),
        ("kinto-a.-pool-0", []),
        ("kinto.b.c.1", []),
        ("kinto-b", []),
        ("kinto-b-", []),
        ("kinto2-b-c", []),
    ],
)
def test_0_3_names_read_as_every_pair_of_kinto_ids_they_can_be(name, pairs):
    assert readings("kinto", name) == pairs
    for pair in pairs:
        assert legacy_name("kinto", *pair) == name
