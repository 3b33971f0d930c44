"""The ``kinto-elasticsearch`` command line: catch up, rebuild and verify indices.

Exit status: 0 when all went well (and, for verify, everything matches), 1 when verify
found differences, 2 on an error (bad arguments, plugin not configured, unknown bucket or
collection, engine unreachable).
"""

import argparse
import logging
import os
import sys
import time

import transaction
from kinto.core.storage.exceptions import ObjectNotFoundError
from pyramid.paster import bootstrap, setup_logging

from kinto_elasticsearch.client import EngineError
from kinto_elasticsearch.storage import bucket_uri, collection_uri, iter_collections
from kinto_elasticsearch.sync import compare
from kinto_elasticsearch.sync.catchup import PURGE_CHECK_SECONDS, CatchUp
from kinto_elasticsearch.sync.rebuild import RebuildInProgress, reindex_collection

logger = logging.getLogger("kinto_elasticsearch.cli")


class CommandError(Exception):
    """A clear message for the operator, and exit status 2."""


class Progress:
    """Records done, rate and time left: a bar on a terminal, log lines otherwise."""

    def __init__(self, label, total, stream=None, interval=5.0):
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = interval
        self.started = self.last_line = time.monotonic()

    def __call__(self, count):
        self.done += count
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r" + self._line(now))
            self.stream.flush()
        elif now - self.last_line >= self.interval:
            self.last_line = now
            logger.info(self._line(now))

    def _line(self, now):
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate and self.total > self.done else 0
        width = 30
        filled = int(width * self.done / self.total) if self.total else width
        bar = "#" * filled + "-" * (width - filled)
        return (
            f"{self.label} [{bar}] {self.done}/{self.total} records, "
            f"{rate:,.0f}/s, {left:,.0f} s left"
        )

    def close(self):
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def build_parser():
    parser = argparse.ArgumentParser(
        prog="kinto-elasticsearch",
        description="Rebuild and verify the search indices of a Kinto server.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def scoped(name, help_text):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--ini", required=True, help="Kinto's configuration file")
        sub.add_argument("-b", "--bucket", help="only this bucket")
        sub.add_argument("-c", "--collection", help="only this collection (needs --bucket)")
        return sub

    reindex = scoped(
        "reindex",
        "Rebuild indices from storage into new indices, then swap them in atomically.",
    )
    reindex.add_argument(
        "--promote",
        action="store_true",
        help="move pooled collections to an index of their own (online, like a rebuild)",
    )
    verify = scoped(
        "verify",
        "Compare storage and indices; exit 1 if they differ.",
    )
    verify.add_argument(
        "--repair", action="store_true", help="fix every difference found, and report it"
    )
    sync = scoped(
        "sync",
        "Index what changed in storage since each collection's checkpoint (what every "
        "Kinto process does in the background), once or with --follow for ever.",
    )
    sync.add_argument("--follow", action="store_true", help="keep catching up, every --interval")
    sync.add_argument(
        "--interval", type=float, default=10.0, help="seconds between passes (default: 10)"
    )
    return parser


def _collections(storage, args):
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


def reindex(registry, args, out):
    storage, index_side = registry.storage, registry.elasticsearch.index
    settings = registry.elasticsearch.settings
    count = 0
    for bucket_id, collection_id, metadata in _collections(storage, args):
        if not settings.is_indexed(bucket_id, collection_id):
            continue
        uri = collection_uri(bucket_id, collection_id)
        total = storage.count_all(resource_name="record", parent_id=uri)
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
        for record_id, reason in result.failed[: compare.EXAMPLES]:
            print(f"  refused {uri}/records/{record_id}: {reason}", file=out)
        for record_id, left_out, _ in result.partial[: compare.EXAMPLES]:
            print(f"  in part {uri}/records/{record_id}: without {', '.join(left_out)}", file=out)
        count += 1
        transaction.abort()
    print(f"{count} collection(s) reindexed.", file=out)
    return 0


def _examples(difference, describe=str):
    more = ", ..." if difference.count > len(difference.examples) else ""
    return ", ".join(describe(example) for example in difference.examples) + more


def verify(registry, args, out):
    storage, index_side = registry.storage, registry.elasticsearch.index
    settings = registry.elasticsearch.settings
    differs = False
    expected = set()
    checked = 0
    for bucket_id, collection_id, metadata in _collections(storage, args):
        if not settings.is_indexed(bucket_id, collection_id):
            continue
        expected.add(index_side.locator.alias(bucket_id, collection_id))
        report = compare.verify_collection(
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
        if args.repair and report.differs:
            print(f"  repaired: {report.repaired} document(s) written or deleted", file=out)
    pattern = compare.scope_pattern(index_side.prefix, args.bucket, args.collection)
    indices = compare.verify_indices(index_side, expected, pattern, repair=args.repair)
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
    differs = differs or indices.differs
    summary = "differences found" if differs else "everything matches"
    if args.repair and differs:
        summary = "differences found and repaired"
    print(f"{checked} collection(s) verified: {summary}.", file=out)
    return 1 if differs else 0


def sync(registry, args, out):
    settings = registry.elasticsearch.settings
    catchup = CatchUp(registry, overlap_ms=int(settings.catchup_overlap * 1000))
    _collections(registry.storage, args)  # A clear error for an unknown scope.
    purges_checked = None
    while True:
        started = time.monotonic()
        due = purges_checked is None or started - purges_checked >= PURGE_CHECK_SECONDS
        try:
            report = catchup.run(args.bucket, args.collection, check_purges=due)
            if due:
                purges_checked = started
        except EngineError as exc:
            if not args.follow:
                raise
            logger.warning("Catch-up pass stopped, trying again: %s", exc)
        else:
            print(
                f"{report.collections} collection(s): {report.up_to_date} up to date, "
                f"{report.indexed} change(s) indexed, {len(report.created)} index(es) created, "
                f"{len(report.removed)} removed, {len(report.rebuilt)} rebuilt, "
                f"{len(report.compared)} compared in full.",
                file=out,
                flush=True,
            )
        finally:
            transaction.abort()
        if not args.follow:
            return 0
        time.sleep(max(0.0, args.interval - (time.monotonic() - started)))


COMMANDS = {"reindex": reindex, "verify": verify, "sync": sync}


def run(args, out=sys.stdout):
    if args.collection and not args.bucket:
        raise CommandError("--collection needs --bucket")
    # This process does the work itself, in the foreground: no background catch-up in it.
    os.environ["KINTO_ELASTICSEARCH_CATCHUP_IN_PROCESS"] = "false"
    try:
        env = bootstrap(args.ini)
    except FileNotFoundError as exc:
        raise CommandError(f"cannot read {args.ini}: {exc}") from None
    try:
        registry = env["registry"]
        if getattr(registry, "index_side", None) is None:
            raise CommandError(
                f"kinto_elasticsearch is not enabled in {args.ini}: add it to kinto.includes"
            )
        if not registry.elasticsearch.ping():
            hosts = ", ".join(registry.elasticsearch.settings.hosts)
            raise CommandError(f"cannot reach the search engine at {hosts}")
        try:
            return COMMANDS[args.command](registry, args, out)
        except EngineError as exc:
            raise CommandError(f"the search engine failed: {exc}") from None
    finally:
        transaction.abort()
        env["closer"]()


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        setup_logging(args.ini)
    except Exception:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return run(args)
    except CommandError as exc:
        print(f"kinto-elasticsearch: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
