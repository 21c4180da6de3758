"""Who is using the dashboard, and with which role (the page side of ``backend/roles.py``).

Three modes, the first configured wins:
1. OpenID Connect (``[auth]`` in ``.streamlit/secrets.toml``): ``st.login``; operators are the verified
   e-mails listed in ``STREAMDESK_OPERATORS``, viewers those in ``STREAMDESK_VIEWERS``; anyone else signed
   in is refused (the rules: ``backend/access.py``).
2. Passwords (``viewer_password`` / ``operator_password``): a password form; the role is the one whose
   password matched; failed attempts are slowed down and limited per client address.
3. Neither: the local default. Operator when the dashboard listens on 127.0.0.1 only (and the page says so);
   a viewer otherwise, because an unauthenticated dashboard reachable from a network must not change things.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

import streamlit as st

from backend import access
from backend.dashboard.formatting import md_escape
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


# One limiter for the whole server process: every browser session shares it, so a new session does not
# get a fresh budget of guesses.
PASSWORD_ATTEMPTS = access.AttemptLimiter()
# Every wrong password costs its sender this long, on top of the limit per window.
FAILED_ATTEMPT_DELAY_S = 1.0


def role_for_password(settings: Settings, password: str) -> Role | None:
    """The role whose password this is (constant-time comparisons), or None; never for an empty one."""
    secrets = {
        Role.OPERATOR: settings.operator_password.get_secret_value() if settings.operator_password else None,
        Role.VIEWER: settings.viewer_password.get_secret_value() if settings.viewer_password else None,
    }
    return access.role_for_password(password, secrets)


def _client_address() -> str:
    """The browser's address as the server sees it (behind a proxy: the proxy's, so the limit is shared)."""
    try:
        address = st.context.ip_address
    except Exception:  # no request context: one shared bucket
        return "unknown"
    return address if isinstance(address, str) and address else "unknown"


def _password_sign_in(settings: Settings) -> Actor | None:
    with st.form("sign-in"):
        st.write("Sign in to use Streamdesk.")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return None
    client = _client_address()
    wait = PASSWORD_ATTEMPTS.try_acquire(client)  # counted as a failure until it succeeds
    if wait > 0:
        st.error(f"Too many wrong passwords: try again in {int(wait) + 1} s.")
        return None
    matched = role_for_password(settings, password)
    if matched is None:
        time.sleep(FAILED_ATTEMPT_DELAY_S)
        st.error("Wrong password.")
        return None
    PASSWORD_ATTEMPTS.succeeded(client)
    return Actor(matched.value, matched)


def _oidc_sign_in(settings: Settings) -> Actor | None:
    user: Any = st.user
    if not user.is_logged_in:
        st.info("Sign in to use Streamdesk.")
        st.button("Sign in", on_click=st.login, type="primary")
        return None
    claims = user.to_dict()
    role = access.oidc_role(claims, settings.operators, settings.viewers)
    shown = str(claims.get("email") or claims.get("name") or "signed-in user")
    if role is None:
        st.error(
            f"{md_escape(shown)} may not use this dashboard: only verified e-mail addresses listed as "
            "operators or viewers may. Ask an operator to add you."
        )
        st.button("Sign out", on_click=st.logout)
        return None
    return Actor(shown, role)


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
        return _oidc_sign_in(settings)
    actor = st.session_state.get(SESSION_ACTOR)
    if isinstance(actor, Actor):
        return actor
    actor = _password_sign_in(settings)
    if actor is not None:
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
    text = f"Signed in as **{md_escape(actor.name)}** ({actor.role.value})"
    if mode is SignInMode.LOCAL:
        if actor.role is Role.OPERATOR:
            return "Local default: **operator**, because the dashboard listens on 127.0.0.1 only."
        return "No sign-in configured and the dashboard is reachable from the network: **viewer** only."
    return text
