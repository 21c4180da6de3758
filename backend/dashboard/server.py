"""Starts the Streamlit dashboard: ``python -m backend.dashboard.server [streamlit run options]``.

``make up`` and ``streamdesk dashboard`` start the dashboard through this module rather than with
``streamlit run dashboard.py`` for one reason: Streamlit treats a folder named ``pages/`` beside the entry
script as an old-style multipage app until the first ``st.navigation`` call in the server's life. A deep
link (``/failures``, ``/requests?id=...``) opened before anyone loaded ``/`` would then run that page on
its own: no router, no sidebar, and no sign-in. Our router is ``st.navigation`` in ``dashboard.py``, so we
say so before the server starts.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from streamlit.runtime.pages_manager import PagesManager
from streamlit.web import cli

from backend.template import PROJECT_ROOT

ENTRY_SCRIPT = PROJECT_ROOT / "dashboard.py"


def command(host: str, port: int) -> list[str]:
    """The command line that starts the dashboard on ``host:port`` (used by ``make up`` and the tests).

    The websocket accepts only a Host naming this address or loopback (``server.allowedHosts``): a web page
    that rebinds its own DNS name to 127.0.0.1 cannot drive the dashboard as the local operator.
    """
    names = dict.fromkeys([host, "127.0.0.1", "localhost"])
    allowed = [name for name in names if name not in ("0.0.0.0", "::")]
    return [
        sys.executable, "-m", "backend.dashboard.server",
        "--server.port", str(port),
        "--server.address", host,
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        *(arg for name in allowed for arg in ("--server.allowedHosts", name)),
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    options = list(sys.argv[1:] if argv is None else argv)
    PagesManager.uses_pages_directory = False
    sys.argv = ["streamlit", "run", str(ENTRY_SCRIPT), *options]
    cli.main()  # click: exits the process when the server stops


if __name__ == "__main__":
    main()
