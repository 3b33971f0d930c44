"""``python -m bench.pool_fields``: what sharing a mapping costs tenants.

Real JSON: each JSON schema that check-jsonschema vendors (``tests/corpus.py``: real-world
documents others wrote, deep and irregular) becomes one record of a collection of its own. They are
indexed once with an index per collection and once all in one pool, through the plugin's
own write path, and compared: fields mapped, and records indexed only in part (fields left
out because the mapping was full or typed otherwise by another tenant).

Shares: one tenant whose keys are data (a map from user ids to scores, a few new keys at
every write) writes between 60 small regular tenants (a dozen fields of their own each),
all in one pool; once with no share per collection (any tenant may take the pool's whole
field budget, as before ``pool_max_fields``) and once with the default share.
"""

import sys

from kinto_elasticsearch.client import Engine
from kinto_elasticsearch.config import parse_settings
from kinto_elasticsearch.index.side import IndexSide
from tests import corpus
from tests.servers import start_engine


def _index_side(url, prefix, pools, **options):
    settings = parse_settings(
        {"elasticsearch.hosts": url, "elasticsearch.engine": "opensearch",
         "elasticsearch.index_prefix": prefix}
    )  # fmt: skip
    return IndexSide.build(Engine(settings), prefix=prefix, pools=pools, **options)


def measure(url, prefix, pools, documents):
    index_side = _index_side(url, prefix, pools)
    partial, left_out = 0, 0
    for i, (_name, document) in enumerate(documents):
        record = {**corpus._as_record(document), "id": "r1", "last_modified": i + 1}
        index_side.admin.create_index("b", f"c{i}", {})
        report = index_side.writer.write("b", f"c{i}", records=[record], metadata={})
        partial += bool(report.partial)
        left_out += sum(len(paths) for _, paths, _ in report.partial)
    mappings = index_side.engine.call("indices.get_mapping", index=f"{prefix}.*")
    fields = [len(_leaves(m.get("mappings", {}))) for n, m in mappings.items() if "-sync" not in n]
    index_side.engine.close()
    return {"partial": partial, "left_out": left_out, "fields": fields}


def _leaves(mapping, path=""):
    found = []
    for name, spec in mapping.get("properties", {}).items():
        found.append(f"{path}{name}")
        found += _leaves(spec, f"{path}{name}.")
        for sub in spec.get("fields", {}):
            found.append(f"{path}{name}.{sub}")
    return found


def shares(url, prefix, pool_max_fields):
    """Fields mapped and records in part, for the data-keyed tenant and the regular ones."""
    index_side = _index_side(url, prefix, 1, pool_max_fields=pool_max_fields)
    partial = {"keyed": 0, "regular": 0}
    for collection_id in ["keyed"] + [f"t{i}" for i in range(60)]:
        index_side.admin.create_index("b", collection_id, {})
    for i in range(60):
        scores = {f"user{i * 20 + k}": k for k in range(20)}
        report = index_side.writer.write("b", "keyed", records=[_record(i, {"scores": scores})])
        partial["keyed"] += bool(report.partial)
        own = {f"t{i}_field{k}": k for k in range(12)}
        report = index_side.writer.write("b", f"t{i}", records=[_record(0, own)])
        partial["regular"] += bool(report.partial)
    pool = f"{prefix}.-pool-0"
    mapping = index_side.engine.call("indices.get_mapping", index=pool)[pool]["mappings"]
    index_side.engine.close()
    return {"fields": len(_leaves(mapping)), **partial}


def _record(i, data):
    return {**data, "id": f"r{i}", "last_modified": i + 1}


def main():
    documents = sorted(corpus.vendored_schemas().items())
    engine = start_engine("opensearch")
    try:
        dedicated = measure(engine.url, "dedicated", 0, documents)
        pooled = measure(engine.url, "pooled", 1, documents)
        unbounded = shares(engine.url, "unbounded", 10**6)
        shared = shares(engine.url, "shared", parse_settings({}).pool_max_fields)
    finally:
        engine.close()
    print(f"{len(documents)} collections, one real-world JSON document each")
    for name, result in (("an index per collection", dedicated), ("one pool", pooled)):
        fields = result["fields"]
        print(
            f"{name}: {len(fields)} indices, {sum(fields)} fields mapped in all "
            f"(largest {max(fields)}), {result['partial']} records indexed in part, "
            f"{result['left_out']} paths left out"
        )
    print("one data-keyed tenant (60 writes of 20 new keys) among 60 regular tenants, one pool:")
    for name, result in (("no share per collection", unbounded), ("default share", shared)):
        print(
            f"{name}: {result['fields']} fields mapped, data-keyed tenant's records in part "
            f"{result['keyed']} of 60, regular tenants' records in part {result['regular']} of 60"
        )


if __name__ == "__main__":
    sys.exit(main())
