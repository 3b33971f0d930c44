"""The write side: storage is the outbox, the index follows it.

``listeners`` turn Kinto's events into changes for the ``sender``, which batches the
changes of many requests into one bulk request in a background thread. Nothing that must
reach the index lives only in memory: every record and tombstone is in storage with a
``last_modified`` that only grows, so ``catchup`` indexes whatever changed since each
collection's checkpoint (kept in the engine, see ``checkpoints``), and heals whatever the
sender could not deliver (an outage, a crash, a full queue). ``rebuild`` makes a new
generation of a collection's index behind its alias, and ``compare`` proves an index
equal to storage or repairs it (``verify``, and the catch-up when tombstones were purged).
All of them write through ``apply.apply_changes``.
"""
