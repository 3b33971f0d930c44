"""Index and alias names for a (bucket, collection).

A collection's alias is ``{prefix}.{bucket}.{collection}`` and its physical indices are
``{alias}.{generation}``. Kinto ids match ``[a-zA-Z0-9][a-zA-Z0-9_-]*``, so ``.`` and ``+``
never occur in them: ``.`` separates the parts and ``+`` escapes upper case letters
(``MyBucket`` becomes ``+my+bucket``), which keeps names readable, lower case and injective.
A part that would be too long is cut and ends with ``++`` and a hash of the whole id;
``++`` never occurs in an escaped id, so a cut part cannot equal an uncut one.

Because a bucket's part holds no ``.``, the pattern ``{prefix}.{bucket}.*`` matches that
bucket's indices and no other bucket's, and ``{prefix}.*`` only this prefix's indices.
"""

import hashlib
import re
import time

# 32 (prefix) + 3 dots + 2 x 100 (parts) + 20 (generation) stays under the 255 bytes limit.
MAX_PART_LENGTH = 100
_HASH_LENGTH = 16
_UPPER = re.compile(r"[A-Z]")
# Kinto's rule for bucket and collection ids (``kinto.views.NameGenerator``): an id outside
# it names nothing, and must never reach a permission pattern or an index name.
KINTO_ID_PATTERN = r"[a-zA-Z0-9][a-zA-Z0-9_-]*"
_KINTO_ID = re.compile(rf"^{KINTO_ID_PATTERN}$")


def is_kinto_id(value):
    return bool(_KINTO_ID.match(value))


def _part(kinto_id):
    escaped = _UPPER.sub(lambda m: "+" + m.group(0).lower(), kinto_id)
    if len(escaped) <= MAX_PART_LENGTH:
        return escaped
    digest = hashlib.sha256(kinto_id.encode()).hexdigest()[:_HASH_LENGTH]
    return escaped[: MAX_PART_LENGTH - _HASH_LENGTH - 2] + "++" + digest


def alias_name(prefix, bucket_id, collection_id):
    """The alias that searches and writes of a collection go through."""
    return f"{prefix}.{_part(bucket_id)}.{_part(collection_id)}"


def new_index_name(prefix, bucket_id, collection_id):
    """A fresh physical index name for a collection (a new generation)."""
    return f"{alias_name(prefix, bucket_id, collection_id)}.{time.time_ns() // 1000}"


def generation(name):
    """The generation of a collection's physical index (its last part), -1 for a name
    without one."""
    last = name.rsplit(".", 1)[-1]
    return int(last) if last.isdigit() else -1


def alias_of(prefix, name):
    """The alias of the collection whose physical index is ``name`` (None for a name that is
    not a collection's generation under ``prefix``)."""
    alias, _, last = name.rpartition(".")
    if not last.isdigit() or not alias.startswith(f"{prefix}.") or is_internal_index(prefix, name):
        return None
    return alias if alias.count(".") == prefix.count(".") + 2 else None


def collection_pattern(prefix, bucket_id, collection_id):
    """A pattern matching every physical index of one collection."""
    return f"{alias_name(prefix, bucket_id, collection_id)}.*"


def bucket_pattern(prefix, bucket_id):
    """A pattern matching every physical index of one bucket's collections."""
    return f"{prefix}.{_part(bucket_id)}.*"


def prefix_pattern(prefix):
    """A pattern matching every index of this plugin's prefix."""
    return f"{prefix}.*"


# The plugin's own indices have a part starting with ``-``, which no Kinto id does: no
# collection or bucket pattern ever matches them.
INTERNAL_MARK = "-"


def pool_index_name(prefix, number):
    """The physical index of pool ``number``."""
    return f"{prefix}.{INTERNAL_MARK}pool-{number}"


def sync_index_name(prefix):
    """The index of checkpoints and rebuild leases (``sync/checkpoints.py``)."""
    return f"{prefix}.{INTERNAL_MARK}sync"


def probe_index_name(prefix, token):
    """A throw-away index that asks the engine whether it takes a collection's settings and
    mapping (``index/probe.py``)."""
    return f"{prefix}.{INTERNAL_MARK}validate-{token}"


def is_internal_index(prefix, name):
    """Whether ``name`` is one of the plugin's own indices, not a collection's."""
    return name.startswith(f"{prefix}.{INTERNAL_MARK}")


def pool_pattern(prefix):
    """A pattern matching every pool index of this prefix."""
    return f"{prefix}.{INTERNAL_MARK}pool-*"


def is_pool(prefix, name):
    return name.startswith(f"{prefix}.-pool-")


# In a pool's write alias, and in no other name (a bucket id does not start with ``-``).
POOL_WRITE_MARK = f".{INTERNAL_MARK}write-pool-"


def pool_write_alias(pool):
    """The alias writes to ``pool`` name (``{prefix}.-write-pool-{n}``), so that they can
    require one: a pool lost with its engine is then missing, and created again with its
    mapping, where a write to its name would create it with the engine's dynamic mapping
    (the collection field a text field, its filter matching nothing). One alias per pool,
    not per collection; it does not match :func:`pool_pattern`."""
    head, _, number = pool.rpartition(f".{INTERNAL_MARK}pool-")
    return f"{head}{POOL_WRITE_MARK}{number}"


def is_pool_write_alias(name):
    return POOL_WRITE_MARK in name
