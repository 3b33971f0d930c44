"""The cluster's indices and aliases, as the plugin changes them: the requests every
other part of the index side builds on, and what they do when the cluster moved under
them (an index gone, one auto-created under an alias's name)."""

import fnmatch
import logging

from kinto_elasticsearch.client import EngineNotFound, EngineRequestError
from kinto_elasticsearch.client.engine import WRITE
from kinto_elasticsearch.index import naming

logger = logging.getLogger(__name__)

# Index and alias deletes per request: names go in the URL, one by one (Elasticsearch
# refuses wildcard deletes by default).
DELETE_CHUNK = 50
ALIAS_CHUNK = 500
# How the plugin attaches a collection's alias, whether to a pool or to an index of its own:
# as its write index. The engines allow an alias one write index, and they check it in the
# same cluster-state update as the attachment: of two processes that each found no alias
# and attach it to different indices at once, the second is refused (a 500,
# ``illegal_state_exception``), atomically, instead of leaving the alias on two indices and
# writes without a write index.
WRITE_INDEX = {"is_write_index": True}


def is_second_write_index(exc):
    """Whether the engine refused an attachment because the alias is on another index."""
    return exc.error_type == "illegal_state_exception" and "more than one write index" in str(
        exc.message
    )


def created_if_missing(call, create):
    """``call()``; if the index it reads does not exist yet (a collection created while
    the engine was unreachable, or before the plugin was enabled), ``create()`` it and
    call again, so the answer has the engine's shape. ``create`` None: no second chance."""
    try:
        return call()
    except EngineNotFound:
        if create is None:
            raise
    create()
    return call()


class Indices:
    def __init__(self, engine):
        self.engine = engine
        # The plugin's own indices (checkpoints, pools) this process created or found:
        # created once, not at every use (each attempt is a 400 the client libraries log),
        # and creating a pooled collection costs one cluster-state update (its alias).
        self.internal = set()

    def listed(self, pattern, lane=WRITE):
        """``{physical index: [aliases]}`` for the indices matching ``pattern``.

        Some engines resolve a pattern against aliases too (a collection pattern would
        then bring in the pool behind a pooled collection's alias): only indices whose own
        name matches are kept.
        """
        found = self.engine.call("indices.get_alias", index=pattern, lane=lane)
        # A pool's write alias is the plugin's, no collection's: left out.
        return {
            name: sorted(a for a in info.get("aliases", {}) if not naming.is_pool_write_alias(a))
            for name, info in found.items()
            if fnmatch.fnmatchcase(name, pattern)
        }

    def create_unless_exists(self, name, body):
        """Create the index ``name`` unless it exists (processes race for it)."""
        try:
            self.engine.call("indices.create", index=name, body=body)
        except EngineRequestError as exc:
            if exc.error_type != "resource_already_exists_exception":
                raise

    def ensure_internal(self, name, body):
        """Create one of the plugin's own indices once per process."""
        if name not in self.internal:
            self.create_unless_exists(name, body)
            self.internal.add(name)

    def update_aliases(self, actions, alias):
        """Apply alias ``actions`` at once; an index auto-created under ``alias``'s name (a
        write sent while the alias was missing, by an older version or another client)
        holds nothing of value and is replaced: the alias name is ours."""
        try:
            self.engine.call("indices.update_aliases", body={"actions": actions})
        except EngineRequestError as exc:
            if exc.error_type != "invalid_alias_name_exception":
                raise
            self.replace_auto_created(alias)
            self.engine.call("indices.update_aliases", body={"actions": actions})

    def replace_auto_created(self, alias):
        logger.warning("Replacing index %s, auto-created under an alias name", alias)
        self.delete([alias])

    def remove_aliases(self, pairs):
        """Remove ``(index, alias)`` pairs; those already gone are skipped."""
        for start in range(0, len(pairs), ALIAS_CHUNK):
            actions = [
                {"remove": {"index": index, "alias": alias}}
                for index, alias in pairs[start : start + ALIAS_CHUNK]
            ]
            try:
                self.engine.call("indices.update_aliases", body={"actions": actions})
            except EngineNotFound:
                # Some went away meanwhile (another process deleted them): one at a time.
                for action in actions:
                    try:
                        self.engine.call("indices.update_aliases", body={"actions": [action]})
                    except EngineNotFound:
                        pass

    def delete(self, names):
        self.internal.difference_update(names)
        for start in range(0, len(names), DELETE_CHUNK):
            chunk = names[start : start + DELETE_CHUNK]
            try:
                self.engine.call("indices.delete", index=",".join(chunk))
            except EngineNotFound:
                # Some went away meanwhile: delete the others one at a time.
                for name in chunk:
                    try:
                        self.engine.call("indices.delete", index=name)
                    except EngineNotFound:
                        pass
        return names

    def creation_dates(self, pattern):
        """``{index: creation time in seconds since the epoch}``."""
        found = self.engine.call("indices.get_settings", index=pattern, name="index.creation_date")
        return {
            name: int(info["settings"]["index"]["creation_date"]) / 1000
            for name, info in found.items()
        }
