"""``make serve`` (scripts/serve.py), without starting its servers."""

import importlib
import subprocess
from pathlib import Path
from types import SimpleNamespace

SCRIPTS = Path(__file__).parent.parent / "scripts"


def test_serve_warms_the_engine_up_before_kinto_starts(monkeypatch):
    """Kinto's first index creation on a fresh osmem-server would outlast its timeout."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    serve = importlib.import_module("serve")
    events = []

    class Process:
        pid, returncode = 0, 0

        def __init__(self, args, **kwargs):
            events.append(("start", Path(args[0]).name))

        def poll(self):
            return 0

        def wait(self, timeout=None):
            return 0

    fake_subprocess = SimpleNamespace(
        Popen=Process, DEVNULL=subprocess.DEVNULL, TimeoutExpired=subprocess.TimeoutExpired
    )
    monkeypatch.setattr(serve, "subprocess", fake_subprocess)
    monkeypatch.setattr(serve.signal, "signal", lambda *args: None)
    monkeypatch.setattr(serve, "_wait", lambda url, process, what: events.append(("up", what)))
    monkeypatch.setattr(serve, "warm_up", lambda url: events.append(("warm up", url)))
    serve.main()
    engine_url = events[2][1]
    assert events == [
        ("start", "osmem-server"),
        ("up", "osmem-server"),
        ("warm up", engine_url),
        ("start", "kinto"),
        ("up", "Kinto"),
    ]
