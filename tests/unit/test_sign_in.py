"""The local default (no sign-in configured) makes an operator only of a dashboard reachable from this
machine alone; the server's real address decides, not the settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError
from streamlit import config

from backend.dashboard.sign_in import local_default_actor, role_for_password
from backend.roles import Role
from backend.settings import Settings


@pytest.fixture()
def server_address() -> Iterator[None]:
    before = config.get_option("server.address")
    yield
    config.set_option("server.address", before)


@pytest.mark.usefixtures("server_address")
@pytest.mark.parametrize(
    ("address", "host", "role"),
    [
        ("127.0.0.1", "127.0.0.1", Role.OPERATOR),
        ("0.0.0.0", "127.0.0.1", Role.VIEWER),  # `streamlit run` on every interface
        (None, "127.0.0.1", Role.VIEWER),  # no address: Streamlit listens on every interface
        ("127.0.0.1", "0.0.0.0", Role.VIEWER),  # told to serve the network
    ],
)
def test_local_default_role(address: str | None, host: str, role: Role) -> None:
    config.set_option("server.address", address)
    assert local_default_actor(Settings(host=host)).role is role


def test_passwords_decide_the_role() -> None:
    settings = Settings(viewer_password="look", operator_password="act")
    assert role_for_password(settings, "act") is Role.OPERATOR
    assert role_for_password(settings, "look") is Role.VIEWER
    assert role_for_password(settings, "guess") is None
    assert role_for_password(settings, "") is None


def test_an_empty_password_never_signs_in() -> None:
    settings = Settings(viewer_password="look")
    assert role_for_password(settings, "") is None
    assert role_for_password(settings, "look") is Role.VIEWER


@pytest.mark.parametrize("name", ["STREAMDESK_OPERATOR_PASSWORD", "STREAMDESK_VIEWER_PASSWORD"])
@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_configured_password_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """Set but empty would let in whoever submits the form empty: the settings refuse it, clearly."""
    monkeypatch.setenv("STREAMDESK_VIEWER_PASSWORD", "look")
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match="set but empty"):
        Settings()
