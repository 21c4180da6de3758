"""Streamdesk dashboard: entry script and router (``streamlit run dashboard.py``).

The sidebar (where the dashboard points, the refresh control) is rendered here, in the entry script, so
its widgets keep their state while the user moves between pages. Each page lives in ``pages/``.
"""

from __future__ import annotations

import streamlit as st

from backend.dashboard import controls, reads, sign_in

st.set_page_config(page_title="Streamdesk", page_icon=":material/monitoring:", layout="wide")

settings = reads.app_settings()
# Who is using the dashboard (backend/sign_in.py): renders the sign-in form while nobody is signed in.
actor = sign_in.current_actor(settings)

# Stable URL paths: people bookmark and share them (/requests?id=<id> opens one request).
navigation = st.navigation(
    [
        st.Page(
            "pages/overview.py",
            title="Overview",
            icon=":material/dashboard:",
            url_path="overview",
            default=True,
        ),
        st.Page("pages/requests.py", title="Requests", icon=":material/list:", url_path="requests"),
        st.Page("pages/submit.py", title="Submit", icon=":material/send:", url_path="submit"),
        st.Page("pages/failures.py", title="Failures", icon=":material/error:", url_path="failures"),
        st.Page("pages/health.py", title="Health", icon=":material/monitor_heart:", url_path="health"),
    ],
    position="sidebar" if actor is not None else "hidden",
)
if actor is None:
    st.stop()
st.session_state[sign_in.CURRENT_ACTOR] = actor  # pages read it through sign_in.session_actor()
controls.render_sidebar(settings)
with st.sidebar:
    st.markdown(sign_in.describe(actor, settings))
    if sign_in.sign_in_mode(settings) is not sign_in.SignInMode.LOCAL:
        st.button("Sign out", on_click=sign_in.sign_out, key="sign_out")
navigation.run()
