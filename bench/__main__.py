"""``python -m bench`` (``make bench``): what the plugin costs, written to bench/RESULTS.md.

Every figure compares two variants measured in interleaved rounds (A, B, A, B...) on the
same machine, and is reported as medians or percentiles over all rounds with a ratio.
Real processes only: Kinto HTTP servers on PostgreSQL, osmem-server as the engine.
"""

import argparse
import datetime
import json
import os
import random
import sys
import time

from bench import harness
from kinto_elasticsearch.config import DEFAULT_SETTINGS
from kinto_elasticsearch.index.mapping import collection_mapping, plugin_settings
from tests.postgres import PostgresServer
from tests.servers import FaultProxy, start_engine

BUCKET = "bench"
QUICK = {"rounds": 2, "writes": 40, "sizes": (2000, 10000), "searches": 15, "outage": 2000}
# Clients writing during the outage, each to a collection of its own.
OUTAGE_WRITERS = 4
FULL = {"rounds": 3, "writes": 150, "sizes": (10_000, 100_000), "searches": 40, "outage": 10_000}
STATUSES = ["new", "open", "closed", "archived", "spam"]
WORDS = "kinto search index record bucket collection alpha beta gamma delta".split()


def record(i):
    rng = random.Random(i)
    return {
        "id": f"r{i:07d}",
        "status": STATUSES[i % len(STATUSES)],
        "price": rng.randint(1, 1000),
        "title": " ".join(rng.choice(WORDS) for _ in range(4)),
        "tags": rng.sample(WORDS, 2),
    }


def load_records(pg_url, collection_id, count):
    """Put ``count`` records into PostgreSQL storage directly (HTTP would take minutes)."""
    import psycopg2

    parent = f"/buckets/{BUCKET}/collections/{collection_id}"
    # Unique timestamps in the past: Kinto's trigger keeps a given one unless it repeats.
    base = int(time.time() * 1000) - count - 60_000
    with psycopg2.connect(pg_url) as conn, conn.cursor() as cursor:
        for start in range(0, count, 5000):
            values = []
            for i in range(start, min(start + 5000, count)):
                data = record(i)
                row = (data.pop("id"), parent, base + i, json.dumps(data))
                values.append(
                    cursor.mogrify(
                        "(%s, %s, 'record', from_epoch(%s), %s::jsonb, FALSE)", row
                    ).decode()
                )
            cursor.execute(
                "INSERT INTO objects (id, parent_id, resource_name, last_modified, data, deleted)"
                " VALUES " + ",".join(values)
            )


def latencies(client, requests):
    timings = []
    for method, path, body in requests:
        status, _, elapsed = client.request(method, path, body)
        if status >= 400:
            raise RuntimeError(f"{method} {path} answered {status}")
        timings.append(elapsed)
    return timings


def ms(seconds):
    return f"{seconds * 1000:.1f} ms"


class Bench:
    def __init__(self, config):
        self.config = config
        self.rows = {}

    def setup(self):
        self.pg = PostgresServer.start()
        self.engine = start_engine("opensearch")
        self.proxy = harness.CountingProxy(self.engine.port)
        self.blackhole = harness.Blackhole()
        url = self.pg.url
        # Catch-up passes only on events (the servers' start, failed writes, the engine's
        # return): the benchmark loads records straight into PostgreSQL, and periodic
        # passes of four servers indexing them would be measured with everything else.
        events_only = {"catchup_interval_seconds": 0}
        without, port_a = harness.write_ini("without-plugin", url, self.engine.url, plugin=False)
        with_plugin, port_b = harness.write_ini("with-plugin", url, self.engine.url, **events_only)
        # Counts the engine requests of the write path alone: no catch-up in that server.
        proxied, port_c = harness.write_ini(
            "proxied", url, self.proxy.url, catchup_in_process="false"
        )
        hung, port_d = harness.write_ini("engine-hung", url, self.blackhole.url, **events_only)
        ryw, port_e = harness.write_ini(
            "read-your-writes", url, self.engine.url, force_refresh="true", **events_only
        )
        self.outage_proxy = FaultProxy(self.engine.url)
        outage, port_f = harness.write_ini("outage", url, self.outage_proxy.url, **events_only)
        # The catch-up command, as a batch job: a bulk of 1,000 records may take longer than
        # a request's 2 s on a busy machine.
        self.sync_ini, _ = harness.write_ini(
            "sync", url, self.engine.url, request_timeout_seconds=30
        )
        self.ini = with_plugin
        harness.run_measured([str(harness.BIN / "kinto"), "migrate", "--ini", str(without)])
        self.a = harness.KintoServer("without-plugin", without, port_a)
        self.b = harness.KintoServer("with-plugin", with_plugin, port_b)
        self.c = harness.KintoServer("proxied", proxied, port_c)
        self.d = harness.KintoServer("engine-hung", hung, port_d)
        self.e = harness.KintoServer("read-your-writes", ryw, port_e)
        self.f = harness.KintoServer("outage", outage, port_f)
        status, _, _ = self.b.client.request("PUT", f"/v1/buckets/{BUCKET}", {})
        assert status in (200, 201), status

    def teardown(self):
        for name in ("a", "b", "c", "d", "e", "f"):
            server = getattr(self, name, None)
            if server:
                server.stop()
        for name in ("proxy", "blackhole", "outage_proxy"):
            if getattr(self, name, None):
                getattr(self, name).close()
        if getattr(self, "engine", None):
            self.engine.close()
        if getattr(self, "pg", None):
            self.pg.stop()

    def collection(self, server, collection_id):
        status, _, _ = server.client.request(
            "PUT", f"/v1/buckets/{BUCKET}/collections/{collection_id}", {}
        )
        assert status in (200, 201), status
        return f"/v1/buckets/{BUCKET}/collections/{collection_id}"

    # 1. Write overhead.

    def writes(self):
        n, rounds = self.config["writes"], self.config["rounds"]
        timings = {"without": [], "with": [], "ryw": []}
        servers = (("without", self.a), ("with", self.b), ("ryw", self.e))
        for round_ in range(rounds):
            for label, server in servers:
                uri = self.collection(server, f"writes-{label}-{round_}")
                requests = [("POST", f"{uri}/records", {"data": record(i)}) for i in range(n)]
                timings[label] += latencies(server.client, requests)
        a, b, c = timings["without"], timings["with"], timings["ryw"]
        self.rows["writes"] = {
            "n": f"{rounds} rounds x {n} creates each",
            **{
                key: tuple(harness.percentile(t, fraction) for t in (a, b, c))
                for key, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
            },
        }
        # Eight writers at once, each on its own collection: throughput.
        throughput = {"without": [], "with": []}
        for round_ in range(rounds):
            for label, server in servers[:2]:
                throughput[label].append(
                    self._concurrent(server, f"conc-{label}-{round_}", writers=8, count=n // 2)
                )
        self.rows["concurrent"] = {
            "n": f"{rounds} rounds x 8 writers x {n // 2} creates each",
            "throughput": (
                harness.median(throughput["without"]),
                harness.median(throughput["with"]),
            ),
        }
        # A /batch of 25 creates reaches the engine as how many requests?
        uri = self.collection(self.c, "grouped")
        self.proxy.reset()
        requests = [
            {"method": "POST", "path": f"{uri}/records", "body": {"data": record(i)}}
            for i in range(25)
        ]
        status, body, _ = self.c.client.request("POST", "/v1/batch", {"requests": requests})
        assert status == 200, body
        # The request does not wait for the sender: give it a moment to send.
        deadline = time.monotonic() + 10
        while not any(route == "_bulk" for _, route in self.proxy.counts):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        time.sleep(0.5)
        self.rows["batch"] = dict(self.proxy.counts)

    def _concurrent(self, server, prefix, writers, count):
        """Creates per second of ``writers`` clients at once, each on its own collection."""
        import threading

        uris = [self.collection(server, f"{prefix}-{w}") for w in range(writers)]
        errors = []

        def write(uri):
            client = harness.Client("127.0.0.1", server.port)
            try:
                for i in range(count):
                    status, _, _ = client.request("POST", f"{uri}/records", {"data": record(i)})
                    if status >= 400:
                        errors.append(status)
            finally:
                client.close()

        threads = [threading.Thread(target=write, args=(uri,)) for uri in uris]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        if errors:
            raise RuntimeError(f"concurrent writes answered {sorted(set(errors))}")
        return writers * count / elapsed

    # 6. Storage as the outbox: an outage, and the catch-up.

    def outbox(self):
        from opensearchpy import OpenSearch, helpers

        client = OpenSearch(hosts=[self.engine.url], timeout=120)
        outage = self.config["outage"]
        # An outage of `outage` writes: the engine answers 502 (no node behind the proxy).
        uris = [self.collection(self.f, f"outage-{c}") for c in range(OUTAGE_WRITERS)]
        self.outage_proxy.answer = lambda method, path, body: (502, {"error": "Bad Gateway"})
        started = time.perf_counter()
        self._batches(self.f, uris, outage)
        writing = time.perf_counter() - started
        self.outage_proxy.answer = lambda method, path, body: None
        back = time.perf_counter()
        aliases = ",".join(f"bench.{BUCKET}.outage-{c}" for c in range(OUTAGE_WRITERS))
        query = {"query": {"exists": {"field": "id"}}}
        while True:
            try:
                count = client.count(index=aliases, body=query)["count"]
            except Exception:
                count = 0
            if count == outage or time.perf_counter() - back > 600:
                break
            time.sleep(0.2)
        converged = time.perf_counter() - back
        self.f.stop()
        self.f = None
        # The catch-up rate: `sync` on records it never saw, against the bulk helper.
        rounds, size = self.config["rounds"], outage
        self.collection(self.a, "empty-sync")
        self.collection(self.a, "catchup")
        load_records(self.pg.url, "catchup", size)
        documents = [record(i) for i in range(size)]
        sync = [str(harness.BIN / "kinto-elasticsearch"), "sync", "--ini", str(self.sync_ini),
                "-b", BUCKET]  # fmt: skip
        startup, rates, bulk = [], [], []
        for round_ in range(rounds):
            elapsed, _, _ = harness.run_measured([*sync, "-c", "empty-sync"])
            startup.append(elapsed)
            index = f"baseline-catchup-{round_}"
            client.indices.create(index=index)
            begun = time.perf_counter()
            helpers.bulk(
                client,
                ({"_index": index, "_id": d["id"], "_source": d} for d in documents),
                chunk_size=1000,
            )
            bulk.append(size / (time.perf_counter() - begun))
            client.indices.delete(index=index)
            # Forget the collection, as an engine that never saw it.
            client.indices.delete(index=f"bench.{BUCKET}.catchup.*")
            client.delete(index="bench.-sync", id=f"checkpoint:bench.{BUCKET}.catchup",
                          refresh=True, ignore=[404])  # fmt: skip
            elapsed, _, _ = harness.run_measured([*sync, "-c", "catchup"])
            rates.append(size / elapsed)
        client.close()
        self.rows["outbox"] = {
            "outage": outage,
            "writing": writing,
            "converged": converged,
            "rounds": rounds,
            "bulk": harness.median(bulk),
            "sync": harness.median(rates),
            "startup": harness.median(startup),
        }

    @staticmethod
    def _batches(server, uris, count):
        """PUT ``count`` records in ``/batch``es of 25, one client per collection of ``uris``
        at once (as many as Kinto serves threads): the outage is sized in writes, not in
        the time one client takes. One collection each: concurrent writers of one
        collection collide on its timestamps, and Kinto answers some of them 409."""
        import threading

        errors = []

        def write(uri, numbers):
            client = harness.Client("127.0.0.1", server.port)
            try:
                for first in range(0, len(numbers), 25):
                    requests = [
                        {"method": "PUT", "path": f"{uri}/records/r{i:07d}",
                         "body": {"data": record(i)}}
                        for i in numbers[first : first + 25]
                    ]  # fmt: skip
                    status, body, _ = client.request("POST", "/v1/batch", {"requests": requests})
                    if status != 200:
                        errors.append((status, body))
            finally:
                client.close()

        shares = [list(range(count))[c :: len(uris)] for c in range(len(uris))]
        threads = [
            threading.Thread(target=write, args=pair) for pair in zip(uris, shares, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise RuntimeError(f"writes during the outage failed: {errors[0]}")

    # 2. Rebuild throughput and memory.

    def rebuild(self):
        from opensearchpy import OpenSearch, helpers

        client = OpenSearch(hosts=[self.engine.url], timeout=120)
        rounds = self.config["rounds"]
        results = {}
        # The command's fixed cost (interpreter, Kinto, storage and engine connections).
        self.collection(self.b, "empty")
        startup = []
        for _ in range(rounds):
            elapsed, _, _ = harness.run_measured(
                [str(harness.BIN / "kinto-elasticsearch"), "reindex", "--ini", str(self.ini),
                 "-b", BUCKET, "-c", "empty"]
            )  # fmt: skip
            startup.append(elapsed)
        for size in self.config["sizes"]:
            collection_id = f"big{size}"
            self.collection(self.b, collection_id)
            load_records(self.pg.url, collection_id, size)
            documents = [record(i) for i in range(size)]
            reindex, bulk, memory = [], [], []
            for round_ in range(rounds):
                index = f"baseline-{size}-{round_}"
                client.indices.create(index=index)
                started = time.perf_counter()
                helpers.bulk(
                    client,
                    ({"_index": index, "_id": d["id"], "_source": d} for d in documents),
                    chunk_size=1000,
                )
                bulk.append(size / (time.perf_counter() - started))
                client.indices.delete(index=index)
                elapsed, peak, _ = harness.run_measured(
                    [str(harness.BIN / "kinto-elasticsearch"), "reindex", "--ini", str(self.ini),
                     "-b", BUCKET, "-c", collection_id]
                )  # fmt: skip
                reindex.append(size / elapsed)
                memory.append(peak)
            results[size] = {
                "bulk": harness.median(bulk),
                "reindex": harness.median(reindex),
                "memory": harness.median(memory),
            }
        client.close()
        self.rows["rebuild"] = {
            "n": f"{rounds} rounds per size",
            "sizes": results,
            "startup": harness.median(startup),
        }

    def fill(self):
        """The collections the rebuild step fills, with one reindex each and no timing: for
        runs of the search steps alone."""
        import os
        import subprocess

        # Untimed: a generous engine timeout, so that a busy machine cannot fail the fill.
        env = {**os.environ, "KINTO_ELASTICSEARCH_REQUEST_TIMEOUT_SECONDS": "120"}
        for size in self.config["sizes"]:
            collection_id = f"big{size}"
            self.collection(self.b, collection_id)
            load_records(self.pg.url, collection_id, size)
            subprocess.run(
                [str(harness.BIN / "kinto-elasticsearch"), "reindex", "--ini", str(self.ini),
                 "-b", BUCKET, "-c", collection_id],
                env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL,
            )  # fmt: skip

    # 8. Indexing real-world JSON (tests/corpus.py) through Kinto.

    def realworld(self):
        from opensearchpy import OpenSearch, helpers

        from tests import corpus

        records = {**corpus.schema_records(), **corpus.definition_records()}
        client = OpenSearch(hosts=[self.engine.url], timeout=120)
        rounds = self.config["rounds"]
        rates = {"bulk": [], "without": [], "with": []}
        refused = []
        for round_ in range(rounds):
            # A: the client's bulk helper, the records as they are, into an index with the
            # plugin's settings and mapping; what the engine refuses is counted, not retried.
            index = f"realworld-{round_}"
            body = {"settings": plugin_settings({}), "mappings": collection_mapping({})}
            client.indices.create(index=index, body=body)
            started = time.perf_counter()
            _, errors = helpers.bulk(
                client,
                ({"_index": index, "_id": rid, "_source": data} for rid, data in records.items()),
                chunk_size=25,
                max_chunk_bytes=50 * 2**20,
                raise_on_error=False,
            )
            rates["bulk"].append(len(records) / (time.perf_counter() - started))
            refused.append(len(errors))
            client.indices.delete(index=index)
            # B and C: /batch requests of 25 records, Kinto with and without the plugin.
            for label, server in (("without", self.a), ("with", self.b)):
                uri = self.collection(server, f"realworld-{label}-{round_}")[3:]
                started = time.perf_counter()
                items = list(records.items())
                for start in range(0, len(items), 25):
                    requests = [
                        {"method": "PUT", "path": f"{uri}/records/{rid}", "body": {"data": data}}
                        for rid, data in items[start : start + 25]
                    ]
                    status, body, _ = server.client.request(
                        "POST", "/v1/batch", {"requests": requests}
                    )
                    assert status == 200, body
                if label == "with":
                    # The sender indexes after the requests answered: until all are indexed.
                    alias = f"bench.{BUCKET}.realworld-with-{round_}"
                    query = {"query": {"exists": {"field": "id"}}}
                    while client.count(index=alias, body=query)["count"] < len(records):
                        if time.perf_counter() - started > 600:
                            raise RuntimeError(f"{alias} was not indexed within 600 s")
                        time.sleep(0.05)
                rates[label].append(len(records) / (time.perf_counter() - started))
        client.close()
        size = sum(len(json.dumps(data)) for data in records.values())
        self.rows["realworld"] = {
            "n": f"{rounds} rounds of {len(records)} records ({size / 2**20:.1f} MiB of JSON)",
            "rates": {label: harness.median(values) for label, values in rates.items()},
            "refused": max(refused),
            "count": len(records),
        }

    # 3. Search overhead against the engine itself.

    def search(self):
        queries = {
            "match_all": {"query": {"match_all": {}}, "size": 10},
            "term filter": {"query": {"bool": {"filter": [{"term": {"status.keyword": "open"}}]}},
                            "size": 10},
            "full-text match": {"query": {"match": {"title": "kinto search"}}, "size": 10},
            "terms aggregation": {"size": 0,
                                  "aggs": {"by_status": {"terms": {"field": "status.keyword"}}}},
        }  # fmt: skip
        engine = harness.Client("127.0.0.1", self.engine.port)
        n, rounds = self.config["searches"], self.config["rounds"]
        results = {}
        for size in self.config["sizes"]:
            alias = f"bench.{BUCKET}.big{size}"
            uri = f"/v1/buckets/{BUCKET}/collections/big{size}/search"
            for name, body in queries.items():
                direct, plugin = [], []
                for _ in range(rounds):
                    direct += latencies(engine, [("POST", f"/{alias}/_search", body)] * n)
                    plugin += latencies(self.b.client, [("POST", uri, body)] * n)
                results[(size, name)] = (harness.median(direct), harness.median(plugin))
        engine.close()
        self.rows["search"] = {"n": f"{rounds} rounds x {n} searches each", "results": results}

    # 4. Search against Kinto's own filtering.

    def filtering(self):
        size = self.config["sizes"][-1]
        base = f"/v1/buckets/{BUCKET}/collections/big{size}"
        n, rounds = self.config["searches"], self.config["rounds"]
        cases = {
            "status=open": "status=open",
            "min_price=990": "min_price=990",
            "status=open&_sort=-price": "status=open&_sort=-price",
        }
        from urllib.parse import parse_qsl

        from webob.multidict import MultiDict

        from kinto_elasticsearch.index.mapping import flatten_field_types
        from kinto_elasticsearch.search.querystring import querystring_to_search

        # C: the body GET search sends for the same querystring, straight to the engine,
        # to tell the plugin's cost from the engine's.
        engine = harness.Client("127.0.0.1", self.engine.port)
        alias = f"bench.{BUCKET}.big{size}"
        status, mappings, _ = engine.request("GET", f"/{alias}/_mapping", None)
        assert status == 200, mappings
        field_types = flatten_field_types(next(iter(mappings.values()))["mappings"])
        results = {}
        for name, qs in cases.items():
            params = MultiDict(parse_qsl(qs))
            body = querystring_to_search(params, field_types, max_limit=10).body
            records, search, direct = [], [], []
            for _ in range(rounds):
                records += latencies(self.b.client, [("GET", f"{base}/records?{qs}", None)] * n)
                search += latencies(self.b.client, [("GET", f"{base}/search?{qs}", None)] * n)
                direct += latencies(engine, [("POST", f"/{alias}/_search", body)] * n)
            results[name] = (
                harness.median(records),
                harness.median(search),
                harness.median(direct),
            )
        engine.close()
        self.rows["filtering"] = {"n": f"{rounds} rounds x {n} requests each", "size": size,
                                  "results": results}  # fmt: skip

    # 7. Ranked search (GET search as a search box) against its own body.

    def ranked(self):
        from urllib.parse import parse_qsl, quote

        from webob.multidict import MultiDict

        from kinto_elasticsearch.index.mapping import flatten_field_types
        from kinto_elasticsearch.search import ranking
        from kinto_elasticsearch.search.querystring import querystring_to_search

        # Prefixes are left out: osmem-server answers a 100k-record prefix search in more
        # than the 10 s search timeout (its own cost, not the plugin's nor a real engine's).
        cases = {
            "ranked": "q=kinto search&_q_fields=title^3,tags",
            "typos, highlights": "q=kinto serch&_q_fields=title^3,tags&_fuzzy=true"
            "&_highlight=title",
        }
        engine = harness.Client("127.0.0.1", self.engine.port)
        # A quarter of the other steps' searches: a ranked search of 100k records takes
        # the engine a second or more.
        n, rounds = max(5, self.config["searches"] // 4), self.config["rounds"]
        results = {}
        for size in self.config["sizes"]:
            alias = f"bench.{BUCKET}.big{size}"
            base = f"/v1/buckets/{BUCKET}/collections/big{size}/search"
            status, mappings, _ = engine.request("GET", f"/{alias}/_mapping", None)
            assert status == 200, mappings
            field_types = flatten_field_types(next(iter(mappings.values()))["mappings"])
            for name, qs in cases.items():
                params = MultiDict(parse_qsl(qs))
                box = ranking.SearchBox.from_params(params)
                del params["q"]
                search = querystring_to_search(params, field_types, 10, by_relevance=True)
                text_fields = ranking.readable_text_fields(field_types, hidden=[])
                body = box.apply(search, text_fields).body
                path = f"{base}?{quote(qs, safe='=&^,')}&_limit=10"
                plugin, direct = [], []
                for _ in range(rounds):
                    plugin += latencies(self.b.client, [("GET", path, None)] * n)
                    direct += latencies(engine, [("POST", f"/{alias}/_search", body)] * n)
                results[(size, name)] = (harness.median(direct), harness.median(plugin))
        engine.close()
        self.rows["ranked"] = {"n": f"{rounds} rounds x {n} searches each", "results": results,
                               "cases": cases}  # fmt: skip

    # 5. Writes while the engine hangs.

    def engine_down(self):
        n, rounds = self.config["writes"], self.config["rounds"]
        timings = {"up": [], "down": []}
        for round_ in range(rounds):
            for label, server in (("up", self.b), ("down", self.d)):
                uri = self.collection(server, f"down-{label}-{round_}")
                requests = [("POST", f"{uri}/records", {"data": record(i)}) for i in range(n)]
                timings[label] += latencies(server.client, requests)
        up, down = timings["up"], timings["down"]
        self.rows["down"] = {
            "n": f"{rounds} rounds x {n} creates each",
            "p50": (harness.median(up), harness.median(down)),
            "p99": (harness.percentile(up, 0.99), harness.percentile(down, 0.99)),
            "max": (max(up), max(down)),
        }

    def report(self, command, seconds):
        lines = [
            "# Benchmark results",
            "",
            f"Machine: {harness.machine()}. Engine: osmem-server (in-memory, OpenSearch API).",
            f"Storage: PostgreSQL (throwaway cluster). Command: `{command}`, "
            f"{datetime.date.today().isoformat()}, {seconds / 60:.1f} min in all.",
            "",
            "Each figure is a median (or percentile) over every request of interleaved rounds "
            "(A, B, A, B...); ratios are B / A. Absolute times depend on this shared machine; "
            "the ratios are the point.",
            "",
        ]
        if "writes" in self.rows:
            lines += self._writes_section()
        if "rebuild" in self.rows:
            lines += self._rebuild_section()
        if "search" in self.rows:
            lines += self._search_section()
        if "filtering" in self.rows:
            lines += self._filtering_section()
        if "ranked" in self.rows:
            lines += self._ranked_section()
        if "down" in self.rows:
            lines += self._down_section()
        if "outbox" in self.rows:
            lines += self._outbox_section()
        if "realworld" in self.rows:
            lines += self._realworld_section()
        return "\n".join(lines)

    def _writes_section(self):
        w = self.rows["writes"]
        lines = [
            "## 1. Write overhead (create a record over HTTP)",
            "",
            f"{w['n']}.",
            "",
            "B: with the plugin, as configured by default (the request hands its change to "
            "the sender). C: with read-your-writes (`force_refresh`: the request waits for "
            "the refreshed bulk carrying its change).",
            "",
            "| | without plugin (A) | with plugin (B) | B / A | read-your-writes (C) | C / A |",
            "|---|---|---|---|---|---|",
        ]
        for key in ("p50", "p95", "p99"):
            a, b, c = w[key]
            lines.append(f"| {key} | {ms(a)} | {ms(b)} | {b / a:.2f} | {ms(c)} | {c / a:.2f} |")
        bulk_requests = sum(v for (m, route), v in self.rows["batch"].items() if route == "_bulk")
        lines += [
            "",
            f"A `/batch` of 25 creates sent {bulk_requests} bulk request(s) to the engine "
            f"(all requests seen by a counting proxy: {self._counts()}).",
            "",
        ]
        if "concurrent" in self.rows:
            c = self.rows["concurrent"]
            a, b = c["throughput"]
            lines += [
                f"{c['n']} (Kinto serves 4 threads): {a:,.0f} creates/s without the plugin, "
                f"{b:,.0f} with it: **{b / a:.2f}**.",
                "",
            ]
        return lines

    def _outbox_section(self):
        o = self.rows["outbox"]
        corrected = o["outage"] / max(o["outage"] / o["sync"] - o["startup"], 1e-9)
        return [
            "## 6. Storage as the outbox: an outage, and the catch-up",
            "",
            f"{o['outage']:,} writes (PUTs in `/batch`es of 25, {OUTAGE_WRITERS} clients at "
            f"once, each on a collection of its own) while the engine answered "
            f"502, in {o['writing']:.1f} s; every one succeeded. Once the engine answered "
            f"again, the index held all {o['outage']:,} records after **{o['converged']:.1f} s**"
            ", with no command run (the worker notices within its retry delay, at most 8 s, "
            "then one catch-up pass indexes them).",
            "",
            f"Catch-up rate, {o['rounds']} rounds on {o['outage']:,} records loaded straight "
            "into PostgreSQL: A, the client's bulk helper loading the same documents into the "
            "engine; B, `kinto-elasticsearch sync` (whole command, reading from PostgreSQL).",
            "",
            "| bulk helper (A) | sync (B) | B / A | B without the command's start-up | ratio |",
            "|---|---|---|---|---|",
            f"| {o['bulk']:,.0f} rec/s | {o['sync']:,.0f} rec/s | {o['sync'] / o['bulk']:.2f} "
            f"| {corrected:,.0f} rec/s | {corrected / o['bulk']:.2f} |",
            "",
            f"The command's start-up, measured on an empty collection: {o['startup']:.2f} s.",
            "",
        ]

    def _rebuild_section(self):
        r = self.rows["rebuild"]
        lines = [
            "## 2. Rebuild throughput and memory",
            "",
            f"{r['n']}. A: the client's own bulk helper loading the same documents straight "
            "into the engine (the limit). B: `kinto-elasticsearch reindex`, whole command "
            "(start-up included), reading from PostgreSQL.",
            "",
            "| records | bulk helper (A) | reindex (B) | B / A | reindex peak memory |",
            "|---|---|---|---|---|",
        ]
        for size, figures in r["sizes"].items():
            lines.append(
                f"| {size:,} | {figures['bulk']:,.0f} rec/s | {figures['reindex']:,.0f} rec/s | "
                f"{figures['reindex'] / figures['bulk']:.2f} | {figures['memory']:.0f} MiB |"
            )
        return lines + [
            "",
            f"The command's fixed cost, measured on an empty collection: {r['startup']:.2f} s "
            "(median); most of the gap at 10k records.",
            "",
        ]

    def _search_section(self):
        s = self.rows["search"]
        lines = [
            "## 3. Search overhead",
            "",
            f"{s['n']}. A: the query sent straight to the engine. B: the same query through "
            "`POST .../search` (authentication, permissions, guard, JSON round trip).",
            "",
            "| records | query | engine (A) | plugin (B) | B / A |",
            "|---|---|---|---|---|",
        ]
        for (size, name), (a, b) in s["results"].items():
            lines.append(f"| {size:,} | {name} | {ms(a)} | {ms(b)} | {b / a:.2f} |")
        return lines + [""]

    def _filtering_section(self):
        f = self.rows["filtering"]
        lines = [
            "## 4. Search against Kinto's own filtering",
            "",
            f"{f['n']}, on {f['size']:,} records in PostgreSQL, 10 per page. "
            "A: `GET .../records?<filter>`. B: `GET .../search?<same filter>`. C: the body B "
            "sends to the engine (sorted as Kinto sorts, exact total for `Total-Objects`), "
            "sent straight to the engine: B - C is the plugin's own cost.",
            "",
            "| filter | records (A) | search (B) | B / A | engine alone (C) | B / C |",
            "|---|---|---|---|---|---|",
        ]
        for name, (a, b, c) in f["results"].items():
            lines.append(f"| `{name}` | {ms(a)} | {ms(b)} | {b / a:.2f} | {ms(c)} | {b / c:.2f} |")
        return lines + [""]

    def _ranked_section(self):
        r = self.rows["ranked"]
        lines = [
            "## 7. Ranked search (GET search as a search box)",
            "",
            f"{r['n']}, 10 per page. A: the body GET search builds (relevance order, "
            "scores of the record's own, exact total), sent straight to the engine. B: "
            "`GET .../search?<querystring>` through the plugin. Querystrings: "
            + "; ".join(f"{name}: `{qs}`" for name, qs in r["cases"].items())
            + ".",
            "",
            "| records | search | engine (A) | plugin (B) | B / A |",
            "|---|---|---|---|---|",
        ]
        for (size, name), (a, b) in r["results"].items():
            lines.append(f"| {size:,} | {name} | {ms(a)} | {ms(b)} | {b / a:.2f} |")
        return lines + [""]

    def _down_section(self):
        d = self.rows["down"]
        lines = [
            "## 5. Writes while the engine hangs",
            "",
            f"{d['n']}. A: engine up. B: the engine accepts connections and never answers "
            "(the worst case: every request would wait for its timeout); the circuit breaker "
            f"opens after {DEFAULT_SETTINGS['elasticsearch.circuit_breaker_failures']} failures.",
            "",
            "| | engine up (A) | engine hung (B) | B / A |",
            "|---|---|---|---|",
        ]
        for key in ("p50", "p99", "max"):
            a, b = d[key]
            lines.append(f"| {key} | {ms(a)} | {ms(b)} | {b / a:.2f} |")
        return lines + [""]

    def _realworld_section(self):
        r = self.rows["realworld"]
        rates = r["rates"]
        return [
            "## 8. Indexing real-world JSON",
            "",
            f"{r['n']}: the JSON schemas check-jsonschema vendors, the JSON Schema "
            "metaschemas and their definitions (`tests/corpus.py`). A: the client's bulk "
            "helper loading the records as they are, 25 per request, into an index with the "
            "plugin's mapping. B: `/batch` requests of 25 records through Kinto with the "
            "plugin, timed until every record is indexed. C: the same through Kinto without "
            "the plugin.",
            "",
            "| bulk helper (A) | Kinto + plugin (B) | B / A | Kinto alone (C) | B / C |",
            "|---|---|---|---|---|",
            f"| {rates['bulk']:,.0f} rec/s | {rates['with']:,.0f} rec/s | "
            f"{rates['with'] / rates['bulk']:.2f} | {rates['without']:,.0f} rec/s | "
            f"{rates['with'] / rates['without']:.2f} |",
            "",
            f"The engine refused {r['refused']} of the {r['count']} records the bulk helper "
            "sent as they are; through the plugin every record was indexed, some in part.",
            "",
        ]

    def _counts(self):
        return ", ".join(
            f"{m} {route}: {n}" for (m, route), n in sorted(self.rows["batch"].items())
        )


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--output", default=str(harness.ROOT / "bench" / "RESULTS.md"))
    parser.add_argument(
        "--only", action="append", metavar="STEP",
        help="run only this step: writes, outbox, rebuild, search, filtering, ranked, "
        "engine_down or realworld",
    )  # fmt: skip
    args = parser.parse_args(argv)
    bench = Bench(QUICK if args.quick else FULL)
    started = time.monotonic()
    command = "make bench" if not (args.quick or args.only) else "python -m bench"
    if args.quick:
        command += " --quick"
    # The outage runs before the rebuild loads its large collections into PostgreSQL.
    steps = [
        bench.writes,
        bench.outbox,
        bench.rebuild,
        bench.search,
        bench.filtering,
        bench.ranked,
        bench.engine_down,
        bench.realworld,
    ]
    if args.only:
        steps = [step for step in steps if step.__name__ in args.only]
        # Searches run on the collections the rebuild step fills.
        if {"search", "filtering", "ranked"} & set(args.only) and bench.rebuild not in steps:
            steps.insert(0, bench.fill)
        command += " " + " ".join(f"--only {name}" for name in args.only)
    failure = None
    try:
        bench.setup()
        for step in steps:
            step_started = time.monotonic()
            print(f"bench: {step.__name__}...", file=sys.stderr, flush=True)
            try:
                step()
            except Exception as exc:
                # Keep the figures of the steps that ran; say which one failed.
                failure = f"{step.__name__}: {exc}"
                print(f"bench: {step.__name__} failed: {exc}", file=sys.stderr, flush=True)
                break
            elapsed = time.monotonic() - step_started
            print(f"bench: {step.__name__} took {elapsed:.0f} s", file=sys.stderr, flush=True)
    finally:
        bench.teardown()
    text = bench.report(command, time.monotonic() - started)
    if failure:
        text += f"\n\n**Incomplete run**: step {failure}\n"
    if args.only and os.path.exists(args.output):
        # Some steps: their sections replace the same ones of the results, and the others
        # (from earlier runs) stay.
        merge_sections(args.output, text, command)
    else:
        with open(args.output, "w") as out:
            out.write(text)
    print(text)
    if failure:
        sys.exit(1)


def merge_sections(path, text, command):
    """Put each ``## `` section of the report ``text`` into the results file at ``path``,
    in place of the one of the same heading, saying which run it is from."""
    from bench.pools import write_section

    note = f"From `{command}`, {datetime.date.today().isoformat()}: {harness.machine()}."
    for section in text.split("\n## ")[1:]:
        heading, _, body = section.partition("\n")
        write_section(path, [f"## {heading}", "", note, body.rstrip("\n"), ""], f"## {heading}")


if __name__ == "__main__":
    main()
