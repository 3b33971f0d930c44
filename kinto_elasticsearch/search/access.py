"""Who may search what: Kinto's own permissions, as ``GET .../records`` applies them."""

from kinto.core.authorization import DYNAMIC, RouteFactory
from kinto.core.utils import build_request, instance_uri
from kinto.views import object_exists_or_404

from kinto_elasticsearch import errors
from kinto_elasticsearch.index.naming import is_kinto_id
from kinto_elasticsearch.search import rules
from kinto_elasticsearch.storage import collection_uri, iter_collections, records_uri


def valid_ids(matchdict):
    return all(
        is_kinto_id(matchdict.get(key) or "")
        for key in ("bucket_id", "collection_id")
        if key in matchdict
    )


def answer_as_kinto(request, route_name, **ids):
    """Raise what Kinto's own ``GET`` of ``route_name`` answers this caller for ``ids``.

    For path ids outside Kinto's rules: the plugin cannot answer them as Kinto does by
    itself, since Kinto's permission backend reads a ``*`` in a path as a wildcard (a
    caller with permissions on some bucket passes its checks on ``/buckets/*``, then meets
    a 404), so Kinto is asked, with a subrequest, as its default bucket plugin does. No
    bucket or collection can have such an id, so Kinto refuses, and it raises its error.
    """
    subrequest = build_request(
        request, {"method": "GET", "path": request.route_path(route_name, **ids)}
    )
    request.invoke_subrequest(subrequest)
    # Should Kinto ever list something there, the search still has nothing to search.
    if "collection_id" in ids:
        raise errors.not_found("collection", ids["collection_id"])
    raise errors.not_found("bucket", ids["bucket_id"])


class RecordsReadContext(RouteFactory):
    """The permissions of ``GET /buckets/{bid}/collections/{cid}/records``.

    Kinto's own factory, configured as the plural records endpoint, so that a search sees
    exactly the records the same user would list: ``shared_ids`` is None with read access
    on the collection (or bucket), else the ids of the records shared with the user. Ids
    outside Kinto's rules get what that endpoint answers (``answer_as_kinto``).
    """

    def __init__(self, request):
        if not valid_ids(request.matchdict):
            answer_as_kinto(request, "record-plural", **request.matchdict)
        super().__init__(request)
        self._request = request
        self.resource_name = "record"
        self.on_plural_endpoint = True
        self.required_permission = "read"
        # Built from the matchdict, never by rewriting the request path.
        self.permission_object_id = records_uri(
            request.matchdict["bucket_id"], request.matchdict["collection_id"]
        )
        self._object_id_match = self.permission_object_id + "/*"

    def fetch_shared_objects(self, perm, principals, get_bound_permissions):
        """Kinto's shared records, kept only when their URI is exactly one of this collection.

        Kinto looks them up with a pattern in which PostgreSQL's LIKE reads ``_`` as any
        character: ``/buckets/my_bkt/...`` also matches the records of ``myXbkt``, which a
        reader may own. Each URI the permission backend returns is checked against the
        collection's own records URI, and ids outside Kinto's rules match nothing.
        """
        self.shared_ids = []
        if not valid_ids(self._request.matchdict):
            return self.shared_ids
        if get_bound_permissions:
            bound_perms = get_bound_permissions(self._object_id_match, perm)
        else:
            bound_perms = [(self._object_id_match, perm)]
        by_uri = self._get_accessible_objects(principals, bound_perms, with_children=False)
        prefix = self.permission_object_id + "/"
        self.shared_ids = [
            uri[len(prefix) :]
            for uri in by_uri
            if uri.startswith(prefix) and "/" not in uri[len(prefix) :]
        ]
        return self.shared_ids


class CollectionWriteContext(RouteFactory):
    """Kinto's permission to write a collection (directly or through its bucket)."""

    def __init__(self, request, collection):
        super().__init__(request)
        self.resource_name = "collection"
        self.required_permission = "write"
        self.current_object = collection
        self.permission_object_id = collection_uri(
            request.matchdict["bucket_id"], request.matchdict["collection_id"]
        )


def hidden_fields(request, collection):
    """The collection's private fields, unless the caller may write the collection."""
    private = rules.private_fields(collection)
    if not private:
        return []
    if request.has_permission(DYNAMIC, CollectionWriteContext(request, collection)):
        return []
    return private


def collection_or_404(request):
    """``(bucket id, collection id, collection)`` of the request's path, or Kinto's 404."""
    bucket_id = request.matchdict["bucket_id"]
    collection_id = request.matchdict["collection_id"]
    collection = object_exists_or_404(
        request,
        resource_name="collection",
        parent_id=instance_uri(request, "bucket", id=bucket_id),
        object_id=collection_id,
    )
    return bucket_id, collection_id, collection


def readable_collections(request, bucket_id):
    """``({collection id: shared ids}, hidden fields)`` for the bucket's readable collections.

    Private fields of every collection the caller may read but not write are hidden
    from the whole search: one request cannot hide a field in some indices only.

    Each collection is checked by Kinto's own authorization with the context of its
    records endpoint, exactly as ``GET .../records`` would be: shared ids are None for full
    read access, else the ids of the records the caller may read.
    """
    storage = request.registry.storage
    settings = request.registry.elasticsearch.settings
    readable, hidden = {}, set()
    matchdict = request.matchdict
    try:
        for _, collection_id, metadata in iter_collections(storage, bucket_id):
            if not settings.is_indexed(bucket_id, collection_id):
                continue
            request.matchdict = {**matchdict, "collection_id": collection_id}
            context = RecordsReadContext(request)
            if request.has_permission(DYNAMIC, context):
                readable[collection_id] = context.shared_ids
                hidden.update(hidden_fields(request, metadata))
    finally:
        request.matchdict = matchdict
    return readable, sorted(hidden)
