import pytest
from pyramid.exceptions import ConfigurationError

from kinto_elasticsearch.config import parse_settings


def test_defaults_are_valid():
    settings = parse_settings({})
    assert settings.hosts == ("http://localhost:9200",)
    assert settings.engine == "elasticsearch"
    assert settings.index_prefix == "kinto"
    assert settings.force_refresh is False
    assert settings.resources == ()


def test_hosts_are_a_list():
    settings = parse_settings({"elasticsearch.hosts": "http://a:9200 https://b:9200"})
    assert settings.hosts == ("http://a:9200", "https://b:9200")


@pytest.mark.parametrize(
    "host,assumed",
    [
        ("localhost:9200", "http://localhost:9200"),
        ("localhost", "http://localhost"),
        ("10.0.0.7:9201", "http://10.0.0.7:9201"),
        ("es-1.example.com:9200", "http://es-1.example.com:9200"),
        ("[::1]:9200", "http://[::1]:9200"),
    ],
)
def test_a_host_without_a_scheme_is_read_as_http_with_a_warning(host, assumed, caplog):
    """0.3's default and example was ``localhost:9200``: it keeps working, deprecated."""
    with pytest.warns(DeprecationWarning) as warned:
        settings = parse_settings({"elasticsearch.hosts": f"https://a:9200 {host}"})
    assert settings.hosts == ("https://a:9200", assumed)
    message = f"elasticsearch.hosts: {host!r} has no scheme and is read as {assumed}"
    assert [str(warning.message) for warning in warned] == [
        f"{message}; write {assumed} (or https://...): hosts without a scheme are deprecated"
    ]
    assert message in caplog.text


@pytest.mark.parametrize(
    "key,value,fragment",
    [
        ("elasticsearch.hosts", "ftp://localhost", "not a URL with a scheme"),
        ("elasticsearch.hosts", "http://", "not a URL with a scheme"),
        ("elasticsearch.hosts", ":9200", "not a URL with a scheme"),
        ("elasticsearch.hosts", "localhost:port", "not a URL with a scheme"),
        ("elasticsearch.hosts", "http:/localhost", "not a URL with a scheme"),
        ("elasticsearch.hosts", "localhost:9200/prefix", "not a URL with a scheme"),
        ("elasticsearch.hosts", "user:secret@localhost:9200", "not a URL with a scheme"),
        ("elasticsearch.hosts", "!!!", "not a URL with a scheme"),
        ("elasticsearch.hosts", "", "at least one host"),
        ("elasticsearch.engine", "solr", "must be one of elasticsearch, opensearch"),
        ("elasticsearch.index_prefix", "Kinto", "index_prefix 'Kinto' is invalid"),
        ("elasticsearch.index_prefix", "_kinto", "is invalid"),
        ("elasticsearch.index_prefix", "a.b", "is invalid"),
        ("elasticsearch.index_prefix", "x" * 33, "is invalid"),
        ("elasticsearch.resources", "/buckets/a/groups/b", "not a bucket or collection URI"),
        ("elasticsearch.request_timeout_seconds", "soon", "must be a number of seconds"),
        ("elasticsearch.search_timeout_seconds", "0", "greater than zero"),
        ("elasticsearch.rebuild_lease_seconds", "0", "greater than zero"),
        ("elasticsearch.max_retries", "-1", "whole number"),
        ("elasticsearch.number_of_shards", "0", "whole number >= 1"),
        ("elasticsearch.number_of_replicas", "some", "whole number >= 0"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(key, value, fragment):
    with pytest.raises(ConfigurationError, match=fragment):
        parse_settings({key: value})


def test_resources_select_buckets_and_collections():
    settings = parse_settings(
        {"elasticsearch.resources": "/buckets/blog /buckets/shop/collections/items"}
    )
    assert settings.is_indexed("blog", "anything")
    assert settings.is_indexed("shop", "items")
    assert not settings.is_indexed("shop", "orders")
    assert not settings.is_indexed("other", "items")
    # A bucket is of interest as soon as one of its collections is.
    assert settings.is_indexed("shop")


def test_kinto_refuses_to_start_with_a_bad_setting(engine_server, index_prefix):
    import kinto

    from tests.conftest import base_settings

    settings = base_settings(engine_server, index_prefix)
    settings["elasticsearch.hosts"] = "ftp://127.0.0.1:9200"
    with pytest.raises(ConfigurationError, match="not a URL with a scheme"):
        kinto.main({}, **settings)


def test_kinto_starts_with_0_3s_scheme_less_host(engine_server, index_prefix):
    import kinto

    from tests.conftest import base_settings

    settings = base_settings(engine_server, index_prefix)
    settings["elasticsearch.hosts"] = engine_server.url.removeprefix("http://")
    with pytest.warns(DeprecationWarning, match="has no scheme"):
        app = kinto.main({}, **settings)
    assert app.registry.elasticsearch.settings.hosts == (engine_server.url,)
    assert app.registry.elasticsearch.ping()


def test_environment_overrides_settings(make_app, monkeypatch):
    monkeypatch.setenv("KINTO_ELASTICSEARCH_INDEX_PREFIX", "fromenv")
    app = make_app()
    assert app.app.registry.elasticsearch.settings.index_prefix == "fromenv"


def test_the_example_configuration_boots(engine_server, monkeypatch):
    """The ini holds prefixed keys, as operators write them, and env vars override them."""
    from tests.conftest import auth

    alice = auth("alice")
    import pathlib

    import webtest
    from pyramid.paster import get_app

    ini = pathlib.Path(__file__).parent.parent / "config.example.ini"
    monkeypatch.setenv("KINTO_ELASTICSEARCH_HOSTS", engine_server.url)
    monkeypatch.setenv("KINTO_ELASTICSEARCH_ENGINE", engine_server.engine)
    monkeypatch.setenv("KINTO_ELASTICSEARCH_INDEX_PREFIX", "example")
    app = webtest.TestApp(get_app(str(ini), "main"))
    settings = app.app.registry.elasticsearch.settings
    assert settings.force_refresh is True
    assert settings.hosts == (engine_server.url,)
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json("/v1/buckets/b/collections/c", {}, headers=alice)
    app.put_json("/v1/buckets/b/collections/c/records/r", {"data": {"t": "x"}}, headers=alice)
    hits = app.get("/v1/buckets/b/collections/c/search", headers=alice).json["hits"]["hits"]
    assert [hit["_id"] for hit in hits] == ["r"]
    app.app.registry.elasticsearch.index.removal.flush()


def test_every_setting_is_documented_and_in_the_example():
    """The docs' reference is generated: the configuration page renders ``reference_rst``
    (through the local Sphinx directive), which names every setting."""
    import pathlib

    from kinto_elasticsearch.config import DEFAULT_SETTINGS, reference_rst

    root = pathlib.Path(__file__).parent.parent
    page = (root / "docs" / "configuration.rst").read_text()
    directive = (root / "docs" / "_ext" / "settings_reference.py").read_text()
    assert "\n.. kinto-elasticsearch-settings::\n" in page
    assert "config.reference_rst()" in directive
    reference = reference_rst()
    example = (root / "config.example.ini").read_text()
    for name in DEFAULT_SETTINGS:
        assert f"``kinto.{name}``" in reference, name
        assert f"kinto.{name} = " in example, name


def test_shards_and_replicas_are_left_to_the_engine_unless_set():
    assert parse_settings({}).index_settings() == {}
    chosen = parse_settings(
        {"elasticsearch.number_of_shards": "3", "elasticsearch.number_of_replicas": "0"}
    )
    assert chosen.index_settings() == {"number_of_shards": 3, "number_of_replicas": 0}


def test_every_key_of_the_example_is_a_known_setting():
    """A typo in the example (a key Kinto would silently ignore) fails here, commented-out
    examples included."""
    import pathlib
    import re

    from kinto_elasticsearch.config import DEFAULT_SETTINGS

    example = (pathlib.Path(__file__).parent.parent / "config.example.ini").read_text()
    keys = re.findall(r"^[#\s]*kinto\.(elasticsearch\.\S+)\s*=", example, re.MULTILINE)
    assert keys
    assert set(keys) <= set(DEFAULT_SETTINGS), set(keys) - set(DEFAULT_SETTINGS)


def test_the_reference_gives_every_setting_its_default_and_doc():
    import re

    from kinto_elasticsearch.config import DEPRECATED_SETTINGS, SETTINGS, reference_rst

    reference = reference_rst()
    # A definition list: the key as written in the ini, then its indented definition.
    entries = dict(re.findall(r"^``kinto\.(\S+)``\n((?:(?:    .*)?\n)+)", reference, re.MULTILINE))
    assert set(entries) == {setting.key for setting in SETTINGS} | set(DEPRECATED_SETTINGS)
    for setting in SETTINGS:
        assert setting.doc.strip(), setting.key
        doc, default = entries[setting.key].strip().split("\n\n")
        assert " ".join(doc.split()) == setting.doc, setting.key
        assert default.strip().startswith("Default: "), setting.key
    entry = entries["elasticsearch.pools"]
    assert "Default: ``16``. Environment variable: ``KINTO_ELASTICSEARCH_POOLS``." in entry
    assert "Default: ``false``." in entries["elasticsearch.force_refresh"]
    assert "Default: ``2``." in entries["elasticsearch.request_timeout_seconds"]
    assert "Default: unset." in entries["elasticsearch.number_of_shards"]
