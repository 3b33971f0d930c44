"""Every call the plugin makes to the search engine."""

import logging
import time
import uuid
from dataclasses import dataclass, field

from kinto_elasticsearch import naming
from kinto_elasticsearch.client import EngineError, EngineNotFound, EngineRequestError
from kinto_elasticsearch.client.engine import SEARCH, WRITE
from kinto_elasticsearch.mapping import flatten_field_types

logger = logging.getLogger(__name__)

# The engines refuse a whole bulk request, not one item, when an ``_id`` is longer.
MAX_ID_BYTES = 512


@dataclass
class BulkReport:
    """What one bulk write did, record by record."""

    indexed: list = field(default_factory=list)
    deleted: list = field(default_factory=list)
    # Writes the index already had a newer version of: success, nothing to do.
    superseded: list = field(default_factory=list)
    # (record id, reason) for each record the engine refused.
    failed: list = field(default_factory=list)


# Every record has an ``id``; a tombstone document has none (and nothing that a mapping,
# even a strict one, could refuse: ``last_modified`` is always mapped). Searches keep to
# documents with an ``id``; see ``search.filters.with_filters``.
LIVE_DOCUMENTS = {"exists": {"field": "id"}}


def tombstone_document(tombstone):
    """What a deleted record leaves in the index: its version, and nothing searchable."""
    return {"last_modified": tombstone["last_modified"]}


def _is_missing_alias(item):
    error = item.get("error")
    return isinstance(error, dict) and error.get("type") == "index_not_found_exception"


class Indexer:
    def __init__(
        self, engine, prefix, force_refresh=False, search_timeout=None, index_settings=None
    ):
        self.engine = engine
        self.prefix = prefix
        # The operator's settings of every index (shards, replicas); a collection adds its
        # own ``index:settings`` (analysis) where its indices are created.
        self.index_settings = dict(index_settings or {})
        self.force_refresh = force_refresh
        self.search_timeout = search_timeout
        # alias -> (fetched at, {field: type}): GET search needs them on every request.
        self._field_types = {}

    def alias(self, bucket_id, collection_id):
        return naming.alias_name(self.prefix, bucket_id, collection_id)

    # Indices.

    def _settings(self, collection_settings, **fixed):
        return {**self.index_settings, **(collection_settings or {}), **fixed}

    def create_index(self, bucket_id, collection_id, mapping, replace=False, settings=None):
        """Create the collection's index and alias, unless it exists already.

        With ``replace``, indices left from an earlier collection of the same id (deleted
        while the engine was unreachable) are dropped first: a new collection has no records.
        """
        if replace:
            self.delete_collection_indices(bucket_id, collection_id)
        alias = self.alias(bucket_id, collection_id)
        # The first generation has a fixed name so that concurrent creators converge on
        # one index instead of attaching the alias to several.
        name = f"{alias}.0"
        body = {"settings": self._settings(settings), "mappings": mapping, "aliases": {alias: {}}}
        try:
            self.engine.call("indices.create", index=name, body=body)
        except EngineRequestError as exc:
            if exc.error_type == "invalid_alias_name_exception":
                # An index auto-created under the alias's name (a delete sent while the
                # alias was missing, by an older version or another client): it holds
                # nothing of value, the alias name is ours.
                logger.warning("Replacing index %s, auto-created under an alias name", alias)
                self.delete_indices([alias])
                self.engine.call("indices.create", index=name, body=body)
            elif exc.error_type != "resource_already_exists_exception":
                raise
        return name

    def create_physical_index(self, bucket_id, collection_id, mapping, settings=None, name=None):
        """A new, empty physical index for a rebuild (``name``, or a new generation's), not
        yet behind the alias.

        It is not refreshed while it is filled; :meth:`swap_alias` restores that.
        """
        name = name or naming.new_index_name(self.prefix, bucket_id, collection_id)
        body = {"mappings": mapping, "settings": self._settings(settings, refresh_interval="-1")}
        self.engine.call("indices.create", index=name, body=body)
        return name

    def swap_alias(self, bucket_id, collection_id, index):
        """Move the collection's alias to ``index`` in one atomic step; drop the indices it
        replaced, and only those: another index of the collection may be another rebuild's.
        """
        alias = self.alias(bucket_id, collection_id)
        self.engine.call(
            "indices.put_settings", index=index, body={"index": {"refresh_interval": None}}
        )
        self.engine.call("indices.refresh", index=index)
        pattern = naming.collection_pattern(self.prefix, bucket_id, collection_id)
        old = [
            name
            for name, aliases in self.indices(pattern).items()
            if name != index and alias in aliases
        ]
        actions = [{"remove": {"index": name, "alias": alias}} for name in old]
        actions.append({"add": {"index": index, "alias": alias}})
        try:
            self.engine.call("indices.update_aliases", body={"actions": actions})
        except EngineRequestError as exc:
            if exc.error_type != "invalid_alias_name_exception":
                raise
            logger.warning("Replacing index %s, auto-created under an alias name", alias)
            self.delete_indices([alias])
            self.engine.call("indices.update_aliases", body={"actions": actions})
        self.delete_indices(old)
        self._field_types.pop(alias, None)
        return old

    def update_mapping(self, bucket_id, collection_id, mapping):
        """Apply a changed mapping to the live index (refused if it conflicts)."""
        self.engine.call(
            "indices.put_mapping", index=self.alias(bucket_id, collection_id), body=mapping
        )

    def validate_mapping(self, mapping, settings=None):
        """Raise EngineRequestError if the engine would refuse this mapping (and settings).

        The probe index lives under the prefix but its part starts with ``-``, which no
        Kinto id does, so it can never be taken for a collection's index.
        """
        name = f"{self.prefix}.-validate-{uuid.uuid4().hex}"
        body = {"mappings": mapping, "settings": settings or {}}
        self.engine.call("indices.create", index=name, body=body)
        self.delete_indices([name])

    def indices(self, pattern, lane=WRITE):
        """``{physical index: [aliases]}`` for the indices matching ``pattern``."""
        found = self.engine.call("indices.get_alias", index=pattern, lane=lane)
        return {name: sorted(info.get("aliases", {})) for name, info in found.items()}

    def delete_indices(self, names):
        # Named one by one in the URL: Elasticsearch refuses wildcard deletes by default.
        for start in range(0, len(names), 50):
            chunk = names[start : start + 50]
            try:
                self.engine.call("indices.delete", index=",".join(chunk))
            except EngineNotFound:
                # Some went away meanwhile: delete the others one at a time.
                for name in chunk:
                    try:
                        self.engine.call("indices.delete", index=name)
                    except EngineNotFound:
                        pass
        return names

    def delete_collection_indices(self, bucket_id, collection_id):
        pattern = naming.collection_pattern(self.prefix, bucket_id, collection_id)
        return self.delete_indices(sorted(self.indices(pattern)))

    def delete_bucket_indices(self, bucket_id):
        pattern = naming.bucket_pattern(self.prefix, bucket_id)
        return self.delete_indices(sorted(self.indices(pattern)))

    def flush(self):
        """Delete every index of this plugin's prefix."""
        return self.delete_indices(sorted(self.indices(naming.prefix_pattern(self.prefix))))

    def alias_exists(self, bucket_id, collection_id):
        return bool(
            self.engine.call("indices.exists_alias", name=self.alias(bucket_id, collection_id))
        )

    def creation_dates(self, pattern):
        """``{index: creation time in seconds since the epoch}``."""
        found = self.engine.call("indices.get_settings", index=pattern, name="index.creation_date")
        return {
            name: int(info["settings"]["index"]["creation_date"]) / 1000
            for name, info in found.items()
        }

    def field_types(self, bucket_id, collection_id, max_age=60.0, refresh=False):
        """``({dotted field: type}, fresh)`` of a collection's index, cached a while.

        Types of a mapped field never change in place (a rebuild makes a new index, and
        the swap forgets the cache), but new fields appear: callers refetch with
        ``refresh`` when they meet a field the cached copy does not know.
        """
        alias = self.alias(bucket_id, collection_id)
        cached = self._field_types.get(alias)
        now = time.monotonic()
        if cached and not refresh and now - cached[0] < max_age:
            return cached[1], False
        types = flatten_field_types(self.get_mapping(bucket_id, collection_id))
        self._field_types[alias] = (now, types)
        return types, True

    def get_mapping(self, bucket_id, collection_id, lane=SEARCH):
        body = self.engine.call(
            "indices.get_mapping", index=self.alias(bucket_id, collection_id), lane=lane
        )
        # Behind the alias there is one index; its name does not matter here.
        return next(iter(body.values()), {}).get("mappings", {})

    # Documents.

    def write(
        self, bucket_id, collection_id, records=(), tombstones=(), ensure_index=None, refresh=None
    ):
        """Index ``records`` and the ``tombstones`` of deleted ones in one bulk request.

        Every write carries the record's ``last_modified`` as an external version, so
        the index never goes back to an older state, whatever the order of writes.
        A delete is indexed as a tombstone document (see :func:`tombstone_document`)
        rather than sent as a bulk delete: the engines forget the version of a deleted
        document after ``index.gc_deletes`` (60 s), after which an older write, late from
        another process or a catch-up, would bring the record back. A tombstone keeps
        its version for as long as the index lives. ``ensure_index`` is called to create
        the index when the alias is missing. ``refresh``: make the write visible to
        searches before answering (default: the ``force_refresh`` setting).
        """
        report = BulkReport()
        operations = []
        for record in records:
            operations.append(("index", record["id"], record["last_modified"], record))
        for tombstone in tombstones:
            source = tombstone_document(tombstone)
            operations.append(("delete", tombstone["id"], tombstone["last_modified"], source))
        accepted = self._within_id_limit(operations, report)
        if not accepted:
            return report
        alias = self.alias(bucket_id, collection_id)
        missing = self._bulk(alias, accepted, report, refresh=refresh)
        if missing and ensure_index is not None:
            ensure_index()
            if self._bulk(alias, missing, report, refresh=refresh):
                raise EngineNotFound(f"index {alias} is missing")
        else:
            report.failed.extend((op[1], f"index {alias} does not exist") for op in missing)
        return report

    @staticmethod
    def _within_id_limit(operations, report):
        accepted = []
        for operation in operations:
            if len(operation[1].encode()) > MAX_ID_BYTES:
                report.failed.append((operation[1], f"id is longer than {MAX_ID_BYTES} bytes"))
            else:
                accepted.append(operation)
        return accepted

    def fill(self, index, records, tombstones=()):
        """Index ``records`` (and tombstones) into a physical index being rebuilt."""
        report = BulkReport()
        operations = [("index", r["id"], r["last_modified"], r) for r in records]
        operations += [
            ("delete", t["id"], t["last_modified"], tombstone_document(t)) for t in tombstones
        ]
        accepted = self._within_id_limit(operations, report)
        self._bulk(index, accepted, report, require_alias=False, refresh=False)
        return report

    def _bulk(self, alias, operations, report, require_alias=True, refresh=None):
        """Send one bulk request; return the operations that found no alias."""
        if not operations:
            return []
        body = []
        for _, record_id, version, source in operations:
            body.append(
                {
                    "index": {
                        "_index": alias,
                        "_id": record_id,
                        "version": version,
                        "version_type": "external",
                    }
                }
            )
            body.append(source)
        params = {"require_alias": True} if require_alias else {}
        if self.force_refresh if refresh is None else refresh:
            params["refresh"] = "true"
        try:
            response = self.engine.call("bulk", body=body, **params)
        except EngineRequestError as exc:
            if exc.status != 413:
                raise
            if len(operations) == 1:
                report.failed.append((operations[0][1], f"too large for the engine: {exc}"))
                return []
            # Too large as a whole: send halves, so that one huge record cannot keep the
            # others of the same write out of the index.
            middle = len(operations) // 2
            return self._bulk(
                alias, operations[:middle], report, require_alias, refresh
            ) + self._bulk(alias, operations[middle:], report, require_alias, refresh)
        missing = []
        for operation, item in zip(operations, response["items"], strict=True):
            action, record_id = operation[0], operation[1]
            result = item["index"]
            status = result.get("status", 500)
            if status < 300:
                (report.indexed if action == "index" else report.deleted).append(record_id)
            elif status == 409:
                report.superseded.append(record_id)
            elif _is_missing_alias(result):
                missing.append(operation)
            else:
                reason = result.get("error", {})
                reason = reason.get("reason", reason) if isinstance(reason, dict) else reason
                caused = (result.get("error") or {}).get("caused_by")
                if isinstance(caused, dict) and caused.get("reason"):
                    reason = f"{reason}: {caused['reason']}"
                report.failed.append((record_id, str(reason)))
        return missing

    def versions(self, bucket_id, collection_id, ids, tombstones=True):
        """``{id: indexed version}`` for those of ``ids`` the index holds.

        With ``tombstones``, deleted records' tombstone documents count as held.
        """
        if not ids:
            return {}
        query = {"ids": {"values": list(ids)}}
        if not tombstones:
            query = {"bool": {"filter": [query, LIVE_DOCUMENTS]}}
        body = {"query": query, "size": len(ids), "_source": False, "version": True}
        hits = self.engine.call("search", index=self.alias(bucket_id, collection_id), body=body)
        return {hit["_id"]: hit["_version"] for hit in hits["hits"]["hits"]}

    def count_live(self, bucket_id, collection_id, up_to):
        """The records (not tombstones) the index holds at a version up to ``up_to``, as
        of a refresh made now."""
        alias = self.alias(bucket_id, collection_id)
        self.engine.call("indices.refresh", index=alias)
        query = {
            "bool": {"filter": [LIVE_DOCUMENTS, {"range": {"last_modified": {"lte": up_to}}}]}
        }
        body = {"query": query, "size": 0, "track_total_hits": True}
        return self.engine.call("search", index=alias, body=body)["hits"]["total"]["value"]

    def iter_documents(self, bucket_id, collection_id, page_size=1000):
        """Pages of ``{id: indexed version}`` over the records of the index, in id order."""
        body = {
            "query": LIVE_DOCUMENTS,
            "size": page_size,
            "sort": [{"id": "asc"}],
            "_source": False,
            "version": True,
        }
        alias = self.alias(bucket_id, collection_id)
        while True:
            hits = self.engine.call("search", index=alias, body=body)["hits"]["hits"]
            if not hits:
                return
            yield {hit["_id"]: hit["_version"] for hit in hits}
            body["search_after"] = hits[-1]["sort"]

    # Search.

    def search(self, bucket_id, collection_id, body, ensure_index=None):
        alias = self.alias(bucket_id, collection_id)
        try:
            return self.engine.call(
                "search", index=alias, body=body, timeout=self.search_timeout, lane=SEARCH
            )
        except EngineNotFound:
            if ensure_index is None:
                raise
        # A collection with no index yet (created while the engine was unreachable, or
        # before the plugin was enabled): give it one, so the answer has the engine's shape.
        ensure_index()
        return self.engine.call(
            "search", index=alias, body=body, timeout=self.search_timeout, lane=SEARCH
        )

    def search_indices(self, names, body):
        """Search the named aliases at once (never a pattern); ``body`` restricts further.

        An alias dropped since it was listed (its collection deleted) is skipped."""
        return self.engine.call(
            "search",
            index=",".join(names),
            body=body,
            timeout=self.search_timeout,
            ignore_unavailable=True,
            lane=SEARCH,
        )

    def mappings(self, names):
        """The mappings of the indices behind the named aliases."""
        if not names:
            return []
        found = self.engine.call(
            "indices.get_mapping", index=",".join(names), ignore_unavailable=True, lane=SEARCH
        )
        return [info.get("mappings", {}) for info in found.values()]

    def bucket_indices(self, bucket_id):
        """``{alias: [physical indices]}`` for the collections of a bucket that have one."""
        by_alias = {}
        pattern = naming.bucket_pattern(self.prefix, bucket_id)
        for name, aliases in self.indices(pattern, lane=SEARCH).items():
            for alias in aliases:
                by_alias.setdefault(alias, []).append(name)
        return by_alias

    def ping(self, timeout=None):
        """Whether the engine answers and its cluster is usable."""
        try:
            health = self.engine.call("cluster.health", timeout=timeout, probe=True)
        except EngineError as exc:
            logger.warning("Search engine health check failed: %s", exc)
            return False
        return health.get("status") in ("green", "yellow")
