"""``kinto-elasticsearch reindex``: rebuild indices from storage, swapped in atomically."""

import time

import transaction

from kinto_elasticsearch.ops.errors import CommandError
from kinto_elasticsearch.ops.progress import Progress
from kinto_elasticsearch.ops.scope import FORCE_FLAG, collections_in_scope
from kinto_elasticsearch.storage import collection_uri, records_uri
from kinto_elasticsearch.sync.compare import EXAMPLES
from kinto_elasticsearch.sync.rebuild import RebuildInProgress, reindex_collection
from kinto_elasticsearch.sync.sanity import deletion_refused

HELP = "Rebuild indices from storage into new indices, then swap them in atomically."


def add_arguments(parser):
    parser.add_argument(
        "--promote",
        action="store_true",
        help="move pooled collections to an index of their own (online, like a rebuild)",
    )


def run(registry, args, out):
    storage, index_side = registry.storage, registry.elasticsearch.index
    settings = registry.elasticsearch.settings
    count = 0
    refused = []
    for bucket_id, collection_id, metadata in collections_in_scope(storage, args):
        if not settings.is_indexed(bucket_id, collection_id):
            continue
        uri = collection_uri(bucket_id, collection_id)
        total = storage.count_all(resource_name="record", parent_id=uri)
        reason = (
            None
            if args.force_delete_orphans
            else _emptying(index_side, bucket_id, collection_id, total)
        )
        if reason:
            print(f"{uri}: not reindexed: {reason}", file=out)
            refused.append(uri)
            continue
        progress = Progress(uri, total)
        started = time.monotonic()
        try:
            result = reindex_collection(
                storage,
                index_side,
                bucket_id,
                collection_id,
                metadata,
                progress,
                overlap_ms=int(settings.catchup_overlap * 1000),
                registry=registry,
                promote=args.promote,
                lease_seconds=settings.rebuild_lease,
            )
        except RebuildInProgress as exc:
            raise CommandError(f"{uri}: {exc}; try again once it is done") from None
        progress.close()
        elapsed = time.monotonic() - started
        print(
            f"{uri}: {result.indexed} records indexed into {result.index} in {elapsed:.1f} s, "
            f"{result.replayed} changes replayed, {len(result.failed)} refused, "
            f"{len(result.partial)} indexed in part",
            file=out,
        )
        records = records_uri(bucket_id, collection_id)
        for record_id, reason in result.failed[:EXAMPLES]:
            print(f"  refused {records}/{record_id}: {reason}", file=out)
        for record_id, left_out, _ in result.partial[:EXAMPLES]:
            print(f"  in part {records}/{record_id}: without {', '.join(left_out)}", file=out)
        count += 1
        transaction.abort()
    print(f"{count} collection(s) reindexed.", file=out)
    if refused:
        raise CommandError(
            f"{len(refused)} collection(s) not reindexed, their index holding far more "
            f"records than storage: {', '.join(refused)} (check that --ini is the server's; "
            f"{FORCE_FLAG} rebuilds them from storage all the same)"
        )
    return 0


def _emptying(index_side, bucket_id, collection_id, stored):
    """Why a rebuild from ``stored`` records would throw away what the index holds, or None."""
    if not index_side.locator.exists(bucket_id, collection_id):
        return None
    documents = index_side.reader.count_live(bucket_id, collection_id)
    return deletion_refused("records", max(0, documents - stored), stored)
