"""Who is using the dashboard, and with which role (the page side of ``backend/roles.py``).

Three modes, the first configured wins:
1. OpenID Connect (``[auth]`` in ``.streamlit/secrets.toml``): ``st.login``; operators are the e-mails listed
   in ``STREAMDESK_OPERATORS`` / ``operators`` of ``[streamdesk]``; everyone else signed in is a viewer.
2. Passwords (``viewer_password`` / ``operator_password``): a password form; the role is the one whose
   password matched.
3. Neither: the local default. Operator when the dashboard listens on 127.0.0.1 only (and the page says so);
   a viewer otherwise, because an unauthenticated dashboard reachable from a network must not change things.
"""

from __future__ import annotations

import hmac
from enum import StrEnum
from typing import Any

import streamlit as st

from backend.roles import Actor, Role
from backend.settings import LOOPBACK_ADDRESSES, Settings

SESSION_ACTOR = "streamdesk.actor"  # the password form's signed-in actor
# Who this browser session acts as, set by dashboard.py on every run before the page runs.
CURRENT_ACTOR = "streamdesk.current_actor"


class SignInMode(StrEnum):
    OIDC = "OpenID Connect"
    PASSWORD = "password"
    LOCAL = "local default"


def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all: Streamlit raises rather than returning empty
        return False


def sign_in_mode(settings: Settings) -> SignInMode:
    if _oidc_configured():
        return SignInMode.OIDC
    if settings.viewer_password or settings.operator_password:
        return SignInMode.PASSWORD
    return SignInMode.LOCAL


def role_for_password(settings: Settings, password: str) -> Role | None:
    """The role whose password this is (constant-time comparisons), or None."""
    given = password.encode()
    for role, secret in (
        (Role.OPERATOR, settings.operator_password),
        (Role.VIEWER, settings.viewer_password),
    ):
        if secret is not None and hmac.compare_digest(given, secret.get_secret_value().encode()):
            return role
    return None


def server_listens_on_loopback_only() -> bool:
    """Whether this Streamlit server is reachable from this machine only.

    Asked of the server itself, not of the settings: ``streamlit run dashboard.py`` without an address
    listens on every interface, whatever STREAMDESK_HOST says. (.streamlit/config.toml sets 127.0.0.1.)
    """
    address = st.get_option("server.address")
    return bool(address) and str(address) in LOOPBACK_ADDRESSES


def local_default_actor(settings: Settings) -> Actor:
    if settings.listens_on_loopback_only and server_listens_on_loopback_only():
        return Actor("local operator", Role.OPERATOR)
    return Actor("anonymous viewer", Role.VIEWER)


def current_actor(settings: Settings) -> Actor | None:
    """The signed-in actor; renders the sign-in form and returns None while nobody is signed in."""
    mode = sign_in_mode(settings)
    if mode is SignInMode.LOCAL:
        return local_default_actor(settings)
    if mode is SignInMode.OIDC:
        user: Any = st.user
        if not user.is_logged_in:
            st.info("Sign in to use Streamdesk.")
            st.button("Sign in", on_click=st.login, type="primary")
            return None
        email = user.get("email")
        # Only a verified e-mail can make an operator: a display name is chosen by the user, and so is
        # an unverified address at some providers. (No email_verified claim at all: the provider vouches.)
        verified = isinstance(email, str) and user.get("email_verified", True) is not False
        is_operator = verified and str(email).lower() in {o.lower() for o in settings.operators}
        shown = str(email or user.get("name") or "signed-in user")
        return Actor(shown, Role.OPERATOR if is_operator else Role.VIEWER)
    actor = st.session_state.get(SESSION_ACTOR)
    if isinstance(actor, Actor):
        return actor
    with st.form("sign-in"):
        st.write("Sign in to use Streamdesk.")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        matched = role_for_password(settings, password)
        if matched is None:
            st.error("Wrong password.")
            return None
        actor = Actor(matched.value, matched)
        st.session_state[SESSION_ACTOR] = actor
        st.rerun()
    return None


def page_actor(settings: Settings) -> Actor:
    """The signed-in actor, for the top of a page; renders the sign-in form and stops the page while
    nobody is signed in.

    ``dashboard.py`` signs in on every run, but a page can run without it: Streamlit runs a ``pages/``
    file directly when a deep link (``/failures``) is the first URL a server serves, before any session
    ran the entry script. ``backend/dashboard/server.py`` (how the dashboard is started) prevents that;
    a server started with plain ``streamlit run`` does not, so every page asks here too.
    """
    actor = st.session_state.get(CURRENT_ACTOR)
    if isinstance(actor, Actor):
        return actor
    actor = current_actor(settings)
    if actor is None:
        st.stop()
    st.session_state[CURRENT_ACTOR] = actor
    return actor


def sign_out() -> None:
    st.session_state.pop(SESSION_ACTOR, None)
    st.session_state.pop(CURRENT_ACTOR, None)
    if _oidc_configured():
        st.logout()


def describe(actor: Actor, settings: Settings) -> str:
    """One line for the sidebar: who, which role, and how they got it."""
    mode = sign_in_mode(settings)
    from backend.dashboard.formatting import md_escape  # the name comes from a sign-in provider: data

    text = f"Signed in as **{md_escape(actor.name)}** ({actor.role.value})"
    if mode is SignInMode.LOCAL:
        if actor.role is Role.OPERATOR:
            return "Local default: **operator**, because the dashboard listens on 127.0.0.1 only."
        return "No sign-in configured and the dashboard is reachable from the network: **viewer** only."
    return text
