"""The index side as one object: its parts, built once and wired to each other."""

from dataclasses import dataclass

from kinto_elasticsearch.index.admin import IndexAdmin
from kinto_elasticsearch.index.budget import FieldBudget
from kinto_elasticsearch.index.bulk import BulkSender
from kinto_elasticsearch.index.fit import PoolFit
from kinto_elasticsearch.index.indices import Indices
from kinto_elasticsearch.index.known import KnownMappings
from kinto_elasticsearch.index.locator import Locator
from kinto_elasticsearch.index.pools import Pools
from kinto_elasticsearch.index.reader import Reader
from kinto_elasticsearch.index.removal import Removal
from kinto_elasticsearch.index.writer import Writer


@dataclass
class IndexSide:
    """What the write side, the read side and the command line are given of the index:
    ``locator`` (where a collection lives), ``indices`` (the cluster's indices and
    aliases), ``known`` (mappings read), ``pools``, ``admin`` (a collection's indices),
    ``removal`` (of what went), ``writer`` (records in), ``reader`` (what the index
    holds) and ``fit`` (whether a pool takes a collection's records as its own index
    would)."""

    engine: object
    prefix: str
    locator: Locator
    indices: Indices
    known: KnownMappings
    pools: Pools
    admin: IndexAdmin
    removal: Removal
    writer: Writer
    reader: Reader
    fit: PoolFit

    @classmethod
    def build(
        cls,
        engine,
        prefix,
        force_refresh=False,
        index_settings=None,
        pools=0,
        pool_settings=None,
        pool_max_fields=100,
    ):
        known = KnownMappings(engine, prefix)
        indices = Indices(engine)
        locator = Locator(engine, prefix, known, pools, indices)
        pooled = Pools(engine, indices, locator, known, pool_settings, pool_max_fields)
        removal = Removal(indices, locator, pooled)
        return cls(
            engine=engine,
            prefix=prefix,
            locator=locator,
            indices=indices,
            known=known,
            pools=pooled,
            admin=IndexAdmin(engine, indices, locator, known, pooled, removal, index_settings),
            removal=removal,
            writer=Writer(
                engine,
                locator,
                known,
                FieldBudget(engine, known, pooled),
                BulkSender(engine, force_refresh),
            ),
            reader=Reader(engine, locator),
            fit=PoolFit(engine, locator, known, pooled),
        )
