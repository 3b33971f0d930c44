"""A pytest plugin that runs Kinto's own test suite with kinto_elasticsearch included.

Loaded with ``-p kinto_es_suite_plugin`` (this folder on ``PYTHONPATH``) in a pytest run
over the tests of Kinto's source distribution (see ``tests/test_kinto_suite.py``). Every
Kinto app those tests build includes the plugin, pointed at the search server named by
``KINTO_SUITE_ENGINE_URL``. When a test ends, before Kinto's own tear-down empties storage
(without sending any event), the plugin's ``verify`` compares every collection's index with
storage: a stale, missing or extra document, or an index left behind by a deleted
collection, fails that test.
"""

import itertools
import os

import pytest
import webtest
from kinto.core import testing

from kinto_elasticsearch.storage import iter_collections
from kinto_elasticsearch.sync import compare, worker

# The catch-up worker rests half a second after each pass, to merge the wake-ups of an
# outage. Every test here waits at its end for a pass that starts after it: with that rest,
# half a second of each of Kinto's 300 tests, most of the run's time.
worker.MIN_GAP_SECONDS = 0.02

ENGINE_URL = os.environ["KINTO_SUITE_ENGINE_URL"]
ENGINE = os.environ.get("KINTO_SUITE_ENGINE", "opensearch")
# Background work (rebuilds, the sender) gets this long to settle before the comparison.
SETTLE_SECONDS = 10

_prefixes = itertools.count()
# Collections compared over the whole run: the summary line proves the check ran.
_verified = {"collections": 0, "records": 0}
_tear_down = testing.BaseWebTest.tearDown


def with_plugin(settings):
    """Kinto's settings for an app, with the plugin included last."""
    settings = dict(settings)
    includes = str(settings.get("includes", ""))
    if "kinto_elasticsearch" not in includes.split():
        settings["includes"] = f"{includes} kinto_elasticsearch".strip()
    settings.update(
        {
            "elasticsearch.hosts": ENGINE_URL,
            "elasticsearch.engine": ENGINE,
            # One prefix per app: Kinto's tests reuse ids, and each app has its own storage.
            "elasticsearch.index_prefix": f"ks{os.getpid()}-{next(_prefixes)}",
            "elasticsearch.force_refresh": "true",
        }
    )
    return settings


def make_app(cls, settings=None, config=None):
    """Kinto's ``BaseWebTest.make_app``, with the plugin included once the test class has
    set its settings (classes often replace ``includes`` after their parents did)."""
    settings = with_plugin(cls.get_app_settings(extras=settings))
    app = webtest.TestApp(cls.entry_point({}, config=config, **settings))
    app.RequestClass = testing.get_request_class(cls.api_prefix)
    return app


def _settle(registry):
    """Let the plugin's background work finish, as it would in a running server: the
    sender's pending bulks, and a catch-up pass (what no event announced, such as the
    collections the default bucket creates, reaches the index through it)."""
    registry.elasticsearch.sender.wait_until_idle(SETTLE_SECONDS)
    assert registry.elasticsearch.catchup.wait_for_pass(SETTLE_SECONDS), (
        "no catch-up pass succeeded"
    )


def differences(registry):
    """What ``verify`` finds between storage and the index, as lines."""
    storage, index_side = registry.storage, registry.elasticsearch.index
    found, expected = [], set()
    for bucket_id, collection_id, metadata in iter_collections(storage):
        expected.add(index_side.locator.alias(bucket_id, collection_id))
        report = compare.verify_collection(storage, index_side, bucket_id, collection_id, metadata)
        _verified["collections"] += 1
        _verified["records"] += report.records
        if report.differs:
            found.append(f"{report.uri}: {report}")
    pattern = compare.scope_pattern(index_side.prefix)
    indices = compare.verify_indices(index_side, expected, pattern)
    found.extend(f"index {name} belongs to no collection" for name in indices.orphans)
    return found


def tear_down(self):
    registry = self.app.app.registry
    found = []
    if getattr(registry, "elasticsearch", None) is not None:
        _settle(registry)
        found = differences(registry)
        # Kinto's tear-down empties storage without events: the index must follow, or the
        # next test, reusing the same ids, would find this one's documents.
        registry.elasticsearch.index.removal.flush()
    _tear_down(self)
    assert not found, "the index differs from storage:\n" + "\n".join(found)


testing.BaseWebTest.make_app = classmethod(make_app)
testing.BaseWebTest.tearDown = tear_down


# Known failures, each tied to an open issue. Strict: once fixed, the run fails until the
# entry goes, so this list cannot hide a regression.
KNOWN_FAILURES = {}


def pytest_collection_modifyitems(items):
    for item in items:
        reason = KNOWN_FAILURES.get(item.nodeid)
        if reason:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(
        f"kinto_elasticsearch verified {_verified['collections']} collection(s) holding "
        f"{_verified['records']} record(s) against their index"
    )
