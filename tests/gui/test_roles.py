"""Who may do what, in the dashboard: sign-in by password per role, the local default operator, and a
viewer who sees the same data as an operator and no control that changes anything (the backend refuses a
viewer's change anyway). AppTest of the real dashboard against DynamoDB Local."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from streamdesk_processor import item as attr
from streamdesk_processor.item import ResolveReason
from streamlit.testing.v1 import AppTest

from backend.dashboard import sign_in
from backend.dashboard.formatting import md_escape
from backend.dashboard.sign_in import CURRENT_ACTOR
from backend.local.trigger import Trigger
from backend.operations import Pipeline
from backend.roles import Actor, PermissionDenied, Role
from backend.settings import Settings
from backend.template import Template
from tests.gui.conftest import DASHBOARD, RUN_TIMEOUT, RunPage, texts
from tests.processor_events import put_pending_item, read_item

VIEWER_PASSWORD = "viewer-secret-1"
OPERATOR_PASSWORD = "operator-secret-2"
FAIL = {"simulate": {"fail": "card declined for order 4711", "failAtStep": 3, "failTimes": 1}}


def run_entry(app: AppTest) -> AppTest:
    """Runs the app through its entry script, dashboard.py, as the server does on every run.

    AppTest (Streamlit 1.67) runs the entry script only on the first run: later runs resolve the page
    hash through the ``pages/`` directory (whose file names are the url paths here) and run the page file
    alone. Forgetting the page hash makes the next run start from dashboard.py again, which the sign-in
    tests need (the sign-in form and the sidebar live there)."""
    app._page_hash = ""
    app._finished_page_script_hash = ""
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def open_page(page: str | None = None, *, password: str | None = None) -> AppTest:
    """Runs dashboard.py (the entry script signs in), signs in with ``password`` if given, then shows
    ``page``. AppTest must run the entry script once before it can switch to a page of st.navigation."""
    app = AppTest.from_file(str(DASHBOARD), default_timeout=RUN_TIMEOUT)
    app.run()
    if password is not None:
        app.text_input[0].input(password)
        app.button[0].click()
        run_entry(app)
        if CURRENT_ACTOR in app.session_state:
            run_entry(app)  # the form's st.rerun(), as the server would do it
    if page is not None:
        app.switch_page(page).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def control_keys(app: AppTest) -> set[str]:
    """Keys of the widgets that change something (retry, resolve, cancel, note, reconcile, send)."""
    keys = {str(b.key) for b in app.button if b.key}
    keys |= {str(m.key) for m in app.multiselect if m.key}
    keys |= {str(t.key) for t in app.text_input if t.key}
    keys |= {str(s.key) for s in app.selectbox if s.key}
    return {
        k
        for k in keys
        if k.startswith(
            (
                "fail_retry",
                "fail_select",
                "fail_confirm",
                "fail_resolve",
                "fail_reason",
                "fail_note",
                "detail_",
                "health_reconcile",
                "submit_send",
            )
        )
    }


@pytest.fixture()
def passwords(monkeypatch: pytest.MonkeyPatch, app_env: Settings) -> Settings:
    monkeypatch.setenv("STREAMDESK_VIEWER_PASSWORD", VIEWER_PASSWORD)
    monkeypatch.setenv("STREAMDESK_OPERATOR_PASSWORD", OPERATOR_PASSWORD)
    return app_env


@pytest.fixture()
def failed_ids(ddb: Any, app_env: Settings, template: Template) -> Iterator[list[str]]:
    ids = [put_pending_item(ddb, app_env.table, {"order": n, **FAIL}) for n in range(2)]
    with Trigger(app_env, template) as trigger:
        trigger.poll_once()
        yield ids


def test_the_local_default_is_an_operator_and_says_so(app_env: Settings, failed_ids: list[str]) -> None:
    app = AppTest.from_file(str(DASHBOARD), default_timeout=RUN_TIMEOUT).run()
    assert not app.exception
    sidebar = " ".join(str(m.value) for m in app.sidebar.markdown)
    assert "Local default: **operator**" in sidebar and "127.0.0.1" in sidebar
    assert not [b for b in app.sidebar.button if b.key == "sign_out"]  # nothing to sign out of
    app.switch_page("pages/failures.py").run()
    assert {k for k in control_keys(app) if k.startswith("fail_retry_group")}, control_keys(app)


def test_nobody_sees_anything_before_signing_in(passwords: Settings, failed_ids: list[str]) -> None:
    app = open_page()
    assert "Sign in to use Streamdesk." in texts(app)
    assert [t.label for t in app.text_input] == ["Password"]
    assert not app.metric and not app.dataframe and "Overview" not in texts(app)

    app.text_input[0].input("not the password")
    app.button[0].click()
    run_entry(app)
    assert "Wrong password." in texts(app)
    assert CURRENT_ACTOR not in app.session_state
    assert not app.dataframe


def test_password_guessing_is_slowed_and_then_refused(
    monkeypatch: pytest.MonkeyPatch, passwords: Settings, failed_ids: list[str]
) -> None:
    """Past the limit even the right password is refused for a while: a guesser cannot tell a hit."""
    monkeypatch.setattr(sign_in, "FAILED_ATTEMPT_DELAY_S", 0.0)  # the limit is what is tested here
    app = open_page()
    for attempt in range(sign_in.PASSWORD_ATTEMPTS.limit):
        app.text_input[0].input(f"guess {attempt}")
        app.button[0].click()
        run_entry(app)
        assert "Wrong password." in texts(app)
    app.text_input[0].input(OPERATOR_PASSWORD)
    app.button[0].click()
    run_entry(app)
    assert "Too many wrong passwords: try again in" in texts(app)
    assert CURRENT_ACTOR not in app.session_state and not app.dataframe

    sign_in.PASSWORD_ATTEMPTS.reset()  # the window passed
    app.text_input[0].input(OPERATOR_PASSWORD)
    app.button[0].click()
    run_entry(app)
    run_entry(app)
    assert app.session_state[CURRENT_ACTOR] == Actor("operator", Role.OPERATOR)


def test_a_viewer_sees_the_data_and_no_controls(passwords: Settings, failed_ids: list[str]) -> None:
    viewer = open_page("pages/failures.py", password=VIEWER_PASSWORD)
    assert viewer.session_state[CURRENT_ACTOR] == Actor("viewer", Role.VIEWER)
    shown = texts(viewer)
    assert "You are a viewer" in shown and "2 failed request(s) in 1 group(s)" in shown
    assert control_keys(viewer) == set()
    # The samples open for a viewer too, without the retry button.
    [select] = [s for s in viewer.selectbox if str(s.key).startswith("fail_open_")]
    select.set_value(failed_ids[0]).run()
    assert any("card declined for order 4711" in c.value for c in viewer.code)
    assert control_keys(viewer) == set()

    viewer.switch_page("pages/health.py").run()
    assert not viewer.exception, [e.value for e in viewer.exception]
    assert "you see the pipeline's health; reconciling is for operators" in texts(viewer)
    assert control_keys(viewer) == set()

    viewer.switch_page("pages/submit.py").run()
    assert not viewer.exception, [e.value for e in viewer.exception]
    assert "submit_send" not in control_keys(viewer)

    # Had a page offered it anyway, the backend refuses the signed-in viewer.
    with pytest.raises(PermissionDenied, match="viewer"):
        Pipeline.connect(passwords).retry(failed_ids, viewer.session_state[CURRENT_ACTOR])


def test_a_viewer_gets_no_support_action_anywhere_and_the_backend_refuses_them(
    passwords: Settings, failed_ids: list[str], ddb: Any
) -> None:
    pending = put_pending_item(ddb, passwords.table, {"order": 9})
    viewer = open_page("pages/failures.py", password=VIEWER_PASSWORD)
    who = viewer.session_state[CURRENT_ACTOR]
    viewer.toggle(key="fail_show_resolved").set_value(True).run()
    assert not viewer.exception, [e.value for e in viewer.exception]
    assert control_keys(viewer) == set()
    for request_id in (failed_ids[0], pending):
        viewer.switch_page("pages/requests.py")
        viewer.query_params["id"] = request_id
        viewer.run()
        assert not viewer.exception, [e.value for e in viewer.exception]
        assert request_id in texts(viewer)  # the detail is shown ...
        assert control_keys(viewer) == set()  # ... without a single control

    pipeline = Pipeline.connect(passwords)
    refused = [
        lambda: pipeline.resolve(failed_ids, ResolveReason.DUPLICATE, "", who),
        lambda: pipeline.cancel([pending], who),
        lambda: pipeline.actions.add_note(pending, "hello", who),
        lambda: pipeline.actions.reopen(failed_ids[0], who),
    ]
    for attempt in refused:
        with pytest.raises(PermissionDenied, match="viewer"):
            attempt()
    assert {read_item(ddb, passwords.table, i)[attr.STATUS] for i in failed_ids} == {"FAILED"}
    stored = read_item(ddb, passwords.table, pending)
    assert stored[attr.STATUS] == "PENDING" and attr.TRAIL not in stored


def test_an_operator_signs_in_sees_the_controls_and_signs_out(
    ddb: Any, passwords: Settings, failed_ids: list[str]
) -> None:
    operator = open_page(password=OPERATOR_PASSWORD)
    assert operator.session_state[CURRENT_ACTOR] == Actor("operator", Role.OPERATOR)
    assert "Signed in as **operator** (operator)" in " ".join(str(m.value) for m in operator.sidebar.markdown)
    operator.switch_page("pages/failures.py").run()
    key = next(k for k in control_keys(operator) if k.startswith("fail_retry_group_"))
    operator.button(key=key).click().run()
    operator.button(key=key.replace("fail_retry_group_", "fail_confirm_")).click().run()
    assert not operator.exception, [e.value for e in operator.exception]
    assert [read_item(ddb, passwords.table, i)["redrivenBy"] for i in failed_ids] == ["operator", "operator"]

    run_entry(operator)
    operator.sidebar.button(key="sign_out").click()
    run_entry(operator)
    assert "Sign in to use Streamdesk." in texts(operator)
    assert CURRENT_ACTOR not in operator.session_state


def test_a_deep_link_to_a_page_asks_for_sign_in_too(
    run_page: RunPage, passwords: Settings, failed_ids: list[str]
) -> None:
    """The server runs a pages/ file without dashboard.py when a deep link is the first URL it serves
    (AppTest's run_page does the same): the page itself asks who is there."""
    for page in ("pages/failures.py", "pages/health.py", "pages/submit.py"):
        app = run_page(page)
        assert "Sign in to use Streamdesk." in texts(app), page
        assert not app.dataframe and not app.metric and control_keys(app) == set(), page
        assert failed_ids[0] not in texts(app)


AUTH_SECRETS = {
    "auth": {
        "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
        "cookie_secret": "a-test-cookie-secret",
        "client_id": "streamdesk",
        "client_secret": "not-a-real-secret",
        "server_metadata_url": "https://login.example.com/.well-known/openid-configuration",
    }
}


def oidc_app(user: dict[str, Any], page: str = "pages/failures.py") -> AppTest:
    """The dashboard with an OpenID Connect provider in its secrets and ``user`` as st.user."""
    app = AppTest.from_file(str(DASHBOARD), default_timeout=RUN_TIMEOUT)
    app.secrets = json.loads(json.dumps(AUTH_SECRETS))
    app.user = user
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    if CURRENT_ACTOR in app.session_state:
        app.switch_page(page).run()
        assert not app.exception, [e.value for e in app.exception]
    return app


def test_openid_connect_sign_in_and_operators_by_email(
    monkeypatch: pytest.MonkeyPatch, app_env: Settings, failed_ids: list[str]
) -> None:
    monkeypatch.setenv("STREAMDESK_OPERATORS", '["Ops@Example.com"]')
    monkeypatch.setenv("STREAMDESK_VIEWERS", '["@example.com"]')

    signed_out = oidc_app({"is_logged_in": False})
    assert "Sign in to use Streamdesk." in texts(signed_out)
    assert [b.label for b in signed_out.button] == ["Sign in"]
    assert CURRENT_ACTOR not in signed_out.session_state and not signed_out.dataframe

    operator = oidc_app({"is_logged_in": True, "email": "ops@example.com", "email_verified": True})
    assert operator.session_state[CURRENT_ACTOR] == Actor("ops@example.com", Role.OPERATOR)
    assert any(k.startswith("fail_retry_group_") for k in control_keys(operator))

    viewer = oidc_app({"is_logged_in": True, "email": "support@example.com", "email_verified": "true"})
    assert viewer.session_state[CURRENT_ACTOR] == Actor("support@example.com", Role.VIEWER)
    assert "2 failed request(s) in 1 group(s)" in texts(viewer)
    assert control_keys(viewer) == set()

    # Only a verified e-mail gets in at all; a display name never does.
    for unverified_claims in (
        {"email": "ops@example.com", "email_verified": False},
        {"email": "ops@example.com", "email_verified": "false"},
        {"email": "ops@example.com"},  # no claim: the provider promised nothing
        {"name": "ops@example.com"},
    ):
        refused = oidc_app({"is_logged_in": True, **unverified_claims})
        assert CURRENT_ACTOR not in refused.session_state, unverified_claims
        assert "may not use this dashboard" in texts(refused)
        assert not refused.dataframe and not refused.metric and failed_ids[0] not in texts(refused)


def test_openid_connect_refuses_an_account_nobody_listed(
    monkeypatch: pytest.MonkeyPatch, app_env: Settings, failed_ids: list[str]
) -> None:
    """With a public provider, "signed in" is anyone on the internet: unlisted accounts see nothing."""
    monkeypatch.setenv("STREAMDESK_OPERATORS", '["ops@example.com"]')
    stranger = oidc_app({"is_logged_in": True, "email": "someone@elsewhere.org", "email_verified": True})
    assert CURRENT_ACTOR not in stranger.session_state
    assert f"{md_escape('someone@elsewhere.org')} may not use this dashboard" in texts(stranger)
    assert not stranger.dataframe and failed_ids[0] not in texts(stranger)
