"""Benchmark: the overview in Debian's Chromium, every range, against a big stack; and the server's memory.

    python scripts/bench_overview_browser.py [--rate 1000] [--days 7] [--items 100000] [--repeat 3]

Builds the big stack of scripts/bench_overview.py (``--items`` request items and ``--days`` of rollups at
``--rate`` requests a second, in its own in-memory DynamoDB Local), starts the dashboard as ``make up``
does (``backend.dashboard.server``, a subprocess), opens the overview in headless Chromium through
Playwright, and for every choice of the range control clicks it ``--repeat`` times (from another range
each time) and measures the time from the click until the page has rendered fully:

    the subheader names the chosen range, the three charts have drawn their SVG, no element is stale
    (Streamlit marks the previous run's elements ``data-stale`` until they are replaced) and the
    "running" status widget is gone.

The dashboard's cache lives one second (backend/dashboard/reads.py), so each measured render reads
DynamoDB again. Reports the median and the slowest per range, the first load of the page, and the
dashboard server's peak resident memory (``VmHWM`` of its process). No assertions: docs/performance.md
records the numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_overview import build_stack
from playwright.sync_api import Page, sync_playwright

from backend.dashboard import controls
from backend.dashboard import server as dashboard_server
from backend.local.chromium import CHROMIUM, CHROMIUM_ARGS
from backend.local.dynamodb_local import DynamoDBLocal, free_port
from backend.template import PROJECT_ROOT

RANGES = [*controls.RANGE_CHOICES, *controls.LONG_RANGE_CHOICES]
TIMEOUT_MS = 60_000

# True once the overview shows ``label``'s range fully rendered (see the module docstring).
RENDERED = """(label) => {
  const heading = `Transitions in the selected range (${label})`;
  if (![...document.querySelectorAll('h3')].some((h) => h.textContent.includes(heading))) return false;
  if (document.querySelector('[data-testid="stStatusWidget"]')) return false;
  if (document.querySelector('[data-stale="true"]')) return false;
  const charts = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')];
  return charts.length >= 3 && charts.every((chart) => chart.querySelector('.main-svg'));
}"""


def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the dashboard exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise RuntimeError("the dashboard did not answer within 60 s")


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def render_ms(page: Page, label: str) -> float:
    """Click the range ``label`` and wait until it has rendered fully; the milliseconds that took."""
    start = time.perf_counter()
    page.locator('[data-testid="stRadio"] label').filter(has_text=label).first.click()
    page.wait_for_function(RENDERED, arg=label.lower(), polling="raf", timeout=TIMEOUT_MS)
    return (time.perf_counter() - start) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="requests a second in the rollups")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--items", type=int, default=100_000, help="real request items")
    parser.add_argument("--repeat", type=int, default=3, help="renders per range")
    args = parser.parse_args(argv)
    local = DynamoDBLocal.start()
    now = int(time.time() * 1000)
    try:
        with tempfile.TemporaryDirectory(prefix="streamdesk-bench-browser-") as tmp:
            stack = build_stack(local, "big", args.items, now, args.days, rate=args.rate, data_dir=Path(tmp))
            settings = stack.settings
            port = free_port()
            env = {key: value for key, value in os.environ.items() if not key.startswith("STREAMDESK_")} | {
                "STREAMDESK_DYNAMODB_PORT": str(local.port),
                "STREAMDESK_TABLE": settings.table,
                "STREAMDESK_DATA_DIR": tmp,
                "STREAMDESK_API_KEY": "bench-key-0123456789",
                "STREAMDESK_SECRETS_FILE": str(Path(tmp) / "no-secrets.toml"),
                # Auto-refresh every minute: the measured renders are the clicks', not a timer's.
                "STREAMDESK_REFRESH_SECONDS": "60",
            }
            log = Path(tmp) / "streamlit.log"
            with log.open("wb") as output:
                server = subprocess.Popen(  # a fixed command line, as `make up` starts the dashboard
                    dashboard_server.command("127.0.0.1", port),
                    cwd=PROJECT_ROOT,
                    env=env,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            url = f"http://127.0.0.1:{port}"
            try:
                wait_healthy(url, server)
                measure(url, server.pid, args.repeat, stack.rollup_requests, args.items)
            finally:
                server.terminate()
                server.wait(timeout=15)
    finally:
        local.stop()
    return 0


def measure(url: str, server_pid: int, repeat: int, requests: int, items: int) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        start = time.perf_counter()
        page.goto(url + "/")
        page.wait_for_function(RENDERED, arg="1 hour", polling="raf", timeout=TIMEOUT_MS)
        first_load = (time.perf_counter() - start) * 1000
        print(
            f"\nThe overview in Chromium: rollups of {requests:,} requests, {items:,} request items; "
            f"first load of the page (1 hour) {first_load:.0f} ms"
        )
        print(f"  {'range':<12}{'median ms':>11}{'slowest ms':>12}")
        previous = "1 hour"
        for label in RANGES:
            timings = []
            for _ in range(repeat):
                other = next(r for r in RANGES if r not in (label, previous))
                render_ms(page, other)  # from another range each time, so every click reruns
                time.sleep(1.1)  # past the cache's one second: each measured render reads DynamoDB
                timings.append(render_ms(page, label))
                previous = label
            print(f"  {label:<12}{statistics.median(timings):>11.0f}{max(timings):>12.0f}", flush=True)
        browser.close()
    print(f"  dashboard server peak RSS: {peak_rss_mb(server_pid):.0f} MB")


if __name__ == "__main__":
    raise SystemExit(main())
