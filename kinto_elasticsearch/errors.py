"""Every error response of the plugin, in Kinto's error format and with Kinto's helpers.

400s are worded as Kinto's own ``json_error_handler`` words validation errors, so that a
client handles a refused search as it handles any other invalid request. 503s leave
``Retry-After`` to Kinto's exception view, which sets it from ``retry_after_seconds``.
"""

from kinto.core.errors import ERRORS, http_error
from pyramid.httpexceptions import HTTPBadRequest, HTTPNotFound, HTTPServiceUnavailable

UNAVAILABLE_MESSAGE = "The search engine is unavailable. Please retry later."


def invalid(*errors):
    """Kinto's 400 for invalid parameters.

    ``errors`` are ``(location, name, description)``: each one is listed in ``details``,
    the first one makes the message.
    """
    details = [
        {"location": location, "name": name, "description": description}
        for location, name, description in errors
    ]
    location, name, description = errors[0]
    if name is None:
        message = f"{location}: {description}"
    elif str(name) in description:
        message = description
    else:
        message = f"{name} in {location}: {description}"
    return http_error(
        HTTPBadRequest(),
        errno=ERRORS.INVALID_PARAMETERS,
        error="Invalid parameters",
        message=message,
        details=details,
    )


def invalid_body(description, name=None):
    return invalid(("body", name, description))


def invalid_querystring(description, name=None):
    return invalid(("querystring", name, description))


def engine_unavailable():
    """Kinto's 503 for a backend that cannot answer."""
    return http_error(HTTPServiceUnavailable(), errno=ERRORS.BACKEND, message=UNAVAILABLE_MESSAGE)


def not_found(resource_name, object_id):
    """Kinto's 404 for an object that does not exist."""
    details = {"id": object_id, "resource_name": resource_name}
    return http_error(HTTPNotFound(), errno=ERRORS.MISSING_RESOURCE, details=details)
