"""The catch-up's background thread: what waiting for a pass waits for."""

import threading

from kinto_elasticsearch.sync import worker
from kinto_elasticsearch.sync.worker import CatchUpWorker


def test_a_pass_ending_as_the_wait_begins_does_not_count(monkeypatch):
    """A pass that read storage before the caller's change, and ends just as the caller
    starts waiting, must not end the wait: only a pass that started after it does."""
    events = []
    ending, release = threading.Event(), threading.Event()

    class Pass:
        def __init__(self, registry, overlap_ms):
            pass

        def run(self, check_purges=False, **kwargs):
            events.append("pass")

    class Transaction:
        # Called as a pass ends, before it is counted: the first pass pauses there.
        def abort(self):
            if events == ["pass"]:
                ending.set()
                release.wait(10)

    monkeypatch.setattr(worker, "CatchUp", Pass)
    monkeypatch.setattr(worker, "transaction", Transaction())
    monkeypatch.setattr(worker, "MIN_GAP_SECONDS", 0.01)
    catchup = CatchUpWorker(registry=None, overlap_ms=0, interval=0)
    counted = threading.Event()
    wake = catchup.wake

    def wake_once_counted():
        # wait_for_pass wakes the worker once it has read the counters.
        counted.set()
        wake()

    catchup.start()
    try:
        assert ending.wait(10)
        events.append("change")
        catchup.wake = wake_once_counted
        returned = []
        waiter = threading.Thread(
            target=lambda: returned.append((catchup.wait_for_pass(10), list(events)))
        )
        waiter.start()
        assert counted.wait(10)
        release.set()
        waiter.join(10)
        [(succeeded, seen)] = returned
        assert succeeded
        assert "pass" in seen[seen.index("change") :], f"the wait ended after {seen}"
    finally:
        release.set()
        catchup.stop()
