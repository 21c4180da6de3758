"""The local slow-work event source's state file, typed: written by ``local/sqs_event_source.py``, read by
the supervisor (readiness) and the health page. One liveness rule, as for the trigger's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

from backend.trigger_state import SILENT_AFTER_MS

STATE_KIND: Final = "slow-work"


@dataclass
class SlowWorkState:
    pid: int
    started_at: int  # epoch ms
    heartbeat_at: int
    queue_url: str
    pollers: int  # concurrent batches (the mapping's MaximumConcurrency, capped locally)
    batch_size: int
    in_flight: int = 0  # invocations running now
    batches: int = 0
    messages: int = 0
    deleted: int = 0
    left_for_redelivery: int = 0  # reported in batchItemFailures, or in a batch whose function failed
    function_errors: int = 0
    last_batch_at: int | None = None
    last_error: str | None = None
    stopped: bool = False

    def is_alive(self, now_ms: int) -> bool:
        return not self.stopped and now_ms - self.heartbeat_at <= SILENT_AFTER_MS

    def to_json(self) -> dict[str, Any]:
        return {"kind": STATE_KIND, **asdict(self)}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> SlowWorkState:
        """The state of a document; ValueError when it is not the slow-work event source's."""
        if not isinstance(document, Mapping) or document.get("kind") != STATE_KIND:
            raise ValueError("not a slow-work state document")
        values = {key: value for key, value in document.items() if key != "kind"}
        try:
            return cls(**values)
        except TypeError as error:
            raise ValueError(f"not a slow-work state document: {error}") from None
