"""``kinto-elasticsearch-reindex``, kinto-elasticsearch 0.3's command, kept as a deprecated
alias of ``kinto-elasticsearch reindex`` so that 0.3's scripts and cron jobs go on working.

It takes exactly what 0.3 took (``--ini``, ``-b/--bucket``, ``-c/--collection``) and runs
``reindex`` with it; exit statuses are today's (:mod:`kinto_elasticsearch.ops.cli`).
"""

import argparse
import shlex
import sys

from kinto_elasticsearch.ops import cli

# 0.3's default; today's commands require --ini.
DEFAULT_INI = "config/kinto.ini"


def build_parser():
    parser = argparse.ArgumentParser(
        prog="kinto-elasticsearch-reindex",
        description="Deprecated: use 'kinto-elasticsearch reindex'. Rebuild indices from storage.",
    )
    parser.add_argument(
        "--ini", default=DEFAULT_INI, help=f"Kinto's configuration file (default: {DEFAULT_INI})"
    )
    parser.add_argument("-b", "--bucket", help="only this bucket")
    parser.add_argument("-c", "--collection", help="only this collection (needs --bucket)")
    return parser


def reindex_argv(args):
    """Today's ``kinto-elasticsearch`` arguments for 0.3's."""
    argv = ["reindex", "--ini", args.ini]
    if args.bucket is not None:
        argv += ["--bucket", args.bucket]
    if args.collection is not None:
        argv += ["--collection", args.collection]
    return argv


def main(argv=None):
    argv = reindex_argv(build_parser().parse_args(argv))
    print(
        "kinto-elasticsearch-reindex is deprecated and will be removed: run "
        f"{shlex.join(['kinto-elasticsearch', *argv])}",
        file=sys.stderr,
        flush=True,
    )
    return cli.main(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
