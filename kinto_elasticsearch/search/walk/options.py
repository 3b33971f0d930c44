"""The walk of options: scripts, field names and costs, wherever a construct keeps them."""

from kinto_elasticsearch.search.walk.constructs import (
    EXPANDING_INTERVAL_RULES,
    FIELD_OPTIONS,
    FIELD_QUERY_OPTIONS,
    RETURNED_FIELD_OPTIONS,
    SCRIPT_KEYS,
)
from kinto_elasticsearch.search.walk.findings import (
    COUNTERS,
    EXPANSIONS,
    FIELD,
    FORBIDDEN,
    FULL_READ,
    ID_FIELD,
    IDS,
    PATTERN,
    SCRIPT,
    SIZE,
    STATES,
    join_path,
    refuse,
)


def constant_rewrite(options):
    """Whether expansions are rewritten as a constant-score filter of every matching term:
    then no term is chosen by index-wide frequencies, whatever ``max_expansions`` says."""
    rewrite = options.get("fuzzy_rewrite", options.get("rewrite"))
    return isinstance(rewrite, str) and rewrite.startswith("constant_score")


class Options:
    """DSL options and what they hold; the keys of field-keyed objects, as fields."""

    def __init__(self, walk):
        self.walk = walk
        # Inside options whose expansions are rewritten as constant-score filters.
        self.constant = False

    def option(self, key, value, path, parent=None):
        """Report a DSL option ``key`` and, unless it is a script, what it holds
        (``parent``: the object holding it, where a field name it holds can be renamed)."""
        if key in SCRIPT_KEYS:
            self.walk.emit(SCRIPT, path, name=key)
            # A script is code and parameters: nothing in it is DSL.
            return
        if key == "indexed_shape":
            reason = f"'{key}' is not allowed: it reads a shape from another document"
            self.walk.emit(FORBIDDEN, path, reason=reason)
        elif key in FIELD_OPTIONS or key.endswith(("_field", "_fields")):
            role = "path" if key in ("path", "nested_path") else "query"
            if key in RETURNED_FIELD_OPTIONS:
                role = "returned"
            self.field_names(value, path, role, parent, key)
            return
        elif key == "seq_no_primary_term" and value is True:
            reason = f"'{key}' is not allowed: it counts the writes of every record of the shard"
            self.walk.emit(COUNTERS, path, reason=reason)
        elif key == "max_determinized_states":
            self.walk.emit(STATES, path, value=value)
        elif key in ("max_expansions", "fuzzy_max_expansions"):
            self.walk.emit(EXPANSIONS, path, name=key, value=value)
        elif key == "fuzziness" and value not in (0, "0") and not self.constant:
            reason = "fuzzy expansions are chosen among the terms of every record"
            self.walk.emit(FULL_READ, path, reason=f"'{key}' is not allowed: {reason}")
        elif key in ("rewrite", "fuzzy_rewrite") and str(value).startswith("top_terms"):
            reason = "it keeps the terms that score best over every record"
            self.walk.emit(FULL_READ, path, reason=f"'{key}: {value}' is not allowed: {reason}")
        elif key == "cutoff_frequency":
            reason = "it splits terms by their frequencies in every record"
            self.walk.emit(FULL_READ, path, reason=f"'{key}' is not allowed: {reason}")
        elif key in EXPANDING_INTERVAL_RULES and isinstance(value, dict):
            reason = "interval expansions are chosen among the terms of every record"
            self.walk.emit(FULL_READ, path, reason=f"'{key}' intervals are not allowed: {reason}")
            if key in ("wildcard", "regexp") and "pattern" in value:
                pattern_path = join_path(path, "pattern")
                self.walk.emit(PATTERN, pattern_path, name=key, value=value["pattern"])
        self.scan(value, path)

    def scan(self, value, path):
        """Report every DSL key nested in an option value."""
        if isinstance(value, dict):
            outer, self.constant = self.constant, constant_rewrite(value)
            for key, item in value.items():
                self.option(key, item, join_path(path, key), value)
            self.constant = outer
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self.scan(item, f"{path}[{i}]")

    def field_names(self, value, path, role, parent=None, place=None):
        """Report the field names of a field option (a name, a list, or ``{"field": ...}``),
        held at ``parent[place]``."""
        if isinstance(value, str):
            # "title^2" in multi_match fields.
            name = value.split("^", 1)[0]
            self.walk.emit(FIELD, path, name=name, role=role, node=parent, key=place)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self.field_names(item, f"{path}[{i}]", role, value, i)
        elif isinstance(value, dict):
            for key, item in value.items():
                key_path = join_path(path, key)
                if key == "field":
                    self.field_names(item, key_path, role, value, key)
                else:
                    self.option(key, item, key_path)

    def fields_then_options(self, body, path, options=FIELD_QUERY_OPTIONS, ids=False):
        """An object keyed by field names (or by the plain ``options``). ``ids``: a
        ``term`` query, whose value on ``_id`` is a document id."""
        if not isinstance(body, dict):
            raise refuse("This must be an object", path)
        for key, value in body.items():
            key_path = join_path(path, key)
            if ids and key == ID_FIELD and isinstance(value, str):
                self.walk.emit(IDS, key_path, name=key, node=body)
            elif ids and key == ID_FIELD and isinstance(value, dict) and "value" in value:
                self.walk.emit(IDS, join_path(key_path, "value"), name="value", node=value)
            elif key not in options:
                self.walk.emit(FIELD, key_path, name=key, node=body, key=key, keyed=True)
            self.scan(value, key_path)

    def size(self, key, value, path, limit):
        self.walk.emit(SIZE, path, name=key, value=value, limit=limit)
