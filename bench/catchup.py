"""``python -m bench.catchup [N ...]``: what an idle catch-up pass costs, and a first indexing.

For each N (default 1,000 and 4,000): N collections of two records, written straight into
PostgreSQL (as ``bench.pools``), a Kinto registry bootstrapped in this process on
osmem-server, then:

- the first pass (no position: the full pass, new collections indexed in bulk across
  collections): collections and documents per second;
- the engine's raw bulk rate on the same server (2,000 documents a request), for reference;
- three idle passes (nothing changed): engine requests and SQL statements each;
- one change among N: the pass that indexes it, the same counts.

Prints the figures; nothing is written.
"""

import collections
import sys
import time

import sqlalchemy
from pyramid.paster import bootstrap

from bench import harness
from bench.pools import load_collections
from kinto_elasticsearch.sync.catchup import CatchUp
from tests.postgres import PostgresServer
from tests.servers import start_engine

# Shorter than the default 300 s so that the records just loaded (timestamps up to a minute
# old) are behind it: idle passes then show the steady state, not the overlap's re-reads of
# a deployment loaded a minute ago (which last ``catchup_overlap_seconds``).
OVERLAP_MS = 10_000


class Counts:
    def __init__(self, engine):
        self.engine_calls = []
        self.sql = 0
        self._call = engine.call
        engine.call = self._spy
        sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", self._sql)

    def _spy(self, operation, **kwargs):
        self.engine_calls.append(operation)
        return self._call(operation, **kwargs)

    def _sql(self, *args, **kwargs):
        self.sql += 1

    def take(self):
        kinds = collections.Counter(self.engine_calls)
        found = (len(self.engine_calls), self.sql, [f"{k} {n}" for k, n in sorted(kinds.items())])
        self.engine_calls, self.sql = [], 0
        return found


def raw_bulk_rate(engine, documents=20_000, per_request=2000):
    index = "bench-raw-bulk"
    engine.call("indices.create", index=index, body={"settings": {"number_of_replicas": 0}})
    started = time.monotonic()
    for start in range(0, documents, per_request):
        body = []
        for i in range(start, start + per_request):
            body += [{"index": {"_index": index, "_id": str(i)}}, {"title": f"record {i}", "n": i}]
        engine.call("bulk", body=body)
    rate = documents / (time.monotonic() - started)
    engine.call("indices.delete", index=index)
    return rate


def measure(count):
    pg = PostgresServer.start()
    engine_server = start_engine("opensearch")
    try:
        ini, _ = harness.write_ini(
            f"catchup-{count}", pg.url, engine_server.url, catchup_in_process="false",
            number_of_replicas=0, pool_number_of_replicas=0, request_timeout_seconds=60,
        )  # fmt: skip
        harness.run_measured([str(harness.BIN / "kinto"), "migrate", "--ini", str(ini)])
        env = bootstrap(str(ini))
        registry = env["registry"]
        registry.storage.create(resource_name="bucket", parent_id="", obj={"id": "pools"})
        import transaction

        transaction.commit()
        load_collections(pg.url, count)
        engine = registry.elasticsearch.index.engine
        counts = Counts(engine)
        started = time.monotonic()
        report = CatchUp(registry, overlap_ms=OVERLAP_MS).run()
        first = time.monotonic() - started
        first_counts = counts.take()
        print(f"N={count}: first pass {first:.1f} s, {report.collections / first:.0f} "
              f"collections/s, {report.indexed / first:.0f} documents/s; "
              f"{first_counts[0]} engine requests ({', '.join(first_counts[2])}), "
              f"{first_counts[1]} SQL", flush=True)  # fmt: skip
        print(f"N={count}: raw bulk {raw_bulk_rate(engine):.0f} documents/s", flush=True)
        counts.take()
        for n in range(3):
            started = time.monotonic()
            CatchUp(registry, overlap_ms=OVERLAP_MS).run(full=False)
            took = time.monotonic() - started
            calls, sql, kinds = counts.take()
            print(f"N={count}: idle pass {n}: {took * 1000:.0f} ms, {calls} engine requests "
                  f"({', '.join(kinds)}), {sql} SQL statements", flush=True)  # fmt: skip
        registry.storage.create(
            resource_name="record", parent_id="/buckets/pools/collections/c00007",
            obj={"id": "new", "title": "new"},
        )  # fmt: skip
        transaction.commit()
        started = time.monotonic()
        report = CatchUp(registry, overlap_ms=OVERLAP_MS).run(full=False)
        took = time.monotonic() - started
        calls, sql, kinds = counts.take()
        print(f"N={count}: one change: {took * 1000:.0f} ms, {report.indexed} indexed, "
              f"{calls} engine requests, {sql} SQL statements", flush=True)  # fmt: skip
        env["closer"]()
    finally:
        engine_server.close()
        pg.stop()


def main(argv=None):
    for count in [int(n) for n in (argv or sys.argv[1:])] or [1000, 4000]:
        measure(count)


if __name__ == "__main__":
    sys.exit(main())
