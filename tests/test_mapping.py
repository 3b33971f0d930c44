from kinto_elasticsearch.index.mapping import (
    STRING_MAPPING,
    collection_mapping,
    flatten_field_types,
    mapping_changed,
)


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
