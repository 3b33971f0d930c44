"""What a client can filter and sort on in a collection, with values and counts.

One engine request: a ``terms`` aggregation per aggregatable field, run under the
caller's permission filter so that counts never reveal records they cannot read. A field
is of low cardinality when the engine reports no other values beyond those returned.
"""

from kinto_elasticsearch.index.fieldnames import UNINDEXED_FIELD
from kinto_elasticsearch.index.placement import COLLECTION_FIELD

# The plugin's own fields: no client filters or sorts on them.
PLUGIN_FIELDS = (UNINDEXED_FIELD, COLLECTION_FIELD)

# Types the engine can sort and aggregate on directly.
AGGREGATABLE = {
    "keyword", "constant_keyword", "long", "integer", "short", "byte", "double", "float",
    "half_float", "scaled_float", "unsigned_long", "date", "date_nanos", "boolean", "ip",
}  # fmt: skip
CONTAINERS = {"object", "nested", "flattened", "flat_object"}
UNINDEXED_AGGREGATION = "unindexed"
DEFAULT_VALUES = 20
MAX_VALUES = 100
# Kinto's own fields, always present and unique per record: no point listing values.
UNIQUE_FIELDS = {"id", "last_modified"}


def describe_fields(field_types, hidden=frozenset()):
    """``[{name, type, sortable, sort_field}]`` for every leaf field a client can use."""
    fields = []
    for path, kind in sorted(field_types.items()):
        if kind in CONTAINERS or path in hidden or any(path.startswith(f"{h}.") for h in hidden):
            continue
        if any(path == name or path.startswith(f"{name}.") for name in PLUGIN_FIELDS):
            continue
        parent = path.rsplit(".", 1)[0] if "." in path else None
        if parent and field_types.get(parent) not in (None, *CONTAINERS):
            # A sub-field such as title.keyword: described with its parent.
            continue
        keyword = f"{path}.keyword"
        sort_field = path if kind in AGGREGATABLE else None
        if sort_field is None and field_types.get(keyword) == "keyword":
            sort_field = keyword
        fields.append(
            {
                "name": path,
                "type": kind,
                "sortable": sort_field is not None,
                "sort_field": sort_field,
                "searchable": True,
            }
        )
    return fields


def facets_body(fields, values_limit):
    """The search body computing the values of every sortable field, and which fields the
    records hold at all (before the caller's permission filter).

    The mapping is the whole index's: it names fields that only records the caller cannot
    read (or deleted ones) ever had. ``present`` counts, among the readable records, those
    that hold each field, so that no other field is listed.
    """
    present = {f"f{i}": {"exists": {"field": field["name"]}} for i, field in enumerate(fields)}
    aggs = {"present": {"filters": {"filters": present}}} if fields else {}
    if values_limit:
        for position, field in enumerate(fields):
            if field["sortable"] and field["name"] not in UNIQUE_FIELDS:
                aggs[f"f{position}"] = {
                    "terms": {"field": field["sort_field"], "size": values_limit}
                }
    # Which fields some records hold but cannot be searched by, and in how many records.
    aggs[UNINDEXED_AGGREGATION] = {"terms": {"field": UNINDEXED_FIELD, "size": MAX_VALUES}}
    return {"size": 0, "aggs": aggs, "track_total_hits": True}


def present_fields(fields, response):
    """The ``fields`` some records of a :func:`facets_body` ``response`` hold."""
    present = response.get("aggregations", {}).get("present", {}).get("buckets", {})
    return [
        field
        for position, field in enumerate(fields)
        if present.get(f"f{position}", {}).get("doc_count", 0)
    ]


def _value(kind, bucket):
    if kind == "boolean":
        return bucket["key"] in (1, True, "true")
    if kind.startswith("date"):
        return bucket.get("key_as_string", bucket["key"])
    return bucket["key"]


def facets_response(fields, response, hidden=frozenset(), wanted=None):
    aggregations = response.get("aggregations", {})
    present = aggregations.get("present", {}).get("buckets", {})
    unsearchable = {
        bucket["key"]: bucket["doc_count"]
        for bucket in aggregations.get(UNINDEXED_AGGREGATION, {}).get("buckets", [])
        if not any(bucket["key"] == h or bucket["key"].startswith(f"{h}.") for h in hidden)
    }
    result = []
    for position, field in enumerate(fields):
        if present.get(f"f{position}", {}).get("doc_count", 0) == 0:
            continue
        entry = {
            "name": field["name"],
            "type": field["type"],
            "sortable": field["sortable"],
            "searchable": True,
        }
        if field["name"] in unsearchable:
            entry["unsearchable_in"] = unsearchable.pop(field["name"])
        agg = aggregations.get(f"f{position}")
        if agg is not None:
            entry["values"] = [
                {"value": _value(field["type"], bucket), "count": bucket["doc_count"]}
                for bucket in agg["buckets"]
            ]
            entry["complete"] = agg.get("sum_other_doc_count", 0) == 0
        result.append(entry)
    named = {entry["name"] for entry in result}
    for name, count in sorted(unsearchable.items()):
        if name not in named and (not wanted or name in wanted):
            result.append(
                {"name": name, "type": None, "sortable": False, "searchable": False,
                 "unsearchable_in": count}
            )  # fmt: skip
    total = response["hits"]["total"]
    return {"total": total["value"] if isinstance(total, dict) else total, "fields": result}
