"""The package's tree keeps the shape the docs describe (docs/contributing.rst): modules of
one job, and sides that import only downwards.

Sides, from the bottom: the shared modules (errors, metrics, events, storage, config), the
engine seam (``client``), the index side (``index``), then the write side (``sync``) and the
read side (``search``), which never import each other, the command line (``ops``), and at
the top ``plugin`` and ``includeme``, which wire them together.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).parent.parent / "kinto_elasticsearch"

# What each part may import of the package (besides itself).
MAY_IMPORT = {
    "errors": set(),
    "metrics": set(),
    "events": set(),
    "storage": set(),
    "client": {"metrics"},
    "index": {"client", "metrics"},
    "config": {"index"},
    "sync": {"index", "client", "config", "storage", "errors", "events", "metrics"},
    "search": {"index", "client", "config", "storage", "errors", "metrics"},
    "ops": {"sync", "index", "client", "config", "storage", "errors", "metrics"},
    "plugin": {"search", "sync", "index", "client", "config", "storage", "metrics"},
    "__init__": {"plugin", "config", "search", "sync", "client"},
}
MAX_MODULE_LINES = 460
MAX_CLASS_LINES = 210


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def _part(path):
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def _imported_parts(tree):
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "kinto_elasticsearch" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_part_imports_only_what_is_below_it(path):
    part = _part(path)
    assert part in MAY_IMPORT, f"{part} is not placed in the layout: add it to MAY_IMPORT"
    imported = _imported_parts(ast.parse(path.read_text())) - {part}
    assert imported <= MAY_IMPORT[part], f"{path.name} imports {imported - MAY_IMPORT[part]}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_classes_stay_small(path):
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            assert node.end_lineno - node.lineno + 1 <= MAX_CLASS_LINES, node.name
