"""The seam between the plugin and the search engine's client library.

Nothing else in the plugin imports ``elasticsearch`` or ``opensearchpy``: the rest of the
code calls :meth:`Engine.call` with the engine's REST operation names and catches the
plugin's own exceptions, so it does not care which engine is in use.
"""

import logging

logger = logging.getLogger(__name__)

# Reasons such as "all shards failed" say nothing to a client: the cause is deeper.
_GENERIC_REASONS = {"all shards failed", None, ""}


class EngineError(Exception):
    """The engine failed to carry out a request."""

    def __init__(self, message, status=None, error_type=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type


class EngineUnavailable(EngineError):
    """The engine could not be reached, timed out, or is failing on its side."""


class EngineRequestError(EngineError):
    """The engine refused the request itself (a 4xx answer)."""


class EngineNotFound(EngineRequestError):
    """The index or alias named in the request does not exist."""


def describe_error(body):
    """The most useful human reason in an engine's error body."""
    if not isinstance(body, dict):
        return str(body)
    error = body.get("error", body)
    if not isinstance(error, dict):
        return str(error)
    reason = error.get("reason")
    if reason in _GENERIC_REASONS:
        for key in ("root_cause", "failed_shards"):
            causes = error.get(key) or []
            if causes and isinstance(causes[0], dict):
                cause = causes[0].get("reason", causes[0])
                return describe_error({"error": cause}) if isinstance(cause, dict) else cause
        caused_by = error.get("caused_by")
        if isinstance(caused_by, dict):
            return describe_error({"error": caused_by})
    return str(reason or error.get("type") or "unknown error")


def _error_type(body):
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("type") if isinstance(error, dict) else None


def _classify(status, body, fallback):
    if isinstance(status, int) and 400 <= status < 500 and status not in (401, 403, 408, 429):
        cls = EngineNotFound if status == 404 else EngineRequestError
        return cls(describe_error(body), status=status, error_type=_error_type(body))
    message = describe_error(body) if body else fallback
    return EngineUnavailable(message, status=status, error_type=_error_type(body))


class Engine:
    """A client for the configured engine, with the plugin's timeouts and errors."""

    def __init__(self, settings, breaker=None):
        self.name = settings.engine
        # The type of objects whose keys are data: one field in the mapping, any keys.
        self.flattened_type = "flat_object" if self.name == "opensearch" else "flattened"
        self.breaker = breaker
        self.hosts = settings.hosts
        self.request_timeout = settings.request_timeout
        if self.name == "opensearch":
            import opensearchpy

            self._client = opensearchpy.OpenSearch(
                hosts=list(settings.hosts),
                timeout=settings.request_timeout,
                max_retries=settings.max_retries,
                retry_on_timeout=False,
            )
            self._api_errors = (opensearchpy.TransportError,)
            self._transport_errors = (opensearchpy.ConnectionError,)
        else:
            import elastic_transport
            import elasticsearch

            self._client = elasticsearch.Elasticsearch(
                list(settings.hosts),
                request_timeout=settings.request_timeout,
                max_retries=settings.max_retries,
                retry_on_timeout=False,
            )
            self._api_errors = (elasticsearch.ApiError,)
            self._transport_errors = (elastic_transport.TransportError,)

    def call(self, operation, timeout=None, probe=False, **kwargs):
        """Run ``operation`` (such as ``"bulk"`` or ``"indices.create"``) and return its body.

        Raises :class:`EngineUnavailable`, :class:`EngineNotFound` or
        :class:`EngineRequestError`, whatever the client library. While the circuit breaker
        is open, fails at once without a request, unless ``probe`` (health checks).
        """
        breaker = self.breaker
        if breaker is not None and not probe and not breaker.allow():
            raise EngineUnavailable(f"{self.name} is failing: not waiting on it (circuit open)")
        try:
            body = self._call(operation, timeout, kwargs)
        except EngineUnavailable:
            if breaker is not None:
                breaker.failure()
            raise
        if breaker is not None:
            breaker.success()
        return body

    def _call(self, operation, timeout, kwargs):
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
        except self._transport_errors as exc:
            raise EngineUnavailable(f"{self.name} is unreachable: {exc}") from exc
        except self._api_errors as exc:
            error = self._map_api_error(exc)
            if isinstance(error, EngineRequestError) and self.breaker is not None:
                # The engine answered: it is up, whatever it thought of the request.
                self.breaker.success()
            raise error from exc
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
        return _classify(status, body, f"{self.name} answered {status}: {exc}")

    def close(self):
        self._client.close()
