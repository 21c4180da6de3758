"""What the benchmarks of the API twin start first: their own in-memory DynamoDB Local, a private data dir
and a table created from the template, torn down afterwards."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from backend.local.dynamodb_local import DynamoDBLocal, client
from backend.local.table import ensure_table
from backend.settings import Settings, load_settings
from backend.template import LocalValues, Template

BENCH_API_KEY = "bench-key-0123456789"


class BenchStack(NamedTuple):
    settings: Settings  # points at the table; its api_key is BENCH_API_KEY
    template: Template  # resolved for the table
    ddb: Any  # a low-level client on the engine


@contextmanager
def bench_stack(table: str) -> Iterator[BenchStack]:
    """DynamoDB Local with ``table`` (from infra/template.yaml) and settings for it, for one benchmark."""
    engine = DynamoDBLocal.start()
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            settings = load_settings(
                dynamodb_port=engine.port,
                table=table,
                data_dir=Path(data_dir),
                STREAMDESK_API_KEY=BENCH_API_KEY,
            )
            template = Template.load(local=LocalValues(refs={"RequestsTable": table}))
            ddb = client(engine.endpoint)
            ensure_table(ddb, table, template)
            yield BenchStack(settings, template, ddb)
    finally:
        engine.stop()
