"""``kinto-elasticsearch sync [--follow]``: the catch-up pass, in the foreground."""

import functools
import logging
import time

import transaction

from kinto_elasticsearch.client import EngineError
from kinto_elasticsearch.ops.errors import CommandError
from kinto_elasticsearch.ops.scope import FORCE_FLAG, collections_in_scope
from kinto_elasticsearch.sync.catchup import CatchUp
from kinto_elasticsearch.sync.lease import CatchUpTurn
from kinto_elasticsearch.sync.purges import PurgeSchedule

logger = logging.getLogger(__name__)

HELP = (
    "Index what changed in storage since each collection's checkpoint (what every "
    "Kinto process does in the background), once or with --follow for ever."
)


def add_arguments(parser):
    parser.add_argument("--follow", action="store_true", help="keep catching up, every --interval")
    parser.add_argument(
        "--interval", type=float, default=10.0, help="seconds between passes (default: 10)"
    )


def run(registry, args, out):
    # A clear error for an unknown scope, or a storage that cannot be the server's.
    collections_in_scope(registry.storage, args)
    settings = registry.elasticsearch.settings
    catchup = CatchUp(
        registry,
        overlap_ms=int(settings.catchup_overlap * 1000),
        sanity_check=not args.force_delete_orphans,
    )
    schedule = PurgeSchedule()
    # Once: a full pass, whoever holds the catch-up lease (passes are idempotent). With
    # --follow: a worker in the foreground, the first pass full, then incremental ones
    # while holding the lease (``sync.lease``), as Kinto processes do.
    turn = CatchUpTurn() if args.follow else None
    passes = 0
    while True:
        started = time.monotonic()
        try:
            run_pass = functools.partial(
                catchup.run, args.bucket, args.collection, full=passes == 0, turn=turn
            )
            passes += 1
            report = schedule.run(run_pass)
        except EngineError as exc:
            if not args.follow:
                raise
            logger.warning("Catch-up pass stopped, trying again: %s", exc)
        else:
            if report.standby:
                print("Standing by: another process holds the catch-up lease.", file=out)
            print(
                f"{report.collections} collection(s): {report.up_to_date} up to date, "
                f"{report.indexed} change(s) indexed, {len(report.created)} index(es) created, "
                f"{len(report.removed)} removed, {len(report.rebuilt)} rebuilt, "
                f"{len(report.compared)} compared in full.",
                file=out,
                flush=True,
            )
            if report.refused:
                refusal = (
                    f"the indices of the collections storage lacks were kept: {report.refused} "
                    f"(check that --ini is the server's; {FORCE_FLAG} deletes them all the same)"
                )
                if not args.follow:
                    raise CommandError(refusal)
                logger.warning(refusal)
        finally:
            transaction.abort()
        if not args.follow:
            return 0
        time.sleep(max(0.0, args.interval - (time.monotonic() - started)))
