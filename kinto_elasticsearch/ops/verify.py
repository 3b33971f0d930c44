"""``kinto-elasticsearch verify [--repair]``: report how indices differ from storage, and
the indices kinto-elasticsearch 0.3 left (never repaired here: ``remove_legacy``)."""

import transaction

from kinto_elasticsearch.ops import remove_legacy
from kinto_elasticsearch.ops.errors import CommandError
from kinto_elasticsearch.ops.scope import FORCE_FLAG, collections_in_scope
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
    sanity_check = not args.force_delete_orphans
    differs = False
    expected = set()
    checked = 0
    refused = []
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
            sanity_check=sanity_check,
        )
        transaction.abort()
        checked += 1
        differs = differs or report.differs
        _print_collection(report, args.repair, out)
        if report.refused:
            refused.append(f"{report.uri}: {report.refused}")
    pattern = scope_pattern(index_side.prefix, args.bucket, args.collection)
    indices = verify_indices(
        index_side, expected, pattern, repair=args.repair, sanity_check=sanity_check
    )
    _print_indices(indices, out)
    # 0.3's indices are not differences: the new indices may match storage beside them.
    legacy = remove_legacy.find(storage, index_side, args.bucket, args.collection)
    remove_legacy.print_found(legacy, out)
    if indices.refused:
        refused.append(indices.refused)
    differs = differs or indices.differs
    summary = "differences found" if differs else "everything matches"
    if args.repair and differs:
        summary = "differences found and repaired"
        if refused:
            summary = "differences found, repaired in part"
    print(f"{checked} collection(s) verified: {summary}.", file=out)
    if refused:
        raise CommandError(
            f"--repair left deletions out: {'; '.join(refused)} (check that --ini is the "
            f"server's; {FORCE_FLAG} deletes them all the same)"
        )
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
    if report.refused:
        print(f"  not deleted: the {report.extra.count} extra document(s)", file=out)


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
                f"index {pool}: {count} document(s) of {key}, which does not live there", file=out
            )
    if indices.deleted:
        print(f"  repaired: {len(indices.deleted)} index(es) deleted", file=out)
    if indices.refused:
        print("  not deleted: the documents of collections that storage lacks", file=out)
