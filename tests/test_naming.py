import fnmatch
import itertools

import pytest

from kinto_elasticsearch.index import naming

# Every shape of valid Kinto id that could trip an encoding: case, '-', '_', digits, length.
IDS = [
    "a", "A", "ab", "aB", "Ab", "AB", "a-b", "a_b", "a-B", "0", "9z",
    "blog", "Blog", "BLOG", "b-log", "b_log", "bl-og", "x" * 99, "x" * 100, "x" * 101,
    "X" * 60, "x" * 500, "x" * 499 + "y", "X" * 500, "a" * 84 + "B" * 20,
]  # fmt: skip


def _valid_index_name(name):
    return (
        name == name.lower()
        and len(name.encode()) <= 255
        and name[0] not in "-_+"
        and not any(c in name for c in '\\/*?"<>| ,#:')
    )


def test_alias_names_are_injective():
    pairs = list(itertools.product(IDS, IDS))
    names = {naming.alias_name("kinto", b, c) for b, c in pairs}
    assert len(names) == len(set(pairs))


def test_names_are_valid_for_the_engine():
    for bucket_id, collection_id in itertools.product(IDS, IDS):
        assert _valid_index_name(naming.new_index_name("k" * 32, bucket_id, collection_id))


def test_upper_case_is_escaped_readably():
    assert naming.alias_name("kinto", "MyBlog", "posts") == "kinto.+my+blog.posts"


@pytest.mark.parametrize("bucket_id", IDS)
def test_bucket_pattern_matches_only_that_bucket(bucket_id):
    pattern = naming.bucket_pattern("kinto", bucket_id)
    for other, collection_id in itertools.product(IDS, ["c", "C-1"]):
        index = naming.new_index_name("kinto", other, collection_id)
        assert fnmatch.fnmatchcase(index, pattern) == (other == bucket_id)


def test_collection_pattern_matches_only_that_collection():
    pattern = naming.collection_pattern("kinto", "b", "c")
    assert fnmatch.fnmatchcase(naming.new_index_name("kinto", "b", "c"), pattern)
    assert not fnmatch.fnmatchcase(naming.new_index_name("kinto", "b", "cc"), pattern)
    assert not fnmatch.fnmatchcase(naming.new_index_name("kinto", "b", "C"), pattern)


def test_prefix_pattern_does_not_match_a_longer_prefix():
    assert not fnmatch.fnmatchcase(
        naming.new_index_name("kinto-x", "b", "c"), naming.prefix_pattern("kinto")
    )


def test_the_engine_accepts_every_name(engine, index_prefix):
    for bucket_id, collection_id in [("A", "B"), ("x" * 500, "Y" * 500), ("a-b_C", "0")]:
        alias = naming.alias_name(index_prefix, bucket_id, collection_id)
        index = naming.new_index_name(index_prefix, bucket_id, collection_id)
        engine.call("indices.create", index=index, body={"aliases": {alias: {}}})
        assert engine.call("indices.get_alias", name=alias) == {index: {"aliases": {alias: {}}}}


def test_the_alias_of_a_collections_physical_index():
    alias = naming.alias_name("kinto", "Blog", "articles")
    assert naming.alias_of("kinto", f"{alias}.0") == alias
    assert naming.alias_of("kinto", naming.new_index_name("kinto", "Blog", "articles")) == alias
    for name in (
        alias,
        naming.pool_index_name("kinto", 3),
        naming.sync_index_name("kinto"),
        f"other.{alias.partition('.')[2]}.0",
        "kinto.blog.0",
    ):
        assert naming.alias_of("kinto", name) is None, name
