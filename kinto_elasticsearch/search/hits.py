"""Hits as records: field names in the engine's answer turned back into record keys.

Documents hold record keys escaped (``index/fieldnames.py``): ``"./package.json"`` is the
field ``%2E/package%2Ejson``. A client asked about records, so each hit's ``_source`` (and
those of inner hits), and the field names that key its ``highlight`` and ``fields``, are
given back with the record's own keys.
"""

from kinto_elasticsearch.index.fieldnames import unescape_key


def _keys(value):
    if isinstance(value, dict):
        return {unescape_key(key): _keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_keys(item) for item in value]
    return value


def _path(name):
    return ".".join(unescape_key(part) for part in name.split("."))


def _hit(hit):
    if isinstance(hit.get("_source"), dict):
        hit["_source"] = _keys(hit["_source"])
    for key in ("highlight", "fields"):
        if isinstance(hit.get(key), dict):
            hit[key] = {_path(name): value for name, value in hit[key].items()}
    for inner in (hit.get("inner_hits") or {}).values():
        for inner_hit in (inner.get("hits") or {}).get("hits") or []:
            _hit(inner_hit)


def as_records(response):
    """``response`` with the record keys of every hit restored, in place."""
    for hit in (response.get("hits") or {}).get("hits") or []:
        _hit(hit)
    return response
