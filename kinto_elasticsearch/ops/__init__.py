"""The ``kinto-elasticsearch`` command line: ``cli`` parses, bootstraps Kinto from its ini
and exits; each command (``reindex``, ``verify``, ``sync``, ``remove_legacy``) has a module
that prints what the write side did; ``legacy_reindex`` is 0.3's
``kinto-elasticsearch-reindex``, an alias of ``reindex``."""
