"""Reading the search box's querystring options (``ranking.SearchBox``): a value given
once, a boolean, a list of names, and field names with weights."""

import re

from kinto_elasticsearch import errors

MAX_FIELDS = 50
MAX_WEIGHT = 1000
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
_WEIGHTED = re.compile(r"^(?P<name>[^\^]+?)(?:\^(?P<weight>\d+(?:\.\d+)?))?$")


def single(params, name):
    values = params.getall(name)
    if len(values) > 1:
        raise errors.invalid_querystring(f"{name} may be given once", name)
    return values[0].strip() if values else None


def boolean(params, name):
    value = single(params, name)
    if value is None or value.lower() in _FALSE:
        return False
    if value.lower() in _TRUE:
        return True
    raise errors.invalid_querystring(f"{name} must be true or false", name)


def names(params, name):
    found = []
    for value in params.getall(name):
        for item in value.split(","):
            item = item.strip()
            if item and item not in found:
                found.append(item)
    if len(found) > MAX_FIELDS:
        raise errors.invalid_querystring(f"{name} may name at most {MAX_FIELDS} fields", name)
    return found


def weighted_fields(params, name):
    weighted = {}
    for item in names(params, name):
        match = _WEIGHTED.match(item)
        weight = float(match["weight"]) if match and match["weight"] else 1.0
        if not match or not 0 < weight <= MAX_WEIGHT:
            raise errors.invalid_querystring(
                f"{name} takes field names with an optional weight from 0 to "
                f"{MAX_WEIGHT} (title^3,body), not {item!r}",
                name,
            )
        weighted.setdefault(match["name"], int(weight) if weight.is_integer() else weight)
    return weighted.items()
