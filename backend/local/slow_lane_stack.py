"""The slow lane's two local parts (the SQS twin and its event source) in this process, for the tests
and the benchmark; ``make up`` runs them as the components ``sqs`` and ``slow-work`` instead."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from backend.local.local_template import local_template
from backend.local.sqs_event_source import SqsEventSource
from backend.local.sqs_queues import ensure_queues
from backend.local.sqs_server import SqsServer
from backend.local.sqs_store import QueueStore
from backend.settings import Settings
from backend.template import Template


@contextmanager
def slow_lane_in_process(settings: Settings, template: Template) -> Iterator[SqsEventSource]:
    """The SQS twin on ``settings.sqs_port`` with the template's queues, and the event source polling it."""
    store = QueueStore(settings.sqs_database_path)
    ensure_queues(store, settings, local_template(settings, template))
    server = SqsServer(store, settings.host, settings.sqs_port, settings.region).start()
    stop = threading.Event()
    source = SqsEventSource(settings, template)
    thread = threading.Thread(target=source.run, args=(stop,), name="slow-work", daemon=True)
    thread.start()
    try:
        yield source
    finally:
        stop.set()
        thread.join(timeout=60)
        server.stop()
        store.close()
