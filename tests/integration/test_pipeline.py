"""The pipeline through its front door: HTTP into the API twin, the stream, the trigger, the processor.

Only the API is spoken to; outcomes are read back through GET /requests/{id}, as a client would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from backend.api_client import ApiClient
from backend.demo import run_demo
from backend.local.slow_lane_stack import slow_lane_in_process
from backend.local.trigger import run_trigger
from backend.samples import SAMPLES
from backend.settings import Settings
from backend.template import Template
from tests.api_fixtures import running_api
from tests.processor_events import read_item, step_attempts


@pytest.fixture()
def api(settings: Settings, template: Template) -> Iterator[ApiClient]:
    stop = threading.Event()
    trigger = threading.Thread(target=run_trigger, args=(settings, template, stop), daemon=True)
    trigger.start()
    try:
        with (
            slow_lane_in_process(settings, template),  # long requests (the demo's slow one) go there
            running_api(settings, template) as base_url,
            ApiClient(base_url, settings.api_key) as client,
        ):
            yield client
    finally:
        stop.set()
        trigger.join(timeout=15)


def follow(client: ApiClient, request_id: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fields = client.get(request_id).fields or {}
        if fields.get("status") in ("SUCCEEDED", "FAILED"):
            return fields
        time.sleep(0.1)
    raise AssertionError(f"{request_id} did not finish within {timeout} s: {fields}")


def test_success_failure_and_transient_retry(api: ApiClient, ddb: Any, settings: Settings) -> None:
    ok = api.submit({"order": 1})
    failing = api.submit({"simulate": {"fail": "card declined", "failAtStep": 3}})
    flaky = api.submit(
        {"simulate": {"fail": "gateway timeout", "transient": True, "failTimes": 1, "failAtStep": 3}}
    )
    assert ok.status_code == failing.status_code == flaky.status_code == 202

    done = follow(api, str(ok.id))
    assert done["status"] == "SUCCEEDED" and done["attempts"] == 1 and done["result"]
    assert "error" not in done

    failed = follow(api, str(failing.id))
    assert failed["status"] == "FAILED"
    assert failed["error"] == {"type": "BusinessError", "message": "card declined", "step": "charge"}

    retried = follow(api, str(flaky.id))
    assert retried["status"] == "SUCCEEDED" and retried["attempts"] == 2
    # The two steps before the failing one ran once, on the first attempt; the rest on the retry.
    assert step_attempts(read_item(ddb, settings.table, str(flaky.id))) == {
        "validate": 1, "reserve": 1, "charge": 2, "notify": 2,
    }  # fmt: skip


def test_make_demo_takes_every_sample_to_its_end(
    api: ApiClient, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    demo_settings = settings.model_copy(update={"api_url": api.base_url})
    assert run_demo(demo_settings, per_kind=1, wait_seconds=30) == 0
    out = capsys.readouterr().out
    # Every sample reached the state its simulate section promises.
    expected_failed = {"fails", "fails at step 2 on the first attempt (a redrive then succeeds)"}
    summary = next(line for line in out.splitlines() if line.endswith("not finished."))
    failed = len(expected_failed)
    assert summary == f"{len(SAMPLES) - failed} succeeded, {failed} failed, 0 not finished.", summary
    for kind in SAMPLES:
        line = next(line for line in out.splitlines() if line.endswith(kind))
        assert line.split()[0] == ("FAILED" if kind in expected_failed else "SUCCEEDED"), line


def test_a_long_request_goes_through_the_slow_lane_and_back(
    api: ApiClient, ddb: Any, settings: Settings
) -> None:
    """Through the real trigger, the SQS twin and its event source: handed off, finished by the worker."""
    accepted = api.submit({"order": 1, "simulate": {"delayMs": 1200}})
    done = follow(api, str(accepted.id), timeout=30)
    assert done["status"] == "SUCCEEDED", done
    assert done["attempts"] == 1
    stored = read_item(ddb, settings.table, str(accepted.id))
    assert step_attempts(stored) == {"validate": 1, "reserve": 1, "charge": 1, "notify": 1}
    assert "handoff" not in stored and "leaseUntil" not in stored


def test_a_viewer_cannot_submit_through_the_backend(api: ApiClient, ddb: Any, settings: Settings) -> None:
    from backend.operations import submit
    from backend.roles import Actor, PermissionDenied, Role

    with pytest.raises(PermissionDenied):
        submit(api, {"order": 1}, Actor("viewer@example.com", Role.VIEWER))
    assert ddb.scan(TableName=settings.table, Select="COUNT")["Count"] == 0
    assert submit(api, {"order": 1}, Actor("ops@example.com", Role.OPERATOR)).status_code == 202
