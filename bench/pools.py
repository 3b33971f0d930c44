"""``python -m bench.pools``: ten thousand collections on one engine, with pooled indices.

Measures, with real processes (Kinto HTTP servers on PostgreSQL, osmem-server):

- the shards the engine holds once 10,000 collections (two records each, loaded into
  PostgreSQL and indexed by ``kinto-elasticsearch sync``) are indexed in pools;
- the p50 of creating a collection over HTTP while those exist, without the plugin (A), with
  it in a pool (B) and with an index of its own (C, ``index:schema``), in interleaved rounds;
- the p50 of searching a small pooled collection (B) against a small dedicated one (A).

Writes its section into ``bench/RESULTS.md`` (replacing an earlier one), and prints it.
"""

import argparse
import datetime
import json
import sys
import time

from bench import harness
from kinto_elasticsearch.config import DEFAULT_SETTINGS
from tests.postgres import PostgresServer
from tests.servers import start_engine

BUCKET = "pools"
SECTION = "## 9. Ten thousand collections: pooled indices"
FULL = {"collections": 10_000, "rounds": 3, "creates": 30, "searches": 60}
QUICK = {"collections": 1000, "rounds": 2, "creates": 10, "searches": 20}
# As many pools as a default install has.
POOLS = DEFAULT_SETTINGS["elasticsearch.pools"]


def load_collections(pg_url, count, age_ms=60_000):
    """``count`` collections of two records each, straight into PostgreSQL, the newest
    ``age_ms`` old, and their bucket older."""
    import psycopg2

    base = int(time.time() * 1000) - 3 * count - age_ms
    with psycopg2.connect(pg_url) as conn, conn.cursor() as cursor:
        for start in range(0, count, 1000):
            rows = []
            for i in range(start, min(start + 1000, count)):
                collection_id = f"c{i:05d}"
                rows.append((collection_id, f"/buckets/{BUCKET}", "collection", base + 3 * i, {}))
                parent = f"/buckets/{BUCKET}/collections/{collection_id}"
                for n in (1, 2):
                    data = {"title": f"{collection_id} record {n}", "n": n}
                    rows.append((f"r{n}", parent, "record", base + 3 * i + n, data))
            values = [
                cursor.mogrify(
                    "(%s, %s, %s, from_epoch(%s), %s::jsonb, FALSE)",
                    (oid, parent, resource, ts, json.dumps(data)),
                ).decode()
                for oid, parent, resource, ts, data in rows
            ]
            cursor.execute(
                "INSERT INTO objects (id, parent_id, resource_name, last_modified, data, deleted)"
                " VALUES " + ",".join(values)
            )
        # The bucket as old as its collections, as in a deployment that has them: one
        # changed within the catch-up's overlap is checked (``sync/incremental.py``).
        # Kinto's trigger would move an older timestamp forward: not for this session.
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(
            "UPDATE objects SET last_modified = from_epoch(%s)"
            " WHERE resource_name = 'bucket' AND id = %s",
            (base - 1, BUCKET),
        )


def ms(seconds):
    return f"{seconds * 1000:.1f} ms"


def run(config):
    pg = PostgresServer.start()
    engine = start_engine("opensearch")
    servers = []
    try:
        pooled = {"pools": POOLS, "pool_number_of_replicas": 0, "number_of_replicas": 0}
        events_only = {"catchup_interval_seconds": 0, **pooled}
        without, port_a = harness.write_ini("pools-without", pg.url, engine.url, plugin=False)
        with_plugin, port_b = harness.write_ini("pools-with", pg.url, engine.url, **events_only)
        sync_ini, _ = harness.write_ini(
            "pools-sync", pg.url, engine.url, request_timeout_seconds=30, **pooled
        )
        harness.run_measured([str(harness.BIN / "kinto"), "migrate", "--ini", str(without)])
        a = harness.KintoServer("pools-without", without, port_a)
        servers.append(a)
        status, _, _ = a.client.request("PUT", f"/v1/buckets/{BUCKET}", {})
        assert status in (200, 201), status
        load_collections(pg.url, config["collections"])
        sync = [str(harness.BIN / "kinto-elasticsearch"), "sync", "--ini", str(sync_ini)]
        sync_seconds, _, _ = harness.run_measured(sync)
        b = harness.KintoServer("pools-with", with_plugin, port_b)
        servers.append(b)
        shards = engine_shards(engine)

        creates = {"A": [], "B": [], "C": []}
        schema = {"index:schema": {"properties": {"title": {"type": "text"}}}}
        for round_number in range(config["rounds"]):
            for variant, server, data in (("A", a, {}), ("B", b, {}), ("C", b, schema)):
                for i in range(config["creates"]):
                    path = f"/v1/buckets/{BUCKET}/collections/new{variant}{round_number}x{i}"
                    status, _, elapsed = server.client.request("PUT", path, {"data": data})
                    assert status == 201, (path, status)
                    creates[variant].append(elapsed)

        searches = {"pooled": [], "dedicated": []}
        for name, data in (("pooled", {}), ("dedicated", schema)):
            path = f"/v1/buckets/{BUCKET}/collections/small{name}"
            b.client.request("PUT", path, {"data": data})
            for n in (1, 2):
                b.client.request("PUT", f"{path}/records/r{n}", {"data": {"title": f"small {n}"}})
        body = {"query": {"match": {"title": "small"}}}
        # Records reach the index shortly after their write (the sender): wait for them.
        for name in searches:
            path = f"/v1/buckets/{BUCKET}/collections/small{name}/search"
            deadline = time.monotonic() + 60
            while len(b.client.request("POST", path, body)[1]["hits"]["hits"]) < 2:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the records of small{name} were never indexed")
                time.sleep(0.2)
        for _ in range(config["rounds"]):
            for name in ("dedicated", "pooled"):
                path = f"/v1/buckets/{BUCKET}/collections/small{name}/search"
                for _ in range(config["searches"]):
                    status, answer, elapsed = b.client.request("POST", path, body)
                    assert status == 200 and len(answer["hits"]["hits"]) == 2, (status, answer)
                    searches[name].append(elapsed)
        return {
            "collections": config["collections"],
            "sync_seconds": sync_seconds,
            "shards": shards,
            "creates": creates,
            "searches": searches,
            "config": config,
        }
    finally:
        for server in servers:
            server.stop()
        engine.close()
        pg.stop()


def engine_shards(engine):
    import urllib.request

    with urllib.request.urlopen(f"{engine.url}/_cat/shards/bench.*?format=json") as answer:
        shards = json.load(answer)
    with urllib.request.urlopen(f"{engine.url}/_cat/indices/bench.*?format=json") as answer:
        indices = json.load(answer)
    primaries = [s for s in shards if s["prirep"] == "p"]
    return {"primaries": len(primaries), "all": len(shards), "indices": len(indices)}


def section(result, command, seconds):
    config, shards = result["config"], result["shards"]
    creates, searches = result["creates"], result["searches"]
    p50 = {k: harness.median(v) for k, v in creates.items()}
    s50 = {k: harness.median(v) for k, v in searches.items()}
    count = result["collections"]
    return [
        SECTION,
        "",
        f"From `{command}`, {datetime.date.today().isoformat()}, {seconds / 60:.1f} min in "
        f"all. Machine: {harness.machine()}. {count:,} collections of two records each, "
        f"loaded into PostgreSQL and indexed by `kinto-elasticsearch sync` in "
        f"{result['sync_seconds']:.0f} s, with `pools = {POOLS}` and no replicas.",
        "",
        f"Shards the engine holds for the plugin's prefix: **{shards['primaries']} primary "
        f"shards** in {shards['indices']} indices ({POOLS} pools and the sync index), "
        f"{shards['all']} shards with replicas. Without pools (0.1, 0.2) every collection "
        "has an index of its own: "
        f"{count:,} primary shards, {2 * count:,} with the engines' default of one replica.",
        "",
        f"{config['rounds']} rounds x {config['creates']} collection creates per variant "
        f"(`PUT /buckets/{BUCKET}/collections/...`), while the {count:,} collections exist:",
        "",
        "| | without plugin (A) | pooled (B) | B / A | own index, `index:schema` (C) | C / A |",
        "|---|---|---|---|---|---|",
        f"| p50 | {ms(p50['A'])} | {ms(p50['B'])} | {p50['B'] / p50['A']:.2f} | "
        f"{ms(p50['C'])} | {p50['C'] / p50['A']:.2f} |",
        f"| p95 | {ms(harness.percentile(creates['A'], 0.95))} | "
        f"{ms(harness.percentile(creates['B'], 0.95))} | | "
        f"{ms(harness.percentile(creates['C'], 0.95))} | |",
        "",
        f"{config['rounds']} rounds x {config['searches']} searches (`match` on `title`) of a "
        "small collection (two records):",
        "",
        "| | dedicated index (A) | pooled (B) | B / A |",
        "|---|---|---|---|",
        f"| p50 | {ms(s50['dedicated'])} | {ms(s50['pooled'])} | "
        f"{s50['pooled'] / s50['dedicated']:.2f} |",
        f"| p95 | {ms(harness.percentile(searches['dedicated'], 0.95))} | "
        f"{ms(harness.percentile(searches['pooled'], 0.95))} | |",
        "",
    ]


def write_section(path, lines, heading=SECTION):
    """Put a section (``heading``) into the results file, in place of an earlier one."""
    try:
        text = open(path).read()
    except FileNotFoundError:
        text = "# Benchmark results\n"
    if heading in text:
        head, rest = text.split(heading, 1)
        following = rest.find("\n## ")
        tail = rest[following + 1 :] if following >= 0 else ""
        text = head + "\n".join(lines) + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(lines)
    with open(path, "w") as out:
        out.write(text)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.pools", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 collections, a smoke run")
    parser.add_argument("--output", default=str(harness.ROOT / "bench" / "RESULTS.md"))
    args = parser.parse_args(argv)
    started = time.monotonic()
    command = "python -m bench.pools" + (" --quick" if args.quick else "")
    result = run(QUICK if args.quick else FULL)
    lines = section(result, command, time.monotonic() - started)
    write_section(args.output, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
