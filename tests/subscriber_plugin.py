"""A plugin that subscribes to the plugin's events, as another Kinto plugin would."""

from kinto_elasticsearch.events import RecordsIndexed, RecordsIndexedInPart, RecordsIndexFailed


def includeme(config):
    received = config.registry.received_events = []

    def on_event(event):
        received.append(event)

    def broken(event):
        raise RuntimeError("a broken subscriber must not break indexing")

    config.add_subscriber(on_event, RecordsIndexed)
    config.add_subscriber(on_event, RecordsIndexedInPart)
    config.add_subscriber(on_event, RecordsIndexFailed)
    config.add_subscriber(broken, RecordsIndexed)
