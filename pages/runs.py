"""Runs (live): queued, running and recent trainings, streamed from the run store."""

import streamlit as st

from lrviz.ui import runs
from lrviz.ui.router import ensure_router

ensure_router()  # first, before anything draws: run under app.py's router

st.title("Runs")
runs.live_view()
