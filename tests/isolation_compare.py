"""Answers of the isolation test: asked, cleaned of what may vary, compared, reported.

An answer is the status, the JSON body and the headers a client pages with. Removed before
comparing, and nothing else:

- ``took``, the engine's time for the search: a timing. Timings are the one side channel the
  issue sets aside (pooled or not, a busy shard answers slower).

Added: when the search the plugin sent would pass a real engine's clause limit, how many
clauses it makes (``tests/isolation_clauses.py``: the test servers enforce no limit).

Everything else counts: hits and their order, ``_score``, ``max_score``, sort values, totals,
aggregations, suggestions, highlights, explanations, error messages, ``_shards`` and the
headers ``Total-Objects`` and ``Next-Page``.
"""

import json
from urllib.parse import urlsplit

from tests.isolation_world import T_BUCKET

HEADERS = ("Total-Objects", "Next-Page")
# Not a header: the clauses a real engine would make of the search (class 5).
MODELLED = "clauses at the engine (modelled)"
# What a difference went through, read from where it is (or what the probe asks).
CHANNEL_KEYS = {
    "_score": 2,
    "max_score": 2,
    "_explanation": 1,
    "suggest": 1,
    "_seq_no": 3,
    "_primary_term": 3,
    "_unindexed": 4,
    MODELLED: 5,
}
CLAUSE_WORDS = ("clause", "too many fields")
CLASSES = {
    1: "index-wide term dictionaries and statistics",
    2: "scores",
    3: "shard counters",
    4: "the shared mapping",
    5: "availability",
}


def ask(app, probe, headers, uri, model):
    """The answer to ``probe`` as the reader of ``headers``, searching T's collection
    ``uri``: (status, body, headers). ``model``: an ``isolation_clauses.ClauseModel``,
    whose verdict is one more header (real engines answer a 400 instead)."""
    model.start()
    if probe.kind == "post":
        response = app.post_json(f"{uri}/search", probe.body, headers=headers, expect_errors=True)
    elif probe.kind == "bucket":
        uri = f"/v1/buckets/{T_BUCKET}/search"
        response = app.post_json(uri, probe.body, headers=headers, expect_errors=True)
    else:
        uri = {
            "get": f"{uri}/search",
            "facets": f"{uri}/search/facets",
            "bucket_get": f"/v1/buckets/{T_BUCKET}/search",
        }[probe.kind]
        response = app.get(f"{uri}?{probe.qs}", headers=headers, expect_errors=True)
    try:
        body = response.json
    except ValueError:
        body = response.text
    if isinstance(body, dict):
        body.pop("took", None)
    kept = {name: response.headers[name] for name in HEADERS if name in response.headers}
    over = model.over_limit()
    if over:
        kept[MODELLED] = f"{over} clauses, over {model.limit}"
    if "Next-Page" in kept:
        parts = urlsplit(kept["Next-Page"])
        # Follow the page: the token's next page must be the same too.
        following = app.get(f"{parts.path}?{parts.query}", headers=headers, expect_errors=True)
        page = following.json if following.content_type == "application/json" else None
        if isinstance(page, dict):
            page.pop("took", None)
        kept["next page"] = json.dumps([following.status_int, page], sort_keys=True)
    return response.status_int, body, kept


def differences(before, after, path="", found=None, limit=40):
    """``[(path, before value, after value)]`` where two JSON values differ."""
    found = [] if found is None else found
    if len(found) >= limit:
        return found
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in before or key not in after:
                found.append((where, before.get(key, "<absent>"), after.get(key, "<absent>")))
            else:
                differences(before[key], after[key], where, found, limit)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for i, (one, other) in enumerate(zip(before, after, strict=True)):
            differences(one, other, f"{path}[{i}]", found, limit)
    elif before != after:
        found.append((path, before, after))
    return found


def channels(probe, before, after, diffs):
    """The classes a difference went through: from the keys that differ, the status and
    the error text; the probe's own class when nothing says."""
    found = set()
    if before[0] != after[0] or (before[0] != 200 and before[1] != after[1]):
        # An answer refused (or no longer) because of a clause limit is availability; one
        # refused otherwise, or an error text that changed, is the shared mapping (the
        # engine's errors name the pool's fields and types), or an expansion refused.
        text = json.dumps(after[1]).lower()
        found.add(5 if any(word in text for word in CLAUSE_WORDS) else 4)
        if probe.cls == 1 and before[0] != after[0]:
            found.add(1)
    for where, _, _ in diffs:
        parts = where.replace("[", ".[").split(".")
        found |= {CHANNEL_KEYS[part] for part in parts if part in CHANNEL_KEYS}
        if "sort" in parts and probe.cls in (2, 3):
            found.add(probe.cls)
    return found or {probe.cls}


def _short(value, width=90):
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def compare(probe, reader, before, after):
    """``[(class, detail)]`` for a probe whose answers differ, else ``[]``."""
    if before == after:
        return []
    diffs = []
    if before[0] != after[0]:
        diffs.append(("status", before[0], after[0]))
    diffs += differences(before[1], after[1], "body")
    diffs += differences(before[2], after[2], "headers")
    found = []
    for cls in sorted(channels(probe, before, after, diffs)):
        where, one, other = _first_for(cls, diffs)
        more = f" (+{len(diffs) - 1} more)" if len(diffs) > 1 else ""
        found.append((cls, f"{where}: {_short(one)} -> {_short(other)}{more}"))
    return found


def _first_for(cls, diffs):
    for where, one, other in diffs:
        parts = where.replace("[", ".[").split(".")
        if any(CHANNEL_KEYS.get(part) == cls for part in parts):
            return where, one, other
    return diffs[0]


def report(found, shown=40):
    """Every difference, by class, then by phase, then by probe (with the readers that see
    it, and the first differing path of the first of them). ``found``: ``(class, phase,
    probe name, reader, detail)``. Past ``shown`` probes of a phase, their names only."""
    grouped = {}
    for cls, phase, name, reader, detail in found:
        entry = grouped.setdefault((cls, phase), {}).setdefault(name, [[], detail])
        entry[0].append(reader)
    probes = sum(len(by_probe) for by_probe in grouped.values())
    lines = [
        f"{len(found)} differing answers, {probes} (class, phase, probe) entries; "
        "each: probe [readers]: first differing path: before -> after"
    ]
    for cls, title in CLASSES.items():
        phases = {phase: by for (c, phase), by in sorted(grouped.items()) if c == cls}
        count = sum(len(by) for by in phases.values())
        lines.append(f"\n== class {cls}, {title}: {count} probes")
        for phase, by_probe in phases.items():
            lines.append(f"  -- {phase}: {len(by_probe)} probes")
            names = sorted(by_probe)
            for name in names[:shown]:
                readers, detail = by_probe[name]
                lines.append(f"    {name} [{','.join(readers)}]: {detail}")
            if names[shown:]:
                lines.append(f"    ... and {len(names) - shown} more: {'; '.join(names[shown:])}")
    return "\n".join(lines)
