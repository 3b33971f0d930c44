"""Trying a collection's index before its metadata is stored: a probe index, created
with the body the collection's index would get, which the caller deletes."""

import uuid

from kinto_elasticsearch.index import naming


def probe_name(prefix):
    """A new name for a probe index (:func:`validate_mapping`).

    The probe index lives under the prefix but its part starts with ``-``, which no Kinto
    id does, so it can never be taken for a collection's index.
    """
    return naming.probe_index_name(prefix, uuid.uuid4().hex)


def validate_mapping(admin, metadata, name, with_mapping=True, timeout=None):
    """Raise EngineRequestError if the engine would refuse this collection's index, as
    ``admin`` (``index/admin.py``) would create it.

    Creates the probe index ``name`` (:func:`probe_name`), which the caller deletes: a
    write being validated does not wait for that, and a probe whose creation timed out
    may still appear. Without ``with_mapping``, only the settings are tried (an empty
    mapping), so that a refusal can name the part of the metadata it comes from.
    """
    body = admin.index_body(metadata)
    if not with_mapping:
        body["mappings"] = {}
    admin.engine.call("indices.create", index=name, body=body, timeout=timeout)
