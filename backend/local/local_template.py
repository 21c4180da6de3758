"""The template as the local stack sees it: the table's logical id mapped to the local table's name."""

from __future__ import annotations

from backend.settings import Settings
from backend.template import TABLE_ID, LocalValues, Template, default_raw_template


def local_template(settings: Settings) -> Template:
    """The project's template, its intrinsics resolved for this machine's stack."""
    return Template(
        default_raw_template(),
        LocalValues(refs={TABLE_ID: settings.table}, region=settings.region),
    )
