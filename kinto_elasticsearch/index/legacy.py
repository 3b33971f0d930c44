"""kinto-elasticsearch 0.3's indices, which an upgrade leaves behind.

0.3 created one index per collection, named ``{prefix}-{bucket}-{collection}``
(``Indexer.indexname`` in its ``indexer.py``), from the same ``index_prefix`` setting,
whose default (``kinto``) is still this plugin's. Its flush deleted ``{prefix}-*``.

Kinto ids may hold ``-``, so one name reads as several (bucket, collection) pairs:
``kinto-a-b-c`` is ``a``/``b-c`` or ``a-b``/``c``. A name is taken for a collection's 0.3
index only when exactly one of its readings is a collection storage holds (``exists``):
one with several readings in storage is *ambiguous*, one with none *unmatched*; both are
reported and never deleted here. A name holding a ``.`` is never 0.3's, whatever its
prefix: Kinto ids and prefixes hold none, and every name this plugin creates holds one
(``naming``), so ``kinto-a.b.c``, a collection of a plugin whose prefix is ``kinto-a``,
is left alone.
"""

from dataclasses import dataclass, field

from kinto_elasticsearch.index import naming


def legacy_name(prefix, bucket_id, collection_id):
    """The name 0.3 gave a collection's index."""
    return f"{prefix}-{bucket_id}-{collection_id}"


def readings(prefix, name):
    """Every ``(bucket id, collection id)`` that 0.3 would have named ``name``, the
    shortest bucket id first."""
    start = f"{prefix}-"
    if not name.startswith(start) or "." in name:
        return []
    rest = name[len(start) :]
    pairs = []
    for position, character in enumerate(rest):
        if character != "-":
            continue
        bucket_id, collection_id = rest[:position], rest[position + 1 :]
        if naming.is_kinto_id(bucket_id) and naming.is_kinto_id(collection_id):
            pairs.append((bucket_id, collection_id))
    return pairs


@dataclass
class LegacyIndices:
    """0.3's indices found: ``matched`` ``{name: (bucket id, collection id)}``,
    ``ambiguous`` ``{name: [its readings that storage holds]}``, ``unmatched`` names."""

    matched: dict = field(default_factory=dict)
    ambiguous: dict = field(default_factory=dict)
    unmatched: list = field(default_factory=list)

    def in_scope(self, bucket_id=None, collection_id=None):
        """Those of a bucket's collections, or of one collection (unmatched names belong
        to none: only the whole server's scope has them)."""
        if bucket_id is None:
            return self

        def inside(pair):
            return pair[0] == bucket_id and collection_id in (None, pair[1])

        return LegacyIndices(
            matched={name: pair for name, pair in self.matched.items() if inside(pair)},
            ambiguous={
                name: pairs
                for name, pairs in self.ambiguous.items()
                if any(inside(pair) for pair in pairs)
            },
        )

    @property
    def kept(self):
        """How many are never deleted but by the operator."""
        return len(self.ambiguous) + len(self.unmatched)


def find(indices, prefix, exists):
    """0.3's indices on the cluster, told apart by ``exists(bucket id, collection id)``."""
    found = LegacyIndices()
    for name in sorted(indices.listed(f"{prefix}-*")):
        pairs = readings(prefix, name)
        if not pairs:
            continue
        held = [pair for pair in pairs if exists(*pair)]
        if len(held) == 1:
            found.matched[name] = held[0]
        elif held:
            found.ambiguous[name] = held
        else:
            found.unmatched.append(name)
    return found
