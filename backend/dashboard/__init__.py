"""The Streamlit glue: the only backend code that imports streamlit (cached reads, controls, sign-in,
formatting for the pages). Everything it shows comes from the store and the computed views."""
