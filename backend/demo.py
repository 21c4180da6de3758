"""``make demo``: sample traffic through the running local API, through every state."""

from __future__ import annotations

import time

from streamdesk_processor.item import FINAL_STATES, Status

from backend.api_client import ApiClient, ApiUnreachable
from backend.samples import SAMPLES
from backend.settings import Settings


def run_demo(settings: Settings, per_kind: int = 3, wait_seconds: float = 30.0) -> int:
    """Send ``per_kind`` requests of every sample, follow them until final; 0 if the API took them all."""
    sent: list[tuple[str, str]] = []
    with ApiClient.of(settings) as client:
        return _send_and_follow(client, settings, sent, per_kind, wait_seconds)


def _send_and_follow(
    client: ApiClient, settings: Settings, sent: list[tuple[str, str]], per_kind: int, wait_seconds: float
) -> int:
    try:
        for kind, body in SAMPLES.items():
            for _ in range(per_kind):
                result = client.submit(body)
                if result.status_code != 202 or not result.id:
                    print(f"  {kind}: HTTP {result.status_code} {result.message}")
                    return 1
                sent.append((kind, result.id))
        print(f"sent {len(sent)} requests to {settings.api_base_url}; following them ...")
        final: dict[str, str] = {}
        deadline = time.monotonic() + wait_seconds
        while len(final) < len(sent) and time.monotonic() < deadline:
            for _kind, request_id in sent:
                if request_id in final:
                    continue
                status = client.get(request_id)
                state = str((status.fields or {}).get("status", ""))
                if state in FINAL_STATES:
                    final[request_id] = state
            time.sleep(0.5)
    except ApiUnreachable as error:
        print(f"demo: {error} (is `make up` running?)")
        return 1
    for kind, request_id in sent:
        print(f"  {final.get(request_id, 'not finished'):<13} {request_id}  {kind}")
    succeeded = sum(1 for s in final.values() if s == Status.SUCCEEDED)
    print(f"{succeeded} succeeded, {len(final) - succeeded} failed, {len(sent) - len(final)} not finished.")
    print(f"Open the dashboard: {settings.dashboard_url}")
    return 0
