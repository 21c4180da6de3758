"""Everything the dashboard and the command line use (docs/architecture.md): ``store/`` the data layer,
``computed/`` what is computed from it, ``deployed/`` readers of a deployed stack, ``dashboard/`` the
Streamlit glue, ``local/`` the local twin; settings, the template reader, the CLI and the API client."""
