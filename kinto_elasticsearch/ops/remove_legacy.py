"""``kinto-elasticsearch remove-legacy``: delete kinto-elasticsearch 0.3's indices, each
once its collection's new index is complete (as ``verify`` would find it); and the lines
``verify`` and this command print of them (``index.legacy`` tells which they are)."""

import functools

import transaction

from kinto_elasticsearch.index import legacy
from kinto_elasticsearch.ops.errors import CommandError
from kinto_elasticsearch.ops.scope import collections_in_scope
from kinto_elasticsearch.storage import bucket_uri, collection_exists, collection_uri
from kinto_elasticsearch.sync.compare import verify_collection

COMMAND = "remove-legacy"
HELP = (
    "Delete kinto-elasticsearch 0.3's indices ({prefix}-{bucket}-{collection}) of the "
    "collections whose new index is complete."
)
INSIST_FLAG = "--even-if-incomplete"


def add_arguments(parser):
    parser.add_argument(
        INSIST_FLAG,
        action="store_true",
        help="delete them even where the collection's new index is missing or differs",
    )


def find(storage, index_side, bucket_id=None, collection_id=None):
    """0.3's indices of the collections in scope."""
    exists = functools.partial(collection_exists, storage)
    found = legacy.find(index_side.indices, index_side.prefix, exists)
    return found.in_scope(bucket_id, collection_id)


def print_found(found, out):
    """What ``verify`` says of 0.3's indices: none of them is a difference."""
    for name, pair in found.matched.items():
        print(
            f"0.3 index {name}: of {collection_uri(*pair)}, left by kinto-elasticsearch 0.3; "
            f"'kinto-elasticsearch {COMMAND}' deletes it once this collection's index is "
            "complete",
            file=out,
        )
    print_kept(found, out)


def print_kept(found, out):
    for name, pairs in found.ambiguous.items():
        uris = " or ".join(collection_uri(*pair) for pair in pairs)
        print(
            f"0.3 index {name}: of {uris}, which cannot be told apart: kept, delete it yourself",
            file=out,
        )
    for name in found.unmatched:
        print(
            f"index {name}: named as 0.3 named indices, of no collection in storage: kept, "
            "delete it yourself if it is 0.3's",
            file=out,
        )


def run(registry, args, out):
    storage, index_side = registry.storage, registry.elasticsearch.index
    # A clear error for an unknown scope, or a storage that cannot be the server's.
    collections_in_scope(storage, args)
    found = find(storage, index_side, args.bucket, args.collection)
    deleted = incomplete = 0
    for name, (bucket_id, collection_id) in found.matched.items():
        uri = collection_uri(bucket_id, collection_id)
        reason = (
            None if args.even_if_incomplete else _incomplete(registry, bucket_id, collection_id)
        )
        if reason:
            print(f"0.3 index {name}: kept: {reason}", file=out)
            incomplete += 1
            continue
        index_side.indices.delete([name])
        deleted += 1
        print(f"0.3 index {name}: deleted (of {uri})", file=out)
    print_kept(found, out)
    print(f"{deleted} 0.3 index(es) deleted, {incomplete + found.kept} kept.", file=out)
    if incomplete:
        raise CommandError(
            f"{incomplete} 0.3 index(es) kept, their collection's new index being incomplete: "
            "run 'kinto-elasticsearch reindex' (or verify --repair) first, or insist with "
            f"{INSIST_FLAG}"
        )
    return 0


def _incomplete(registry, bucket_id, collection_id):
    """Why the collection's new index is not yet complete, or None."""
    uri = collection_uri(bucket_id, collection_id)
    if not registry.elasticsearch.settings.is_indexed(bucket_id, collection_id):
        return f"{uri} is not indexed by this configuration"
    metadata = registry.storage.get(
        resource_name="collection", parent_id=bucket_uri(bucket_id), object_id=collection_id
    )
    try:
        report = verify_collection(
            registry.storage, registry.elasticsearch.index, bucket_id, collection_id, metadata
        )
    finally:
        transaction.abort()
    if report.no_index:
        return f"{uri} has no index yet ({report.records} records)"
    if report.differs:
        return f"{uri}'s index differs from storage ('kinto-elasticsearch verify' says how)"
    return None
