"""Answers from pooled indices, as a collection of its own would give them.

A pooled document's ``_id`` is ``{bucket}/{collection}/{record}`` and its ``_index`` the
pool's (``index/placement.py``). Users must see neither another collection's ids nor the
pool: every hit, wherever it is in a response (hits, inner hits, ``top_hits``), gets back
the record id as ``_id`` and the collection's alias as ``_index``, loses the routing key
and the collection field, and explanations name record ids only. Hits of dedicated indices
name the collection's alias too, not the generation behind it.
"""

from kinto_elasticsearch.index import naming
from kinto_elasticsearch.index.placement import COLLECTION_FIELD, collection_key

# What a hit of a pool says about the pool rather than about the record.
POOL_HIT_KEYS = ("_routing", "_shard", "_node")


class BucketIds:
    """What the rules need of a placement in a bucket-wide search (``rules.checks.Rules``): the
    record ids a body names match in each readable collection, as plain ``_id`` in an index
    of its own and as ``{bucket}/{collection}/{record}`` in a pool."""

    # The readable collections follow a pooled collection's rules (some are pooled, or
    # were moved out of a pool by the plugin: ``Placement.shared``).
    shared = True

    def __init__(self, keys):
        self.keys = sorted(keys)
        # Whether some are in a pool, whose document ids are namespaced.
        self.pooled = bool(self.keys)

    def document_ids(self, record_ids):
        record_ids = list(record_ids)
        return record_ids + [f"{key}/{r}" for key in self.keys for r in record_ids]

    def document_id(self, record_id):
        """None: one record id is several document ids here (see the rules)."""
        return None


def restore(response, prefix):
    """``response`` with every hit of a pool of ``prefix`` shown as its collection's own,
    and every hit naming its collection's alias as ``_index`` wherever it lives (a pool, or
    a generation of an index of its own, which a rebuild changes); changed in place, and
    returned."""
    stack = [response]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if _is_pooled_hit(value, prefix):
                _restore_hit(value, prefix)
            elif isinstance(value.get("_index"), str) and "_id" in value:
                value["_index"] = naming.alias_of(prefix, value["_index"]) or value["_index"]
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return response


def as_one_shard(response):
    """``response`` with ``_shards`` counted as one shard, in place: a search under a
    pool's rules (``Placement.shared``) must not tell how many shards it read, which says
    where its collections live (a pool, or an index the plugin moved them to because of
    another tenant) and how many other tenants' pools a bucket spans. Shards that failed
    are told as one failure, without the engine's reasons (they may name other tenants'
    fields)."""
    shards = response.get("_shards")
    if not isinstance(shards, dict):
        return response
    failed = 1 if shards.get("failed") else 0
    counted = {"total": 1, "successful": 1 - failed, "skipped": 0, "failed": failed}
    if failed:
        reason = "a shard could not answer: the hits are those of the others, if any"
        counted["failures"] = [{"reason": {"type": "shard_failure", "reason": reason}}]
    response["_shards"] = counted
    return response


def _is_pooled_hit(value, prefix):
    index, document_id = value.get("_index"), value.get("_id")
    return (
        isinstance(index, str)
        and isinstance(document_id, str)
        and naming.is_pool(prefix, index)
        and document_id.count("/") >= 2
    )


def split_document_id(document_id):
    """``(bucket id, collection id, record id)`` of a pooled document's ``_id``."""
    bucket_id, collection_id, record_id = document_id.split("/", 2)
    return bucket_id, collection_id, record_id


def _restore_hit(hit, prefix):
    bucket_id, collection_id, record_id = split_document_id(hit["_id"])
    hit["_id"] = record_id
    hit["_index"] = naming.alias_name(prefix, bucket_id, collection_id)
    for key in POOL_HIT_KEYS:
        hit.pop(key, None)
    # The pool's own field: a highlight of ``*`` highlights the collection filter's match.
    for part in ("_source", "fields", "highlight"):
        if isinstance(hit.get(part), dict):
            hit[part].pop(COLLECTION_FIELD, None)
    if isinstance(hit.get("_explanation"), dict):
        _restore_explanation(hit["_explanation"], collection_key(bucket_id, collection_id))


def _restore_explanation(explanation, key):
    stack = [explanation]
    while stack:
        node = stack.pop()
        if isinstance(node.get("description"), str):
            node["description"] = node["description"].replace(f"{key}/", "")
        stack.extend(d for d in node.get("details", []) if isinstance(d, dict))
