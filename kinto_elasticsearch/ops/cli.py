"""The ``kinto-elasticsearch`` command line: catch up, rebuild and verify indices, remove
0.3's.

Exit status: 0 when all went well (and, for verify, everything matches), 1 when verify
found differences, 2 on an error (bad arguments, an ini that cannot be read, a bad setting,
plugin not configured, unknown bucket or collection, engine unreachable), reported as one
line on stderr; a bug keeps its traceback.
"""

import argparse
import configparser
import logging
import os
import sys
import warnings

import transaction
from plaster.exceptions import PlasterError
from pyramid.exceptions import ConfigurationError, ConfigurationExecutionError
from pyramid.paster import bootstrap, setup_logging

from kinto_elasticsearch.client import EngineError
from kinto_elasticsearch.ops import reindex, remove_legacy, scope, sync, verify
from kinto_elasticsearch.ops.errors import CommandError

COMMANDS = {
    "reindex": reindex,
    "verify": verify,
    "sync": sync,
    remove_legacy.COMMAND: remove_legacy,
}
# The commands that may delete what storage lacks, and so take --force-delete-orphans.
DELETING_ORPHANS = ("reindex", "verify", "sync")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="kinto-elasticsearch",
        description=(
            "Rebuild and verify the search indices of a Kinto server, and remove those "
            "kinto-elasticsearch 0.3 left."
        ),
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        sub = commands.add_parser(name, help=command.HELP, description=command.HELP)
        sub.add_argument("--ini", required=True, help="Kinto's configuration file")
        scope.add_arguments(sub, orphans=name in DELETING_ORPHANS)
        command.add_arguments(sub)
    return parser


def _bootstrap(ini):
    """Kinto's app from its ini, a configuration error being the operator's to fix."""
    with warnings.catch_warnings():
        # Kinto's startup advice for a server ("HTTPS is not enabled") is noise here.
        warnings.simplefilter("ignore", UserWarning)
        try:
            return bootstrap(ini)
        except (OSError, configparser.Error, PlasterError) as exc:
            if isinstance(exc, OSError) and exc.filename is None:
                raise
            raise CommandError(f"cannot read {ini}: {_one_line(exc)}") from None
        except LookupError as exc:
            # paste.deploy's "No section 'main'" is a bare LookupError; a KeyError is a bug.
            if type(exc) is not LookupError:
                raise
            raise CommandError(f"cannot read {ini}: {_one_line(exc)}") from None
        except ConfigurationExecutionError as exc:
            # A configuration action that failed: the operator's error only if it is one.
            if not isinstance(exc.evalue, ConfigurationError):
                raise
            raise CommandError(f"{ini}: {_one_line(exc.evalue)}") from None
        except ConfigurationError as exc:
            raise CommandError(f"{ini}: {_one_line(exc)}") from None


def _one_line(exc):
    return " ".join(line.strip() for line in str(exc).splitlines())


def run(args, out=sys.stdout):
    if args.collection and not args.bucket:
        raise CommandError("--collection needs --bucket")
    # This process does the work itself, in the foreground: no background catch-up in it.
    os.environ["KINTO_ELASTICSEARCH_CATCHUP_IN_PROCESS"] = "false"
    env = _bootstrap(args.ini)
    try:
        registry = env["registry"]
        if getattr(registry, "elasticsearch", None) is None:
            raise CommandError(
                f"kinto_elasticsearch is not enabled in {args.ini}: add it to kinto.includes"
            )
        if not registry.elasticsearch.ping():
            hosts = ", ".join(registry.elasticsearch.settings.hosts)
            raise CommandError(f"cannot reach the search engine at {hosts}")
        try:
            return COMMANDS[args.command].run(registry, args, out)
        except EngineError as exc:
            raise CommandError(f"the search engine failed: {exc.describe()}") from None
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
