"""The ``kinto-elasticsearch`` command line: catch up, rebuild and verify indices.

Exit status: 0 when all went well (and, for verify, everything matches), 1 when verify
found differences, 2 on an error (bad arguments, plugin not configured, unknown bucket or
collection, engine unreachable).
"""

import argparse
import logging
import os
import sys

import transaction
from pyramid.paster import bootstrap, setup_logging

from kinto_elasticsearch.client import EngineError
from kinto_elasticsearch.ops import reindex, scope, sync, verify
from kinto_elasticsearch.ops.errors import CommandError

COMMANDS = {"reindex": reindex, "verify": verify, "sync": sync}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="kinto-elasticsearch",
        description="Rebuild and verify the search indices of a Kinto server.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        sub = commands.add_parser(name, help=command.HELP, description=command.HELP)
        sub.add_argument("--ini", required=True, help="Kinto's configuration file")
        scope.add_arguments(sub)
        command.add_arguments(sub)
    return parser


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
