"""What the pages say when a read fails or finds nothing: one wording, one place."""

from __future__ import annotations

import streamlit as st

from backend.dashboard import reads
from backend.dashboard.formatting import md_escape
from backend.settings import Settings
from backend.store.calls import StoreUnavailable
from backend.store.models import RequestDetail


def cannot_read(error: StoreUnavailable) -> None:
    """The store is out of reach: say so in place of what the page would show."""
    st.error(f"Cannot read the requests: {error}")


def detail_or_notice(settings: Settings, request_id: str, missing: str) -> RequestDetail | None:
    """One request in full, or None after saying why not (``missing``: the text when it does not exist,
    with ``{id}`` for the escaped id)."""
    try:
        detail = reads.cached_detail(settings, request_id)
    except StoreUnavailable as error:
        cannot_read(error)
        return None
    if detail is None:
        st.warning(missing.replace("{id}", md_escape(request_id)))
    return detail
