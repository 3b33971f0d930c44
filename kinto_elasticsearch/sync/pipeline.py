"""Sending one page while the next is read from storage, with memory bounded."""

import queue
import threading


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
