"""What a record becomes in the index, and what happens when the engine refuses it.

The engine tests run on both test servers; each case was a record the engine refused (or
left at its older version) before the plugin built documents it always takes.
"""

import pytest

from kinto_elasticsearch.index import documents, naming
from kinto_elasticsearch.index.fieldnames import escape_key, unescape_key
from kinto_elasticsearch.index.fields import MAX_FIELDS
from kinto_elasticsearch.index.schema import count_fields
from kinto_elasticsearch.sync import compare
from tests.conftest import indexed

COLLECTION = "/v1/buckets/b/collections/c"


@pytest.mark.parametrize(
    "key",
    ["", ".", "..", "a.b", "./package.json", "%", "%2E", "100%", " ", "\t \u3000", "_id", "_x"],
)
def test_escaping_keys_is_reversible_and_leaves_no_dot(key):
    for top_level in (True, False):
        name = escape_key(key, top_level)
        assert unescape_key(name) == key
        assert "." not in name and name.strip()
        assert not (top_level and name.startswith("_"))


def test_escaping_keys_is_injective_and_keeps_ordinary_keys():
    keys = ["", "%", "%25", ".", "%2E", "a.b", "a%2Eb", "_a", "%5Fa", " ", "%20", "title"]
    assert len({escape_key(k, top_level=True) for k in keys}) == len(keys)
    assert escape_key("title") == "title" and escape_key("_private") == "_private"


def test_what_the_engine_would_refuse_is_left_out_and_listed():
    known = documents.KnownMapping.from_mapping(
        {
            "properties": {
                "price": {"type": "long"},
                "when": {"type": "date"},
                "exports": {"type": "text"},
                "author": {"properties": {"name": {"type": "text"}}},
                "done": {"type": "boolean"},
            }
        }
    )
    record = {
        "id": "r",
        "last_modified": 1,
        "price": "cheap",  # kept in _source (ignore_malformed), not searchable
        "when": "yesterday",
        "exports": {".": "./index.js"},  # an object where the mapping has text
        "author": "ann",  # a string where the mapping has an object
        "done": "maybe",
        "mixed": [1, {"a": 1}],
        "title": "kept",
    }
    document = documents.build(record, {}, known)
    assert document.left_out == ["author", "done", "exports", "mixed", "price", "when"]
    assert document.source["_unindexed"] == document.left_out
    assert document.source["price"] == "cheap" and document.source["title"] == "kept"
    assert "exports" not in document.source and "author" not in document.source


def test_the_minimal_form_keeps_only_what_any_index_takes():
    document = documents.build({"id": "r", "last_modified": 5, "a": 1, "b": {"c": 2}})
    minimal = documents.minimal(document)
    assert minimal.source == {"id": "r", "last_modified": 5, "_unindexed": ["a", "b"]}


@pytest.mark.parametrize(
    "reason, field",
    [
        ("failed to parse field [n] of type [long] in document with id 'x'", "n"),
        ("[1:6] object mapping for [a.b] tried to parse field [b] as object, but found", "a.b"),
        ("mapping set to strict, dynamic introduction of [z] within [_doc] is not allowed", "z"),
        ("mapping set to strict, dynamic introduction of [z] within [o] is not allowed", "o.z"),
        ('Document contains at least one immense term in field="k" (whose UTF8', "k"),
        ("failed to parse", None),
    ],
)
def test_the_field_an_engine_refuses_is_read_from_its_reason(reason, field):
    assert documents.refused_field(reason) == field


@pytest.fixture
def collection(app, alice):
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    return app


@pytest.fixture
def dedicated(make_app, alice):
    """A collection with an index of its own (pools off): its mapping is its own, up to the
    field limit. A pool's is every tenant's, under budgets of its own (``test_pools``)."""
    app = make_app(**{"elasticsearch.pools": "0"})
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    return app


def _put(app, alice, record_id, data):
    return app.put_json(f"{COLLECTION}/records/{record_id}", {"data": data}, headers=alice).json[
        "data"
    ]


def _ids(app, alice, query):
    body = {"query": query, "size": 100, "sort": [{"id": "asc"}]}
    hits = app.post_json(f"{COLLECTION}/search", body, headers=alice).json["hits"]["hits"]
    return [hit["_id"] for hit in hits]


def _field_count(engine, index_prefix):
    alias = naming.alias_name(index_prefix, "b", "c")
    mapping = next(iter(engine.call("indices.get_mapping", index=alias).values()))["mappings"]
    return count_fields(mapping.get("properties"))


def test_an_update_to_another_type_replaces_the_old_version(
    collection, alice, engine, index_prefix
):
    # Seen running Kinto's own test suite: a field set to 42, then patched to "baz".
    _put(collection, alice, "r1", {"foo": 42})
    patched = collection.patch_json(
        f"{COLLECTION}/records/r1", {"data": {"foo": "baz"}}, headers=alice
    ).json["data"]
    version, source = indexed(engine, index_prefix, "b", "c")["r1"]
    assert version == patched["last_modified"]
    assert source["foo"] == "baz" and source["_unindexed"] == ["foo"]
    assert _ids(collection, alice, {"term": {"_unindexed": "foo"}}) == ["r1"]
    assert _ids(collection, alice, {"term": {"foo": 42}}) == []


@pytest.mark.parametrize("first", ["string", "object"])
def test_a_field_both_string_and_object_keeps_every_record_searchable(
    collection, alice, engine, index_prefix, first
):
    # As package manifests have it: "exports" is a path, or a map of paths.
    as_string = {"name": "one", "exports": "./index.js"}
    as_object = {"name": "two", "exports": {".": {"import": "./i.mjs"}, "./package.json": "x"}}
    records = [as_string, as_object] if first == "string" else [as_object, as_string]
    _put(collection, alice, "r1", records[0])
    _put(collection, alice, "r2", records[1])
    docs = indexed(engine, index_prefix, "b", "c")
    assert set(docs) == {"r1", "r2"}
    assert "_unindexed" not in docs["r1"][1]
    assert docs["r2"][1]["_unindexed"] == ["exports"]
    assert _ids(collection, alice, {"match": {"name": records[1]["name"]}}) == ["r2"]
    assert _ids(collection, alice, {"term": {"_unindexed": "exports"}}) == ["r2"]


def test_keys_that_cannot_be_field_names_are_escaped(collection, alice, engine, index_prefix):
    data = {
        "": "empty",
        ".": "dot",
        "./package.json": "./package.json",
        "a.b": 1,
        "a": {"b": "an object a next to a key a.b"},
        "_id": "not the id",
        "_source": {"x": 1},
        "_unindexed": "a record's own field",
        " ": "blank",
        "x..y": 2,
        "nested": {"": 1, "k.j": {"": 2}},
    }
    _put(collection, alice, "r1", data)
    version, source = indexed(engine, index_prefix, "b", "c")["r1"]
    assert "_unindexed" not in source  # nothing left out: every key has a name
    assert source["a%2Eb"] == 1 and source["%5Fid"] == "not the id"
    assert source["nested"] == {"%": 1, "k%2Ej": {"%": 2}}
    assert _ids(collection, alice, {"term": {"a%2Eb": 1}}) == ["r1"]
    assert _ids(collection, alice, {"term": {"%5Funindexed.keyword": "a record's own field"}}) == [
        "r1"
    ]
    assert _ids(collection, alice, {"match_all": {}}) == ["r1"]
    # Hits are records: their keys as the record has them, highlights too.
    body = {
        "query": {"match": {"%2E/package%2Ejson": "./package.json"}},
        "highlight": {"fields": {"%2E/package%2Ejson": {}}},
    }
    [hit] = collection.post_json(f"{COLLECTION}/search", body, headers=alice).json["hits"]["hits"]
    assert {k: v for k, v in hit["_source"].items() if k not in ("id", "last_modified")} == data
    assert list(hit["highlight"]) == ["./package.json"]
    [hit] = collection.get(f"{COLLECTION}/search?q=empty", headers=alice).json["hits"]["hits"]
    assert hit["_source"][""] == "empty" and hit["_source"]["nested"] == data["nested"]


def test_thousands_of_distinct_keys_never_stop_indexing(dedicated, alice, engine, index_prefix):
    _put(dedicated, alice, "wide", {f"k{i}": i for i in range(2 * MAX_FIELDS)})
    _put(dedicated, alice, "later", {"title": "after the wide one", "fresh": 1})
    docs = indexed(engine, index_prefix, "b", "c")
    assert set(docs) == {"wide", "later"}
    assert _field_count(engine, index_prefix) <= MAX_FIELDS
    assert "fresh" in docs["later"][1]["_unindexed"]
    assert _ids(dedicated, alice, {"ids": {"values": ["wide", "later"]}}) == ["later", "wide"]
    assert _ids(dedicated, alice, {"term": {"_unindexed": "fresh"}}) == ["later"]


def test_a_map_with_thousands_of_keys_stops_mapping_only_its_own(
    dedicated, alice, engine, index_prefix
):
    dependencies = {f"package-{i}": f"^{i}.0.0" for i in range(1500)}
    _put(dedicated, alice, "app", {"name": "app", "dependencies": dependencies})
    _put(dedicated, alice, "lib", {"name": "lib", "version": "2.0.0", "dependencies": {"x": "1"}})
    docs = indexed(engine, index_prefix, "b", "c")
    assert docs["app"][1]["_unindexed"] == ["dependencies"]
    assert docs["app"][1]["dependencies"] == dependencies  # still in _source
    assert _field_count(engine, index_prefix) <= MAX_FIELDS
    # Fields elsewhere are still mapped, and searchable.
    assert _ids(dedicated, alice, {"match": {"version": "2.0.0"}}) == ["lib"]
    assert _ids(dedicated, alice, {"term": {"_unindexed": "dependencies"}}) == ["app", "lib"]


def test_a_document_the_engine_refuses_is_sent_again_without_what_it_names(
    app, alice, engine, index_prefix, metrics
):
    app.put_json("/v1/buckets/b", {}, headers=alice)
    strict = {"dynamic": "strict", "properties": {"title": {"type": "text"}}}
    app.put_json(COLLECTION, {"data": {"index:schema": strict}}, headers=alice)
    _put(app, alice, "r1", {"title": "kept", "other": 1})
    version, source = indexed(engine, index_prefix, "b", "c")["r1"]
    assert source == {
        "id": "r1",
        "last_modified": version,
        "title": "kept",
        "_unindexed": ["other"],
    }
    assert metrics.counts["elasticsearch.documents.partial"] == 1


def test_verify_tells_partial_records_apart_and_repair_improves_them(
    collection, alice, engine, index_prefix
):
    registry = collection.app.registry
    _put(collection, alice, "ok", {"title": "complete"})
    stored = _put(collection, alice, "part", {"title": "left out by an older plugin"})
    # The index as a stricter past left it: the record at its version, in minimal form.
    minimal = {"id": "part", "last_modified": stored["last_modified"], "_unindexed": ["title"]}
    where = registry.elasticsearch.index.locator.placement("b", "c")
    engine.call(
        "index",
        index=where.write_target,
        **where.routing,
        id=where.document_id("part"),
        body=where.source(minimal),
        version=stored["last_modified"],
        version_type="external_gte",
        refresh="true",
    )
    metadata = collection.get(COLLECTION, headers=alice).json["data"]
    report = compare.verify_collection(
        registry.storage, registry.elasticsearch.index, "b", "c", metadata
    )
    assert not report.differs
    assert report.partial.count == 1 and report.partial.examples == [("part", ["title"])]

    compare.verify_collection(
        registry.storage, registry.elasticsearch.index, "b", "c", metadata, repair=True
    )
    engine.call("indices.refresh", index=where.target)
    assert "_unindexed" not in indexed(engine, index_prefix, "b", "c")["part"][1]
    report = compare.verify_collection(
        registry.storage, registry.elasticsearch.index, "b", "c", metadata
    )
    assert not report.differs and report.partial.count == 0


@pytest.mark.parametrize(
    "metadata, name",
    [
        ({"index:schema": {"properties": []}}, "index:schema"),
        ({"index:schema": {"properties": {"a": "text"}}}, "index:schema"),
        ({"index:fields": "title"}, "index:fields"),
        ({"index:map_like": [1]}, "index:map_like"),
    ],
)
def test_malformed_indexing_metadata_is_a_400(app, alice, engine, index_prefix, metadata, name):
    app.put_json("/v1/buckets/b", {}, headers=alice)
    response = app.put_json(COLLECTION, {"data": metadata}, headers=alice, status=400)
    assert response.json["details"][0]["name"] == name
    # Storage without transactions (the memory backend) keeps it all the same: the
    # plugin reads such metadata without failing, and indexes the collection's records.
    app.put_json(f"{COLLECTION}/records/r1", {"data": {"title": "t"}}, headers=alice)
    assert set(indexed(engine, index_prefix, "b", "c")) == {"r1"}


def test_index_fields_sends_only_those_fields(app, alice, engine, index_prefix):
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {"data": {"index:fields": ["title", "author.name"]}}, headers=alice)
    _put(app, alice, "r1", {"title": "t", "body": "b", "author": {"name": "ann", "mail": "m"}})
    _, source = indexed(engine, index_prefix, "b", "c")["r1"]
    assert {k: v for k, v in source.items() if k not in ("id", "last_modified")} == {
        "title": "t",
        "author": {"name": "ann"},
    }


def test_index_map_like_maps_an_object_with_the_engines_flattened_type(
    app, alice, engine, index_prefix
):
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {"data": {"index:map_like": ["dependencies"]}}, headers=alice)
    _put(app, alice, "r1", {"dependencies": {f"p{i}": "1.0" for i in range(1500)}})
    alias = naming.alias_name(index_prefix, "b", "c")
    mapping = next(iter(engine.call("indices.get_mapping", index=alias).values()))["mappings"]
    assert mapping["properties"]["dependencies"]["type"] == engine.flattened_type
    _, source = indexed(engine, index_prefix, "b", "c")["r1"]
    assert "_unindexed" not in source


def test_facets_say_which_fields_are_not_searchable_and_in_how_many_records(collection, alice):
    _put(collection, alice, "r1", {"price": 10, "tags": {"a": 1}})
    _put(collection, alice, "r2", {"price": "on demand", "tags": "none"})
    _put(collection, alice, "r3", {"price": "ask", "tags": {"b": 2}})
    response = collection.get(f"{COLLECTION}/search/facets?limit=0", headers=alice).json
    fields = {field["name"]: field for field in response["fields"]}
    assert fields["price"]["searchable"] is True and fields["price"]["unsearchable_in"] == 2
    assert fields["tags.a"]["searchable"] is True and "unsearchable_in" not in fields["tags.a"]
    # "tags" is an object in the mapping: the record holding a string has it left out.
    assert fields["tags"] == {
        "name": "tags",
        "type": None,
        "sortable": False,
        "searchable": False,
        "unsearchable_in": 1,
    }
    assert "_unindexed" not in fields


def test_private_fields_left_out_are_reported_but_not_listed_for_readers(
    app, alice, engine, index_prefix, metrics
):
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {"data": {"index:private_fields": ["salary"]}}, headers=alice)
    _put(app, alice, "r1", {"salary": 1000, "grade": 1})
    _put(app, alice, "r2", {"salary": "secret deal", "grade": "high"})
    _, source = indexed(engine, index_prefix, "b", "c")["r2"]
    # Any reader may query _unindexed: it must not tell whose salary is unusual.
    assert source["_unindexed"] == ["grade"]
    assert metrics.counts["elasticsearch.documents.partial"] == 1


def test_json_schema_dates_are_dates_and_a_bad_one_leaves_only_itself_out(
    app, alice, engine, index_prefix
):
    app.put_json("/v1/buckets/b", {}, headers=alice)
    schema = {
        "type": "object",
        "properties": {
            "published": {"type": "string", "format": "date-time"},
            "status": {"enum": ["draft", "live"]},
        },
    }
    app.put_json(COLLECTION, {"data": {"schema": schema}}, headers=alice)
    _put(app, alice, "old", {"published": "2020-01-01T10:00:00Z", "status": "live"})
    _put(app, alice, "new", {"published": "2026-05-01T10:00:00+02:00", "status": "draft"})
    _put(app, alice, "bad", {"published": "next week", "status": "live"})
    range_query = {"range": {"published": {"gte": "2025-01-01"}}}
    assert _ids(app, alice, range_query) == ["new"]
    assert _ids(app, alice, {"term": {"status": "live"}}) == ["bad", "old"]
    assert _ids(app, alice, {"term": {"_unindexed": "published"}}) == ["bad"]
    years = {"date_histogram": {"field": "published", "calendar_interval": "year"}}
    body = {"size": 0, "aggs": {"years": years}}
    buckets = app.post_json(f"{COLLECTION}/search", body, headers=alice).json["aggregations"]
    assert sum(b["doc_count"] for b in buckets["years"]["buckets"]) == 2
