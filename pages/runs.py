"""Runs (live): queued, running and recent trainings, streamed from the run store."""

import streamlit as st

from lrviz.ui import runs

st.title("Runs")
runs.live_view()
