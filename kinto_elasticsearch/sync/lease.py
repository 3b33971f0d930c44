"""One process at a time runs the catch-up of the cluster: a lease in the sync index.

Every Kinto process runs a catch-up worker (``worker``), and ``kinto-elasticsearch sync
--follow`` may run too; passes are idempotent, but N processes doing each pass N times is
N times the cost for nothing. The lease is the rebuilds' (``rebuild.RebuildLease``): taken
with a create-only write, taken over from an expired holder with a compare-and-set on its
sequence number, renewed every third of its time by a thread of the holder. The others
stand by: each of their passes only tries to take the lease (one realtime get), every
third of ``LEASE_SECONDS`` at most, so a dead holder is replaced within the lease plus a
third; at once when it was a process of the same host that is gone (``holder_died``).

Only passes over every collection on a shared storage take it (``catchup``): a scoped pass
(``sync --bucket``, tests) and a one-shot ``sync`` run whoever holds it, which is safe,
passes being idempotent; a memory storage is its process's own.
"""

import logging

from kinto_elasticsearch.client import EngineError
from kinto_elasticsearch.sync.rebuild import RebuildInProgress, RebuildLease

logger = logging.getLogger(__name__)

# Its name in the sync index: ``-`` starts no collection's alias.
LEASE_NAME = "-catchup"
LEASE_SECONDS = 15.0


class CatchUpTurn:
    """Holds (or waits for) the catch-up lease across the passes of one worker."""

    def __init__(self, seconds=LEASE_SECONDS):
        self.seconds = seconds
        self._lease = None

    @property
    def held(self):
        return self._lease is not None

    def take(self, store):
        """Whether this worker holds the lease now: kept, or taken."""
        if self._lease is not None:
            try:
                self._lease.renew()
                return True
            except RebuildInProgress as exc:
                logger.info("Catch-up lease lost: %s", exc)
                self.release()
        lease = RebuildLease(store, LEASE_NAME, seconds=self.seconds)
        try:
            lease.acquire()
        except RebuildInProgress:
            return False
        logger.info("Took the catch-up lease (%s)", lease.owner)
        self._lease = lease
        return True

    def release(self):
        lease, self._lease = self._lease, None
        if lease is not None:
            try:
                lease.release()
            except EngineError:
                pass  # Unreachable: it expires by itself.
