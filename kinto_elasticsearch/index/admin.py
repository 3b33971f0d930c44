"""A collection's indices and alias: created, rebuilt behind the alias, re-mapped and
re-created, whether the collection has an index of its own or lives in a pool (their
removal is ``index/removal.py``'s)."""

import logging

from kinto_elasticsearch.client import EngineNotFound, EngineRequestError, EngineUnavailable
from kinto_elasticsearch.index import naming
from kinto_elasticsearch.index.analysis import tenant_settings
from kinto_elasticsearch.index.bulk import DOCUMENT_ERRORS
from kinto_elasticsearch.index.indices import WRITE_INDEX, is_second_write_index
from kinto_elasticsearch.index.mapping import collection_mapping, plugin_settings

logger = logging.getLogger(__name__)


class IndexAdmin:
    def __init__(self, engine, indices, locator, known, pools, removal, index_settings=None):
        self.engine = engine
        self.removal = removal
        self.indices = indices
        self.locator = locator
        self.known = known
        self.pools = pools
        self.prefix = locator.prefix
        # The operator's settings of every dedicated index (shards, replicas); a collection
        # adds its own ``index:settings`` (analysis) where its indices are created.
        self.index_settings = dict(index_settings or {})

    def index_body(self, metadata, settings=None):
        """Settings and mappings of a new index for a collection with this metadata.

        The operator's settings (shards, replicas), the plugin's own (malformed values
        tolerated, the field limit), the collection's ``index:settings`` (analysis), and
        ``settings`` last.
        """
        return {
            "settings": {
                **self.index_settings,
                **plugin_settings(metadata),
                **tenant_settings(metadata),
                **(settings or {}),
            },
            "mappings": collection_mapping(metadata, self.engine.flattened_type),
        }

    def _create(self, name, metadata, aliases=None, settings=None):
        """Create an index; if the engine refuses the collection's mapping, create it with
        the plugin's own fields only, so that the collection is never left without one."""
        body = self.index_body(metadata, settings)
        if aliases:
            body["aliases"] = aliases
        try:
            return self.engine.call("indices.create", index=name, body=body)
        except EngineRequestError as exc:
            if exc.error_type not in DOCUMENT_ERRORS or not metadata:
                raise
            logger.error(
                "The engine refused the mapping derived for index %s (%s): created with "
                "dynamic mapping only",
                name,
                exc,
            )
            fallback = self.index_body({}, settings)
            if aliases:
                fallback["aliases"] = aliases
            return self.engine.call("indices.create", index=name, body=fallback)

    def create_index(self, bucket_id, collection_id, metadata, replace=False):
        """Give the collection an index unless it has one; the physical index it lives in
        (its pool, or its own).

        A pooled collection changes nothing in the engine: its pool exists (created once
        per process), and its place is its hash's (``index/locator.py``). A collection with
        an index of its own is recorded as such (``index/records.py``) before its alias is
        created, so that no process takes it for a pooled one once the alias exists.

        With ``replace``, indices left from an earlier collection of the same id (deleted
        while the engine was unreachable) are dropped first: a new collection has no records.

        Processes race to create an index (the collection listener, the sender, the
        catch-up, a search), and their views of the metadata may differ (one pooled, one
        asking for an index of its own): an index of its own wins, and the documents a
        pooled view wrote meanwhile are orphans the verification finds. Two dedicated
        creators converge on one index (:data:`WRITE_INDEX`, :meth:`_behind_one_index`).
        """
        if replace:
            self.removal.delete_collection_indices(bucket_id, collection_id)
        alias = self.locator.alias(bucket_id, collection_id)
        # A collection that has an index stays where it is: the catch-up moves it to an
        # index of its own if it needs one.
        where = self.locator.placement(bucket_id, collection_id, metadata, refresh=replace)
        found, _, _ = self.locator.records.find(alias)
        if where.pooled:
            return self.pools.join(where)
        if not replace and self.locator.look_up(alias):
            if not found:
                self.locator.records.record(alias, where.key)
            return self._behind_one_index(alias)
        self.locator.records.record(alias, where.key)
        try:
            self._create_dedicated(alias, metadata)
        except EngineUnavailable as exc:
            if not is_second_write_index(exc):
                raise
            logger.info("%s was attached elsewhere meanwhile: it stays there", alias)
        return self._behind_one_index(alias)

    def _create_dedicated(self, alias, metadata):
        # The first generation has a fixed name so that concurrent creators converge on
        # one index instead of attaching the alias to several.
        name = f"{alias}.0"
        aliases = {alias: WRITE_INDEX}
        try:
            self._create(name, metadata, aliases=aliases)
        except EngineRequestError as exc:
            if exc.error_type == "invalid_alias_name_exception":
                self.indices.replace_auto_created(alias)
                self._create(name, metadata, aliases=aliases)
            elif exc.error_type != "resource_already_exists_exception":
                raise

    def _behind_one_index(self, alias):
        """The physical index ``alias`` is on, once it is on one only.

        Two creators that each found no alias may both have attached it where the engine
        lets an alias have two write indices, or where an earlier version attached it
        without the flag: a pool keeps it (as when a dedicated create finds the alias on
        a pool), else its newest generation. Its other indices lose it in one request;
        a dedicated one goes with the next catch-up pass (``rebuild.remove_abandoned``).
        """
        try:
            behind = sorted(self.engine.call("indices.get_alias", name=alias))
        except EngineNotFound:
            # Deleted meanwhile (its collection went): nothing to write to.
            self.locator.forget(alias)
            raise
        if len(behind) > 1:
            pools = [name for name in behind if naming.is_pool(self.prefix, name)]
            keep = pools[0] if pools else max(behind, key=naming.generation)
            logger.warning(
                "%s was attached to %s at once: it stays on %s only",
                alias,
                ", ".join(behind),
                keep,
            )
            self.indices.remove_aliases([(name, alias) for name in behind if name != keep])
            behind = [keep]
        self.locator.forget(alias)
        self.locator.remember({alias: behind})
        return behind[0]

    def create_physical_index(self, bucket_id, collection_id, metadata, name=None):
        """A new, empty physical index for a rebuild (``name``, or a new generation's), not
        yet behind the alias.

        It is not refreshed while it is filled; :meth:`swap_alias` restores that.
        """
        name = name or naming.new_index_name(self.prefix, bucket_id, collection_id)
        self._create(name, metadata, settings={"index.refresh_interval": "-1"})
        return name

    def swap_alias(self, bucket_id, collection_id, index, shared=False):
        """Move the collection's alias to ``index`` in one atomic step; drop the indices it
        replaced, and only those: another index of the collection may be another rebuild's.

        ``shared``: the plugin moves the collection out of its pool on its own (or keeps
        it where it moved it), and its searches keep a pooled collection's rules
        (``Placement.shared``); False gives them an index of its own's.
        """
        alias = self.locator.alias(bucket_id, collection_id)
        self.engine.call(
            "indices.put_settings", index=index, body={"index": {"refresh_interval": None}}
        )
        self.engine.call("indices.refresh", index=index)
        pattern = naming.collection_pattern(self.prefix, bucket_id, collection_id)
        old = [
            name
            for name, aliases in self.indices.listed(pattern).items()
            if name != index and alias in aliases
        ]
        # A pooled collection moving to an index of its own (a promotion): an alias an
        # older version left on the pool leaves it in the same atomic step, and the move is
        # recorded (``index/records.py``) once the alias is there. A process that still
        # places the collection in its pool (its copy of the records is older) writes there
        # for a few seconds: the catch-up's overlap re-reads those writes into the new
        # index, and the verification deletes them from the pool. Its documents in the
        # pool go after the rebuild's replay (``sync/rebuild.py``).
        was = self.locator.placement(bucket_id, collection_id, refresh=True)
        actions = [{"remove": {"index": name, "alias": alias}} for name in old]
        if was.pooled and self.locator.look_up(alias):
            actions.append({"remove": {"index": was.pool, "alias": alias}})
        actions.append({"add": {"index": index, "alias": alias, **WRITE_INDEX}})
        self.indices.update_aliases(actions, alias)
        if was.pooled or was.moved != shared:
            self.locator.records.record(alias, was.key, shared=shared)
        self.locator.forget(alias)
        self.indices.delete(old)
        return old

    def update_mapping(self, bucket_id, collection_id, metadata):
        """Apply a collection's changed mapping to the live index (refused if it conflicts).

        False, doing nothing, for a pooled collection: its pool's mapping is every
        tenant's, and a collection with a mapping of its own needs its own index (a
        rebuild, which the caller leaves to the catch-up).
        """
        alias = self.locator.alias(bucket_id, collection_id)
        if self.locator.placement(bucket_id, collection_id, metadata).pooled:
            return False
        mapping = collection_mapping(metadata, self.engine.flattened_type)
        self.known.forget(alias)
        self.engine.call("indices.put_mapping", index=alias, body=mapping)
        return True
