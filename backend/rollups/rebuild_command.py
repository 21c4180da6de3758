"""``streamdesk rollups rebuild``: recount a range of the rollups from the items, print how far they differ,
and with ``--apply`` add what is missing (``backend.rollups.rebuild``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from streamdesk_processor.item import Status

from backend.rollups.rebuild import Difference, RebuildReport, rebuild
from backend.settings import Settings
from backend.store.calls import GuardedClient, dynamodb_client
from backend.store.reader import RequestStore
from backend.time_arguments import fmt_utc

LISTED: Final = 20  # differing figures printed one per line; the rest are counted
# An --apply range must end at least this long ago: the consumer may not have counted a record of the last
# minutes yet (its lag), and a correction added for it would be counted a second time when it does.
CLOSED_AFTER_MS: Final = 15 * 60_000


def require_closed_range(until_given: str | None, until_ms: int, now_ms: int, *, allow_recent: bool) -> None:
    """ValueError unless an --apply range is closed: an explicit --until, at least
    :data:`CLOSED_AFTER_MS` ago (or ``allow_recent``, said by someone who checked the consumer's lag)."""
    if not until_given:
        raise ValueError("--apply needs an explicit --until (a closed range, e.g. --until 15m)")
    if until_ms > now_ms - CLOSED_AFTER_MS and not allow_recent:
        raise ValueError(
            "--apply on a range that ends within the last 15 minutes could count records the rollups "
            "consumer has not counted yet a second time; end it earlier, or add --allow-recent once the "
            "health page shows the consumer caught up"
        )


def run_rebuild(
    settings: Settings, since_ms: int, until_ms: int, apply: bool, say: Callable[[str], None]
) -> int:
    """Rebuild [since, until] of the settings' rollups and print the report (exit code 0). StoreUnavailable
    when a table cannot be used; ValueError for an inverted range (before anything is read)."""
    if until_ms < since_ms:
        raise ValueError(f"--until ({fmt_utc(until_ms)}) is before --since ({fmt_utc(since_ms)})")
    client = GuardedClient(dynamodb_client(settings))
    report = rebuild(
        client,
        settings.table,
        settings.rollups_table,
        settings.rollups_shards,
        since_ms,
        until_ms,
        apply=apply,
    )
    for line in report_lines(report, settings, apply):
        say(line)
    say(gauge_line(RequestStore(settings)))
    return 0


def gauge_line(store: RequestStore) -> str:
    """The open-failures gauge next to an exact count of the FAILED items right now (``Select=COUNT``).

    They differ for a moment while the rollups consumer is behind; a difference that lasts means a batch
    was given up on (its failures never reached the gauge). The rebuild does not correct the gauge: a
    correction would race with the consumer's own updates; the dashboard's figure is the gauge."""
    gauge = store.rollups().open_failures()
    counts, _ = store.count_open((Status.FAILED,))
    failed = counts.get(Status.FAILED, 0)
    verdict = "equal" if gauge == failed else f"they differ by {gauge - failed:+d}"
    return f"open failures now: the rollups' gauge {gauge}, FAILED items {failed} ({verdict})"


def report_lines(report: RebuildReport, settings: Settings, apply: bool) -> list[str]:
    lines = [
        f"rollups of {fmt_utc(report.since_ms)} .. {fmt_utc(report.until_ms)} "
        f"(table {settings.rollups_table}, {settings.rollups_shards} write shards) against the items of "
        f"{settings.table}",
        f"read {report.items_read} request item(s); compared {report.buckets_compared} bucket(s) "
        "(minutes and hours)",
    ]
    if not report.differences:
        return [*lines, "no figure differs: the rollups hold what the items tell"]
    below, above = report.below, report.above
    lines.append(
        f"{len(report.differences)} figure(s) differ: {len(below)} below the recount (missing, "
        f"{report.missing} in all), {len(above)} above it (history the items no longer show: a failure "
        "redriven since, a resolution reopened; never lowered)"
    )
    missing_buckets = report.missing_buckets
    lines.append(f"missing bucket(s): {len(missing_buckets)} (the items have figures, the rollups none)")
    lines += [f"  {grain.name.lower():<6} {fmt_utc(start)}" for grain, start in missing_buckets[:LISTED]]
    if len(missing_buckets) > LISTED:
        lines.append(f"  … and {len(missing_buckets) - LISTED} more")
    lines.append("differing figures (stored, recounted):")
    lines += [_difference(d) for d in report.differences[:LISTED]]
    if len(report.differences) > LISTED:
        lines.append(f"  … and {len(report.differences) - LISTED} more")
    if not report.corrections:
        lines.append("nothing to add (the rollups miss nothing the items tell)")
        return lines
    added = ", ".join(f"{amount} {figure}" for figure, amount in sorted(report.corrections.items()))
    if apply:
        lines.append(f"added, to write shard 0 of {report.corrections_written} bucket(s): {added}")
    else:
        lines.append(
            f"--apply would add, to write shard 0 of {report.correction_buckets} bucket(s): {added} "
            "(run it on a closed range, older than the consumer's lag)"
        )
    return lines


def _difference(d: Difference) -> str:
    gap = f"missing {d.missing}" if d.missing else f"above by {d.stored - d.recounted}"
    where = f"{d.grain.name.lower():<6} {fmt_utc(d.bucket_ms)}"
    return f"  {where}  {d.figure:<28} {d.stored:>7} {d.recounted:>7}  {gap}"
