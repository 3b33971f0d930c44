import pytest

from kinto_elasticsearch.index.fields import DERIVED_FIELDS, STRING_MAPPING
from kinto_elasticsearch.index.mapping import (
    REQUIRED_PROPERTIES,
    collection_mapping,
    derives_mapping,
    flatten_field_types,
    mapping_changed,
)
from kinto_elasticsearch.index.schema import count_fields


def test_required_fields_and_string_template_are_always_there():
    mapping = collection_mapping({})
    assert mapping["properties"]["id"] == {"type": "keyword"}
    assert mapping["properties"]["last_modified"] == {"type": "long"}
    template = mapping["dynamic_templates"][0]["strings"]
    assert template["mapping"]["fields"]["keyword"]["type"] == "keyword"


def test_index_schema_is_an_explicit_mapping():
    mapping = collection_mapping(
        {
            "index:schema": {"properties": {"id": {"type": "text"}, "age": {"type": "integer"}}},
            "schema": {"properties": {"age": {"type": "string"}}},
        }
    )
    assert mapping["properties"]["age"] == {"type": "integer"}
    # The plugin's own fields cannot be mapped otherwise: permissions and paging use them.
    assert mapping["properties"]["id"] == {"type": "keyword"}


def test_mapping_is_derived_from_the_json_schema():
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "count": {"type": "integer"},
            "price": {"type": ["number", "null"]},
            "done": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "author": {"type": "object", "properties": {"name": {"type": "string"}}},
            "anything": {},
        },
    }
    properties = collection_mapping({"schema": schema})["properties"]
    assert properties["title"] == STRING_MAPPING
    assert properties["count"] == {"type": "long"}
    assert properties["price"] == {"type": "double"}
    assert properties["done"] == {"type": "boolean"}
    assert properties["tags"] == STRING_MAPPING
    assert properties["author"] == {"type": "object", "properties": {"name": STRING_MAPPING}}
    assert "anything" not in properties


def test_mapping_changes_are_detected():
    assert not mapping_changed({"a": 1}, {"a": 2})
    assert mapping_changed({}, {"index:schema": {}})
    assert mapping_changed({"schema": {"type": "object"}}, {})


def test_flatten_field_types_lists_sub_fields():
    types = flatten_field_types(
        {"properties": {"title": STRING_MAPPING, "a": {"properties": {"b": {"type": "long"}}}}}
    )
    assert types == {
        "title": "text",
        "title.keyword": "keyword",
        "a": "object",
        "a.b": "long",
    }


def _derived(schema, **kwargs):
    return collection_mapping({"schema": schema}, **kwargs)["properties"]


def test_dates_enums_and_nullable_types_are_mapped():
    properties = _derived(
        {
            "properties": {
                "published": {"type": "string", "format": "date-time"},
                "day": {"type": ["string", "null"], "format": "date"},
                "status": {"enum": ["draft", "live"]},
                "kind": {"const": "article"},
                "level": {"enum": [1, 2, 3]},
                "ratio": {"type": "number", "nullable": True},
            }
        }
    )
    assert properties["published"] == {"type": "date", "ignore_malformed": True}
    assert properties["day"] == {"type": "date", "ignore_malformed": True}
    assert properties["status"]["type"] == "keyword" and properties["kind"]["type"] == "keyword"
    assert properties["level"] == {"type": "long"}
    assert properties["ratio"] == {"type": "double"}


def test_local_references_are_followed_and_cycles_stop():
    schema = {
        "definitions": {
            "node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "child": {"$ref": "#/definitions/node"},
                },
            }
        },
        "properties": {"root": {"$ref": "#/definitions/node"}, "other": {"$ref": "other.json"}},
    }
    properties = _derived(schema)
    assert properties["root"]["properties"]["name"] == STRING_MAPPING
    assert "child" not in properties["root"]["properties"]  # a cycle: left dynamic
    assert "other" not in properties


def test_combinations_of_compatible_types_are_merged():
    properties = _derived(
        {
            "properties": {
                "size": {"anyOf": [{"type": "integer"}, {"type": "number"}, {"type": "null"}]},
                "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                "author": {
                    "allOf": [
                        {"properties": {"name": {"type": "string"}}},
                        {"properties": {"age": {"type": "integer"}}},
                    ]
                },
            }
        }
    )
    assert properties["size"] == {"type": "double"}
    assert "either" not in properties  # a string or a number: dynamic mapping decides
    assert set(properties["author"]["properties"]) == {"name", "age"}


def test_map_like_objects_get_the_engine_flattened_type():
    schema = {
        "properties": {
            "dependencies": {"type": "object", "additionalProperties": {"type": "string"}},
            "env": {"patternProperties": {"^[A-Z_]+$": {"type": "string"}}},
        }
    }
    properties = _derived(schema, flat_type="flat_object")
    assert properties["dependencies"] == {"type": "flat_object"}
    assert properties["env"] == {"type": "flat_object"}


def test_keys_the_engine_cannot_take_are_escaped_in_derived_mappings():
    properties = _derived({"properties": {"a.b": {"type": "integer"}, "_id": {"type": "string"}}})
    assert properties["a%2Eb"] == {"type": "long"} and "%5Fid" in properties


def test_a_schema_larger_than_the_field_limit_is_cut_to_what_fits():
    schema = {
        "properties": {
            f"f{i}": {
                "type": "object",
                "properties": {f"g{j}": {"type": "string"} for j in range(50)},
            }
            for i in range(100)
        }
    }
    properties = _derived(schema)
    assert count_fields(properties) <= DERIVED_FIELDS + len(REQUIRED_PROPERTIES)
    # Breadth first: every top-level field is kept before any nested one.
    assert all(f"f{i}" in properties for i in range(100))


@pytest.mark.parametrize("schema", [None, [], "x", {"properties": []}, {"type": 3}, True])
def test_any_schema_gives_a_mapping(schema):
    assert collection_mapping({"schema": schema})["properties"]["id"] == {"type": "keyword"}


@pytest.mark.parametrize("explicit", [{"properties": []}, {"properties": {"a": 1}}, [], "x"])
def test_a_malformed_index_schema_never_raises(explicit):
    mapping = collection_mapping({"index:schema": explicit})
    assert mapping["properties"]["last_modified"] == {"type": "long"}


def _schema(**properties):
    return {"schema": {"type": "object", "properties": properties}}


@pytest.mark.parametrize(
    "metadata, derives",
    [
        ({}, False),
        ({"schema": {"type": "object"}}, False),
        (_schema(title={"type": "string"}), False),
        (_schema(author={"type": "object", "properties": {"name": {"type": "string"}}}), False),
        ({"index:exclude_fields": ["secret"]}, False),
        (_schema(published={"type": "string", "format": "date"}), True),
        (_schema(price={"type": "number"}), True),
        (_schema(count={"type": "integer"}), True),
        (_schema(done={"type": "boolean"}), True),
        (_schema(state={"enum": ["draft", "published"]}), True),
        (_schema(labels={"type": "object", "additionalProperties": {"type": "string"}}), True),
        ({"index:map_like": ["labels"]}, True),
        ({"index:schema": {"properties": {"title": {"type": "keyword"}}}}, True),
        ({"index:schema": {"dynamic": "strict"}}, True),
    ],
)
def test_what_derives_a_mapping_of_its_own(metadata, derives):
    assert derives_mapping(metadata) is derives
