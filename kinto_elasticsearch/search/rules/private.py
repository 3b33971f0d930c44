"""Private fields (``index:private_fields``): which they are, what reaches them, and the
``_source`` of a hit context rewritten so that none comes back.

Readers who may not write the collection may not read them: a field reference that reaches
one is refused by the rules, and every hit context excludes them.
"""

import fnmatch

from kinto_elasticsearch.index.mapping import private_fields as declared_private_fields


def private_fields(metadata):
    """The collection's private fields, with the fields its mapping copies them to."""
    private = declared_private_fields(metadata)
    if private:
        private += _copies(metadata.get("index:schema"), private)
    return sorted(set(private))


def _copies(mapping, private):
    """Fields of an explicit mapping that hold private values: ``copy_to`` targets of
    private fields, and ``alias`` fields pointing into them."""
    found = []
    pending = [("", mapping)]
    while pending:
        prefix, node = pending.pop()
        properties = node.get("properties") if isinstance(node, dict) else None
        for name, spec in (properties or {}).items():
            if not isinstance(spec, dict):
                continue
            path = f"{prefix}{name}"
            inside = any(_within(path, f) for f in private)
            targets = spec.get("copy_to")
            if inside and targets:
                found += [targets] if isinstance(targets, str) else list(targets)
            if spec.get("type") == "alias" and any(
                _within(str(spec.get("path", "")), f) for f in private
            ):
                found.append(path)
            pending.append((f"{path}.", spec))
    return [f for f in found if isinstance(f, str)]


def _within(reference, private):
    return reference == private or reference.startswith(private + ".")


def reaches(reference, private, role="query"):
    """Whether a field reference (possibly a pattern) can reach a private field.

    A reference reaches a private field it names, a sub-field of it (``secret.keyword``), an
    object holding it (``exists`` on ``secret`` when ``secret.pin`` is private), or a pattern
    that could match any of those. A nested ``path`` only reaches a private field it is part
    of: the queries under it name their fields in full, and are checked too.
    """
    if _within(reference, private):
        return True
    if role != "path" and private.startswith(reference + "."):
        return True
    if not any(c in reference for c in "*?"):
        return False
    literal = reference.split("*")[0].split("?")[0]
    return (
        fnmatch.fnmatchcase(private, reference)
        or any(fnmatch.fnmatchcase(private + tail, reference) for tail in (".x", ".keyword"))
        or private.startswith(literal)
        or literal.startswith(private + ".")
    )


def hide_private_source(node, private, nested=False):
    """Rewrite the ``_source`` of one hit context so that no private field comes back."""
    source = node.get("_source", True)
    if source is False:
        return
    excluded = list(private)
    if nested:
        # Inner hits of nested objects filter their source relative to the object too.
        excluded += [f.split(".", i)[-1] for f in private for i in range(1, f.count(".") + 1)]
    if isinstance(source, dict):
        includes = source.get("includes", source.get("include"))
        excludes = source.get("excludes", source.get("exclude")) or []
    elif isinstance(source, (str, list)):
        includes, excludes = source, []
    else:
        includes, excludes = None, []
    excludes = [excludes] if isinstance(excludes, str) else list(excludes)
    hidden = {"excludes": excludes + [f for f in excluded if f not in excludes]}
    if includes is not None:
        includes = [includes] if isinstance(includes, str) else list(includes)
        # The engine refuses a field both included and excluded; patterns stay, the
        # excludes apply after them.
        kept = [i for i in includes if not any(_within(i, f) for f in excluded)]
        if includes and not kept:
            node["_source"] = False
            return
        hidden["includes"] = kept
    node["_source"] = hidden
