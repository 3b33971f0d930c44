"""Sphinx configuration of the kinto-elasticsearch documentation (``make docs``)."""

import pathlib
import sys
from importlib.metadata import PackageNotFoundError, version

DOCS = pathlib.Path(__file__).parent
# The checkout being documented comes first, before any installed copy of the package, so the
# settings reference is always the one of this tree; the local extensions sit in _ext.
sys.path[:0] = [str(DOCS.parent), str(DOCS / "_ext")]

project = "kinto-elasticsearch"
author = "Kinto contributors"
copyright = "Kinto contributors"
try:
    release = version("kinto-elasticsearch")
except PackageNotFoundError:
    release = ""
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",  # bench/RESULTS.md, included by benchmarks.rst
    "settings_reference",
]

source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]
highlight_language = "none"

html_theme = "alabaster"
html_theme_options = {
    "description": "Search for Kinto, with Kinto's permissions.",
    "github_user": "Kinto",
    "github_repo": "kinto-elasticsearch",
}
html_static_path = []
