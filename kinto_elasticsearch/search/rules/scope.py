"""Field names of a pooled collection's search, kept to the fields its own records hold.

A pool's mapping is every tenant's. A field the collection never wrote may still be mapped
there, by another tenant and with that tenant's type: a ``range`` on it, a sort, a ``terms``
aggregation or a ``nested`` path would then answer (or fail) as that type does, not as an
unmapped field does in an index of its own; and a pattern (``fields: ["*"]``,
``multi_match`` over ``ti*``) would expand over other tenants' fields. So, once the body is
checked, every field it names that the collection's records do not hold is renamed under
:data:`UNMAPPED`, a name no mapping holds, where the engine treats it exactly as a field
nobody mapped; and a pattern in a list of fields becomes the collection's own fields it
matches.

Names starting with ``_`` are the engine's or the plugin's (no record key does, at the top
level: ``index/fieldnames.py``) and are left alone; ``id`` and ``last_modified`` every
record holds.
"""

from fnmatch import fnmatchcase

# A name no mapping holds (see the module docstring).
UNMAPPED = "_unmapped."
# Types that hold fields rather than values: no query searches them by name.
CONTAINERS = frozenset({"object", "nested", "flattened", "flat_object"})


class FieldScope:
    def __init__(self, own):
        # ``{field: type}`` of the fields the collection's records hold.
        self.own = frozenset(own)
        self.leaves = sorted(
            name
            for name, kind in own.items()
            if not name.startswith("_") and kind not in CONTAINERS
        )
        self.renames = []
        self.defaults = []

    def holds(self, name):
        """Whether the collection's records hold ``name`` (a field, or an object of them)."""
        return name in self.own or any(field.startswith(f"{name}.") for field in self.own)

    def note(self, finding):
        """Remember how the field ``finding`` names is to be renamed, if it is."""
        name = finding.name
        if not isinstance(name, str) or finding.node is None or name.startswith("_"):
            return
        if self.holds(name):
            return
        if "*" in name:
            matches = sorted(field for field in self.own if fnmatchcase(field, name))
            if matches and not (isinstance(finding.node, list) and not finding.keyed):
                # A pattern that is a key or a lone value: it keeps matching own fields,
                # and whatever else it matches holds nothing of this collection.
                return
            if matches:
                self.renames.append((finding, matches))
                return
        self.renames.append((finding, [UNMAPPED + name]))

    def default_fields(self, finding):
        """A query that searches every field unless told which (``query_string`` without
        ``fields`` or ``default_field``, ``multi_match``...) searches the collection's own
        fields, leniently as every field is searched: not the pool's, which would also make
        its number of clauses another tenant's doing."""
        body = finding.node
        if not isinstance(body, dict) or body.get("fields") or "default_field" in body:
            return
        if finding.name == "more_like_this":
            return  # Refused in a pool (it reads the whole index).
        self.defaults.append(body)

    def apply(self):
        """Rename what :meth:`note` found; lists from their end, so indices hold."""
        fields = self.leaves or ["id"]
        for body in self.defaults:
            body["fields"] = list(fields)
            body.setdefault("lenient", True)
        in_lists = []
        for finding, names in self.renames:
            if finding.keyed:
                _rename_key(finding.node, finding.key, names[0])
            elif isinstance(finding.node, list):
                in_lists.append((finding, names))
            else:
                finding.node[finding.key] = _with_boost(finding.node[finding.key], names[0])
        for finding, names in sorted(in_lists, key=lambda item: item[0].key, reverse=True):
            held = finding.node[finding.key]
            finding.node[finding.key : finding.key + 1] = [_with_boost(held, n) for n in names]


def _with_boost(spec, name):
    """``name`` with the ``^boost`` that ``spec`` (``title^2``) carried."""
    _, caret, boost = spec.partition("^") if isinstance(spec, str) else ("", "", "")
    return f"{name}{caret}{boost}"


def _rename_key(node, old, new):
    items = list(node.items())
    node.clear()
    node.update((new if key == old else key, value) for key, value in items)
