"""Kinto's own test suite, run with the plugin included: tests written by others.

The tests come from Kinto's source distribution on PyPI (the version installed here),
fetched by ``make install`` into ``.venv/kinto-sdist``. They run in a pytest subprocess with
``tests/kinto_suite/kinto_es_suite_plugin.py``, which includes kinto_elasticsearch in every
app they build and, at the end of each test, fails it if ``verify`` finds the index differs
from storage (a stale, missing or extra document, a missing or orphan index).
"""

import os
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

import pytest

from tests import servers

ROOT = Path(__file__).resolve().parent.parent
SDIST_DIR = ROOT / ".venv" / "kinto-sdist"
PLUGIN_DIR = Path(__file__).resolve().parent / "kinto_suite"

# The modules of Kinto's suite that write records, collections and buckets through the API
# (with the plugins that do: history, default bucket). The rest exercise nothing we index.
MODULES = [
    "tests/test_views_records.py",
    "tests/test_views_schema_record.py",
    "tests/test_views_schema_collection.py",
    "tests/test_views_collections.py",
    "tests/test_views_buckets.py",
    "tests/test_views_objects_permissions.py",
    "tests/plugins/test_history.py",
    "tests/plugins/test_default_bucket.py",
]


@pytest.fixture(scope="module")
def suite_engine():
    """One engine for Kinto's suite: the real cluster named by the environment, else
    osmem-server. What it checks is the plugin's bookkeeping (events, catch-up, verify),
    and Kinto's suite builds an app per test class: on noida-db it would add minutes to
    ``make test`` and prove nothing more."""
    external = servers.external_engine()
    if external:
        yield external
        return
    server = servers.start_engine("opensearch")
    yield server
    server.close()


@pytest.fixture(scope="module")
def kinto_sources(tmp_path_factory):
    archive = SDIST_DIR / f"kinto-{version('kinto')}.tar.gz"
    assert archive.exists(), f"{archive} is missing: run `make install` to fetch it"
    target = tmp_path_factory.mktemp("kinto-sdist")
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if "/tests/" in m.name or m.name.endswith(".toml")]
        tar.extractall(target, members=members, filter="data")
    return target / f"kinto-{version('kinto')}"


def test_kintos_own_tests_pass_and_leave_the_index_equal_to_storage(kinto_sources, suite_engine):
    env = {
        **os.environ,
        "KINTO_SUITE_ENGINE_URL": suite_engine.url,
        "KINTO_SUITE_ENGINE": suite_engine.engine,
        # The plugin of this tree, not whichever copy is installed (a worktree, a checkout
        # beside an editable install of another): Kinto's ``tests`` package stays first,
        # the working directory's.
        "PYTHONPATH": os.pathsep.join([str(PLUGIN_DIR), str(ROOT)]),
    }
    command = [sys.executable, "-m", "pytest", "-p", "kinto_es_suite_plugin"]
    command += ["-o", "addopts=", "-p", "no:cacheprovider", "-q", *MODULES]
    result = subprocess.run(
        command, cwd=kinto_sources, env=env, capture_output=True, text=True, timeout=1200
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20000:]
    # The plugin's summary proves the comparison ran on real data, not on nothing.
    summary = [line for line in output.splitlines() if "kinto_elasticsearch verified" in line]
    assert summary, output[-5000:]
    collections = int(summary[0].split("verified ")[1].split()[0])
    assert collections > 100, summary[0]
