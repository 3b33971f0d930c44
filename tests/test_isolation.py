"""Non-interference in pools (issue 20): nothing another tenant of the pool writes changes
what a pooled collection answers, to any of its readers, for any request.

A differential test. Tenant T (``tests/isolation_world.py``) has pooled collections and
three readers: alice (full reader, their owner), carol (reader of one record) and anonymous
(of T's public collection). Tenant O is another user's bucket in the same (one) pool.
Probes generated from the walk's construct tables (``tests/isolation_probes.py``) are asked
by each reader:

- BEFORE: T alone in its pool (O's collection exists, empty);
- AFTER: in the same pool, once O has written new words, near-typos, prefixes and T's own
  text (classes 1 and 2), fields T never wrote, some matching T's wildcard patterns
  (class 4), and hundreds of text fields (class 5);
- O WRITES FIRST: in a fresh pool where O wrote one record many times (class 3), then T the
  very same records (their timestamps are given);
- O TYPES FIRST: in a fresh pool where O wrote T's field names with other types (class 4),
  then T the very same records: T's collections move to indices of their own at their
  first write, with the pool's rules, and must answer as in the pool.

Each answer is compared whole with BEFORE's (``tests/isolation_compare.py`` says what is
removed: ``took`` only); every difference is reported at once, by class. BEFORE is asked
three times: a probe whose answer changes with nothing written (CONTROL) shows the engine's
noise, not another tenant's doing, and is left out (and listed).
"""

import itertools
import os

import kinto
import pytest
import webtest

from kinto_elasticsearch.client import Engine
from kinto_elasticsearch.config import parse_settings
from kinto_elasticsearch.search.walk import constructs
from tests import isolation_world as world
from tests.conftest import REQUEST_TIMEOUT, EngineSpy, base_settings, close_app
from tests.isolation_clauses import ClauseModel
from tests.isolation_compare import ask, compare, report
from tests.isolation_probes import all_probes

PROBES = all_probes()
SETTINGS = {
    # One pool of one shard: every tenant shares its dictionaries, statistics and counters.
    "elasticsearch.pools": "1",
    "elasticsearch.pool_number_of_shards": "1",
    # Room in T's and O's shares for O's many fields (class 5), within the pool's budget.
    "elasticsearch.pool_max_fields": str(2 * world.MANY_FIELDS + 100),
}
PHASES = {
    "after": "O wrote words and fields in T's pool",
    "o_writes_first": "O wrote one record many times, before T, in a fresh pool",
    "o_types_first": "O typed T's field names otherwise, before T, in a fresh pool",
}
_worlds = itertools.count()


def _answers(pool):
    limit = pool.app.app.registry.elasticsearch.settings.max_clauses
    model = ClauseModel(pool.spy, pool.client, limit)
    return {
        (probe.name, reader): ask(pool.app, probe, headers, uri, model)
        for probe in PROBES
        for reader, (headers, uri) in world.READERS.items()
    }


class Pool:
    """Apps on one index prefix, which is emptied between phases so that the names of
    indices and aliases (which answers show) are the same in every phase."""

    def __init__(self, engine_server):
        self.engine_server = engine_server
        self.prefix = f"iso{os.getpid()}-{next(_worlds)}"
        self.app = None
        self.client = Engine(
            parse_settings(
                {
                    "elasticsearch.hosts": engine_server.url,
                    "elasticsearch.engine": engine_server.engine,
                    "elasticsearch.index_prefix": self.prefix,
                    "elasticsearch.request_timeout_seconds": REQUEST_TIMEOUT,
                }
            )
        )

    def fresh(self, **overrides):
        self.close_app()
        self.empty()
        settings = base_settings(self.engine_server, self.prefix, **{**SETTINGS, **overrides})
        self.app = webtest.TestApp(kinto.main({}, **settings))
        self.spy = EngineSpy(self.app.app.registry.elasticsearch.index.engine)
        return self.app

    def empty(self):
        for name in sorted(self.client.call("indices.get_alias", index=f"{self.prefix}.*")):
            self.client.call("indices.delete", index=name)

    def close_app(self):
        if self.app is not None:
            close_app(self.app)
            self.app = None

    def close(self):
        self.close_app()
        try:
            self.empty()
        finally:
            self.client.close()


def _placements(app):
    """Where T's two collections and O's live."""
    locator = app.app.registry.elasticsearch.index.locator
    return [
        locator.placement(bucket, collection, refresh=True)
        for bucket, collection in (
            (world.T_BUCKET, world.T_COLLECTION),
            (world.T_BUCKET, "tp"),
            (world.O_BUCKET, world.O_COLLECTION),
        )
    ]


@pytest.fixture(scope="module")
def answered(engine_server):
    """Every probe's answers, per reader, in each phase; and what the phases showed."""
    pool = Pool(engine_server)
    try:
        app = pool.fresh()
        world.write_tenant(app)
        world.create_other(app)
        results = {"before": _answers(pool), "placements": _placements(app)}
        # The same again, twice, nothing written: what differs is the engine's own noise.
        results["control"] = [_answers(pool), _answers(pool)]
        written = world.other_words(app) + world.other_fields(app)
        world.wait_other(app, written)
        results["after"] = _answers(pool)
        for phase, write in (
            ("o_writes_first", world.many_writes),
            ("o_types_first", world.conflicting_fields),
        ):
            app = pool.fresh()
            world.create_other(app)
            world.wait_other(app, write(app))
            world.write_tenant(app)
            results[phase] = _answers(pool)
            results[f"{phase} placements"] = _placements(app)
        yield results
    finally:
        pool.close()


def _kept(answers):
    """The (probe, reader) pairs BEFORE answered: a 2xx, or a refusal (a 4xx). An engine
    fault (5xx) is no answer to compare."""
    return [key for key, (status, _, _) in answers.items() if status < 500]


def test_t_and_o_share_one_pooled_index(answered):
    where = answered["placements"]
    assert all(placement.pooled for placement in where)
    assert len({placement.pool for placement in where}) == 1


def test_where_o_typed_first_t_was_moved_out_with_the_pools_rules(answered):
    """O TYPES FIRST compares T moved out of the pool (at its first write, before any of
    its records was indexed there) with T pooled: the move must not show."""
    *tenant, other = answered["o_types_first placements"]
    assert all(not where.pooled and where.moved and where.shared for where in tenant)
    assert other.pooled
    assert all(where.pooled for where in answered["o_writes_first placements"])


def test_every_construct_of_the_walk_is_probed():
    names = {probe.name for probe in PROBES}
    queries = (
        set(constructs.COMPOUND_QUERIES)
        | constructs.FIELD_QUERIES
        | constructs.OPTION_QUERIES
        | set(constructs.FULL_READ_QUERIES)
        | set(constructs.REFUSED_QUERIES)
    )
    expected = (
        {f"query {name}" for name in queries}
        | {
            f"agg {name}"
            for name in constructs.AGGREGATIONS | set(constructs.REFUSED_AGGREGATIONS)
        }
        | {f"suggest {name}" for name in constructs.SUGGESTERS}
        | {f"sort {name} asc" for name in constructs.SORT_SPECIALS}
        | {f"hits top_hits {key}" for key in constructs.HIT_CONTEXT_KEYS}
    )
    top = {probe.name.split()[1] for probe in PROBES if probe.name.startswith("top ")}
    assert expected <= names, sorted(expected - names)
    assert top >= constructs.TOP_LEVEL_KEYS | set(constructs.REFUSED_TOP_LEVEL_KEYS)


# Legitimate searches that must answer with T's records, before and after O writes, so that
# a rule refusing everything cannot make the differential test pass.
FLOOR = [
    "query match",
    "query term",
    "query range",
    "query bool",
    "query terms",
    "agg terms",
    "agg avg",
    "GET ?q=python",
    "GET ?min_n=3",
    "facets ?",
]


@pytest.mark.parametrize("phase", ["before", "after"])
def test_legitimate_probes_answer_with_records(answered, phase):
    failed = []
    for name in FLOOR:
        for reader in ("full", "anonymous"):
            status, body, _ = answered[phase][(name, reader)]
            if status != 200 or not _found(body):
                failed.append(f"{reader} {name}: {status} {str(body)[:200]}")
    # The partial reader finds the record they may read, and only it.
    status, body, _ = answered[phase][("query match", "partial")]
    hits = [hit["_id"] for hit in body["hits"]["hits"]] if status == 200 else body
    if hits != [world.SHARED_RECORD]:
        failed.append(f"partial query match: {status} {hits}")
    if failed:
        pytest.fail("\n".join(failed), pytrace=False)


def _found(body):
    if "fields" in body and "total" in body:
        return body["total"] > 0 and body["fields"]
    if body["hits"]["total"]["value"] == 0:
        return False
    aggregations = body.get("aggregations", {})
    return all(agg.get("buckets") or agg.get("value") is not None for agg in aggregations.values())


def test_enough_probes_are_answered(answered):
    kept = _kept(answered["before"])
    by_reader = {reader: sum(1 for _, r in kept if r == reader) for reader in world.READERS}
    assert all(count >= 250 for count in by_reader.values()), by_reader
    # Answers, not only refusals: most probes reach the engine for the full reader.
    ok = sum(1 for key in kept if key[1] == "full" and answered["before"][key][0] == 200)
    assert ok >= 200


def _unstable(answered):
    """The probes whose answer changed, to any reader, with nothing written (CONTROL): the
    engine's own noise, which no other tenant caused. They are left out of the comparison,
    and listed. (noida-db orders unsorted ``top_hits`` at random: since every pooled hit
    context ties in Kinto's order, ``rules/tiebreak.py``, no probe here is unstable.)"""
    return {
        name
        for control in answered["control"]
        for (name, reader), answer in control.items()
        if answer != answered["before"][(name, reader)]
    }


def test_few_probes_are_unstable(answered):
    unstable = _unstable(answered)
    # Engine noise must stay an exception, or the comparison would compare little: on the
    # test servers there is none (0 of 380), a real cluster's may show a few.
    assert len(unstable) <= len(PROBES) // 50, sorted(unstable)


def _differences(answered, phases):
    by_name = {probe.name: probe for probe in PROBES}
    unstable = _unstable(answered)
    found = []
    for phase in phases:
        for name, reader in _kept(answered["before"]):
            if name in unstable:
                continue
            before, after = answered["before"][(name, reader)], answered[phase][(name, reader)]
            for cls, detail in compare(by_name[name], reader, before, after):
                found.append((cls, PHASES[phase], name, reader, detail))
    return found, unstable


def test_no_answer_depends_on_other_tenants(answered):
    found, unstable = _differences(answered, PHASES)
    if found:
        left_out = "; ".join(sorted(unstable)) or "none"
        # The report, not pytest's rendering of the answers: readable, and fast.
        message = report(found) + f"\n\nNot compared (unstable with nothing written): {left_out}"
        pytest.fail(message, pytrace=False)
