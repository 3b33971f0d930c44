import pytest

from kinto_elasticsearch.sync import compare
from kinto_elasticsearch.sync.rebuild import reindex_collection
from tests.conftest import indexed, wait_until

COLLECTION = "/v1/buckets/b/collections/c"
CATCHUP = {"elasticsearch.catchup_in_process": "true"}
RECORD = {"title": "t", "secret": "s3cr3t", "author": {"name": "ann", "email": "a@x"}}


def _setup(app, alice, exclude):
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {"data": {"index:exclude_fields": exclude}}, headers=alice)
    app.put_json(f"{COLLECTION}/records/r1", {"data": RECORD}, headers=alice)


def _document(engine, index_prefix):
    return indexed(engine, index_prefix, "b", "c")["r1"][1]


def test_excluded_fields_never_reach_the_engine(app, alice, engine, index_prefix):
    _setup(app, alice, ["secret", "author.email"])
    document = _document(engine, index_prefix)
    assert "secret" not in document and document["author"] == {"name": "ann"}
    assert document["title"] == "t"
    hits = app.get(f"{COLLECTION}/search?q=s3cr3t", headers=alice).json["hits"]["hits"]
    assert hits == []
    # Kinto still stores and serves them.
    assert app.get(f"{COLLECTION}/records/r1", headers=alice).json["data"]["secret"] == "s3cr3t"


def test_excluded_fields_stay_out_of_rebuilds_and_repairs(app, alice, engine, index_prefix):
    _setup(app, alice, ["secret"])
    registry = app.app.registry
    metadata = app.get(COLLECTION, headers=alice).json["data"]
    reindex_collection(registry.storage, registry.elasticsearch.index, "b", "c", metadata)
    assert "secret" not in _document(engine, index_prefix)
    registry.elasticsearch.index.removal.delete_collection_indices("b", "c")
    registry.elasticsearch.index.admin.create_index("b", "c", {})
    compare.verify_collection(
        registry.storage, registry.elasticsearch.index, "b", "c", metadata, repair=True
    )
    assert "secret" not in _document(engine, index_prefix)


@pytest.mark.parametrize("storage", ["memory", "postgresql"])
def test_changing_the_list_rebuilds_existing_documents(
    request, make_app, alice, engine, index_prefix, storage
):
    if storage == "postgresql":
        from tests.conftest import pg_settings

        app = make_app(**CATCHUP, **pg_settings(request.getfixturevalue("pg_url")))
        app.app.registry.storage.initialize_schema()
        app.app.registry.permission.initialize_schema()
    else:
        app = make_app(**CATCHUP)
    _setup(app, alice, ["secret"])
    app.patch_json(COLLECTION, {"data": {"index:exclude_fields": ["title"]}}, headers=alice)

    def rebuilt():
        document = _document(engine, index_prefix)
        return document if "secret" in document and "title" not in document else None

    document = wait_until(rebuilt, "the catch-up's rebuild with the new list")
    assert document["secret"] == "s3cr3t" and "title" not in document


def test_a_mapping_the_live_index_cannot_take_is_applied_by_a_rebuild(
    make_app, alice, engine, index_prefix
):
    app = make_app(**CATCHUP)
    _setup(app, alice, [])
    # "title" is text now; a keyword mapping cannot be applied in place.
    app.patch_json(
        COLLECTION,
        {"data": {"index:schema": {"properties": {"title": {"type": "keyword"}}}}},
        headers=alice,
    )
    known = app.app.registry.elasticsearch.index.known

    def rebuilt():
        mapping = known.get_mapping("b", "c")
        return mapping if mapping["properties"]["title"] == {"type": "keyword"} else None

    mapping = wait_until(rebuilt, "the catch-up's rebuild with the new mapping")
    assert mapping["properties"]["title"] == {"type": "keyword"}
    assert _document(engine, index_prefix)["title"] == "t"
