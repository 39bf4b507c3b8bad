"""Compare: pick runs from a table of summaries, overlay or tile their curves, export."""

import streamlit as st

from lrviz.ui import compare
from lrviz.ui.router import ensure_router

ensure_router()  # first, before anything draws: run under app.py's router

st.title("Compare")
compare.page()
