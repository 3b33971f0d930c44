"""What a search may ask, as small rules over what the walk of its body reports.

``search/walk`` describes a body; every rule here reads those findings and refuses (a
:class:`~kinto_elasticsearch.search.walk.QueryRefused` naming the offending key, its path and,
for a cost, the setting that bounds it) or neutralises. The rules:

- forbidden: what reads another index or document, or cannot be checked, whoever asks;
- scripts: refused unless the operator allows them, and always while fields are hidden
  (a script reads any field of the documents it sees);
- private fields (``index:private_fields``, for callers who may not write the collection):
  a field a query, sort, aggregation, highlight, collapse or field list names, as a name, a
  pattern, a sub-field, an object holding it, or a field it is copied to or aliased as, is
  refused; queries that search fields nobody named are refused; ``_source`` of every hit
  context (top level, inner hits, top hits, collapse) is rewritten to exclude them;
- partial readers (who may read only some records of what the search reaches): what depends on
  index-wide statistics or on records beyond the permission filter is refused (see
  ``FULL_READ`` in the walk);
- costs: sizes, result window, depth, aggregations, clauses and terms, buckets, pattern
  length and repetition, expansions and determinized states.
"""

import copy
import fnmatch
import re
from dataclasses import dataclass

from kinto_elasticsearch.search.filters import permission_filter, with_filters
from kinto_elasticsearch.search.walk import QueryRefused, refuse, walk
from kinto_elasticsearch.search.walk.findings import PATTERN, Finding, join_path

PRIVATE_KEY = "index:private_fields"

_DURATION = re.compile(r"(\d+)(nanos|micros|ms|s|m|h|d)")
_NANOSECONDS = {
    "nanos": 1,
    "micros": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
    "d": 86400 * 10**9,
}

# Lucene's own default: a larger automaton for one regular expression costs CPU and memory
# before any timeout applies.
MAX_DETERMINIZED_STATES = 10000


def duration_nanos(value):
    """Nanoseconds in an engine duration such as ``"500ms"``, or None if it is not one."""
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    return int(match[1]) * _NANOSECONDS[match[2]] if match else None


@dataclass(frozen=True)
class QueryLimits:
    """Bounds on what one search may ask of the engine (each one a setting)."""

    max_size: int = 10000
    max_window: int = 10000
    max_depth: int = 20
    max_aggregations: int = 50
    max_agg_size: int = 1000
    timeout: str = "10s"
    allow_scripts: bool = False
    max_clauses: int = 1024
    max_buckets: int = 10000
    max_pattern_length: int = 256
    max_pattern_repetition: int = 100
    max_expansions: int = 50
    max_body_depth: int = 100

    def __post_init__(self):
        if duration_nanos(self.timeout) is None:
            raise ValueError(f"timeout must be a duration such as '10s', not {self.timeout!r}")


# The setting behind each limit, named in refusals so that an operator knows what to raise.
SETTINGS = {
    "max_result_window": "elasticsearch.max_result_window",
    "max_aggregation_size": "elasticsearch.max_aggregation_size",
    "max_query_depth": "elasticsearch.max_query_depth",
    "max_aggregations": "elasticsearch.max_aggregations",
    "max_clauses": "elasticsearch.max_clauses",
    "max_buckets": "elasticsearch.max_buckets",
    "max_pattern_length": "elasticsearch.max_pattern_length",
    "max_pattern_repetition": "elasticsearch.max_pattern_repetition",
    "max_expansions": "elasticsearch.max_expansions",
    "max_body_depth": "elasticsearch.max_body_depth",
}


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _over(what, limit_name, location):
    setting = SETTINGS[limit_name]
    return refuse(f"{what} (limit: {setting})", location, limit=setting)


# Private fields


def private_fields(metadata):
    """The collection's private fields, with the fields its mapping copies them to."""
    fields = (metadata or {}).get(PRIVATE_KEY) or []
    private = [f for f in fields if isinstance(f, str) and f] if isinstance(fields, list) else []
    if private:
        private += _copies(metadata.get("index:schema"), private)
    return sorted(set(private))


def _copies(mapping, private):
    """Fields of an explicit mapping that hold private values: ``copy_to`` targets of
    private fields, and ``alias`` fields pointing into them."""
    found = []
    pending = [("", mapping)]
    while pending:
        prefix, node = pending.pop()
        properties = node.get("properties") if isinstance(node, dict) else None
        for name, spec in (properties or {}).items():
            if not isinstance(spec, dict):
                continue
            path = f"{prefix}{name}"
            inside = any(_within(path, f) for f in private)
            targets = spec.get("copy_to")
            if inside and targets:
                found += [targets] if isinstance(targets, str) else list(targets)
            if spec.get("type") == "alias" and any(
                _within(str(spec.get("path", "")), f) for f in private
            ):
                found.append(path)
            pending.append((f"{path}.", spec))
    return [f for f in found if isinstance(f, str)]


def _within(reference, private):
    return reference == private or reference.startswith(private + ".")


def reaches(reference, private, role="query"):
    """Whether a field reference (possibly a pattern) can reach a private field.

    A reference reaches a private field it names, a sub-field of it (``secret.keyword``), an
    object holding it (``exists`` on ``secret`` when ``secret.pin`` is private), or a pattern
    that could match any of those. A nested ``path`` only reaches a private field it is part
    of: the queries under it name their fields in full, and are checked too.
    """
    if _within(reference, private):
        return True
    if role != "path" and private.startswith(reference + "."):
        return True
    if not any(c in reference for c in "*?"):
        return False
    literal = reference.split("*")[0].split("?")[0]
    return (
        fnmatch.fnmatchcase(private, reference)
        or any(fnmatch.fnmatchcase(private + tail, reference) for tail in (".x", ".keyword"))
        or private.startswith(literal)
        or literal.startswith(private + ".")
    )


def hide_private_source(node, private, nested=False):
    """Rewrite the ``_source`` of one hit context so that no private field comes back."""
    source = node.get("_source", True)
    if source is False:
        return
    excluded = list(private)
    if nested:
        # Inner hits of nested objects filter their source relative to the object too.
        excluded += [f.split(".", i)[-1] for f in private for i in range(1, f.count(".") + 1)]
    if isinstance(source, dict):
        includes = source.get("includes", source.get("include"))
        excludes = source.get("excludes", source.get("exclude")) or []
    elif isinstance(source, (str, list)):
        includes, excludes = source, []
    else:
        includes, excludes = None, []
    excludes = [excludes] if isinstance(excludes, str) else list(excludes)
    hidden = {"excludes": excludes + [f for f in excluded if f not in excludes]}
    if includes is not None:
        includes = [includes] if isinstance(includes, str) else list(includes)
        # The engine refuses a field both included and excluded; patterns stay, the
        # excludes apply after them.
        kept = [i for i in includes if not any(_within(i, f) for f in excluded)]
        if includes and not kept:
            node["_source"] = False
            return
        hidden["includes"] = kept
    node["_source"] = hidden


# Patterns


_REPETITION = re.compile(r"\{(\d*)(?:,(\d*))?\}")


def regexp_problem(pattern, limits):
    """Why a Lucene regular expression costs too much, or None."""
    if not isinstance(pattern, str):
        return None
    if len(pattern) > limits.max_pattern_length:
        return (
            f"The regular expression is longer than {limits.max_pattern_length} characters",
            "max_pattern_length",
        )
    for match in _REPETITION.finditer(pattern):
        bound = max(int(n) for n in match.groups() if n) if any(match.groups()) else 0
        if bound > limits.max_pattern_repetition:
            return (
                f"The regular expression repeats {bound} times, more than "
                f"{limits.max_pattern_repetition}",
                "max_pattern_repetition",
            )
    if _nested_repetition(pattern):
        return (
            "The regular expression repeats a group that repeats itself, which the engine "
            "cannot match in bounded time",
            "max_pattern_repetition",
        )
    return None


def _nested_repetition(pattern):
    """Whether a quantified group holds a quantifier: ``(a+)+``, ``(a*b)*``, ``(x{2})+``."""
    groups = [False]  # per open group: does it hold a quantifier?
    i, closed = 0, None
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            closed = None
            continue
        if char == "[":
            end = pattern.find("]", i + 2)
            i = len(pattern) if end < 0 else end + 1
            closed = None
            continue
        if char in "*+{":
            if closed:
                return True
            groups[-1] = True
            if char == "{":
                end = pattern.find("}", i)
                i = len(pattern) if end < 0 else end
        elif char == "(":
            groups.append(False)
        elif char == ")" and len(groups) > 1:
            inner = groups.pop()
            groups[-1] = groups[-1] or inner
            closed = inner
            i += 1
            continue
        closed = None if char != "?" else closed
        i += 1
    return False


_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"(?:~\d*)?')
_SLASHED = re.compile(r"(?<![\w\\])/((?:[^/\\]|\\.)*)/")
_FUZZY = re.compile(r"[^\s~]~")


def query_text_problems(text, syntax):
    """``(regexps, wildcards, fuzzy)`` in the text of a query string query."""
    if not isinstance(text, str):
        return [], [], False
    rest = _QUOTED.sub(" ", text)
    regexps = []
    if syntax == "query_string":
        regexps = _SLASHED.findall(rest)
        rest = _SLASHED.sub(" ", rest)
    wildcards = [term for term in rest.split() if "*" in term or "?" in term]
    return regexps, wildcards, bool(_FUZZY.search(rest))


# Metadata fields whose values, in a pooled index, are the pool's (its name, namespaced ids,
# routing keys) rather than the collection's: searching or aggregating them would show them.
POOL_METADATA_FIELDS = ("_id", "_index", "_routing")
# Document ids one list of record ids may become (the engines' ``index.max_terms_count``).
MAX_DOCUMENT_IDS = 65536


class Rules:
    """The rules of one search, called with each finding of the walk."""

    def __init__(self, limits, restricted, hidden, where=None):
        self.limits = limits
        # True when the caller may read only some of the records the search reaches.
        self.restricted = restricted
        self.hidden = list(hidden)
        # The collection's placement: in a pool, documents' ``_id`` are namespaced.
        self.pooled = where if where is not None and where.pooled else None
        self.aggregations = 0
        self.clauses = 0

    def __call__(self, finding):
        getattr(self, "_" + finding.kind.replace("-", "_"))(finding)

    def _forbidden(self, finding):
        raise refuse(finding.reason, finding.path)

    def _script(self, finding):
        if not self.limits.allow_scripts:
            raise refuse(f"'{finding.name}' is not allowed: scripts are disabled", finding.path)
        if self.hidden:
            raise refuse(
                f"'{finding.name}' is not allowed: a script can read the fields of this "
                "collection that you may not read",
                finding.path,
            )

    def _full_read(self, finding):
        if self.restricted:
            raise refuse(finding.reason, finding.path)

    def _ids(self, finding):
        """Users name their own record ids; a pooled index knows them namespaced."""
        if self.pooled is None:
            return
        value = finding.node.get(finding.name)
        if isinstance(value, list):
            strings = [v for v in value if isinstance(v, str)]
            others = [v for v in value if not isinstance(v, str)]
            translated = self.pooled.document_ids(strings)
            if len(translated) > MAX_DOCUMENT_IDS:
                raise refuse(
                    f"{len(strings)} ids are {len(translated)} document ids in these "
                    f"collections, more than {MAX_DOCUMENT_IDS}: name fewer",
                    finding.path,
                )
            finding.node[finding.name] = translated + others
        elif isinstance(value, str):
            document_id = self.pooled.document_id(value)
            if document_id is None:
                raise refuse(
                    "one id here is an id in each collection searched: name record ids "
                    "with 'ids' or 'terms', which take a list",
                    finding.path,
                )
            finding.node[finding.name] = document_id

    def _field(self, finding):
        if self.pooled is not None and finding.name in POOL_METADATA_FIELDS:
            raise refuse(
                f"field {finding.name!r} is not searchable in this collection: it shares an "
                "index with others, whose names and ids are the engine's (use 'id' for the "
                "record id)",
                finding.path,
            )
        for private in self.hidden:
            if isinstance(finding.name, str) and reaches(finding.name, private, finding.role):
                raise refuse(
                    f"field {finding.name!r} is not readable: it is private to the writers of "
                    "this collection",
                    finding.path,
                )

    def _any_field(self, finding):
        if self.hidden:
            raise refuse(
                f"{finding.reason}, and this collection has fields you may not read: "
                "name the fields to search",
                finding.path,
            )

    def _hits(self, finding):
        if self.hidden:
            hide_private_source(finding.node, self.hidden, finding.nested)

    def _size(self, finding):
        cap = {
            "max_aggregation_size": self.limits.max_agg_size,
            "max_result_window": self.limits.max_window,
        }[finding.limit]
        if not (_is_count(finding.value) and finding.value <= cap):
            raise _over(
                f"'{finding.name}' must be a whole number from 0 to {cap}, not {finding.value!r}",
                finding.limit,
                finding.path,
            )

    def _depth(self, finding):
        if finding.value > self.limits.max_depth:
            what = "queries" if finding.limit == "query" else "aggregations"
            raise _over(
                f"'{finding.name}' nests {what} deeper than {self.limits.max_depth} levels",
                "max_query_depth",
                finding.path,
            )

    def _aggregation(self, finding):
        self.aggregations += 1
        if self.aggregations > self.limits.max_aggregations:
            raise _over(
                f"The body holds more than {self.limits.max_aggregations} aggregations",
                "max_aggregations",
                finding.path,
            )

    def _clauses(self, finding):
        self.clauses += finding.value
        if self.clauses > self.limits.max_clauses:
            raise _over(
                f"The body holds more than {self.limits.max_clauses} clauses and terms",
                "max_clauses",
                finding.path,
            )

    def _buckets(self, finding):
        if finding.value > self.limits.max_buckets:
            raise _over(
                f"The aggregation makes {finding.value} buckets, more than "
                f"{self.limits.max_buckets}",
                "max_buckets",
                finding.path,
            )

    def _pattern(self, finding):
        if finding.name in ("query_string", "simple_query_string"):
            regexps, wildcards, fuzzy = query_text_problems(finding.value, finding.name)
            if fuzzy and self.restricted:
                raise refuse(
                    "fuzzy terms (word~) are not allowed: their expansions are chosen among "
                    "the terms of every record",
                    finding.path,
                )
            for regexp in regexps:
                self._pattern(Finding(PATTERN, finding.path, "regexp", regexp))
            for wildcard in wildcards:
                self._pattern(Finding(PATTERN, finding.path, "wildcard", wildcard))
            return
        if finding.name == "regexp":
            problem = regexp_problem(finding.value, self.limits)
            if problem:
                raise _over(problem[0], problem[1], finding.path)
        elif (
            isinstance(finding.value, str) and len(finding.value) > self.limits.max_pattern_length
        ):
            raise _over(
                f"The wildcard pattern is longer than {self.limits.max_pattern_length} characters",
                "max_pattern_length",
                finding.path,
            )

    def _expansions(self, finding):
        cap = self.limits.max_expansions
        if not (_is_count(finding.value) and 0 < finding.value <= cap):
            raise _over(
                f"'{finding.name}' must be a whole number from 1 to {cap}", "max_expansions",
                finding.path,
            )  # fmt: skip

    def _states(self, finding):
        if not (_is_count(finding.value) and finding.value <= MAX_DETERMINIZED_STATES):
            raise refuse(
                f"'max_determinized_states' must be a whole number of at most "
                f"{MAX_DETERMINIZED_STATES}",
                finding.path,
            )


def _result_window(body, limits):
    """The size to send: the user's, capped silently as Kinto caps ``_limit``."""
    start = body.get("from", 0)
    if "size" in body:
        size = min(body["size"], limits.max_size)
    else:
        size = max(0, min(limits.max_size, limits.max_window - start))
    if start + size > limits.max_window:
        raise _over(
            f"'from' + 'size' ({start + size}) is over the result window of {limits.max_window}",
            "max_result_window",
            "from" if "from" in body else "size",
        )
    return size


def _timeout(body, limits):
    """The user's timeout when it is shorter than the server's, else the server's."""
    if "timeout" not in body:
        return limits.timeout
    given = duration_nanos(body["timeout"])
    if given is None:
        raise refuse("'timeout' must be a duration such as '5s' or '500ms'", "timeout")
    return body["timeout"] if given <= duration_nanos(limits.timeout) else limits.timeout


def _check_nesting(body, limits):
    """Refuse bodies nested deeper than ``max_body_depth``, without recursion, first, so
    that walking and copying the body can never exhaust Python's recursion limit."""
    pending = [(body, "", 1)]
    while pending:
        value, path, depth = pending.pop()
        if isinstance(value, dict):
            children = [(join_path(path, key), item) for key, item in value.items()]
        elif isinstance(value, list):
            children = [(f"{path}[{i}]", item) for i, item in enumerate(value)]
        else:
            continue
        if depth > limits.max_body_depth:
            raise _over(
                f"The body nests deeper than {limits.max_body_depth} levels",
                "max_body_depth",
                path,
            )
        pending.extend((item, item_path, depth + 1) for item_path, item in children)


def guard_search(body, limits: QueryLimits, restricted: bool, hidden=(), where=None) -> dict:
    """Check and cap a user's search body, leaving the plugin's filters to the caller.

    ``restricted``: the search reaches records the caller may not read; ``hidden``: fields
    they may not read. Raises ``QueryRefused`` naming the first offending key and its path.
    The input is never modified.
    """
    if not isinstance(body, dict):
        raise refuse("The search body must be a JSON object", "")
    _check_nesting(body, limits)
    body = copy.deepcopy(body)
    walk(body, Rules(limits, restricted, hidden, where))
    body["size"] = _result_window(body, limits)
    body["timeout"] = _timeout(body, limits)
    return body


def check_built_search(body, limits: QueryLimits, restricted: bool, hidden=(), where=None) -> dict:
    """The same rules for a body the plugin built from a user's input (a querystring):
    its sizes are the plugin's own, the rest (``q``, filters, sorts) is the user's."""
    _check_nesting(body, limits)
    body = copy.deepcopy(body)
    walk(body, Rules(limits, restricted, hidden, where))
    body["timeout"] = limits.timeout
    return body


def prepare_search(body, limits: QueryLimits, readable_ids, hidden=()) -> dict:
    """A user's body, checked, capped, and restricted to ``readable_ids`` (None: all)."""
    body = guard_search(body, limits, restricted=readable_ids is not None, hidden=hidden)
    return with_filters(body, [permission_filter(readable_ids)])


__all__ = ["QueryLimits", "QueryRefused", "guard_search", "prepare_search", "private_fields"]
