"""Kinto's ``_token``: the sort values of a page's last hit, where the next page starts."""

import base64
import json


def next_page_token(last_hit: dict) -> str:
    """The ``_token`` of the page after ``last_hit``."""
    content = json.dumps({"sort": last_hit["sort"]}).encode()
    return base64.urlsafe_b64encode(content).decode().rstrip("=")


def search_after(token, length):
    """The ``search_after`` values a ``_token`` of a sort of ``length`` keys holds, or None
    when it holds no such thing."""
    try:
        padded = token + "=" * (-len(token) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))["sort"]
    except (ValueError, TypeError, KeyError):
        values = None
    scalars = (str, int, float, bool, type(None))
    # A token of another sort (its ``_sort`` changed) would only get a confusing engine error.
    if not (
        isinstance(values, list)
        and len(values) == length
        and all(isinstance(v, scalars) for v in values)
    ):
        return None
    return values
