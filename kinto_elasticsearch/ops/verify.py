"""``kinto-elasticsearch verify [--repair]``: report how indices differ from storage."""

import transaction

from kinto_elasticsearch.ops.scope import collections_in_scope
from kinto_elasticsearch.sync.compare import scope_pattern, verify_collection, verify_indices

HELP = "Compare storage and indices; exit 1 if they differ."


def add_arguments(parser):
    parser.add_argument(
        "--repair", action="store_true", help="fix every difference found, and report it"
    )


def _examples(difference, describe=str):
    more = ", ..." if difference.count > len(difference.examples) else ""
    return ", ".join(describe(example) for example in difference.examples) + more


def run(registry, args, out):
    storage, index_side = registry.storage, registry.elasticsearch.index
    settings = registry.elasticsearch.settings
    differs = False
    expected = set()
    checked = 0
    for bucket_id, collection_id, metadata in collections_in_scope(storage, args):
        if not settings.is_indexed(bucket_id, collection_id):
            continue
        expected.add(index_side.locator.alias(bucket_id, collection_id))
        report = verify_collection(
            storage,
            index_side,
            bucket_id,
            collection_id,
            metadata,
            repair=args.repair,
            lease_seconds=settings.rebuild_lease,
        )
        transaction.abort()
        checked += 1
        differs = differs or report.differs
        _print_collection(report, args.repair, out)
    pattern = scope_pattern(index_side.prefix, args.bucket, args.collection)
    indices = verify_indices(index_side, expected, pattern, repair=args.repair)
    _print_indices(indices, out)
    differs = differs or indices.differs
    summary = "differences found" if differs else "everything matches"
    if args.repair and differs:
        summary = "differences found and repaired"
    print(f"{checked} collection(s) verified: {summary}.", file=out)
    return 1 if differs else 0


def _print_collection(report, repair, out):
    if report.no_index:
        print(f"{report.uri}: no index ({report.records} records)", file=out)
    else:
        status = "differs" if report.differs else "ok"
        print(
            f"{report.uri}: {status}, {report.records} records, {report.documents} documents",
            file=out,
        )
    for kind, label in (
        ("missing", "missing from the index"),
        ("outdated", "indexed at an older version"),
        ("extra", "in the index but not in storage"),
    ):
        difference = getattr(report, kind)
        if difference.count:
            print(f"  {difference.count} {label}: {_examples(difference)}", file=out)
    if report.partial.count:
        print(
            f"  {report.partial.count} indexed in part (not searchable by these fields): "
            + _examples(report.partial, lambda e: f"{e[0]} ({', '.join(e[1])})"),
            file=out,
        )
    if report.unindexable.count:
        print(
            f"  {report.unindexable.count} no index can hold: "
            + _examples(report.unindexable, lambda e: f"{e[0]} ({e[1]})"),
            file=out,
        )
    if repair and report.differs:
        print(f"  repaired: {report.repaired} document(s) written or deleted", file=out)


def _print_indices(indices, out):
    for name in indices.orphans:
        print(f"index {name}: belongs to no collection", file=out)
    for name in indices.detached:
        print(f"index {name}: old generation, no longer in use", file=out)
    for name in indices.orphan_aliases:
        print(f"pooled collection {name}: belongs to no collection", file=out)
    for pool, counts in sorted(indices.orphan_documents.items()):
        for key, count in sorted(counts.items()):
            print(
                f"index {pool}: {count} document(s) of {key}, which has no alias there", file=out
            )
    if indices.deleted:
        print(f"  repaired: {len(indices.deleted)} index(es) deleted", file=out)
