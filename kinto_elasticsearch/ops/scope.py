"""The collections a command works on (all of them, a bucket's, or one), and the storage
it reads them from, which must be the server's."""

from kinto.core.storage.exceptions import ObjectNotFoundError

from kinto_elasticsearch.ops.errors import CommandError
from kinto_elasticsearch.storage import bucket_uri, iter_collections

# A process of its own has an empty storage of this backend, whatever the server holds.
PRIVATE_STORAGE_MODULES = ("kinto.core.storage.memory",)
FORCE_FLAG = "--force-delete-orphans"


def add_arguments(parser, orphans=True):
    """The scope's options, and ``FORCE_FLAG`` for a command that may delete ``orphans``."""
    parser.add_argument("-b", "--bucket", help="only this bucket")
    parser.add_argument("-c", "--collection", help="only this collection (needs --bucket)")
    if not orphans:
        return
    parser.add_argument(
        FORCE_FLAG,
        action="store_true",
        help=(
            "delete what the engine holds and storage lacks even when that is most of it "
            "(by default refused, as the sign of a storage that is not the server's)"
        ),
    )


def refuse_private_storage(storage):
    """A clear error for a storage no other process shares: its empty collections would
    make the engine's look orphaned."""
    module = type(storage).__module__
    if module in PRIVATE_STORAGE_MODULES:
        raise CommandError(
            f"storage is {module}: this process would read a storage of its own, empty, not "
            "the server's; use the server's own ini, with PostgreSQL storage"
        )


def collections_in_scope(storage, args):
    """The collections in scope, with a clear error if the bucket or collection is unknown
    or the storage cannot be the server's."""
    refuse_private_storage(storage)
    if args.bucket:
        try:
            storage.get(resource_name="bucket", parent_id="", object_id=args.bucket)
        except ObjectNotFoundError:
            raise CommandError(f"bucket {args.bucket!r} does not exist") from None
    if args.collection:
        try:
            storage.get(
                resource_name="collection",
                parent_id=bucket_uri(args.bucket),
                object_id=args.collection,
            )
        except ObjectNotFoundError:
            raise CommandError(
                f"collection {args.collection!r} does not exist in bucket {args.bucket!r}"
            ) from None
    return iter_collections(storage, args.bucket, args.collection)
