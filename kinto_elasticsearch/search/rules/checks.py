"""The rules of one search: a check for each kind of finding the walk reports (what each
decides is told in the package's docstring)."""

import functools

from kinto_elasticsearch.search.rules import tiebreak
from kinto_elasticsearch.search.rules.limits import MAX_DETERMINIZED_STATES, over
from kinto_elasticsearch.search.rules.patterns import query_text_problems, regexp_problem
from kinto_elasticsearch.search.rules.private import hide_private_source, reaches
from kinto_elasticsearch.search.rules.scope import FieldScope
from kinto_elasticsearch.search.rules.scoring import statistics_free
from kinto_elasticsearch.search.walk.findings import PATTERN, Finding, is_count, refuse

# Metadata fields whose values, in a pooled index, are the pool's (its name, namespaced ids,
# routing keys) rather than the collection's: searching or aggregating them would show them.
# Sequence numbers and primary terms count the writes of every document of the shard.
POOL_METADATA_FIELDS = ("_id", "_index", "_routing", "_seq_no", "_primary_term")
# Why a search that reaches a shared index is refused what a collection of its own allows.
SHARED = (
    "; this collection is searched under the rules of an index shared with other "
    "collections (pooled): an index of its own allows it"
)
# Document ids one list of record ids may become (the engines' ``index.max_terms_count``).
MAX_DOCUMENT_IDS = 65536


def translate_ids(pooled, finding):
    """The record ids ``finding`` holds, as the pool's document ids, in place."""
    value = finding.node.get(finding.name)
    if isinstance(value, list):
        strings = [v for v in value if isinstance(v, str)]
        others = [v for v in value if not isinstance(v, str)]
        translated = pooled.document_ids(strings)
        if len(translated) > MAX_DOCUMENT_IDS:
            raise refuse(
                f"{len(strings)} ids are {len(translated)} document ids in these "
                f"collections, more than {MAX_DOCUMENT_IDS}: name fewer",
                finding.path,
            )
        finding.node[finding.name] = translated + others
    elif isinstance(value, str):
        document_id = pooled.document_id(value)
        if document_id is None:
            raise refuse(
                "one id here is an id in each collection searched: name record ids "
                "with 'ids' or 'terms', which take a list",
                finding.path,
            )
        finding.node[finding.name] = document_id


class Rules:
    """The rules of one search, called with each finding of the walk."""

    def __init__(self, limits, restricted, hidden, where=None, rescore=True, own=None):
        self.limits = limits
        # True when the caller may read only some of the records the search reaches.
        self.restricted = restricted
        self.hidden = list(hidden)
        # The placement when in a pool (documents' ``_id`` are namespaced there), and
        # whether the search follows a pool's rules (``Placement.shared``).
        self.pooled = where if where is not None and where.pooled else None
        self.shared = where is not None and where.shared
        # Under a pool's rules, a user's body (one the plugin built needs none) is rewritten
        # once the walk is done: rescored without statistics (``scoring.py``), hit contexts
        # tied in Kinto's order (``tiebreak.py``).
        self.rescore = rescore
        self.rewrites = []
        # In a pool, the fields the collection's records hold (``scope.py``); None: any.
        self.scope = FieldScope(own) if own is not None and self.shared else None
        # The first refusal that only a shared index makes (see ``_shared``).
        self.refusal = None
        self.aggregations = 0
        self.clauses = 0

    def finish(self):
        """What the rules decide once the whole body is checked."""
        if self.refusal is not None:
            raise self.refusal
        if self.scope is not None:
            self.scope.apply()
        for rewrite in self.rewrites:
            rewrite()

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
        # Scripts read index statistics (``_termStats``) and the shard's documents.
        self._shared(finding, f"'{finding.name}' is not allowed: a script reads the whole index")

    def _full_read(self, finding):
        if self.restricted:
            raise refuse(finding.reason, finding.path)
        self._shared(finding)

    def _shared(self, finding, reason=None):
        """Refuse, in a pool, what an index of its own allows (the finding's ``reason``,
        unless told): once the walk is done, so that what the body would be refused
        anywhere (a cost, a private field) is said first."""
        if self.shared and self.refusal is None:
            self.refusal = refuse((reason or finding.reason) + SHARED, finding.path)

    _counters = _shared

    def _scored(self, finding):
        if self.shared and self.rescore:
            self.rewrites.append(functools.partial(statistics_free, finding.node, finding.name))

    def _ids(self, finding):
        """Users name their own record ids; a pooled index knows them namespaced."""
        if self.pooled is not None:
            translate_ids(self.pooled, finding)

    def _field(self, finding):
        if self.shared and finding.name in POOL_METADATA_FIELDS:
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
        if self.scope is not None:
            self.scope.note(finding)

    def _any_field(self, finding):
        if self.scope is not None:
            self.scope.default_fields(finding)
        if self.hidden:
            raise refuse(
                f"{finding.reason}, and this collection has fields you may not read: "
                "name the fields to search",
                finding.path,
            )

    def _hits(self, finding):
        if self.hidden:
            hide_private_source(finding.node, self.hidden, finding.nested)
        if self.shared and self.rescore and not finding.nested:
            self.rewrites.append(
                functools.partial(tiebreak.apply, finding.node, finding.path == "")
            )

    def _size(self, finding):
        cap = {
            "max_aggregation_size": self.limits.max_agg_size,
            "max_result_window": self.limits.max_window,
        }[finding.limit]
        if not (is_count(finding.value) and finding.value <= cap):
            raise over(
                f"'{finding.name}' must be a whole number from 0 to {cap}, not {finding.value!r}",
                finding.limit,
                finding.path,
            )

    def _depth(self, finding):
        if finding.value > self.limits.max_depth:
            what = "queries" if finding.limit == "query" else "aggregations"
            raise over(
                f"'{finding.name}' nests {what} deeper than {self.limits.max_depth} levels",
                "max_query_depth",
                finding.path,
            )

    def _aggregation(self, finding):
        self.aggregations += 1
        if self.aggregations > self.limits.max_aggregations:
            raise over(
                f"The body holds more than {self.limits.max_aggregations} aggregations",
                "max_aggregations",
                finding.path,
            )

    def _clauses(self, finding):
        self.clauses += finding.value
        if self.clauses > self.limits.max_clauses:
            raise over(
                f"The body holds more than {self.limits.max_clauses} clauses and terms",
                "max_clauses",
                finding.path,
            )

    def _buckets(self, finding):
        if finding.value > self.limits.max_buckets:
            raise over(
                f"The aggregation makes {finding.value} buckets, more than "
                f"{self.limits.max_buckets}",
                "max_buckets",
                finding.path,
            )

    def _pattern(self, finding):
        if finding.name in ("query_string", "simple_query_string"):
            regexps, wildcards, fuzzy = query_text_problems(finding.value, finding.name)
            if fuzzy and (self.restricted or self.shared):
                reason = (
                    "fuzzy terms (word~) are not allowed: their expansions are chosen among "
                    "the terms of every record"
                )
                if self.restricted:
                    raise refuse(reason, finding.path)
                self._shared(finding, reason)
            for regexp in regexps:
                self._pattern(Finding(PATTERN, finding.path, "regexp", regexp))
            for wildcard in wildcards:
                self._pattern(Finding(PATTERN, finding.path, "wildcard", wildcard))
            return
        if finding.name == "regexp":
            problem = regexp_problem(finding.value, self.limits)
            if problem:
                raise over(problem[0], problem[1], finding.path)
        elif (
            isinstance(finding.value, str) and len(finding.value) > self.limits.max_pattern_length
        ):
            raise over(
                f"The wildcard pattern is longer than {self.limits.max_pattern_length} characters",
                "max_pattern_length",
                finding.path,
            )

    def _expansions(self, finding):
        cap = self.limits.max_expansions
        if not (is_count(finding.value) and 0 < finding.value <= cap):
            raise over(
                f"'{finding.name}' must be a whole number from 1 to {cap}", "max_expansions",
                finding.path,
            )  # fmt: skip

    def _states(self, finding):
        if not (is_count(finding.value) and finding.value <= MAX_DETERMINIZED_STATES):
            raise refuse(
                f"'max_determinized_states' must be a whole number of at most "
                f"{MAX_DETERMINIZED_STATES}",
                finding.path,
            )
