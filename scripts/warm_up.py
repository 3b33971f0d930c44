"""The warm-up of a freshly started test engine, for ``make serve`` and the tests alike.

osmem-server takes seconds over the first index it creates, longer than the plugin's
request timeout: whatever comes first (a test, the first collection of ``make serve``)
would time out.
"""

import urllib.request


def warm_up(url):
    """Create and delete an index on the engine at ``url``."""
    for method in ("PUT", "DELETE"):
        request = urllib.request.Request(f"{url}/warm-up", method=method)
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
