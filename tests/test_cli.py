import io
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import transaction

from kinto_elasticsearch.index import naming, placement
from kinto_elasticsearch.ops.progress import Progress
from tests.conftest import indexed, pg_settings

COLLECTION = "/v1/buckets/b/collections/c"
CLI = str(Path(sys.executable).parent / "kinto-elasticsearch")


def cli(*args):
    """Run the console script as a separate process, as an operator would."""
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=120)


def _fill(app, alice, count, start=0):
    for first in range(start, start + count, 20):
        requests = [
            {"method": "PUT", "path": f"{COLLECTION}/records/r{i:04}", "body": {"data": {"n": i}}}
            for i in range(first, min(first + 20, start + count))
        ]
        app.post_json("/v1/batch", {"defaults": {"headers": alice}, "requests": requests})


@pytest.fixture
def filled(pg_app, alice):
    pg_app.put_json("/v1/buckets/b", {}, headers=alice)
    pg_app.put_json(COLLECTION, {}, headers=alice)
    _fill(pg_app, alice, 60)
    return pg_app


def _stored(app, alice):
    records = app.get(f"{COLLECTION}/records", headers=alice).json["data"]
    return {r["id"]: (r["last_modified"], r) for r in records}


def test_help_lists_the_commands():
    result = cli("--help")
    assert result.returncode == 0
    assert "reindex" in result.stdout and "verify" in result.stdout


def test_verify_exits_0_when_everything_matches(filled, write_ini):
    result = cli("verify", "--ini", write_ini())
    assert result.returncode == 0, result.stderr
    assert "/buckets/b/collections/c: ok, 60 records, 60 documents" in result.stdout
    assert "everything matches" in result.stdout
    # Kinto's advice for a server ("HTTPS is not enabled") is not the operator's business here.
    assert "Warning" not in result.stderr


def test_reindex_rebuilds_from_storage(filled, alice, write_ini, engine, index_prefix):
    filled.app.registry.elasticsearch.index.removal.delete_collection_indices("b", "c")
    result = cli("reindex", "--ini", write_ini(), "-b", "b", "-c", "c")
    assert result.returncode == 0, result.stderr
    assert "60 records indexed" in result.stdout
    assert indexed(engine, index_prefix, "b", "c") == _stored(filled, alice)


@pytest.mark.parametrize(
    "old,new",
    [
        ([], ["--ini", "config/kinto.ini"]),
        (["--ini", "k.ini", "-b", "b", "-c", "c"], ["--ini", "k.ini", "--bucket", "b",
                                                    "--collection", "c"]),
        (["--bucket", "b", "--collection", "c"], ["--ini", "config/kinto.ini", "--bucket", "b",
                                                  "--collection", "c"]),
    ],
)  # fmt: skip
def test_0_3s_reindex_arguments_map_to_todays(old, new):
    from kinto_elasticsearch.ops import legacy_reindex

    args = legacy_reindex.build_parser().parse_args(old)
    assert legacy_reindex.reindex_argv(args) == ["reindex", *new]


def test_0_3s_command_is_installed():
    import configparser

    setup = configparser.ConfigParser()
    setup.read(Path(__file__).parent.parent / "setup.cfg")
    scripts = setup["options.entry_points"]["console_scripts"]
    assert "kinto-elasticsearch-reindex = kinto_elasticsearch.ops.legacy_reindex:main" in scripts


def test_0_3s_command_reindexes_with_a_deprecation_notice(
    filled, alice, write_ini, engine, index_prefix, tmp_path
):
    # 0.3's --ini defaulted to config/kinto.ini, in the directory it ran in.
    (tmp_path / "config").mkdir()
    write_ini().rename(tmp_path / "config" / "kinto.ini")
    filled.app.registry.elasticsearch.index.removal.delete_collection_indices("b", "c")
    result = subprocess.run(
        [sys.executable, "-m", "kinto_elasticsearch.ops.legacy_reindex", "-b", "b", "-c", "c"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        "kinto-elasticsearch-reindex is deprecated and will be removed: run "
        "kinto-elasticsearch reindex --ini config/kinto.ini --bucket b --collection c"
    )
    assert "60 records indexed" in result.stdout
    assert indexed(engine, index_prefix, "b", "c") == _stored(filled, alice)


def test_reindex_with_concurrent_writes_ends_equal_to_storage(
    filled, alice, write_ini, engine, index_prefix
):
    _fill(filled, alice, 400, start=100)
    stop = threading.Event()
    errors = []

    def writer():
        i = 0
        try:
            while not stop.is_set() or i < 20:
                filled.put_json(f"{COLLECTION}/records/w{i}", {"data": {"n": i}}, headers=alice)
                filled.patch_json(f"{COLLECTION}/records/r{i % 60:04}", {"data": {"n": -i}},
                                  headers=alice)  # fmt: skip
                if i % 4 == 0:
                    filled.delete(f"{COLLECTION}/records/r{100 + i:04}", headers=alice)
                i += 1
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = cli("reindex", "--ini", write_ini(), "-b", "b")
    finally:
        stop.set()
        thread.join()
    assert result.returncode == 0, result.stderr
    assert not errors
    assert indexed(engine, index_prefix, "b", "c") == _stored(filled, alice)
    assert cli("verify", "--ini", write_ini()).returncode == 0


def test_an_outage_is_reported_by_verify_and_fixed_by_repair(
    make_app, alice, own_engine_server, pg_url, write_ini, index_prefix
):
    app = make_app(
        **pg_settings(pg_url),
        **{
            "elasticsearch.hosts": own_engine_server.url,
            "elasticsearch.circuit_breaker_seconds": "60",
        },
    )
    app.app.registry.storage.initialize_schema()
    app.app.registry.permission.initialize_schema()
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    _fill(app, alice, 20)

    own_engine_server.stop()
    # The stream of writes goes on: every one succeeds.
    for i in range(5):
        app.put_json(f"{COLLECTION}/records/new{i}", {"data": {}}, headers=alice)
    app.patch_json(f"{COLLECTION}/records/r0001", {"data": {"n": 100}}, headers=alice)
    app.delete(f"{COLLECTION}/records/r0002", headers=alice)
    # Nothing of the outage reaches the engine: this app runs no catch-up (the test
    # settings turn it off), as if the process had died.
    own_engine_server.restart()

    ini = write_ini(**{"kinto.elasticsearch.hosts": own_engine_server.url})
    report = cli("verify", "--ini", ini)
    assert report.returncode == 1, (report.stdout, report.stderr[-3000:])
    if own_engine_server.engine == "opensearch":
        # osmem-server keeps nothing across a restart: the whole index is gone.
        assert "/buckets/b/collections/c: no index (24 records)" in report.stdout
    else:
        assert "5 missing from the index: new4, new3, new2, new1, new0" in report.stdout
        assert "1 indexed at an older version: r0001" in report.stdout
        assert "1 in the index but not in storage: r0002" in report.stdout

    repair = cli("verify", "--ini", ini, "--repair")
    assert repair.returncode == 1
    assert "repaired" in repair.stdout
    again = cli("verify", "--ini", ini)
    assert again.returncode == 0, again.stdout
    assert "24 records, 24 documents" in again.stdout


def test_verify_reports_orphan_indices(filled, write_ini, engine, index_prefix):
    orphan = f"{index_prefix}.gone.c.1"
    engine.call("indices.create", index=orphan)
    result = cli("verify", "--ini", write_ini())
    assert result.returncode == 1
    assert f"index {orphan}: belongs to no collection" in result.stdout
    assert cli("verify", "--ini", write_ini(), "--repair").returncode == 1
    assert cli("verify", "--ini", write_ini()).returncode == 0


@pytest.mark.parametrize(
    "args,message",
    [
        (["-b", "nope"], "bucket 'nope' does not exist"),
        (["-b", "b", "-c", "nope"], "collection 'nope' does not exist in bucket 'b'"),
        (["-c", "c"], "--collection needs --bucket"),
    ],
)
def test_bad_scope_is_a_clear_error(filled, write_ini, args, message):
    for command in ("reindex", "verify"):
        result = cli(command, "--ini", write_ini(), *args)
        assert result.returncode == 2
        assert message in result.stderr


def test_an_unconfigured_plugin_is_a_clear_error(filled, write_ini):
    result = cli("reindex", "--ini", write_ini(includes=""))
    assert result.returncode == 2
    assert "kinto_elasticsearch is not enabled" in result.stderr


def test_an_unreachable_engine_is_a_clear_error(filled, write_ini):
    ini = write_ini(**{"kinto.elasticsearch.hosts": "http://127.0.0.1:1"})
    for command in ("reindex", "verify"):
        result = cli(command, "--ini", ini)
        assert result.returncode == 2
        assert "cannot reach the search engine at http://127.0.0.1:1" in result.stderr


EXAMPLE_INI = Path(__file__).parent.parent / "config.example.ini"


def _one_error_line(result):
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kinto-elasticsearch: error: "), lines
    return lines[0]


def test_a_missing_ini_is_a_clear_error(tmp_path):
    result = cli("verify", "--ini", tmp_path / "nope.ini")
    assert "nope.ini" in _one_error_line(result)


def test_a_bad_setting_is_one_line_of_error(tmp_path):
    ini = tmp_path / "kinto.ini"
    example = EXAMPLE_INI.read_text()
    ini.write_text(example.replace("max_retries = 0", "max_retries = lots"))
    result = cli("verify", "--ini", ini)
    line = _one_error_line(result)
    assert f"{ini}: elasticsearch.max_retries must be a whole number >= 0, not 'lots'" in line


def test_an_ini_that_does_not_parse_is_one_line_of_error(tmp_path):
    ini = tmp_path / "kinto.ini"
    duplicate = "max_retries = 0\nkinto.elasticsearch.max_retries = 1"
    ini.write_text(EXAMPLE_INI.read_text().replace("max_retries = 0", duplicate))
    line = _one_error_line(cli("reindex", "--ini", ini))
    assert f"cannot read {ini}" in line and "max_retries" in line


def test_reindex_logs_progress_when_not_on_a_terminal(filled, write_ini):
    result = cli("reindex", "--ini", write_ini())
    assert "/buckets/b/collections/c:" in result.stdout
    assert "\r" not in result.stderr


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_draws_a_bar_with_rate_and_time_left():
    terminal = Terminal()
    progress = Progress("/buckets/b/collections/c", 200, stream=terminal)
    progress(50)
    progress(50)
    progress.close()
    line = terminal.getvalue().split("\r")[-1]
    assert "[###############---------------] 100/200 records" in line
    assert "/s" in line and "s left" in line


def test_a_refused_mapping_is_not_stored(pg_app, alice):
    pg_app.put_json("/v1/buckets/b", {}, headers=alice)
    pg_app.put_json(COLLECTION, {}, headers=alice)
    pg_app.patch_json(
        COLLECTION,
        {"data": {"index:schema": {"properties": {"x": {"type": "no-such-type"}}}}},
        headers=alice,
        status=400,
    )
    # PostgreSQL rolled the transaction back.
    assert "index:schema" not in pg_app.get(COLLECTION, headers=alice).json["data"]


def test_sync_indexes_what_the_index_missed(filled, alice, write_ini, engine, index_prefix):
    filled.app.registry.elasticsearch.index.removal.delete_collection_indices("b", "c")
    _fill(filled, alice, 20, start=100)  # Written while the index was gone.
    result = cli("sync", "--ini", write_ini())
    assert result.returncode == 0, result.stderr
    assert "1 collection(s): 0 up to date" in result.stdout
    assert indexed(engine, index_prefix, "b", "c") == _stored(filled, alice)
    again = cli("sync", "--ini", write_ini(), "-b", "b", "-c", "c")
    assert again.returncode == 0 and "0 change(s) indexed" in again.stdout


def test_sync_follow_keeps_catching_up(filled, alice, write_ini, engine, index_prefix):
    import signal
    import time

    process = subprocess.Popen(
        [CLI, "sync", "--ini", str(write_ini()), "--follow", "--interval", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        filled.app.registry.elasticsearch.index.removal.delete_collection_indices("b", "c")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if indexed(engine, index_prefix, "b", "c") == _stored(filled, alice):
                    break
            except Exception:
                pass
            time.sleep(0.2)
        assert indexed(engine, index_prefix, "b", "c") == _stored(filled, alice)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def test_records_indexed_in_part_verify_clean_and_are_listed(filled, alice, write_ini):
    # "n" is a number in every other record: these two cannot be searched by it.
    for record_id in ("odd1", "odd2"):
        filled.put_json(
            f"{COLLECTION}/records/{record_id}", {"data": {"n": "many"}}, headers=alice
        )
    result = cli("verify", "--ini", write_ini())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "/buckets/b/collections/c: ok, 62 records, 62 documents" in result.stdout
    assert "2 indexed in part (not searchable by these fields): odd" in result.stdout
    assert "(n)" in result.stdout
    result = cli("verify", "--ini", write_ini(), "--repair")
    assert result.returncode == 0, result.stdout + result.stderr


def test_reindex_promote_moves_a_pooled_collection_to_an_index_of_its_own(
    make_app, pg_url, alice, write_ini, engine, index_prefix
):
    pools = {"elasticsearch.pools": "2"}
    app = make_app(**pg_settings(pg_url), **pools)
    app.app.registry.storage.initialize_schema()
    app.app.registry.permission.initialize_schema()
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    _fill(app, alice, 30)
    assert app.app.registry.elasticsearch.index.locator.placement("b", "c").pooled
    ini = write_ini(**{f"kinto.{k}": v for k, v in pools.items()})
    result = cli("reindex", "--ini", ini, "-b", "b", "-c", "c", "--promote")
    assert result.returncode == 0, result.stderr
    assert "30 records indexed into" in result.stdout
    index_side = app.app.registry.elasticsearch.index
    where = index_side.locator.placement("b", "c", refresh=True)
    assert not where.pooled
    assert indexed(engine, index_prefix, "b", "c") == _stored(app, alice)
    # Nothing of it is left in the pool.
    pool = placement.choose(index_prefix, 2, "b", "c", {}).pool
    engine.call("indices.refresh", index=pool)
    term = {"query": {"term": {placement.COLLECTION_FIELD: "b/c"}}}
    assert engine.call("count", index=pool, body=term)["count"] == 0
    result = cli("verify", "--ini", ini, "-b", "b", "-c", "c")
    assert result.returncode == 0, result.stdout


def _last_line(stderr):
    return stderr.strip().splitlines()[-1]


def test_a_memory_storage_is_refused_with_the_engine_left_alone(
    filled, alice, write_ini, engine, index_prefix
):
    before = indexed(engine, index_prefix, "b", "c")
    ini = write_ini(**{"kinto.storage_backend": "kinto.core.storage.memory"})
    for command in (["verify"], ["verify", "--repair"], ["reindex"], ["sync"]):
        result = cli(*command, "--ini", ini)
        assert result.returncode == 2, (command, result.stdout, result.stderr[-2000:])
        assert _last_line(result.stderr) == (
            "kinto-elasticsearch: error: storage is kinto.core.storage.memory: this process "
            "would read a storage of its own, empty, not the server's; use the server's own "
            "ini, with PostgreSQL storage"
        )
        assert result.stdout == ""
    assert indexed(engine, index_prefix, "b", "c") == before == _stored(filled, alice)


@pytest.fixture
def foreign_collections(filled, engine, index_prefix):
    """Six collections in the engine that storage lacks, next to its one: as the engine
    looks to a tool reading the wrong database."""
    aliases = [naming.alias_name(index_prefix, "gone", f"c{i}") for i in range(6)]
    for alias in aliases:
        engine.call("indices.create", index=f"{alias}.1", body={"aliases": {alias: {}}})
    return aliases


def test_repair_and_sync_keep_collections_storage_lacks_when_most_would_go(
    foreign_collections, write_ini, engine
):
    pattern = ",".join(foreign_collections)
    repair = cli("verify", "--ini", write_ini(), "--repair")
    assert repair.returncode == 2, repair.stderr[-2000:]
    assert "the engine holds 6 collections that storage, holding 1, lacks" in repair.stderr
    assert "--force-delete-orphans" in _last_line(repair.stderr)
    assert "not deleted: the documents of collections that storage lacks" in repair.stdout
    sync = cli("sync", "--ini", write_ini())
    assert sync.returncode == 2
    assert "the engine holds 6 collections that storage, holding 1, lacks" in sync.stderr
    assert sorted(engine.call("indices.get_alias", name=pattern)) == sorted(
        f"{alias}.1" for alias in foreign_collections
    )

    forced = cli("sync", "--ini", write_ini(), "--force-delete-orphans")
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert "6 removed" in forced.stdout
    assert cli("verify", "--ini", write_ini()).returncode == 0


def test_repair_and_reindex_keep_an_index_whose_storage_looks_empty(
    filled, alice, write_ini, engine, index_prefix
):
    before = indexed(engine, index_prefix, "b", "c")
    registry = filled.app.registry
    registry.storage.delete_all(resource_name="record", parent_id="/buckets/b/collections/c")
    transaction.commit()
    repair = cli("verify", "--ini", write_ini(), "--repair")
    assert repair.returncode == 2, repair.stderr[-2000:]
    assert (
        "/buckets/b/collections/c: the engine holds 60 records that storage, holding 0, lacks"
        in _last_line(repair.stderr)
    )
    reindex = cli("reindex", "--ini", write_ini())
    assert reindex.returncode == 2
    assert "/buckets/b/collections/c: not reindexed: the engine holds 60 records" in (
        reindex.stdout
    )
    assert "--force-delete-orphans" in _last_line(reindex.stderr)
    assert indexed(engine, index_prefix, "b", "c") == before

    forced = cli("reindex", "--ini", write_ini(), "--force-delete-orphans")
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert indexed(engine, index_prefix, "b", "c") == {}
