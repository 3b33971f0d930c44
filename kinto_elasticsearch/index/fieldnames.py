"""Record keys as field names the engine always takes, and the plugin's reserved fields.

Kinto records are schemaless JSON: any string is a key. The engines refuse some as field
names, or read them as something else:

- an empty key, ``"."``, keys starting or ending with a dot or holding ``..``: refused;
- any other key with a dot (``"./package.json"``) is read as a path into objects, so it
  collides with real objects of the same name (``{"a": 1, "a.b": 2}`` is refused);
- keys made only of white space: refused;
- at the top level, the engine's metadata fields (``_id``, ``_source``, ``_index``...):
  refused, and the list grows with engine versions.

Such keys are escaped, reversibly and injectively: ``%`` becomes ``%25``, ``.`` becomes
``%2E``, white space in a key made only of it is percent-encoded, a leading ``_`` at the
top level becomes ``%5F`` and the empty key becomes ``%``. Any other key is unchanged, so
the usual record reads as it is. No escaped key holds a dot or starts with ``_`` at the
top level, and only the empty key maps to a bare ``%``: two keys never share a name.

Because no record key is left starting with ``_`` at the top level, the plugin's own
fields there (:data:`UNINDEXED_FIELD`) can never collide with a record's.
"""

from urllib.parse import unquote

# The paths of a document that are not searchable in it (left out, or kept in ``_source``
# only); a keyword field, so "records whose price is not searchable" is a ``term`` query.
UNINDEXED_FIELD = "_unindexed"
RESERVED_FIELDS = (UNINDEXED_FIELD,)
EMPTY_KEY = "%"

_ESCAPES = {"%": "%25", ".": "%2E"}


def _percent(char):
    return "".join(f"%{byte:02X}" for byte in char.encode())


def escape_key(key, top_level=False):
    """The field name standing for a record key."""
    if key == "":
        return EMPTY_KEY
    if key.isspace():
        return "".join(_percent(c) for c in key)
    name = "".join(_ESCAPES.get(c, c) for c in key) if ("%" in key or "." in key) else key
    if top_level and name.startswith("_"):
        name = "%5F" + name[1:]
    return name


def unescape_key(name):
    """The record key a field name stands for (the inverse of :func:`escape_key`)."""
    if name == EMPTY_KEY:
        return ""
    # A key that was not escaped holds no "%": decoding leaves it as it is.
    return unquote(name)


def escape_path(path):
    """A dotted path of record keys (``author.name``), as field names."""
    parts = path.split(".")
    return ".".join(escape_key(part, top_level=i == 0) for i, part in enumerate(parts))
