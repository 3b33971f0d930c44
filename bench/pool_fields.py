"""``python -m bench.pool_fields``: what sharing a mapping costs tenants, on real JSON.

Each JSON schema that check-jsonschema vendors (``tests/corpus.py``: real-world documents
others wrote, deep and irregular) becomes one record of a collection of its own. They are
indexed once with an index per collection and once all in one pool, through the plugin's
own write path, and compared: fields mapped, and records indexed only in part (fields left
out because the mapping was full or typed otherwise by another tenant).
"""

import sys

from kinto_elasticsearch.client import Engine
from kinto_elasticsearch.indexer import Indexer
from kinto_elasticsearch.settings import parse_settings
from tests import corpus
from tests.servers import start_engine


def measure(url, prefix, pools, documents):
    settings = parse_settings(
        {"elasticsearch.hosts": url, "elasticsearch.engine": "opensearch",
         "elasticsearch.index_prefix": prefix}
    )  # fmt: skip
    indexer = Indexer(Engine(settings), prefix=prefix, pools=pools)
    partial, left_out = 0, 0
    for i, (_name, document) in enumerate(documents):
        record = {**corpus._as_record(document), "id": "r1", "last_modified": i + 1}
        indexer.create_index("b", f"c{i}", {})
        report = indexer.write("b", f"c{i}", records=[record], metadata={})
        partial += bool(report.partial)
        left_out += sum(len(paths) for _, paths, _ in report.partial)
    mappings = indexer.engine.call("indices.get_mapping", index=f"{prefix}.*")
    fields = [len(_leaves(m.get("mappings", {}))) for n, m in mappings.items() if "-sync" not in n]
    indexer.engine.close()
    return {"partial": partial, "left_out": left_out, "fields": fields}


def _leaves(mapping, path=""):
    found = []
    for name, spec in mapping.get("properties", {}).items():
        found.append(f"{path}{name}")
        found += _leaves(spec, f"{path}{name}.")
        for sub in spec.get("fields", {}):
            found.append(f"{path}{name}.{sub}")
    return found


def main():
    documents = sorted(corpus.vendored_schemas().items())
    engine = start_engine("opensearch")
    try:
        dedicated = measure(engine.url, "dedicated", 0, documents)
        pooled = measure(engine.url, "pooled", 1, documents)
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


if __name__ == "__main__":
    sys.exit(main())
