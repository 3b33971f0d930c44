"""The ``kinto-elasticsearch-settings`` directive: the settings reference, from the code.

It parses ``kinto_elasticsearch.config.reference_rst()`` (rendered from ``SETTINGS``, the
table the plugin reads its settings from) into the page, so the documented keys, defaults
and environment variables cannot drift from what the plugin accepts.
"""

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

from kinto_elasticsearch import config
from kinto_elasticsearch.config import table


class SettingsReference(SphinxDirective):
    has_content = False

    def run(self):
        # A rebuild must follow a change of the table.
        self.env.note_dependency(table.__file__)
        source = f"{table.__file__} (reference_rst)"
        lines = StringList(config.reference_rst().splitlines(), source=source)
        container = nodes.container(classes=["kinto-elasticsearch-settings"])
        self.state.nested_parse(lines, self.content_offset, container)
        return [container]


def setup(app):
    app.add_directive("kinto-elasticsearch-settings", SettingsReference)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
