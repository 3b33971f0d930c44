"""Reading storage a page at a time, so memory stays flat whatever the collection size."""

import queue
import threading

from kinto.core.storage import Filter, Sort
from kinto.core.utils import COMPARISON

PAGE_SIZE = 1000


def iter_collections(storage, bucket_id=None, collection_id=None):
    """``(bucket id, collection id, metadata)`` for the collections in scope."""
    if bucket_id is None:
        buckets = [b["id"] for b in _iter_pages(storage, "bucket", "")]
    else:
        buckets = [bucket_id]
    for bid in buckets:
        filters = [Filter("id", collection_id, COMPARISON.EQ)] if collection_id else None
        for collection in _iter_pages(storage, "collection", f"/buckets/{bid}", filters=filters):
            yield bid, collection["id"], collection


def _iter_pages(storage, resource_name, parent_id, filters=None, include_deleted=False):
    for page in iter_record_pages(storage, resource_name, parent_id, filters, include_deleted):
        yield from page


def iter_record_pages(
    storage, resource_name, parent_id, filters=None, include_deleted=False, page_size=None
):
    """Pages of objects, newest first; ``last_modified`` is unique within a parent."""
    page_size = page_size or PAGE_SIZE
    before = None
    while True:
        rules = [[Filter("last_modified", before, COMPARISON.LT)]] if before else None
        page = storage.list_all(
            resource_name=resource_name,
            parent_id=parent_id,
            filters=filters,
            sorting=[Sort("last_modified", -1)],
            pagination_rules=rules,
            limit=page_size,
            include_deleted=include_deleted,
        )
        if not page:
            return
        yield page
        if len(page) < page_size:
            return
        before = page[-1]["last_modified"]


def pipelined(items, send):
    """``send`` each item in a thread of its own while the next one is being produced.

    A rebuild spends most of its time waiting for the engine to acknowledge a bulk request;
    reading the next page from storage meanwhile takes that time off the total. The hand-over
    queue holds one item, so at most three are alive at once (one being sent, one waiting,
    one being produced): memory stays bounded whatever the collection size. The first
    error, on either side, stops both and is raised here.
    """
    handover = queue.Queue(maxsize=1)
    failure = []
    done = object()

    def sender():
        while (item := handover.get()) is not done:
            if failure:
                continue  # Drain without sending: the producer is about to stop.
            try:
                send(item)
            except BaseException as exc:
                failure.append(exc)

    thread = threading.Thread(target=sender, name="kinto-elasticsearch-sender", daemon=True)
    thread.start()
    try:
        for item in items:
            if failure:
                break
            handover.put(item)
    except BaseException as exc:
        failure.append(exc)
        raise
    finally:
        handover.put(done)
        thread.join()
    if failure:
        raise failure[0]


def iter_changes(storage, parent_id, since=None, page_size=None):
    """Pages of records and tombstones modified after ``since``, oldest first.

    Oldest first, so that a reader may note how far it got after each page.
    """
    page_size = page_size or PAGE_SIZE
    filters = [Filter("last_modified", since, COMPARISON.GT)] if since is not None else None
    after = None
    while True:
        rules = [[Filter("last_modified", after, COMPARISON.GT)]] if after is not None else None
        page = storage.list_all(
            resource_name="record",
            parent_id=parent_id,
            filters=filters,
            sorting=[Sort("last_modified", 1)],
            pagination_rules=rules,
            limit=page_size,
            include_deleted=True,
        )
        if not page:
            return
        yield page
        if len(page) < page_size:
            return
        after = page[-1]["last_modified"]
