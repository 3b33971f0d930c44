"""The write side's background threads (the sender, the catch-up worker), one per process.

A pre-loading server forks after the app was built: the child has none of the parent's
threads, and a lock held at fork time would stay held in it. Each owner asks
:meth:`ProcessThread.forked` before using its locks, starts afresh when it is a child, and
starts its thread on demand.
"""

import os
import threading


class ProcessThread:
    def __init__(self, name, target):
        self.name = name
        self._target = target
        self._pid = os.getpid()
        self._thread = None

    def forked(self):
        """Whether this process is a fork of the one that last ran the thread (then it
        has no thread: the owner makes its locks and state anew)."""
        if self._pid == os.getpid():
            return False
        self._pid = os.getpid()
        self._thread = None
        return True

    def is_alive(self):
        """Whether the thread runs, in this process."""
        return self._pid == os.getpid() and self._thread is not None and self._thread.is_alive()

    def ensure_started(self):
        """Start the thread in this process, unless it runs; True if it was started."""
        if self.is_alive():
            return False
        self._thread = threading.Thread(target=self._target, name=self.name, daemon=True)
        self._thread.start()
        return True
