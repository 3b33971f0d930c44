"""The walk of ``suggest``: the suggesters and what their options hold."""

from kinto_elasticsearch.search.walk.constructs import SUGGESTERS, SUGGESTION_TEXT_KEYS
from kinto_elasticsearch.search.walk.findings import FORBIDDEN, FULL_READ, join_path, refuse


class Suggestions:
    """Named suggestions, each with its text and one suggester."""

    def __init__(self, walk):
        self.walk = walk

    def suggest(self, suggest, path):
        reason = (
            "'suggest' is not allowed: suggesters read the terms of every record, "
            "including ones you cannot read"
        )
        self.walk.emit(FULL_READ, path, reason=reason)
        if not isinstance(suggest, dict):
            raise refuse("'suggest' must be an object", path)
        for name, suggestion in suggest.items():
            suggestion_path = join_path(path, name)
            if name == "text":
                continue
            if not isinstance(suggestion, dict):
                raise refuse("A suggestion must be an object", suggestion_path)
            for key, value in suggestion.items():
                key_path = join_path(suggestion_path, key)
                if key in SUGGESTION_TEXT_KEYS:
                    continue
                if key not in SUGGESTERS:
                    raise refuse(f"'{key}' is not a supported suggester", key_path)
                self._suggester(value, key_path)

    def _suggester(self, params, path):
        if not isinstance(params, dict):
            raise refuse("Suggester options must be an object", path)
        for key, value in params.items():
            key_path = join_path(path, key)
            if key == "collate":
                reason = (
                    "'collate' is not allowed: it runs a templated query that cannot be checked"
                )
                self.walk.emit(FORBIDDEN, key_path, reason=reason)
            elif key in ("size", "shard_size"):
                self.walk.options.size(key, value, key_path, "max_aggregation_size")
            elif key == "direct_generator" and isinstance(value, list):
                for i, generator in enumerate(value):
                    self.walk.options.scan(generator, f"{key_path}[{i}]")
            elif key != "contexts":
                # Context names are the user's; their values are plain data.
                self.walk.options.option(key, value, key_path, params)
