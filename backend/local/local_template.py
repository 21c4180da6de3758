"""The template as the local stack sees it: the table's logical id mapped to the local table's name."""

from __future__ import annotations

from dataclasses import replace

from backend.settings import Settings
from backend.template import TABLE_ID, LocalValues, Template, default_raw_template


def local_template(settings: Settings, template: Template | None = None) -> Template:
    """``template`` (default: the project's) with its intrinsics resolved for this machine's stack:
    ``!Ref RequestsTable`` is ``settings.table``, the region is ``settings.region``."""
    if template is None:
        return Template(
            default_raw_template(), LocalValues(refs={TABLE_ID: settings.table}, region=settings.region)
        )
    refs = {**template.local.refs, TABLE_ID: settings.table}
    return Template(template.raw, replace(template.local, refs=refs, region=settings.region))
