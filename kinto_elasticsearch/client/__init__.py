"""The engine seam: the only place that imports a client library.

The rest of the plugin calls :meth:`Engine.call` with the engine's REST operation names
and catches the exceptions below, so it does not care which engine is in use.
"""

from kinto_elasticsearch.client.breaker import CircuitBreaker, Reachability
from kinto_elasticsearch.client.engine import Engine
from kinto_elasticsearch.client.errors import (
    EngineError,
    EngineNotFound,
    EngineRequestError,
    EngineUnavailable,
    EngineUnreachable,
    describe_error,
)

__all__ = [
    "CircuitBreaker",
    "Engine",
    "EngineError",
    "EngineNotFound",
    "EngineRequestError",
    "EngineUnavailable",
    "EngineUnreachable",
    "Reachability",
    "describe_error",
]
