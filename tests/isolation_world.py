"""The tenants of the isolation test (``test_isolation``): T, its readers, and O, who writes.

T (bucket ``tb``, owned by alice) has a pooled collection ``tc`` of eight records made of
the metadata of installed packages (their names and summaries: text others wrote), with
string, number, boolean, object and array fields; carol may read one of its records (the
partial reader). Its twin ``tp`` holds the same records and is readable by everyone (the
anonymous reader): a collection everyone may read makes every user a full reader of it, so
the partial reader needs a collection of their own. O (bucket ``ob``, owned by bob)
has a collection ``oc`` in the same pool, and writes what each class of side channel needs:

- :func:`other_words`: near-typos and prefixes of T's words, new words and T's own text
  (term dictionaries, suggesters, expansions, background sets; and BM25 statistics);
- :func:`other_fields`: fields T never wrote (some matching T's wildcard patterns, one a
  geo-like object), and many text fields (the clause limit of a search over all fields);
- :func:`many_writes`, written *before* T in a fresh pool: many writes of one record (the
  shard's sequence numbers and ``_doc`` order);
- :func:`conflicting_fields`, written *before* T in a fresh pool: T's field names with
  other types.

T's records carry explicit ``last_modified`` values, so that T written again in a fresh pool
(after O) is the same T, down to versions and paging tokens.
"""

import importlib.metadata
import re

from tests.conftest import auth, wait_until

T_BUCKET, T_COLLECTION = "tb", "tc"
O_BUCKET, O_COLLECTION = "ob", "oc"
T_URI = f"/v1/buckets/{T_BUCKET}/collections/{T_COLLECTION}"
PUBLIC_URI = f"/v1/buckets/{T_BUCKET}/collections/tp"
O_URI = f"/v1/buckets/{O_BUCKET}/collections/{O_COLLECTION}"
ALICE, BOB, CAROL = auth("alice"), auth("bob"), auth("carol")
# Each reader, and the collection of T they search.
READERS = {"full": (ALICE, T_URI), "partial": (CAROL, T_URI), "anonymous": ({}, PUBLIC_URI)}
# The one record carol may read.
SHARED_RECORD = "elasticsearch"
# Far in the future: above any timestamp Kinto gives a fresh collection, so it is kept.
FIRST_MODIFIED = 3_000_000_000_000

# Project dependencies, always installed with the test extra: T's texts.
PACKAGES = [
    "kinto",
    "pyramid",
    "WebTest",
    "elasticsearch",
    "opensearch-py",
    "jsonschema",
    "colander",
    "waitress",
]
LICENSES = ["apache", "bsd", "mit", "zpl"]

# O's words for class 1: near-typos (one edit from T's "python", "pyramid", "client",
# "schema", "wsgi"), prefixes of T's words, and words nobody else wrote.
NEAR_TYPOS = ["pythn", "pyton", "pyramix", "clinet", "schemo", "wsgx", "servr"]
PREFIXES = ["py", "pyth", "cli", "sche", "ws"]
NEW_WORDS = ["quokka", "zebrafish", "pythonista", "clientele", "schematic"]
# Class 5: text fields O maps, enough for a search over every field to pass the engines'
# clause limits with a few words, within one collection's share of the pool.
MANY_FIELDS = 300
# Class 3: writes O makes before T writes in a fresh pool.
MANY_WRITES = 40


def _keywords(meta, name):
    words = re.split(r"[\s,]+", (meta.get("Keywords") or "").lower())
    return [w for w in words if w.isalpha()][:4] or [name.lower()]


def tenant_records():
    """``{record id: data}``: T's eight records, from the packages' own metadata."""
    records = {}
    for i, package in enumerate(PACKAGES):
        meta = importlib.metadata.distribution(package).metadata
        record_id = re.sub(r"[^a-z0-9]+", "-", package.lower())
        records[record_id] = {
            "name": meta["Name"],
            "title": meta["Summary"],
            "n": i + 1,
            "ratio": round((i * 37 % 11) / 4, 2),
            "flag": i % 2 == 0,
            "meta": {"license": LICENSES[i % 4], "year": 2015 + i, "version": meta["Version"]},
            "tags": _keywords(meta, package),
            "nums": [i, i * 2],
            "last_modified": FIRST_MODIFIED + i * 1000,
        }
    return records


def user_id(app, headers):
    return app.get("/v1/", headers=headers).json["user"]["id"]


def write_tenant(app):
    """T: its bucket, its two collections, their records (one shared with carol)."""
    app.put_json(f"/v1/buckets/{T_BUCKET}", {}, headers=ALICE)
    app.put_json(T_URI, {}, headers=ALICE)
    _write_records(app, T_URI, {"read": [user_id(app, CAROL)]})
    app.put_json(PUBLIC_URI, {"permissions": {"read": ["system.Everyone"]}}, headers=ALICE)
    _write_records(app, PUBLIC_URI, {})


def _write_records(app, uri, shared):
    records = tenant_records()
    requests = [
        {
            "method": "PUT",
            "path": f"{uri[3:]}/records/{record_id}",
            "body": {
                "data": data,
                **({"permissions": shared} if record_id == SHARED_RECORD else {}),
            },
        }
        for record_id, data in records.items()
    ]
    # One after the other: the explicit timestamps must each be above the last.
    for request in requests:
        app.post_json("/v1/batch", {"defaults": {"headers": ALICE}, "requests": [request]})
    wait_searchable(app, uri, ALICE, len(records))


def create_other(app):
    """O exists in the pool, with nothing written yet."""
    app.put_json(f"/v1/buckets/{O_BUCKET}", {}, headers=BOB)
    app.put_json(O_URI, {}, headers=BOB)


def wait_searchable(app, uri, headers, count):
    """Writes are indexed after their commit: wait until ``count`` records are found."""

    def found():
        response = app.post_json(f"{uri}/search", {"size": 0}, headers=headers)
        return response.json["hits"]["total"]["value"] >= count

    wait_until(found, f"{count} records searchable in {uri}")


def _write_other(app, records):
    requests = [
        {"method": "PUT", "path": f"{O_URI[3:]}/records/{record_id}", "body": {"data": data}}
        for record_id, data in records.items()
    ]
    for first in range(0, len(requests), 25):
        batch = {"defaults": {"headers": BOB}, "requests": requests[first : first + 25]}
        app.post_json("/v1/batch", batch)
    return len(records)


def _search_count(app):
    response = app.post_json(f"{O_URI}/search", {"size": 0}, headers=BOB)
    return response.json["hits"]["total"]["value"]


def other_words(app):
    """Class 1 and 2: O's words next to T's, and T's own words and texts, many times."""
    titles = [data["title"] for data in tenant_records().values()]
    records = {}
    for i, word in enumerate(NEAR_TYPOS + PREFIXES + NEW_WORDS):
        records[f"w{i}"] = {"title": f"{word} {word}", "name": word, "tags": [word]}
    for i, title in enumerate(titles):
        # T's query words, more often than T has them: document frequencies and lengths.
        records[f"s{i}"] = {"title": f"{title} python python web client", "name": "python"}
    return _write_other(app, records)


def other_fields(app):
    """Class 4 and 5: fields T never wrote, some matching T's patterns (``ti*``, ``meta.*``,
    ``n*``), a geo-like object; and :data:`MANY_FIELDS` text fields."""
    records = {
        "f0": {
            "price": 12.5,
            "color": "red",
            "title_extra": "python extra",
            "tiny": "python",
            "meta": {"owner": "bob", "score": 3},
            "nick": "pythn",
            "loc": {"lat": 1.0, "lon": 2.0},
            "when": "2024-05-01",
        },
    }
    names = [f"f{i:03}" for i in range(MANY_FIELDS)]
    for first in range(0, MANY_FIELDS, 50):
        records[f"m{first}"] = {name: "python web" for name in names[first : first + 50]}
    return _write_other(app, records)


def many_writes(app):
    """Class 3, before T writes: one record of O written :data:`MANY_WRITES` times, in a
    field T never searches (so that the pool's statistics of T's fields stay as they were)."""
    uri = f"{O_URI}/records/x"
    for i in range(MANY_WRITES):
        app.put_json(uri, {"data": {"filler": f"quokka{i}"}}, headers=BOB)
    return 1


def conflicting_fields(app):
    """Class 4, before T writes: T's field names with other types."""
    record = {
        "n": "many",
        "ratio": "half",
        "flag": "maybe",
        "meta": "flat",
        "tags": {"nested": True},
        "nums": "none",
        "name": {"first": "bob"},
    }
    return _write_other(app, {"c0": record})


def wait_other(app, count):
    wait_until(lambda: _search_count(app) >= count, f"{count} records of O searchable")
