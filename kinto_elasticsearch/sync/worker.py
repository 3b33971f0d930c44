"""The catch-up's background thread, one per Kinto process.

Started lazily: a pre-loading server (gunicorn ``--preload``, uWSGI without ``lazy-apps``)
builds the app once and forks its workers, and a thread does not survive a fork. Every
entry point (the first request of a process, a failed write, a collection change) calls
:meth:`CatchUpWorker.wake`, which (re)starts the thread when the process id changed.

A pass runs at start, whenever the engine answers again after an outage, after any write
the sender could not deliver, after a collection change, and every ``interval`` seconds
(``catchup_interval_seconds``; 0: only on those events). On a shared storage
(PostgreSQL) one worker of the cluster at a time holds the catch-up lease (``lease``): the
others' passes only try to take it, so that a dead holder is replaced.
"""

import functools
import logging
import threading
import time

import transaction

from kinto_elasticsearch.client import EngineError
from kinto_elasticsearch.sync.catchup import CatchUp
from kinto_elasticsearch.sync.lease import LEASE_SECONDS, CatchUpTurn
from kinto_elasticsearch.sync.purges import PurgeSchedule
from kinto_elasticsearch.sync.threads import ProcessThread

logger = logging.getLogger(__name__)

# Wake-ups closer than this are merged: an outage fails writes by the thousand.
MIN_GAP_SECONDS = 0.5
# The longest wait between two attempts while passes fail.
MAX_RETRY_SECONDS = 8.0


class CatchUpWorker:
    def __init__(self, registry, overlap_ms, interval=10.0, enabled=True):
        self._registry = registry
        self.overlap_ms = overlap_ms
        self.interval = interval
        self.enabled = enabled
        self._thread = ProcessThread("kinto-elasticsearch-catchup", self._run)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._done = threading.Condition()
        # Passes started and passes finished, counted under ``_done``: passes run one at a
        # time, so pass number n started after a call that saw ``started < n``.
        self.started = 0
        self.passes = 0
        self.last_error = None
        self._stopped = False
        self._purges = PurgeSchedule()
        # Passes over every collection run in one process of the cluster at a time.
        self._turn = CatchUpTurn()

    def wake(self):
        """Ask for a pass soon (and start the thread in this process if needed)."""
        if not self.enabled:
            return
        self.start()
        self._wake.set()

    def start(self):
        if not self.enabled:
            return
        if self._thread.is_alive():
            return
        with self._lock:
            if self._thread.forked():
                self._wake = threading.Event()
                self._done = threading.Condition()
            if not self._thread.is_alive():
                self._wake.set()  # A pass at start.
                self._thread.ensure_started()

    def wait_for_pass(self, timeout):
        """Wake the worker and wait for a pass that started after this call and succeeded;
        True if one did within ``timeout`` seconds.

        A pass under way (or one that has just finished, not yet counted) may have read
        storage before whatever the caller did: only a pass numbered past those started at
        the call counts.
        """
        with self._done:
            after = self.started
        self.wake()
        deadline = time.monotonic() + timeout
        with self._done:
            while self.passes <= after or self.last_error is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._done.wait(left)
        return True

    def stop(self):
        """End the thread after its current pass (an app being closed, in tests)."""
        self._stopped = True
        self._wake.set()

    def _run(self):
        retry = MIN_GAP_SECONDS
        delay = self.interval or None
        while True:
            self._wake.wait(delay)
            self._wake.clear()
            if self._stopped:
                self._turn.release()
                return
            with self._done:
                self.started += 1
            standby = False
            try:
                catchup = CatchUp(self._registry, self.overlap_ms)
                report = self._purges.run(
                    functools.partial(catchup.run, full=False, turn=self._turn)
                )
                standby = getattr(report, "standby", False)
                self.last_error = None
            except EngineError as exc:
                # The outage itself is logged once, by the engine seam.
                self.last_error = exc
                logger.debug("Catch-up pass stopped: %s", exc)
            except Exception as exc:
                self.last_error = exc
                logger.exception("Catch-up pass failed")
            finally:
                transaction.abort()
                with self._done:
                    self.passes += 1
                    self._done.notify_all()
            if self.last_error is None:
                retry, delay = MIN_GAP_SECONDS, self.interval or None
                if standby:
                    # Ready to take over from a holder that died, within a third of its lease.
                    delay = min(delay or LEASE_SECONDS, LEASE_SECONDS / 3)
            else:
                # Try again soon, then less and less often: the engine being back is
                # noticed within seconds, without hammering it while it is away.
                delay = retry
                retry = min(retry * 2, MAX_RETRY_SECONDS)
            time.sleep(MIN_GAP_SECONDS)
