"""The engine administration of collection writes, done after the response, in order.

Creating an index can take seconds (once 33 s on a test server, for a mapping derived from
a JSON schema), a promotion longer: a collection or bucket write does not wait for that.
Its listener hands the work to the sender (``Sender.submit_admin``), which passes it on
here in the order of its queue, and one thread per process does it, a task at a time.

Order, per collection: an *ordered* task (a create, a delete, a mapping update) holds the
collection's records back. While one is queued or running, the sender forwards the record
bulks of that collection (or of its bucket, for a bucket's delete) here, behind it, so
that a record written right after its collection's create lands in the index the create
made, and one written before a delete never re-creates the index after it. A rebuild is
not ordered: records go on to the live index meanwhile and its replay brings them in.

Nothing here must survive: a task that fails, or one a crash lost, is done by the catch-up,
which creates missing indices, removes those of gone collections and rebuilds what changed
shape (``on_failure`` wakes it up).
"""

import logging
import threading
from collections import Counter, deque
from dataclasses import dataclass, field

import transaction

from kinto_elasticsearch.client import EngineError
from kinto_elasticsearch.sync.threads import ProcessThread

logger = logging.getLogger(__name__)


@dataclass
class AdminTask:
    # ``(bucket_id, collection_id)``, or ``(bucket_id, None)`` for a whole bucket.
    key: tuple
    work: object
    description: str
    # Whether the records of ``key`` wait behind it (see the module's docstring).
    ordered: bool = True
    done: threading.Event = field(default_factory=threading.Event)
    # The sender's handovers a forwarded record bulk carries (None: not one).
    handovers: list = None


class AdminQueue:
    def __init__(self, on_failure=None):
        self._on_failure = on_failure or (lambda: None)
        self._stopped = False
        self._thread = ProcessThread("kinto-elasticsearch-admin", self._run)
        self._reset()

    def _reset(self):
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._tasks = deque()
        # Ordered tasks queued or running, by key.
        self._holding = Counter()
        self._busy = False

    def put(self, task):
        if self._thread.forked():
            self._reset()
        with self._lock:
            self._append(task)

    def forward(self, key, handovers, deliver):
        """Queue ``deliver(handovers)`` (records of collection ``key``) behind the ordered
        tasks of its collection or bucket, and True; False, doing nothing, when there are
        none. Records forwarded one after the other still go in one bulk."""
        if self._thread.forked():
            self._reset()
        with self._lock:
            if not (self._holding[key] or self._holding[(key[0], None)]):
                return False
            last = self._tasks[-1] if self._tasks else None
            if last is not None and last.key == key and last.handovers is not None:
                last.handovers.extend(handovers)
                return True
            task = AdminTask(key, None, "index records", handovers=list(handovers))
            task.work = lambda: deliver(task.handovers)
            self._append(task)
            return True

    def _append(self, task):
        self._tasks.append(task)
        if task.ordered:
            self._holding[task.key] += 1
        if not self._stopped:
            self._thread.ensure_started()
        self._ready.notify_all()

    def idle(self):
        with self._lock:
            return not self._tasks and not self._busy

    def stop(self):
        with self._lock:
            self._stopped = True
            self._ready.notify_all()

    def _run(self):
        while True:
            with self._lock:
                while not self._tasks and not self._stopped:
                    self._ready.wait()
                if not self._tasks:
                    return
                task = self._tasks.popleft()
                self._busy = True
            try:
                task.work()
            except EngineError as exc:
                logger.info("Could not %s, left to the catch-up: %s", task.description, exc)
                self._on_failure()
            except Exception:
                logger.exception("Could not %s, left to the catch-up", task.description)
                self._on_failure()
            finally:
                # A task may have read storage (a rebuild): end that transaction.
                transaction.abort()
                with self._lock:
                    self._busy = False
                    if task.ordered:
                        self._holding[task.key] -= 1
                        if not self._holding[task.key]:
                            del self._holding[task.key]
                    self._ready.notify_all()
                task.done.set()
