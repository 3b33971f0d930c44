"""``python -m bench.scale``: what the plugin costs at 1,000, 10,000 and 100,000 collections.

For each size, real processes on 127.0.0.1 (PostgreSQL, osmem-server behind a counting
proxy, Kinto HTTP servers with and without the plugin), with ``size`` collections of two
records written into PostgreSQL directly, as an existing deployment would hold them:

- **first indexing**: ``kinto-elasticsearch sync`` on them all, in documents per second,
  against the client's bulk helper loading the same documents straight into the engine
  (pools, routing, external versions), and plain ones into one index;
- **idle cost**: a Kinto process with the plugin and default settings (a catch-up pass
  every 10 s), doing nothing: its CPU seconds per minute, the engine's, and the engine
  requests per catch-up pass, counted by the proxy;
- **one change among N**: a record written into PostgreSQL behind Kinto's back, until a
  search finds it (the catch-up's work, since no event told the plugin);
- **collection create and delete**: p50 over HTTP with the plugin against Kinto alone, in
  interleaved rounds, and the engine's administration requests (index, alias, mapping and
  settings changes) each one sends, counted by the proxy: 0 for a pooled collection;
- **search**: p50 of a small pooled collection against a small dedicated one, searched
  more than 3 s after their last write, one of each in turn;
- **concurrent writers**: 8 clients creating records at once, each in its own collection,
  with the plugin against Kinto alone.

Writes its section into ``bench/RESULTS.md`` (replacing an earlier one), and prints it.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import threading
import time

from bench import harness
from bench.pools import load_collections, write_section
from kinto_elasticsearch.config import DEFAULT_SETTINGS
from tests.postgres import PostgresServer
from tests.servers import start_engine

BUCKET = "pools"
SECTION = "## 10. Scale: 1,000 to 100,000 collections"
FULL = {"sizes": (1000, 10_000, 100_000), "idle": 60, "rounds": 3, "creates": 20,
        "searches": 60, "changes": 3, "writes": 40}  # fmt: skip
QUICK = {"sizes": (1000, 4000), "idle": 20, "rounds": 2, "creates": 10,
         "searches": 20, "changes": 2, "writes": 15}  # fmt: skip
# Between two collection creates or deletes: the plugin's work after the response (the
# sender's 50 ms linger, then the admin task's engine requests) is done. At 50 ms it
# overlapped the next request, whose p50 it took from 1.02 to 1.21 times Kinto alone's
# (measured on 1,000 collections): the figure is then the overlap, which the concurrent
# writers below measure as throughput.
PAUSE = 0.3
INTERVAL = DEFAULT_SETTINGS["elasticsearch.catchup_interval_seconds"]
TICKS = os.sysconf("SC_CLK_TCK")


def admin_requests(proxy):
    """The administration requests the proxy saw: what changes indices, aliases, mappings."""
    with proxy._lock:
        return [(m, p) for m, p in proxy.paths if is_admin(m, p)]


def is_admin(method, path):
    """Whether a request changes the cluster state: an index created or deleted, aliases,
    mappings or settings changed."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return False
    if parts[-1] in ("_aliases", "_alias", "_mapping", "_mappings", "_settings") or (
        len(parts) >= 2 and parts[-2] in ("_alias", "_aliases")
    ):
        return method in ("PUT", "POST", "DELETE")
    return len(parts) == 1 and not parts[0].startswith("_") and method in ("PUT", "DELETE")


def cpu_seconds(pid):
    """User and system CPU of process ``pid`` (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def ms(seconds):
    return f"{seconds * 1000:.1f} ms"


def bulk_rate(engine_url, size, pools=DEFAULT_SETTINGS["elasticsearch.pools"]):
    """Documents per second of the client's bulk helper on ``2 * size`` small documents:
    ``(plain, same)``. Plain: into one index, with no version or routing. Same: the
    documents the plugin sends for them, into as many pools, routed on their collection,
    with their external versions (what the engine does per document is then the same; the
    plugin also saves a checkpoint per collection)."""
    from opensearchpy import OpenSearch, helpers

    client = OpenSearch(hosts=[engine_url], timeout=120)

    def timed(documents, indices):
        for index in indices:
            client.indices.create(index=index)
        started = time.perf_counter()
        helpers.bulk(client, documents, chunk_size=1000)
        rate = 2 * size / (time.perf_counter() - started)
        for index in indices:
            client.indices.delete(index=index)
        return rate

    plain = timed(
        ({"_index": "baseline", "_id": f"c{i:06d}/r{n}",
          "_source": {"id": f"r{n}", "title": f"c{i:06d} record {n}", "n": n}}
         for i in range(size) for n in (1, 2)),
        ["baseline"],
    )  # fmt: skip
    same = timed(
        ({"_index": f"baseline-{i % pools}", "_id": f"{BUCKET}/c{i:06d}/r{n}",
          "routing": f"{BUCKET}/c{i:06d}", "version": 1000 + n, "version_type": "external",
          "_source": {"id": f"r{n}", "title": f"c{i:06d} record {n}", "n": n,
                      "last_modified": 1000 + n, "_collection": f"{BUCKET}/c{i:06d}"}}
         for i in range(size) for n in (1, 2)),
        [f"baseline-{p}" for p in range(pools)],
    )  # fmt: skip
    client.close()
    return plain, same


def concurrent(server, prefix, writers, count, engine_pid):
    """Creates per second of ``writers`` clients at once, each in its own collection, the
    Kinto process's own CPU seconds per create (the sender's thread included), and the
    engine's (which shares this machine's cores with Kinto and PostgreSQL)."""
    uris = []
    for w in range(writers):
        uri = f"/v1/buckets/{BUCKET}/collections/{prefix}-{w}"
        status, _, _ = server.client.request("PUT", uri, {})
        assert status in (200, 201), status
        uris.append(uri)
    errors = []

    def write(uri):
        client = harness.Client("127.0.0.1", server.port)
        try:
            for i in range(count):
                status, _, _ = client.request("POST", f"{uri}/records", {"data": {"n": i}})
                if status >= 400:
                    errors.append(status)
        finally:
            client.close()

    threads = [threading.Thread(target=write, args=(uri,)) for uri in uris]
    cpu, engine_cpu = cpu_seconds(server.process.pid), cpu_seconds(engine_pid)
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(server.process.pid) - cpu
    # The last bulk request leaves up to the sender's linger after the last response.
    time.sleep(0.2)
    engine_cpu = cpu_seconds(engine_pid) - engine_cpu
    if errors:
        raise RuntimeError(f"concurrent writes answered {sorted(set(errors))}")
    writes = writers * count
    return writes / elapsed, cpu / writes, engine_cpu / writes


def wait_quiet(proxy, gap=2.0, timeout=300):
    """Until the engine has had no request for ``gap`` seconds: a pass has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = len(proxy.paths)
        time.sleep(gap)
        if len(proxy.paths) == seen:
            return
    raise RuntimeError("the plugin never stopped sending requests to the engine")


def write_behind(pg_url, collection_id, record_id):
    """A record written into PostgreSQL directly: no event reaches the plugin."""
    import psycopg2

    parent = f"/buckets/{BUCKET}/collections/{collection_id}"
    with psycopg2.connect(pg_url) as conn, conn.cursor() as cursor:
        cursor.execute(
            "INSERT INTO objects (id, parent_id, resource_name, last_modified, data, deleted)"
            " VALUES (%s, %s, 'record', from_epoch(%s), %s::jsonb, FALSE)",
            (record_id, parent, int(time.time() * 1000),
             json.dumps({"title": f"behind {record_id}"})),
        )  # fmt: skip


def wait_found(server, collection_id, record_id, timeout=180):
    path = f"/v1/buckets/{BUCKET}/collections/{collection_id}/search"
    body = {"query": {"ids": {"values": [record_id]}}}
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        status, answer, _ = server.client.request("POST", path, body)
        if status == 200 and answer["hits"]["hits"]:
            return time.monotonic() - started
        time.sleep(0.1)
    raise RuntimeError(f"{collection_id}/{record_id} never became searchable")


def pin(pid, cpu):
    """Every thread of process ``pid`` on core ``cpu`` (``--pin``)."""
    subprocess.run(["taskset", "-a", "-cp", str(cpu), str(pid)], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip


def run_size(size, config):
    pg = PostgresServer.start()
    engine = start_engine("opensearch")
    if config.get("pin"):
        # Kinto alone on core 0; the engine, PostgreSQL and this client on core 1: what
        # is measured of the plugin is then what it costs Kinto's process, not the
        # engine's work taking Kinto's core, as it would not on a cluster of its own.
        for pid in (pg.pid, engine.pid, os.getpid()):
            pin(pid, 1)
    proxy = harness.CountingProxy(engine.port)
    servers = []
    try:
        pooled = {"pool_number_of_replicas": 0, "number_of_replicas": 0}
        without, port_a = harness.write_ini("scale-without", pg.url, engine.url, plugin=False)
        with_plugin, port_b = harness.write_ini("scale-with", pg.url, proxy.url, **pooled)
        sync_ini, _ = harness.write_ini(
            "scale-sync", pg.url, engine.url, request_timeout_seconds=60, **pooled
        )
        harness.run_measured([str(harness.BIN / "kinto"), "migrate", "--ini", str(without)])
        a = harness.KintoServer("scale-without", without, port_a)
        if config.get("pin"):
            pin(a.process.pid, 0)
        servers.append(a)
        status, _, _ = a.client.request("PUT", f"/v1/buckets/{BUCKET}", {})
        assert status in (200, 201), status
        # Written before the catch-up's overlap: an existing deployment's data is older (a
        # pass reads the overlap's changes again, from storage: see the idle figures).
        overlap_ms = int(DEFAULT_SETTINGS["elasticsearch.catchup_overlap_seconds"] * 1000)
        load_collections(pg.url, size, age_ms=overlap_ms + 60_000)
        bulk, bulk_same = bulk_rate(engine.url, size)
        sync = [str(harness.BIN / "kinto-elasticsearch"), "sync", "--ini", str(sync_ini)]
        sync_seconds, sync_memory, _ = harness.run_measured(sync)

        b = harness.KintoServer("scale-with", with_plugin, port_b)
        if config.get("pin"):
            pin(b.process.pid, 0)
        servers.append(b)
        # Its first pass (at its first request) finds everything indexed: let it end.
        b.client.request("GET", f"/v1/buckets/{BUCKET}")
        wait_quiet(proxy)
        proxy.reset()
        kinto_before, engine_before = cpu_seconds(b.process.pid), cpu_seconds(engine.pid)
        time.sleep(config["idle"])
        minutes = config["idle"] / 60
        idle = {
            "kinto": (cpu_seconds(b.process.pid) - kinto_before) / minutes,
            "engine": (cpu_seconds(engine.pid) - engine_before) / minutes,
            "requests_per_interval": len(proxy.paths) / max(1, config["idle"] / INTERVAL),
        }

        changes = []
        for n in range(config["changes"]):
            collection_id = f"c{(size // 2 + n):05d}"
            write_behind(pg.url, collection_id, f"behind{n}")
            changes.append(wait_found(b, collection_id, f"behind{n}"))

        creates = {"A": [], "B": []}
        admin = {"create": [], "delete": []}
        deletes = {"A": [], "B": []}
        for round_number in range(config["rounds"]):
            for variant, server in (("A", a), ("B", b)):
                paths = [
                    f"/v1/buckets/{BUCKET}/collections/new{variant}{round_number}x{i}"
                    for i in range(config["creates"])
                ]
                # Work after the response counts too: each request is given time to end
                # it before the next, with the plugin and without (requests back to back
                # answer faster, on warm caches: measured, 7.4 against 10.4 ms p50).
                for path in paths:
                    proxy.reset()
                    status, _, elapsed = server.client.request("PUT", path, {"data": {}})
                    assert status == 201, (path, status)
                    creates[variant].append(elapsed)
                    time.sleep(PAUSE)
                    if variant == "B":
                        admin["create"].append(len(admin_requests(proxy)))
                for path in paths:
                    proxy.reset()
                    status, _, elapsed = server.client.request("DELETE", path)
                    assert status == 200, (path, status)
                    deletes[variant].append(elapsed)
                    time.sleep(PAUSE)
                    if variant == "B":
                        admin["delete"].append(len(admin_requests(proxy)))

        searches = {"pooled": [], "dedicated": []}
        schema = {"index:schema": {"properties": {"title": {"type": "text"}}}}
        for name, data in (("pooled", {}), ("dedicated", schema)):
            path = f"/v1/buckets/{BUCKET}/collections/small{name}"
            b.client.request("PUT", path, {"data": data})
            for n in (1, 2):
                b.client.request("PUT", f"{path}/records/r{n}", {"data": {"title": f"small {n}"}})
        body = {"query": {"match": {"title": "small"}}}
        for name in searches:
            path = f"/v1/buckets/{BUCKET}/collections/small{name}/search"
            deadline = time.monotonic() + 60
            while len(b.client.request("POST", path, body)[1]["hits"]["hits"]) < 2:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the records of small{name} were never indexed")
                time.sleep(0.2)
        # Which fields a pooled collection holds is asked of the engine at each search for
        # the 3 s after a write (``search/owned.py``), then cached: what is measured is a
        # collection searched later than that, as most are.
        time.sleep(4)
        # One search of each in turn (which goes first alternates), so that both kinds meet
        # the same moments of the machine: a catch-up pass, the engine's own work.
        for n in range(config["rounds"] * config["searches"]):
            for name in ("dedicated", "pooled")[:: 1 if n % 2 else -1]:
                path = f"/v1/buckets/{BUCKET}/collections/small{name}/search"
                status, answer, elapsed = b.client.request("POST", path, body)
                assert status == 200 and len(answer["hits"]["hits"]) == 2, (status, answer)
                searches[name].append(elapsed)

        throughput, cpu, engine_cpu = ({"A": [], "B": []} for _ in range(3))
        for round_number in range(config["rounds"]):
            for variant, server in (("A", a), ("B", b)):
                prefix = f"w{variant}{round_number}"
                rate, per_create, per_engine = concurrent(
                    server, prefix, 8, config["writes"], engine.pid
                )
                throughput[variant].append(rate)
                cpu[variant].append(per_create)
                engine_cpu[variant].append(per_engine)
        return {
            "size": size,
            "bulk": bulk,
            "bulk_same": bulk_same,
            "sync_seconds": sync_seconds,
            "sync_memory": sync_memory,
            "first_rate": 2 * size / sync_seconds,
            "idle": idle,
            "changes": changes,
            "creates": creates,
            "deletes": deletes,
            "admin": admin,
            "searches": searches,
            "throughput": throughput,
            "cpu": cpu,
            "engine_cpu": engine_cpu,
        }
    finally:
        for server in servers:
            server.stop()
        proxy.close()
        engine.close()
        pg.stop()


def section(results, command, seconds, config):
    median, p = harness.median, harness.percentile
    lines = [
        SECTION,
        "",
        f"From `{command}`, {datetime.date.today().isoformat()}, {seconds / 60:.1f} min in "
        f"all. Machine: {harness.machine()}. Each size on fresh servers: that many "
        "collections of two records written into PostgreSQL, default settings "
        f"(`pools = {DEFAULT_SETTINGS['elasticsearch.pools']}`, a catch-up pass every "
        f"{INTERVAL} s), no replicas. Ratios are with the plugin (B) over Kinto alone (A), "
        f"{config['rounds']} interleaved rounds.",
        "",
        "| collections | first indexing | bulk helper, same documents | ratio | bulk "
        "helper, plain | ratio | idle Kinto CPU/min | idle engine CPU/min | engine requests "
        "per interval | one change searchable |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        idle = r["idle"]
        lines.append(
            f"| {r['size']:,} | {r['first_rate']:,.0f} docs/s ({r['sync_seconds']:.0f} s, "
            f"{r['sync_memory']:.0f} MiB) | {r['bulk_same']:,.0f} docs/s | "
            f"{r['first_rate'] / r['bulk_same']:.2f} | {r['bulk']:,.0f} docs/s | "
            f"{r['first_rate'] / r['bulk']:.2f} | {idle['kinto']:.2f} s | "
            f"{idle['engine']:.2f} s | {idle['requests_per_interval']:.1f} | "
            f"{median(r['changes']):.1f} s |"
        )
    lines += [
        "",
        "| collections | create p50 A | create p50 B | B / A | admin requests per create | "
        "delete p50 B / A | admin requests per delete | search p50 pooled / dedicated | "
        "8 writers B / A |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c, d, s, t = r["creates"], r["deletes"], r["searches"], r["throughput"]
        lines.append(
            f"| {r['size']:,} | {ms(median(c['A']))} | {ms(median(c['B']))} | "
            f"{median(c['B']) / median(c['A']):.2f} | "
            f"{sum(r['admin']['create']) / len(r['admin']['create']):.2f} | "
            f"{median(d['B']) / median(d['A']):.2f} | "
            f"{sum(r['admin']['delete']) / len(r['admin']['delete']):.2f} | "
            f"{median(s['pooled']) / median(s['dedicated']):.2f} "
            f"({ms(median(s['pooled']))}) | "
            f"{median(t['B']) / median(t['A']):.2f} ({median(t['A']):.0f} creates/s alone) |"
        )
    lines += [
        "",
        "p95 of creates, B: "
        + ", ".join(f"{r['size']:,}: {ms(p(r['creates']['B'], 0.95))}" for r in results)
        + ". Kinto's own CPU per create under the 8 writers, A / B: "
        + ", ".join(
            f"{r['size']:,}: {ms(median(r['cpu']['A']))} / {ms(median(r['cpu']['B']))}"
            for r in results
        )
        + "; the engine's, on the same two cores, with the plugin: "
        + ", ".join(f"{r['size']:,}: {ms(median(r['engine_cpu']['B']))}" for r in results)
        + ". A change behind Kinto's back is found by the next pass: up to one interval "
        "plus the pass itself.",
        "",
    ]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 and 4,000, a smoke run")
    parser.add_argument("--size", type=int, action="append", help="run these sizes only")
    parser.add_argument("--output", default=str(harness.ROOT / "bench" / "RESULTS.md"))
    parser.add_argument(
        "--pin", action="store_true",
        help="Kinto on core 0, the engine, PostgreSQL and the client on core 1",
    )  # fmt: skip
    args = parser.parse_args(argv)
    config = dict(QUICK if args.quick else FULL, pin=args.pin)
    if args.size:
        config["sizes"] = tuple(args.size)
    started = time.monotonic()
    command = "python -m bench.scale" + (" --quick" if args.quick else "")
    command += "".join(f" --size {s}" for s in args.size or ()) + (" --pin" if args.pin else "")
    results = []
    for size in config["sizes"]:
        results.append(run_size(size, config))
        print(json.dumps({k: v for k, v in results[-1].items()}, default=str)[:2000])
    lines = section(results, command, time.monotonic() - started, config)
    write_section(args.output, lines, SECTION)
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
