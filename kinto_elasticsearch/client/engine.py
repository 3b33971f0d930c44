"""A client for the configured engine, with the plugin's timeouts, errors and breakers.

Nothing else in the plugin imports ``elasticsearch`` or ``opensearchpy``.
"""

import logging
import os

from kinto_elasticsearch.client.errors import (
    EngineError,
    EngineUnavailable,
    EngineUnreachable,
    classify,
)

logger = logging.getLogger(__name__)

# Requests are sent in one of two lanes, each behind its own breaker: a hung search path
# must not stop indexing, and a write backlog must not make searches fail.
SEARCH = "search"
WRITE = "write"

# The client libraries log every failed request at WARNING with a traceback: during an
# outage that is one traceback per request. The plugin logs one line per outage instead.
CLIENT_LOGGERS = ("elastic_transport", "elasticsearch", "opensearch")


def quiet_client_loggers():
    """Raise the client libraries' loggers to ERROR, unless the operator configured them."""
    for name in CLIENT_LOGGERS:
        client_logger = logging.getLogger(name)
        if client_logger.level == logging.NOTSET:
            client_logger.setLevel(logging.ERROR)


class Engine:
    def __init__(self, settings, breakers=None, reachability=None):
        self.name = settings.engine
        # The type of objects whose keys are data: one field in the mapping, any keys.
        self.flattened_type = "flat_object" if self.name == "opensearch" else "flattened"
        # {lane: CircuitBreaker}; a lane without one always sends.
        self.breakers = breakers or {}
        self.reachability = reachability
        self.hosts = settings.hosts
        self.request_timeout = settings.request_timeout
        self._settings = settings
        self._client = self._new_client()
        # A pre-loading server forks after the app was built: a child that used the
        # parent's connections would share their sockets with it, and read answers meant
        # for the parent. It gets a client of its own at its first request.
        self._pid = os.getpid()

    def _new_client(self):
        settings = self._settings
        if self.name == "opensearch":
            import opensearchpy

            client = opensearchpy.OpenSearch(
                hosts=list(settings.hosts),
                timeout=settings.request_timeout,
                max_retries=settings.max_retries,
                retry_on_timeout=False,
                # Request threads, the sender and the catch-up share the client.
                pool_maxsize=10,
            )
            self._api_errors = (opensearchpy.TransportError,)
            self._transport_errors = (opensearchpy.ConnectionError,)
            self._client_errors = (opensearchpy.SerializationError, ValueError)
        else:
            import elastic_transport
            import elasticsearch

            client = elasticsearch.Elasticsearch(
                list(settings.hosts),
                request_timeout=settings.request_timeout,
                max_retries=settings.max_retries,
                retry_on_timeout=False,
            )
            self._api_errors = (elasticsearch.ApiError,)
            self._transport_errors = (elastic_transport.TransportError,)
            self._client_errors = (elastic_transport.SerializationError, ValueError)
        return client

    def call(self, operation, timeout=None, probe=False, lane=WRITE, **kwargs):
        """Run ``operation`` (such as ``"bulk"`` or ``"indices.create"``) and return its body.

        Raises :class:`EngineUnreachable`, :class:`EngineUnavailable`,
        :class:`EngineNotFound` or :class:`EngineRequestError`, whatever the client
        library. While the ``lane``'s breaker is open, fails at once without a request.
        A ``probe`` (health checks) always goes and changes no breaker: it reports the
        state, it does not decide it.
        """
        breaker = None if probe else self.breakers.get(lane)
        if breaker is not None and not breaker.allow():
            raise EngineUnreachable(
                f"{self.name} is unreachable: not waiting on it (circuit open for {lane}s)"
            )
        try:
            body = self._call(operation, timeout, kwargs)
        except EngineError as exc:
            # Which request failed: what an operator's error message names.
            exc.operation = getattr(exc, "operation", None) or operation
            self._failed(exc, breaker, probe)
            raise
        except BaseException:
            if breaker is not None:
                breaker.release()
            raise
        self._answered(breaker, probe)
        return body

    def _failed(self, exc, breaker, probe):
        if isinstance(exc, EngineUnreachable):
            if breaker is not None:
                breaker.failure()
            if self.reachability is not None and not probe:
                self.reachability.unreachable(exc)
        else:
            # The engine answered: it is up, whatever it thought of the request.
            self._answered(breaker, probe)

    def _answered(self, breaker, probe):
        if breaker is not None:
            breaker.success()
        if self.reachability is not None and not probe:
            self.reachability.reachable()

    def _call(self, operation, timeout, kwargs):
        if self._pid != os.getpid():
            # Not closed: closing would not touch the parent's sockets, only forget them.
            self._client, self._pid = self._new_client(), os.getpid()
        timeout = timeout or self.request_timeout
        if self.name == "opensearch":
            target = self._client
            kwargs["request_timeout"] = timeout
            if operation == "search":
                # OpenSearch cancels the search task itself once the client has given up
                # (a regular expression or a rewrite does not watch the body's timeout).
                # Elasticsearch cancels it when the client closes the connection, as the
                # client does on a timeout.
                kwargs.setdefault("cancel_after_time_interval", f"{round(timeout * 1000)}ms")
        else:
            target = self._client.options(request_timeout=timeout)
        for part in operation.split("."):
            target = getattr(target, part)
        try:
            response = target(**kwargs)
        except self._client_errors as exc:
            # The client could not make sense of the answer (or of the request).
            raise EngineUnavailable(f"{self.name} client error: {exc}") from exc
        except self._transport_errors as exc:
            raise EngineUnreachable(f"{self.name} is unreachable: {exc}") from exc
        except self._api_errors as exc:
            raise self._map_api_error(exc) from exc
        return getattr(response, "body", response)

    def _map_api_error(self, exc):
        if self.name == "opensearch":
            status, body = exc.status_code, exc.info
        else:
            status, body = exc.meta.status, exc.body
            if type(exc).__name__ == "UnsupportedProductError":
                return EngineUnavailable(
                    f"the server at {', '.join(self.hosts)} is not Elasticsearch "
                    "(set elasticsearch.engine = opensearch for OpenSearch)",
                    status=status,
                )
        if not isinstance(status, int):
            # opensearch-py gives "N/A" for failures below HTTP (already mapped above).
            return EngineUnreachable(f"{self.name} is unreachable: {exc}")
        return classify(status, body, f"{self.name} answered {status}: {exc}")

    def close(self):
        self._client.close()
