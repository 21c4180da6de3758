"""The template as the local stack sees it: the tables' logical ids mapped to the local tables' names."""

from __future__ import annotations

from dataclasses import replace

from backend.settings import Settings
from backend.template import ROLLUPS_TABLE_ID, TABLE_ID, LocalValues, Template, default_raw_template


def local_template(settings: Settings, template: Template | None = None) -> Template:
    """``template`` (default: the project's) with its intrinsics resolved for this machine's stack:
    ``!Ref RequestsTable`` is ``settings.table``, ``!Ref RollupsTable`` is ``settings.rollups_table``, the
    region is ``settings.region``."""
    tables = {TABLE_ID: settings.table, ROLLUPS_TABLE_ID: settings.rollups_table}
    if template is None:
        return Template(default_raw_template(), LocalValues(refs=tables, region=settings.region))
    refs = {**template.local.refs, **tables}
    return Template(template.raw, replace(template.local, refs=refs, region=settings.region))
