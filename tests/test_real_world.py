"""Real-world JSON through Kinto and the plugin, on both engines (``tests/corpus.py``).

Schemas that others wrote are stored as records (in a collection whose schema is the
JSON Schema metaschema that describes them) and used as collection schemas; their
definitions are stored as records of a collection without schema. Every record must be
found, ``verify`` must find the index whole, and Kinto's filters must list the same ids
in the same order on ``GET .../search`` as on ``GET .../records``.
"""

import itertools
import os
from urllib.parse import urlsplit

import kinto
import pytest
import webtest

from kinto_elasticsearch.index import naming
from kinto_elasticsearch.index.fields import MAX_FIELDS
from kinto_elasticsearch.index.schema import count_fields
from kinto_elasticsearch.sync import compare
from tests import corpus
from tests.conftest import auth, base_settings, close_app

ALICE = auth("alice")
BUCKET = "/v1/buckets/world"
_prefixes = itertools.count()


def _batch(app, requests):
    for start in range(0, len(requests), 25):
        body = {"defaults": {"headers": ALICE}, "requests": requests[start : start + 25]}
        responses = app.post_json("/v1/batch", body).json["responses"]
        assert {r["status"] for r in responses} <= {200, 201}, responses


def _store(app, collection, records):
    _batch(
        app,
        [
            {"method": "PUT", "path": f"/buckets/world/collections/{collection}/records/{rid}",
             "body": {"data": data}}
            for rid, data in records.items()
        ],
    )  # fmt: skip


@pytest.fixture(scope="module")
def world(engine_server, engine_client):
    prefix = f"t{os.getpid()}-world{next(_prefixes)}"
    # Bulks of 25 whole JSON schemas: noida-db on a busy machine can take longer than the
    # default 2 s, and a timeout would leave them to a catch-up these tests do not run.
    # Indices of their own, filled in the corpus's order: in a pool these wide collections
    # would be indexed in part until a catch-up promotes them, and a rebuild (a promotion
    # is one) of a collection past the field limit maps another subset of its fields than
    # writes in this order do (which objects stop being mapped depends on the order).
    overrides = {"elasticsearch.request_timeout_seconds": "30", "elasticsearch.pools": "0"}
    settings = base_settings(engine_server, prefix, **overrides)
    app = webtest.TestApp(kinto.main({}, **settings))
    app.put_json(BUCKET, {}, headers=ALICE)
    metaschema = corpus.metaschemas()[corpus.DRAFT_07]
    app.put_json(f"{BUCKET}/collections/schemas", {"data": {"schema": metaschema}}, headers=ALICE)
    app.put_json(f"{BUCKET}/collections/definitions", {}, headers=ALICE)
    records = {"schemas": corpus.schema_records(), "definitions": corpus.definition_records()}
    for collection, data in records.items():
        _store(app, collection, data)
    yield app, prefix, records
    close_app(app)
    for name in engine_client.call("indices.get_alias", index=f"{prefix}.*"):
        engine_client.call("indices.delete", index=name)


@pytest.fixture(scope="module")
def engine_client(engine_server):
    from kinto_elasticsearch.client.engine import Engine
    from kinto_elasticsearch.config import parse_settings

    client = Engine(
        parse_settings(
            {
                "elasticsearch.hosts": engine_server.url,
                "elasticsearch.engine": engine_server.engine,
                "elasticsearch.request_timeout_seconds": "30",
            }
        )
    )
    yield client
    client.close()


def test_the_corpus_is_real_and_wide_enough():
    records = {**corpus.schema_records(), **corpus.definition_records()}
    assert 200 <= len(records) <= 500
    keys_with_dots = [k for r in records.values() for k in _keys(r) if "." in k]
    assert keys_with_dots, "keys with dots are part of what is tested"
    assert max(len(list(_keys(r))) for r in records.values()) > 2 * MAX_FIELDS


def _keys(value):
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item)


@pytest.mark.parametrize("collection", ["schemas", "definitions"])
def test_every_record_is_found_by_id_and_by_match_all(world, collection):
    app, _, records = world
    url = f"{BUCKET}/collections/{collection}/search"
    body = {"query": {"match_all": {}}, "size": 1000, "_source": False}
    found = app.post_json(url, body, headers=ALICE).json["hits"]["hits"]
    assert sorted(hit["_id"] for hit in found) == sorted(records[collection])
    ids = sorted(records[collection])[:50]
    body = {"query": {"ids": {"values": ids}}, "size": 100, "_source": False}
    found = app.post_json(url, body, headers=ALICE).json["hits"]["hits"]
    assert sorted(hit["_id"] for hit in found) == ids


@pytest.mark.parametrize("collection", ["schemas", "definitions"])
def test_verify_finds_the_index_whole(world, collection):
    app, _, records = world
    registry = app.app.registry
    metadata = app.get(f"{BUCKET}/collections/{collection}", headers=ALICE).json["data"]
    report = compare.verify_collection(
        registry.storage, registry.elasticsearch.index, "world", collection, metadata
    )
    assert not report.differs
    assert report.records == report.documents == len(records[collection])
    if collection == "schemas":
        # Wide schemas are indexed in part: the report says so, and it is no difference.
        assert report.partial.count > 0


def _pages(app, url):
    ids = []
    while url:
        response = app.get(url, headers=ALICE)
        data = response.json.get("data")
        page = data if data is not None else response.json["hits"]["hits"]
        ids.extend(item["id"] if "id" in item else item["_id"] for item in page)
        next_page = response.headers.get("Next-Page")
        url = next_page and "{0.path}?{0.query}".format(urlsplit(next_page))
    return ids


# Filters on fields these records hold as scalars. Fields holding arrays in some records
# (``"type": ["object", "null"]``) differ by design: the index matches any element where
# Kinto compares whole arrays (README, "GET search and Kinto's querystring"). Kinto's
# memory backend fails on ``like_`` over records that lack the field. An empty object or
# array is no value to the index (``"properties": {}`` is not ``has_properties``).
PARITY = {
    "schemas": [
        "has_title=true",
        "has_title=false",
        "_sort=title",
        "has_definitions=true&_sort=id",
        "has_properties=false",
        "has_required=true&_sort=id",
        "_sort=-last_modified&_limit=10",
    ],
    "definitions": [
        "has_enum=true",
        "has_description=false&_sort=-id",
        "_sort=description&_limit=40",
        "minimum=0",
        "minLength=1&_sort=id",
        "uniqueItems=true",
        "has_pattern=true&_sort=-last_modified",
        "has_items=true&_sort=id&_limit=30",
    ],
}


@pytest.mark.parametrize(
    "collection, qs", [(c, qs) for c, queries in PARITY.items() for qs in queries]
)
def test_kinto_filters_list_the_same_ids_in_the_same_order(world, collection, qs):
    app, _, _ = world
    expected = _pages(app, f"{BUCKET}/collections/{collection}/records?{qs}")
    found = _pages(app, f"{BUCKET}/collections/{collection}/search?{qs}")
    assert found == expected


def test_each_schema_as_a_collection_schema_gets_an_index(world, engine_client):
    app, prefix, _ = world
    refused_by_kinto = []
    for name, schema in corpus.vendored_schemas().items():
        collection = f"s-{corpus._record_id(name)}"
        url = f"{BUCKET}/collections/{collection}"
        response = app.put_json(url, {"data": {"schema": schema}}, headers=ALICE, status="*")
        if response.status_code == 400 and response.json["message"].startswith("data.schema"):
            # Kinto itself refuses it (a pattern its regular expressions cannot read).
            refused_by_kinto.append(name)
            continue
        assert response.status_code == 201, response.json
        alias = naming.alias_name(prefix, "world", collection)
        mapping = next(iter(engine_client.call("indices.get_mapping", index=alias).values()))
        assert count_fields(mapping["mappings"]["properties"]) <= MAX_FIELDS
        # A record of its own shape: the schema's first definition, or the schema itself.
        definitions = schema.get("definitions") or schema.get("$defs") or {"self": schema}
        first = next(v for v in definitions.values() if isinstance(v, dict))
        app.put_json(f"{BUCKET}/collections/{collection}/records/r1",
                     {"data": corpus._as_record(first)}, headers=ALICE)  # fmt: skip
        url = f"{BUCKET}/collections/{collection}/search"
        hits = app.post_json(url, {"query": {"ids": {"values": ["r1"]}}}, headers=ALICE)
        assert [hit["_id"] for hit in hits.json["hits"]["hits"]] == ["r1"]
    assert len(refused_by_kinto) <= 3, refused_by_kinto
