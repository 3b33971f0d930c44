"""The collections a command works on: all of them, a bucket's, or one."""

from kinto.core.storage.exceptions import ObjectNotFoundError

from kinto_elasticsearch.ops.errors import CommandError
from kinto_elasticsearch.storage import bucket_uri, iter_collections


def add_arguments(parser):
    parser.add_argument("-b", "--bucket", help="only this bucket")
    parser.add_argument("-c", "--collection", help="only this collection (needs --bucket)")


def collections_in_scope(storage, args):
    """The collections in scope, with a clear error if the bucket or collection is unknown."""
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
