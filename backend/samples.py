"""Ready-made requests that drive the demo business logic down every path (the ``simulate`` object: README,
"The request's life"). The submit page's examples and ``make demo`` both use these."""

from __future__ import annotations

from typing import Any, Final

SAMPLES: Final[dict[str, dict[str, Any]]] = {
    "succeeds": {"order": 42, "items": ["book", "pen"], "note": "a request that succeeds"},
    "fails": {"order": 43, "simulate": {"fail": "card declined", "failAtStep": 3}},
    "fails once, then succeeds on the automatic retry": {
        "order": 44,
        "simulate": {"fail": "gateway timeout", "transient": True, "failTimes": 1},
    },
    "fails at step 2 on the first attempt (a redrive then succeeds)": {
        "order": 45,
        "simulate": {"fail": "card declined", "failAtStep": 2, "failTimes": 1, "delayMs": 150},
    },
    "slow (1.5 s of work)": {"order": 46, "simulate": {"delayMs": 1500}},
}
