"""Applies one batch with the rollups consumer in a process of its own, slowly (the kill test kills it
with SIGKILL between two transactions, or in one).

Usage: ``python rollups_child.py <config.json>``: the DynamoDB Local endpoint, the rollups table, the path
of a JSON file holding the batch's records, and the pause after each transaction.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from streamdesk_rollups import deltas

from backend.local.dynamodb_local import client
from tests.rollups_workload import make_consumer


class SlowClient:
    def __init__(self, real: Any, pause: float) -> None:
        self._real, self._pause = real, pause

    def transact_write_items(self, **kwargs: Any) -> Any:
        answer = self._real.transact_write_items(**kwargs)
        time.sleep(self._pause)
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    deltas.MAX_TRANSACTION_ITEMS = 8  # many transactions, so that the kill lands between them
    records = json.loads(Path(config["records"]).read_text(encoding="utf-8"))
    consumer = make_consumer(SlowClient(client(config["endpoint"]), config["pause"]), config["table"])
    response, _ = consumer.handle({"Records": records})
    print(json.dumps(response))


if __name__ == "__main__":
    main()
