"""A succeeded request expires locally as on AWS: DynamoDB Local's TTL deletes it.

DynamoDB Local (3.3) never deletes an item that lacks one of the table's index keys, so this pins that a
request finished by the real processor still carries every index key (the state index is not sparse).
"""

from __future__ import annotations

import time
from typing import Any

from streamdesk_processor import item
from streamdesk_processor.item import Status

from tests.processor_events import (
    FakeClock,
    get_image,
    insert_record,
    make_processor,
    put_pending_item,
    read_item,
    stream_event,
)

DAY_S = 86_400


def test_a_succeeded_request_is_deleted_by_ttl_once_expired(ddb: Any, table_name: str) -> None:
    request_id = put_pending_item(ddb, table_name, {"order": 1})
    # Processed "eight days ago" with seven days' retention: its ttl has passed by a day.
    processor = make_processor(ddb, table_name, clock=FakeClock(time.time() - 8 * DAY_S), retention_days=7)
    assert processor.handle(stream_event(insert_record(ddb, table_name, request_id))) == {
        "batchItemFailures": []
    }
    done = read_item(ddb, table_name, request_id)
    assert done[item.STATUS] == Status.SUCCEEDED
    assert done[item.TTL] < time.time() - DAY_S + 60

    deadline = time.monotonic() + 60
    while get_image(ddb, table_name, request_id) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert get_image(ddb, table_name, request_id) == {}, "DynamoDB Local's TTL did not delete the request"
