"""Bulk requests: documents and tombstones sent with external versions, and what the
engine did with each of them."""

from dataclasses import dataclass, field

from kinto_elasticsearch.client import EngineRequestError
from kinto_elasticsearch.index import documents

# Engine errors that refuse a document (or a mapping) for what it holds: a reduced form
# may pass.
DOCUMENT_ERRORS = {
    "mapper_parsing_exception",
    "document_parsing_exception",
    "illegal_argument_exception",
    "strict_dynamic_mapping_exception",
    "mapper_exception",
    "json_parse_exception",
    "x_content_parse_exception",
}


@dataclass
class BulkReport:
    """What one bulk write did, record by record."""

    indexed: list = field(default_factory=list)
    deleted: list = field(default_factory=list)
    # (record id, paths left out, the engine's reason or None) for each record indexed
    # partially: a subset of ``indexed``.
    partial: list = field(default_factory=list)
    # Writes the index already had a newer version of: success, nothing to do.
    superseded: list = field(default_factory=list)
    # (record id, reason) for each record the engine refused, even in its minimal form
    # (or could not be sent: an id too long).
    failed: list = field(default_factory=list)
    # (physical index, document id, record id) of documents written where the collection
    # no longer lives: its placement changed (a promotion) since this process read it.
    misplaced: list = field(default_factory=list)
    # The ``EngineError`` that kept a write of several collections (``Writer.write_many``)
    # from settling this one's documents: its changes are left to the catch-up.
    error: Exception | None = None


def is_minimal(document):
    return set(document.source) <= {"id", "last_modified", documents.UNINDEXED_FIELD}


def _is_missing_alias(item):
    error = item.get("error")
    return isinstance(error, dict) and error.get("type") == "index_not_found_exception"


class BulkSender:
    def __init__(self, engine, force_refresh=False):
        self.engine = engine
        self.force_refresh = force_refresh

    def send(
        self,
        index,
        operations,
        report,
        require_alias=True,
        refresh=None,
        version_type="external",
        where=None,
    ):
        """Send one bulk request; ``where``: the collection's placement (None: a dedicated
        index, as a rebuild fills).

        Returns the operations that found no alias, and ``(operation, reason)`` for the
        documents the engine refused for what they hold.
        """
        if not operations:
            return [], []
        body = self._lines(index, operations, where, version_type)
        try:
            response = self.engine.call("bulk", body=body, **self._params(require_alias, refresh))
        except EngineRequestError as exc:
            if exc.status != 413:
                raise
            if len(operations) == 1:
                reason = f"too large for the engine: {exc}"
                action, record_id, _, document = operations[0]
                if action == "index" and not is_minimal(document):
                    # Sent again in its minimal form, so that no older version stays.
                    return [], [(operations[0], reason)]
                report.failed.append((record_id, reason))
                return [], []
            # Too large as a whole: send halves, so that one huge record cannot keep the
            # others of the same write out of the index.
            middle = len(operations) // 2
            send = dict(
                require_alias=require_alias,
                refresh=refresh,
                version_type=version_type,
                where=where,
            )
            first = self.send(index, operations[:middle], report, **send)
            second = self.send(index, operations[middle:], report, **send)
            return first[0] + second[0], first[1] + second[1]
        return _classify(operations, response["items"], report, where)

    def send_many(self, groups, refresh=None, version_type="external"):
        """One bulk request for the operations of several collections (each through an
        alias): ``groups`` is ``[(index, operations, where, report)]``. Returns ``(missing,
        refused)`` for each group, in order. Too large as a whole, each group is sent on its
        own (:meth:`send` halves it further)."""
        body = []
        for index, operations, where, _ in groups:
            body += self._lines(index, operations, where, version_type)
        if not body:
            return [([], []) for _ in groups]
        try:
            response = self.engine.call("bulk", body=body, **self._params(True, refresh))
        except EngineRequestError as exc:
            if exc.status != 413:
                raise
            send = dict(refresh=refresh, version_type=version_type)
            return [self.send(index, ops, report, where=where, **send)
                    for index, ops, where, report in groups]  # fmt: skip
        items = iter(response["items"])
        return [
            _classify(operations, [next(items) for _ in operations], report, where)
            for _, operations, where, report in groups
        ]

    def _params(self, require_alias, refresh):
        params = {"require_alias": True} if require_alias else {}
        if self.force_refresh if refresh is None else refresh:
            params["refresh"] = "true"
        return params

    @staticmethod
    def _lines(index, operations, where, version_type):
        body = []
        for _, record_id, version, document in operations:
            # Deletes too are documents (tombstones), indexed with the version of the delete.
            document_id = where.document_id(record_id) if where else record_id
            meta = {"_index": index, "_id": document_id, "version": version}
            if where is not None and where.pooled:
                meta["routing"] = where.key
            body.append({"index": {**meta, "version_type": version_type}})
            body.append(where.source(document.source) if where else document.source)
        return body


def _classify(operations, items, report, where):
    """What the engine did with each of ``operations`` (its ``items``), into ``report``;
    ``(missing, refused)``: the operations that found no alias, and ``(operation, reason)``
    for the documents refused for what they hold."""
    missing, refused = [], []
    for operation, item in zip(operations, items, strict=True):
        action, record_id, _, document = operation
        result = item["index"]
        status = result.get("status", 500)
        if status < 300 and where is not None and not where.holds(result.get("_index")):
            report.misplaced.append((result["_index"], result.get("_id"), record_id))
        elif status < 300:
            (report.indexed if action == "index" else report.deleted).append(record_id)
            if document is not None and document.left_out:
                report.partial.append((record_id, document.left_out, None))
        elif status == 409:
            report.superseded.append(record_id)
        elif _is_missing_alias(result):
            missing.append(operation)
        else:
            error = result.get("error") or {}
            reason = error.get("reason", error) if isinstance(error, dict) else error
            caused = error.get("caused_by") if isinstance(error, dict) else None
            if isinstance(caused, dict) and caused.get("reason"):
                reason = f"{reason}: {caused['reason']}"
            kind = error.get("type") if isinstance(error, dict) else None
            if action == "index" and (kind in DOCUMENT_ERRORS or status == 400):
                refused.append((operation, str(reason)))
            else:
                report.failed.append((record_id, str(reason)))
    return missing, refused
