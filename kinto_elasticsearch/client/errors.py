"""The plugin's own exceptions for what the engine did, whatever the client library.

Which exception a failure becomes decides who pays for it:

- :class:`EngineUnreachable`: the engine could not be reached at all (connection refused or
  reset, a timeout, a proxy's 502/503/504, a cluster without a master). Only these open the
  circuit breaker: every request would fail the same way, so nobody should wait on it.
- :class:`EngineUnavailable`: the engine answered but could not serve this request (a 429
  when a query trips the engine's memory breaker or its queues are full, a 500 from one
  aggregation, a 401/403 of a misconfigured cluster). That request's error only.
- :class:`EngineRequestError` (and :class:`EngineNotFound`): the engine refused the request
  itself, a 4xx. The caller's fault, answered as a 400. So is a 5xx whose every cause is one
  the engines raise for what a query asks (``nested`` on a field that is not nested, a
  value that does not parse): some engine versions answer those with a 500, yet they say
  nothing of the engine's health, and the same query fails the same way every time.
"""

# Reasons such as "all shards failed" say nothing to a client: the cause is deeper.
_GENERIC_REASONS = {"all shards failed", None, ""}

# What a load balancer or proxy in front of a cluster answers when no node is behind it,
# and what the engines answer when the cluster itself is unavailable (no master, no shard).
UNREACHABLE_STATUSES = frozenset({502, 503, 504})

# Causes that describe the request, not the engine: a query that asked for something its
# fields cannot give. Anything else in a 5xx (an illegal state, memory, a rejected
# execution) stays the engine's.
QUERY_FAULTS = frozenset(
    {
        "aggregation_execution_exception",
        "illegal_argument_exception",
        "number_format_exception",
        "parsing_exception",
        "query_shard_exception",
        "x_content_parse_exception",
    }
)


class EngineError(Exception):
    """The engine failed to carry out a request."""

    def __init__(self, message, status=None, error_type=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type
        # The client operation that failed (``"indices.delete"``), once the engine seam
        # knows it.
        self.operation = None

    def describe(self):
        """The message with the operation, status and error type: for operators."""
        operation = getattr(self, "operation", None)
        details = [d for d in (operation, self.status, self.error_type) if d]
        suffix = f" ({', '.join(map(str, details))})" if details else ""
        return f"{self.message}{suffix}"


class EngineUnavailable(EngineError):
    """The engine could not serve this request; retry later."""


class EngineUnreachable(EngineUnavailable):
    """The engine could not be reached, or nothing answers for it."""


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


def _cause_types(body):
    """The types of the deepest causes an error body names (its root causes, or its own)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return set()
    causes = [c for c in error.get("root_cause") or [] if isinstance(c, dict)]
    causes += [
        f["reason"]
        for f in error.get("failed_shards") or []
        if isinstance(f, dict) and isinstance(f.get("reason"), dict)
    ]
    return {cause.get("type") for cause in causes} if causes else {error.get("type")}


def classify(status, body, fallback):
    """The exception for an error answer of the engine (or of a proxy in front of it)."""
    error_type = _error_type(body)
    message = describe_error(body) if body else fallback
    if status in UNREACHABLE_STATUSES or status == 408:
        return EngineUnreachable(message, status=status, error_type=error_type)
    if isinstance(status, int) and 400 <= status < 500 and status not in (401, 403, 429):
        cls = EngineNotFound if status == 404 else EngineRequestError
        return cls(describe_error(body), status=status, error_type=error_type)
    causes = _cause_types(body)
    if isinstance(status, int) and status >= 500 and causes and causes <= QUERY_FAULTS:
        return EngineRequestError(message, status=status, error_type=error_type)
    return EngineUnavailable(message, status=status, error_type=error_type)
