import base64
import itertools
import os

import kinto
import pytest
import webtest

from kinto_elasticsearch.engine import Engine
from kinto_elasticsearch.settings import parse_settings
from tests import servers

_prefixes = itertools.count()


def _engine_params():
    external = servers.external_engine()
    return [external.engine] if external else list(servers.ENGINES)


@pytest.fixture(scope="session", params=_engine_params())
def engine_server(request):
    """A real search server, once per engine (or the cluster named by the environment)."""
    external = servers.external_engine()
    if external:
        yield external
        return
    server = servers.start_engine(request.param)
    yield server
    server.close()


@pytest.fixture
def index_prefix():
    # One prefix per test keeps tests apart on a shared server (or a real cluster).
    return f"t{os.getpid()}-{next(_prefixes)}"


def auth(user):
    token = base64.b64encode(f"{user}:secret".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def base_settings(engine_server, index_prefix, **overrides):
    settings = {
        "storage_backend": "kinto.core.storage.memory",
        "permission_backend": "kinto.core.permission.memory",
        "cache_backend": "kinto.core.cache.memory",
        "includes": "kinto.plugins.default_bucket kinto.plugins.flush kinto_elasticsearch",
        "multiauth.policies": "basicauth",
        "userid_hmac_secret": "test-secret",
        "bucket_create_principals": "system.Authenticated",
        "elasticsearch.hosts": engine_server.url,
        "elasticsearch.engine": engine_server.engine,
        "elasticsearch.index_prefix": index_prefix,
        "elasticsearch.force_refresh": "true",
    }
    settings.update(overrides)
    return settings


@pytest.fixture
def make_app(engine_server, index_prefix, engine):
    apps = []

    def make(**overrides):
        settings = base_settings(engine_server, index_prefix, **overrides)
        app = webtest.TestApp(kinto.main({}, **settings))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.app.registry.indexer.engine.close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def engine(engine_server, index_prefix):
    """A client of the test server, to look at the index behind the plugin's back."""
    settings = parse_settings(
        {
            "elasticsearch.hosts": engine_server.url,
            "elasticsearch.engine": engine_server.engine,
            "elasticsearch.index_prefix": index_prefix,
        }
    )
    client = Engine(settings)
    yield client
    try:
        names = sorted(client.call("indices.get_alias", index=f"{index_prefix}.*"))
        for name in names:
            client.call("indices.delete", index=name)
    finally:
        client.close()
